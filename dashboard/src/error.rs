//! What can go wrong behind a page, and the page a person gets for each: unknown ids are a
//! 404 page, bad query values a 400, an unreachable or refusing service a 502/503 that names
//! it — never a panic, never a blank page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::Code;

use crate::pages::layout;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A session, candidate, trial or artifact that the registry does not have.
    #[error("{0}")]
    NotFound(String),
    /// A query or form value the page cannot use.
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or credentials the dashboard does not know.
    #[error("{0}")]
    Unauthenticated(String),
    /// Known caller, action not allowed (or the dashboard is read-only).
    #[error("{0}")]
    Forbidden(String),
    /// A service the page needs could not be reached or is not configured.
    #[error("{0}")]
    Unavailable(String),
    /// A service answered with an error the page cannot turn into anything better.
    #[error("{0}")]
    Upstream(String),
}

impl DashboardError {
    /// A gRPC answer of `service` turned into the page's error.
    pub fn from_status(service: &str, status: &tonic::Status) -> Self {
        let message = format!("{service}: {}", status.message());
        match status.code() {
            Code::NotFound => Self::NotFound(message),
            Code::InvalidArgument | Code::OutOfRange => Self::BadRequest(message),
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
                Self::BadRequest(message)
            }
            Code::Unauthenticated => Self::Unauthenticated(message),
            Code::PermissionDenied => Self::Forbidden(message),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                Self::Unavailable(message)
            }
            Code::Ok
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss => Self::Upstream(message),
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "Not found",
            Self::BadRequest(_) => "Bad request",
            Self::Unauthenticated(_) => "Sign in",
            Self::Forbidden(_) => "Not allowed",
            Self::Unavailable(_) => "Service unavailable",
            Self::Upstream(_) => "Service error",
        }
    }
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let page = layout::error_page(status.as_u16(), self.title(), &self.to_string());
        (status, page).into_response()
    }
}

pub type Result<T, E = DashboardError> = std::result::Result<T, E>;
