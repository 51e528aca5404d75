//! Proto ↔ plain Rust for sandbox-svc: requests into [`Job`]s (with errors a person can act
//! on), results and events into their messages.

use ra_proto::common::v1 as common;
use ra_proto::sandbox::v1 as pb;
use ra_spec::{ModelSpec, TrainSpec};

use crate::events::{
    BackendKind, Enforcement, Event, ExitReason, JobResult, OutputStream, ResourceSample,
};
use crate::job::{CommandJob, InputFile, Job, JobKind, TrainJob};
use crate::jobs::{JobSnapshot, JobState, TimedEvent};
use crate::limits::Limits;
use crate::validate::Validation;

/// A job from its message; the error names the field.
pub fn job_from_proto(spec: Option<&pb::JobSpec>) -> Result<(Job, Option<BackendKind>), String> {
    let spec = spec.ok_or("job is missing: give a JobSpec with train or command")?;
    let kind = match &spec.kind {
        None => return Err("job.kind is missing: set job.train or job.command".into()),
        Some(pb::job_spec::Kind::Train(train)) => {
            let model = train
                .model
                .as_ref()
                .ok_or("job.train.model is missing")
                .map_err(str::to_owned)
                .and_then(|m| {
                    ModelSpec::try_from(m)
                        .map_err(|e| format!("job.train.model.{}: {}", e.field, e.message))
                })?;
            let train_spec = match &train.train {
                Some(t) => TrainSpec::try_from(t)
                    .map_err(|e| format!("job.train.train.{}: {}", e.field, e.message))?,
                None => TrainSpec::default(),
            };
            JobKind::Train(TrainJob {
                model,
                train: train_spec,
                prepared_dataset_id: train.prepared_dataset_id.clone(),
                seed: train.seed,
                seeds: train.seeds.clone(),
                save_weights: train.save_weights,
                device: train.device.clone(),
            })
        }
        Some(pb::job_spec::Kind::Command(command)) => JobKind::Command(CommandJob {
            argv: command.argv.clone(),
            files: command
                .files
                .iter()
                .map(|f| InputFile {
                    path: f.path.clone(),
                    content: f.content.clone(),
                    executable: f.executable,
                })
                .collect(),
            env: command.env.clone().into_iter().collect(),
            prepared_dataset_id: (!command.prepared_dataset_id.is_empty())
                .then(|| command.prepared_dataset_id.clone()),
        }),
    };
    let limits = spec
        .limits
        .as_ref()
        .map(limits_from_proto)
        .unwrap_or_default();
    let backend = match pb::Backend::try_from(spec.backend) {
        Ok(pb::Backend::Unspecified) => None,
        Ok(pb::Backend::Process) => Some(BackendKind::Process),
        Ok(pb::Backend::Docker) => Some(BackendKind::Docker),
        Ok(pb::Backend::Kubernetes) => Some(BackendKind::Kubernetes),
        Err(_) => {
            return Err(format!(
                "job.backend {} is unknown: use BACKEND_PROCESS, BACKEND_DOCKER or BACKEND_KUBERNETES",
                spec.backend
            ));
        }
    };
    Ok((Job { kind, limits }, backend))
}

fn limits_from_proto(limits: &common::ResourceLimits) -> Limits {
    Limits {
        timeout_seconds: limits.timeout_seconds,
        cpu_millis: limits.cpu_millis,
        memory_bytes: limits.memory_bytes,
        max_processes: limits.max_processes,
        max_output_bytes: limits.max_output_bytes,
        scratch_bytes: limits.scratch_bytes,
        max_open_files: limits.max_open_files,
    }
}

pub fn limits_to_proto(limits: &Limits) -> common::ResourceLimits {
    common::ResourceLimits {
        timeout_seconds: limits.timeout_seconds,
        cpu_millis: limits.cpu_millis,
        memory_bytes: limits.memory_bytes,
        max_processes: limits.max_processes,
        max_output_bytes: limits.max_output_bytes,
        scratch_bytes: limits.scratch_bytes,
        max_open_files: limits.max_open_files,
    }
}

pub fn report_to_proto(validation: &Validation) -> pb::ValidationReport {
    let report = validation.report.as_ref();
    pb::ValidationReport {
        ok: validation.ok(),
        violations: validation
            .violations
            .iter()
            .map(|v| pb::Violation {
                rule: v.rule.to_owned(),
                message: v.message.clone(),
                layer: v.layer.clone().unwrap_or_default(),
                value: v.value.clone().unwrap_or_default(),
                limit: v.limit.clone().unwrap_or_default(),
            })
            .collect(),
        parameters: report.map_or(0, |r| r.parameters),
        flops_per_sample: report.map_or(0, |r| r.flops_per_sample),
        activation_bytes_per_sample: report.map_or(0, |r| r.activation_bytes_per_sample),
        layers: report
            .map(|r| {
                r.layers
                    .iter()
                    .map(|l| pb::LayerReport {
                        index: l.index.clone(),
                        kind: l.kind.to_owned(),
                        output_shape: l.output_shape.dims(),
                        parameters: l.parameters,
                        flops: l.flops,
                        activation_bytes: l.activation_bytes,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        device: String::new(),
        effective_limits: Some(limits_to_proto(&validation.effective_limits)),
    }
}

/// What the executor can run, for GetCapabilities.
pub fn capabilities_to_proto(executor: &crate::Executor) -> pb::Capabilities {
    let backend = |kind: BackendKind, detail: String| {
        let unavailable = executor.unavailable(kind);
        pb::BackendCapability {
            backend: backend_to_proto(kind) as i32,
            available: unavailable.is_none(),
            unavailable_reason: unavailable.unwrap_or_default().to_owned(),
            detail,
        }
    };
    pb::Capabilities {
        backends: vec![
            backend(
                BackendKind::Process,
                executor
                    .process
                    .as_ref()
                    .map(|p| p.resource_control().to_owned())
                    .unwrap_or_default(),
            ),
            backend(
                BackendKind::Docker,
                executor
                    .docker
                    .as_ref()
                    .map(|d| d.image().to_owned())
                    .unwrap_or_default(),
            ),
            backend(
                BackendKind::Kubernetes,
                executor
                    .kubernetes
                    .as_ref()
                    .map(|k| format!("namespace {}", k.namespace()))
                    .unwrap_or_default(),
            ),
        ],
        default_backend: backend_to_proto(executor.settings.backend) as i32,
        trainer_available: executor.trainer.is_some(),
        trainer_path: executor
            .trainer
            .as_ref()
            .map(|t| t.display().to_string())
            .unwrap_or_default(),
        train_jobs_blocked_by: executor.train_jobs_blocked_by().unwrap_or_default(),
        devices: executor
            .devices
            .on(executor.settings.backend)
            .into_iter()
            .map(|d| pb::DeviceCapability {
                name: d.name,
                available: d.available,
                unavailable_reason: d.unavailable_reason,
            })
            .collect(),
        gpus: executor
            .gpus
            .gpus()
            .iter()
            .map(|gpu| pb::Gpu {
                index: gpu.index,
                name: gpu.name.clone(),
                memory_bytes: gpu.memory_bytes,
            })
            .collect(),
        jobs_per_gpu: executor.settings.jobs_per_gpu,
    }
}

fn backend_to_proto(kind: BackendKind) -> pb::Backend {
    match kind {
        BackendKind::Process => pb::Backend::Process,
        BackendKind::Docker => pb::Backend::Docker,
        BackendKind::Kubernetes => pb::Backend::Kubernetes,
    }
}

fn enforcement_to_proto(e: &Enforcement) -> pb::Enforcement {
    pb::Enforcement {
        backend: backend_to_proto(e.backend) as i32,
        resource_control: e.resource_control.clone(),
        seccomp: e.seccomp,
        namespaces: e.namespaces.clone(),
        network_isolated: e.network_isolated,
    }
}

pub fn state_to_proto(state: JobState) -> common::JobState {
    match state {
        JobState::Queued => common::JobState::Queued,
        JobState::Running => common::JobState::Running,
        JobState::Succeeded => common::JobState::Succeeded,
        JobState::Failed => common::JobState::Failed,
        JobState::Cancelled => common::JobState::Cancelled,
    }
}

pub fn state_from_proto(state: i32) -> Result<Option<JobState>, String> {
    Ok(match common::JobState::try_from(state) {
        Ok(common::JobState::Unspecified) => None,
        Ok(common::JobState::Queued) => Some(JobState::Queued),
        Ok(common::JobState::Running) => Some(JobState::Running),
        Ok(common::JobState::Succeeded) => Some(JobState::Succeeded),
        Ok(common::JobState::Failed) => Some(JobState::Failed),
        Ok(common::JobState::Cancelled) => Some(JobState::Cancelled),
        Err(_) => return Err(format!("state {state} is not a JobState")),
    })
}

fn reason_to_proto(reason: ExitReason) -> common::ExitReason {
    match reason {
        ExitReason::Completed => common::ExitReason::Completed,
        ExitReason::Failed => common::ExitReason::Failed,
        ExitReason::Timeout => common::ExitReason::Timeout,
        ExitReason::OutOfMemory => common::ExitReason::OutOfMemory,
        ExitReason::OutputLimit => common::ExitReason::OutputLimit,
        ExitReason::Killed => common::ExitReason::Killed,
        ExitReason::Cancelled => common::ExitReason::Cancelled,
        ExitReason::Rejected => common::ExitReason::Rejected,
    }
}

pub fn result_to_proto(result: &JobResult) -> pb::JobResult {
    pb::JobResult {
        state: state_to_proto(JobState::of(result)) as i32,
        exit_reason: reason_to_proto(result.reason) as i32,
        exit_code: result.exit_code,
        signal: result.signal,
        message: result.message.clone(),
        final_metrics: result.final_metrics.clone().into_iter().collect(),
        seeds: result
            .seeds
            .iter()
            .map(|outcome| pb::SeedOutcome {
                seed: outcome.seed,
                final_metrics: outcome.final_metrics.clone().into_iter().collect(),
                error: outcome.error.clone(),
            })
            .collect(),
        usage: Some(common::ResourceUsage {
            wall_seconds: result.usage.wall_seconds,
            cpu_seconds: result.usage.cpu_seconds,
            peak_rss_bytes: result.usage.peak_rss_bytes,
            output_bytes: result.usage.output_bytes,
        }),
        outputs: result
            .outputs
            .iter()
            .map(|o| pb::JobOutput {
                path: o.path.display().to_string(),
                size_bytes: o.size_bytes,
                sha256: o.sha256.clone(),
                artifact_sha256: String::new(),
            })
            .collect(),
        enforcement: result.enforcement.as_ref().map(enforcement_to_proto),
    }
}

fn sample_to_proto(sample: &ResourceSample) -> pb::ResourceSample {
    pb::ResourceSample {
        cpu_seconds: sample.cpu_seconds,
        rss_bytes: sample.rss_bytes,
        peak_rss_bytes: sample.peak_rss_bytes,
    }
}

pub fn event_to_proto(job_id: &str, timed: &TimedEvent) -> pb::JobEvent {
    use pb::job_event::Event as E;
    let event = match &timed.event {
        Event::Queued { position } => E::Queued(pb::JobQueued {
            queue_position: *position,
        }),
        Event::Started(enforcement) => E::Started(pb::JobStarted {
            enforcement: Some(enforcement_to_proto(enforcement)),
        }),
        Event::Log { stream, line } => E::Log(pb::JobLog {
            stream: match stream {
                OutputStream::Stdout => pb::LogStream::Stdout,
                OutputStream::Stderr => pb::LogStream::Stderr,
            } as i32,
            line: line.clone(),
        }),
        Event::Epoch {
            epoch,
            metrics,
            seconds,
            seed,
        } => E::Epoch(pb::EpochMetrics {
            epoch: *epoch,
            metrics: metrics.clone().into_iter().collect(),
            seconds: *seconds,
            seed: *seed,
        }),
        Event::Resources(sample) => E::Resources(sample_to_proto(sample)),
        Event::Finished(result) => E::Finished(result_to_proto(result)),
    };
    pb::JobEvent {
        job_id: job_id.to_owned(),
        time: Some(timed.time.into()),
        event: Some(event),
    }
}

pub fn status_to_proto(entry: &crate::jobs::JobEntry, snapshot: &JobSnapshot) -> pb::JobStatus {
    pb::JobStatus {
        job_id: entry.id.clone(),
        state: state_to_proto(snapshot.state) as i32,
        job: Some(job_to_proto(entry)),
        result: snapshot.result.as_ref().map(result_to_proto),
        created_at: Some(entry.created_at.into()),
        started_at: snapshot.started_at.map(Into::into),
        finished_at: snapshot.finished_at.map(Into::into),
        queue_position: snapshot.queue_position,
    }
}

fn job_to_proto(entry: &crate::jobs::JobEntry) -> pb::JobSpec {
    let kind = match &entry.job.kind {
        JobKind::Train(train) => pb::job_spec::Kind::Train(pb::TrainJob {
            model: Some((&train.model).into()),
            train: Some((&train.train).into()),
            prepared_dataset_id: train.prepared_dataset_id.clone(),
            seed: train.seed,
            seeds: train.seeds.clone(),
            save_weights: train.save_weights,
            device: train.device.clone(),
        }),
        JobKind::Command(command) => pb::job_spec::Kind::Command(pb::CommandJob {
            argv: command.argv.clone(),
            // Input files can be large: the status names them without their content.
            files: command
                .files
                .iter()
                .map(|f| pb::InputFile {
                    path: f.path.clone(),
                    content: Vec::new(),
                    executable: f.executable,
                })
                .collect(),
            env: command.env.clone().into_iter().collect(),
            prepared_dataset_id: command.prepared_dataset_id.clone().unwrap_or_default(),
        }),
    };
    pb::JobSpec {
        kind: Some(kind),
        limits: Some(limits_to_proto(&entry.job.limits)),
        backend: entry
            .backend
            .map_or(pb::Backend::Unspecified, backend_to_proto) as i32,
        labels: entry.labels.clone().into_iter().collect(),
        artifact_trial_id: String::new(),
    }
}
