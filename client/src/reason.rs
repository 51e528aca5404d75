//! Machine-readable refusal reasons: a service that refuses for a reason another service acts
//! on attaches a `google.rpc.ErrorInfo` (domain [`DOMAIN`], reason in SCREAMING_SNAKE_CASE) to
//! the status details, and the caller matches the reason, never the message text. grpcurl and
//! every gRPC client that knows the richer error model show it too.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain of every reason here.
pub const DOMAIN: &str = "research-agent";

/// The reasons a peer acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The evaluator already runs an evaluation of this candidate (clears when it ends).
    AlreadyBeingEvaluated,
    /// The sandbox has no backend that can train (no trainer, no usable backend).
    SandboxCannotTrain,
    /// A peer could not be reached after the bounded retries.
    PeerUnreachable,
    /// A configured limit refuses the request as asked; trying again cannot help.
    OverLimit,
    /// The record already exists (a retried create that landed the first time).
    AlreadyExists,
    /// The session is not in a state that allows the request (finished, not running).
    WrongState,
}

const ALL: [Reason; 6] = [
    Reason::AlreadyBeingEvaluated,
    Reason::SandboxCannotTrain,
    Reason::PeerUnreachable,
    Reason::OverLimit,
    Reason::AlreadyExists,
    Reason::WrongState,
];

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyBeingEvaluated => "ALREADY_BEING_EVALUATED",
            Self::SandboxCannotTrain => "SANDBOX_CANNOT_TRAIN",
            Self::PeerUnreachable => "PEER_UNREACHABLE",
            Self::OverLimit => "OVER_LIMIT",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::WrongState => "WRONG_STATE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        ALL.into_iter().find(|reason| reason.as_str() == text)
    }

    /// Whether a call refused for this reason may succeed if simply repeated at once by the
    /// generic retry. Reasons that clear with time are waited out explicitly
    /// ([`crate::Retry::run_while`]); the others are final.
    pub fn is_transient(self) -> bool {
        match self {
            Self::PeerUnreachable => true,
            Self::AlreadyBeingEvaluated
            | Self::SandboxCannotTrain
            | Self::OverLimit
            | Self::AlreadyExists
            | Self::WrongState => false,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status with `reason` in its details.
pub fn status(code: Code, reason: Reason, message: impl Into<String>) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason.as_str(), DOMAIN, HashMap::<String, String>::new()),
    )
}

/// The reason a status carries, if it carries one of ours.
pub fn of(status: &Status) -> Option<Reason> {
    if status.details().is_empty() {
        return None;
    }
    status
        .get_details_error_info()
        .filter(|info| info.domain == DOMAIN)
        .and_then(|info| Reason::parse(&info.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_survive_the_wire_form() {
        for reason in ALL {
            let made = status(Code::FailedPrecondition, reason, "words for people");
            // What a client receives: the same code, message and details bytes.
            let received = Status::with_details(
                made.code(),
                made.message().to_owned(),
                made.details().to_vec().into(),
            );
            assert_eq!(of(&received), Some(reason));
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(
            of(&Status::failed_precondition("already being evaluated")),
            None
        );
        let foreign = Status::with_error_details(
            Code::Aborted,
            "x",
            ErrorDetails::with_error_info(
                "ALREADY_BEING_EVALUATED",
                "example.com",
                HashMap::<String, String>::new(),
            ),
        );
        assert_eq!(of(&foreign), None, "another domain's reason is not ours");
    }
}
