//! evaluator-svc's error model: every domain function answers an [`EvaluatorError`], and the
//! tonic adapter turns it into a status with one exhaustive map ([`EvaluatorError::into_status`]).
//! A refusal another service acts on carries a machine-readable reason
//! ([`ra_client::reason`]) besides its words.

use ra_client::reason::{self, Reason};
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum EvaluatorError {
    /// The request is wrong as sent; the message says which field and what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// The request is well-formed but the records cannot answer it yet (too few seeds).
    #[error("{0}")]
    NotEnoughData(String),
    /// Another evaluation of the candidate runs in this evaluator.
    #[error(
        "candidate {candidate_id} is already being evaluated by this evaluator; wait for that \
         evaluation to finish"
    )]
    AlreadyBeingEvaluated { candidate_id: String },
    /// The caller went away.
    #[error("{0}")]
    Cancelled(String),
    /// The evaluation ran and was recorded, but its failure policy ends it as failed.
    #[error("{0}")]
    Aborted(String),
    /// A peer's stream broke off or ended early, and retrying did not bring it back.
    #[error("{0}")]
    PeerLost(String),
    /// A peer refused or failed; its status (code, message, details) is passed on as it is.
    #[error("{}", .0.message())]
    Peer(Status),
    /// A bug or a broken invariant here.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = EvaluatorError> = std::result::Result<T, E>;

impl From<Status> for EvaluatorError {
    fn from(status: Status) -> Self {
        Self::Peer(status)
    }
}

impl EvaluatorError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// The status a client receives.
    pub fn into_status(self) -> Status {
        let message = self.to_string();
        match self {
            Self::Invalid(_) => Status::invalid_argument(message),
            Self::NotEnoughData(_) => Status::failed_precondition(message),
            Self::AlreadyBeingEvaluated { .. } => reason::status(
                Code::FailedPrecondition,
                Reason::AlreadyBeingEvaluated,
                message,
            ),
            Self::Cancelled(_) => Status::cancelled(message),
            Self::Aborted(_) => Status::aborted(message),
            Self::PeerLost(_) => Status::unavailable(message),
            Self::Peer(status) => status,
            Self::Internal(_) => Status::internal(message),
        }
    }
}

impl From<EvaluatorError> for Status {
    fn from(error: EvaluatorError) -> Self {
        error.into_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_code_and_reasons_travel() {
        let cases = [
            (EvaluatorError::invalid("x"), Code::InvalidArgument),
            (
                EvaluatorError::NotEnoughData("x".into()),
                Code::FailedPrecondition,
            ),
            (EvaluatorError::Cancelled("x".into()), Code::Cancelled),
            (EvaluatorError::Aborted("x".into()), Code::Aborted),
            (EvaluatorError::PeerLost("x".into()), Code::Unavailable),
            (
                EvaluatorError::Peer(Status::not_found("no trial")),
                Code::NotFound,
            ),
            (EvaluatorError::Internal("x".into()), Code::Internal),
        ];
        for (error, code) in cases {
            let status = error.into_status();
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(reason::of(&status), None);
        }
        let busy = EvaluatorError::AlreadyBeingEvaluated {
            candidate_id: "cand_1".into(),
        }
        .into_status();
        assert_eq!(busy.code(), Code::FailedPrecondition);
        assert_eq!(reason::of(&busy), Some(Reason::AlreadyBeingEvaluated));
        assert!(busy.message().contains("cand_1"));
    }
}
