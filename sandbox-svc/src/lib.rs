//! sandbox-svc: untrusted jobs — training a ModelSpec with `ra-trainer`, or a user's own
//! command — checked statically before anything runs, then run isolated and limited.
//!
//! Built so far (issue 5 is in progress; see the README's sandbox section):
//! - [`limits`]: resource limits with configured defaults and hard caps.
//! - [`job`]: what a job is, as plain Rust types.
//! - [`validate`]: the static checks of `ValidateJob`: the spec through `ra-spec` (shapes,
//!   budgets, training memory against the memory limit), the dataset's fit, the limits, the
//!   command and environment allowlists and the input files. A refusal names the rule and the
//!   value.
//!
//! Execution backends (`process`, `docker`), the job queue and the gRPC service come next.

pub mod job;
pub mod limits;
pub mod validate;

pub use job::{CommandJob, InputFile, Job, JobKind, TrainJob};
pub use limits::{LimitPolicy, Limits};
pub use validate::{Policy, Validation, Violation, validate};
