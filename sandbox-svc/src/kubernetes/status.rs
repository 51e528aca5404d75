//! Reading a trial pod's status: not started yet, started (its log can be followed), ended
//! (the exit as a [`RawExit`]: code, signal, OOMKilled, the Job's deadline), or never going to
//! start (an image that cannot be pulled, a container that cannot be created).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};

use super::manifest::CONTAINER;
use crate::backend::RawExit;

/// Waiting reasons after which the container will not start without someone's help.
const UNSTARTABLE: [&str; 7] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

#[derive(Debug, Clone, PartialEq)]
pub enum PodState {
    /// Scheduled or not, the container has not run yet.
    Waiting,
    /// The container runs (or ran): its log can be read.
    Started,
    Ended(RawExit),
    /// It will never start (the exit says why, in words).
    Unstartable(RawExit),
}

pub fn pod_state(pod: &Pod) -> PodState {
    let Some(status) = &pod.status else {
        return PodState::Waiting;
    };
    if status.reason.as_deref() == Some("DeadlineExceeded") {
        return PodState::Ended(deadline_exit());
    }
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER);
    let state = container.and_then(|c| c.state.as_ref());
    if let Some(terminated) = state.and_then(|s| s.terminated.as_ref()) {
        return PodState::Ended(exit_of(terminated));
    }
    if state.is_some_and(|s| s.running.is_some()) {
        return PodState::Started;
    }
    if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = waiting.reason.as_deref().unwrap_or("");
        if UNSTARTABLE.contains(&reason) {
            return PodState::Unstartable(RawExit::setup_failed(format!(
                "the trial pod cannot start its container: {reason}: {}",
                waiting.message.as_deref().unwrap_or("no message")
            )));
        }
    }
    match status.phase.as_deref() {
        Some("Failed") => PodState::Ended(RawExit::setup_failed(format!(
            "the trial pod failed before its container ran: {}",
            status
                .message
                .as_deref()
                .or(status.reason.as_deref())
                .unwrap_or("no reason given")
        ))),
        _ => PodState::Waiting,
    }
}

/// The Job ended without a pod that says how (its deadline, or a pod that never came).
pub fn job_ended(job: &Job) -> Option<RawExit> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let failed = conditions
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")?;
    Some(if failed.reason.as_deref() == Some("DeadlineExceeded") {
        deadline_exit()
    } else {
        RawExit::setup_failed(format!(
            "the trial's Job failed: {}",
            failed
                .message
                .as_deref()
                .or(failed.reason.as_deref())
                .unwrap_or("no reason given")
        ))
    })
}

fn deadline_exit() -> RawExit {
    RawExit {
        signal: Some(9),
        deadline_exceeded: true,
        ..RawExit::default()
    }
}

fn exit_of(terminated: &ContainerStateTerminated) -> RawExit {
    let code = terminated.exit_code;
    let (signal, exit_code) = match terminated.signal.filter(|&s| s > 0) {
        Some(signal) => (Some(signal), None),
        // 128 + the signal number, as the runtime reports a death by signal.
        None if (129..=192).contains(&code) => (Some(code - 128), None),
        None => (None, Some(code)),
    };
    RawExit {
        exit_code,
        signal,
        oom_killed: terminated.reason.as_deref() == Some("OOMKilled"),
        ..RawExit::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, PodStatus,
    };

    use super::*;

    fn pod_with(state: ContainerState) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: CONTAINER.into(),
                    state: Some(state),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn terminated(code: i32, reason: &str) -> Pod {
        pod_with(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.into()),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        })
    }

    #[test]
    fn exits_read_from_the_container_state() {
        let ended = |pod: &Pod| match pod_state(pod) {
            PodState::Ended(exit) => exit,
            other => panic!("not ended: {other:?}"),
        };
        assert_eq!(ended(&terminated(0, "Completed")).exit_code, Some(0));
        assert_eq!(ended(&terminated(3, "Error")).exit_code, Some(3));
        let killed = ended(&terminated(137, "Error"));
        assert_eq!((killed.exit_code, killed.signal), (None, Some(9)));
        let oom = ended(&terminated(137, "OOMKilled"));
        assert!(oom.oom_killed);
        let deadline = Pod {
            status: Some(PodStatus {
                phase: Some("Failed".into()),
                reason: Some("DeadlineExceeded".into()),
                ..PodStatus::default()
            }),
            ..Pod::default()
        };
        assert!(ended(&deadline).deadline_exceeded);
    }

    #[test]
    fn waiting_running_and_unstartable_pods() {
        assert_eq!(pod_state(&Pod::default()), PodState::Waiting);
        let running = pod_with(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..ContainerState::default()
        });
        assert_eq!(pod_state(&running), PodState::Started);
        let waiting = |reason: &str| {
            pod_state(&pod_with(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: Some("image not present".into()),
                }),
                ..ContainerState::default()
            }))
        };
        assert_eq!(waiting("ContainerCreating"), PodState::Waiting);
        let PodState::Unstartable(exit) = waiting("ErrImageNeverPull") else {
            panic!("an image that is never pulled must be unstartable");
        };
        let why = exit.setup_error.unwrap_or_default();
        assert!(why.contains("ErrImageNeverPull") && why.contains("image not present"));
    }

    #[test]
    fn a_job_past_its_deadline_is_a_timeout() {
        let job = |reason: &str| Job {
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: "Failed".into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    ..JobCondition::default()
                }]),
                ..JobStatus::default()
            }),
            ..Job::default()
        };
        assert!(job_ended(&job("DeadlineExceeded")).is_some_and(|e| e.deadline_exceeded));
        assert!(job_ended(&job("BackoffLimitExceeded")).is_some_and(|e| e.setup_error.is_some()));
        assert_eq!(job_ended(&Job::default()), None);
    }
}
