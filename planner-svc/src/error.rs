//! planner-svc's error model: every domain function answers a [`PlannerError`], and the tonic
//! adapter turns it into a status with one exhaustive map ([`PlannerError::into_status`]).
//! Refusals a program acts on carry a machine-readable reason ([`ra_client::reason`]).

use ra_client::reason::{self, Reason};
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    /// The request is wrong as sent; the message says which field and what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// No research session (or record) of that id.
    #[error("{0}")]
    NotFound(String),
    /// The session is not in a state that allows the request (running, finished, foreign).
    #[error("{0}")]
    WrongState(String),
    /// The sandbox cannot train candidates (no usable backend, no trainer).
    #[error("{0}")]
    SandboxCannotTrain(String),
    /// No strategy can propose for this goal and history.
    #[error("{0}")]
    CannotPropose(String),
    /// A peer could not be asked.
    #[error("{0}")]
    Unavailable(String),
    /// A peer refused or failed; its status (code, message, details) is passed on as it is.
    #[error("{}", .0.message())]
    Peer(Status),
    /// A bug or a broken invariant here.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = PlannerError> = std::result::Result<T, E>;

impl From<Status> for PlannerError {
    fn from(status: Status) -> Self {
        Self::Peer(status)
    }
}

impl PlannerError {
    /// The status a client receives.
    pub fn into_status(self) -> Status {
        let message = self.to_string();
        match self {
            Self::Invalid(_) => Status::invalid_argument(message),
            Self::NotFound(_) => Status::not_found(message),
            Self::WrongState(_) => {
                reason::status(Code::FailedPrecondition, Reason::WrongState, message)
            }
            Self::SandboxCannotTrain(_) => reason::status(
                Code::FailedPrecondition,
                Reason::SandboxCannotTrain,
                message,
            ),
            Self::CannotPropose(_) => Status::failed_precondition(message),
            Self::Unavailable(_) => Status::unavailable(message),
            Self::Peer(status) => status,
            Self::Internal(_) => Status::internal(message),
        }
    }
}

impl From<PlannerError> for Status {
    fn from(error: PlannerError) -> Self {
        error.into_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_code_and_reason() {
        let cases = [
            (
                PlannerError::Invalid("x".into()),
                Code::InvalidArgument,
                None,
            ),
            (PlannerError::NotFound("x".into()), Code::NotFound, None),
            (
                PlannerError::WrongState("x".into()),
                Code::FailedPrecondition,
                Some(Reason::WrongState),
            ),
            (
                PlannerError::SandboxCannotTrain("x".into()),
                Code::FailedPrecondition,
                Some(Reason::SandboxCannotTrain),
            ),
            (
                PlannerError::CannotPropose("x".into()),
                Code::FailedPrecondition,
                None,
            ),
            (
                PlannerError::Unavailable("x".into()),
                Code::Unavailable,
                None,
            ),
            (
                PlannerError::Peer(Status::aborted("seeds failed")),
                Code::Aborted,
                None,
            ),
            (PlannerError::Internal("x".into()), Code::Internal, None),
        ];
        for (error, code, expected) in cases {
            let status = error.into_status();
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(reason::of(&status), expected);
        }
    }
}
