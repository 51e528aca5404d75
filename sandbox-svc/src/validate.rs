//! The static checks of `ValidateJob`, run before anything executes (and never the only line
//! of defence: isolation holds when they miss). Every broken rule is reported, not just the
//! first, each naming the rule, the value and the limit.

use ra_prepared::Manifest;
use ra_spec::{Budget, SpecReport, validate_model};
use serde::{Deserialize, Serialize};

use crate::job::{CommandJob, InputFile, Job, JobKind, TrainJob};
use crate::limits::{LimitPolicy, Limits};

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Machine name: "shape", "parameter_budget", "train_spec", "memory_cap", "limit_cap",
    /// "dataset_missing", "dataset_fit", "device", "command_allowlist", "env_allowlist",
    /// "input_file".
    pub rule: &'static str,
    pub message: String,
    /// Layer position for spec violations (`4`, `3.1`).
    pub layer: Option<String>,
    pub value: Option<String>,
    pub limit: Option<String>,
}

impl Violation {
    pub fn new(rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
            layer: None,
            value: None,
            limit: None,
        }
    }

    pub fn with_values(mut self, value: impl Into<String>, limit: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self.limit = Some(limit.into());
        self
    }
}

/// What the checks enforce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub limits: LimitPolicy,
    /// Executables a command job may start, by name (`python3`) or absolute path.
    pub command_allowlist: Vec<String>,
    /// Environment variables a command job may set.
    pub env_allowlist: Vec<String>,
    pub max_parameters: u64,
    pub max_flops_per_sample: u64,
    pub max_activation_bytes_per_sample: u64,
}

impl Default for Policy {
    fn default() -> Self {
        let budget = Budget::default();
        Self {
            limits: LimitPolicy::default(),
            command_allowlist: ["python3", "python", "sh", "bash"]
                .map(str::to_owned)
                .to_vec(),
            env_allowlist: ["PYTHONHASHSEED", "OMP_NUM_THREADS", "RA_SEED", "RA_EPOCHS"]
                .map(str::to_owned)
                .to_vec(),
            max_parameters: budget.max_parameters,
            max_flops_per_sample: budget.max_flops_per_sample,
            max_activation_bytes_per_sample: budget.max_activation_bytes_per_sample,
        }
    }
}

/// Variables the sandbox sets itself; a job may not replace them.
const RESERVED_ENV: [&str; 4] = ["PATH", "HOME", "RA_DATASET_DIR", "RA_OUTPUT_DIR"];

/// The outcome of the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    pub violations: Vec<Violation>,
    /// Shape inference of a train job's model, when it got that far.
    pub report: Option<SpecReport>,
    /// The limits the job would run with (defaults filled in).
    pub effective_limits: Limits,
}

impl Validation {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks `job` against `policy`; `manifest_of` finds a prepared dataset's manifest by id.
pub fn validate(
    job: &Job,
    policy: &Policy,
    manifest_of: &dyn Fn(&str) -> Option<Manifest>,
) -> Validation {
    let (effective_limits, mut violations) = policy.limits.effective(&job.limits);
    let report = match &job.kind {
        JobKind::Train(train) => check_train(
            train,
            policy,
            &effective_limits,
            manifest_of,
            &mut violations,
        ),
        JobKind::Command(command) => {
            check_command(
                command,
                policy,
                &effective_limits,
                manifest_of,
                &mut violations,
            );
            None
        }
    };
    Validation {
        violations,
        report,
        effective_limits,
    }
}

/// Most seeds one job may train at once.
pub const MAX_SEEDS_PER_JOB: usize = 64;

/// A job's list of seeds: at most [`MAX_SEEDS_PER_JOB`], none twice.
fn check_seeds(seeds: &[u64], violations: &mut Vec<Violation>) {
    if seeds.len() > MAX_SEEDS_PER_JOB {
        violations.push(
            Violation::new(
                "seeds",
                format!(
                    "a job trains at most {MAX_SEEDS_PER_JOB} seeds, not {}; split them between jobs",
                    seeds.len()
                ),
            )
            .with_values(seeds.len().to_string(), MAX_SEEDS_PER_JOB.to_string()),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(repeated) = seeds.iter().find(|seed| !seen.insert(**seed)) {
        violations.push(Violation::new(
            "seeds",
            format!("seed {repeated} is listed twice; each seed of a job must differ"),
        ));
    }
}

fn check_train(
    job: &TrainJob,
    policy: &Policy,
    limits: &Limits,
    manifest_of: &dyn Fn(&str) -> Option<Manifest>,
    violations: &mut Vec<Violation>,
) -> Option<SpecReport> {
    if let Err(error) = job.train.validate() {
        violations.push(Violation::new("train_spec", error.to_string()));
    }
    if let Err(refusal) = ra_spec::device::check("device", &job.device, true) {
        violations.push(Violation::new("device", refusal).with_values(
            job.device.chars().take(64).collect::<String>(),
            "auto, libtorch-cuda, cuda, libtorch, flex",
        ));
    }
    check_seeds(&job.seeds, violations);
    let budget = Budget {
        max_parameters: policy.max_parameters,
        max_flops_per_sample: policy.max_flops_per_sample,
        max_activation_bytes_per_sample: policy.max_activation_bytes_per_sample,
    };
    let report = match validate_model(&job.model, &budget) {
        Ok(report) => Some(report),
        Err(error) => {
            violations.push(Violation {
                layer: error.layer.clone(),
                ..Violation::new(error.rule, error.to_string())
            });
            None
        }
    };
    if let Some(report) = &report {
        // Seeds of one job run at once up to one per CPU of its limit, each with its own model.
        let at_once =
            (job.seeds.len() as u64).clamp(1, u64::from(limits.cpu_millis.div_ceil(1000)).max(1));
        let needed = report
            .training_memory_bytes(u64::from(job.train.batch_size))
            .saturating_mul(at_once);
        if needed > limits.memory_bytes {
            let seeds = if at_once > 1 {
                format!(" for {at_once} seeds at once")
            } else {
                String::new()
            };
            violations.push(
                Violation::new(
                    "memory_cap",
                    format!(
                        "training with batches of {}{seeds} needs about {needed} bytes (weights, optimizer state, activations), above the memory limit of {}",
                        job.train.batch_size, limits.memory_bytes
                    ),
                )
                .with_values(needed.to_string(), limits.memory_bytes.to_string()),
            );
        }
    }
    match manifest_of(&job.prepared_dataset_id) {
        None => violations.push(missing_dataset(&job.prepared_dataset_id)),
        Some(manifest) => {
            if manifest.input != job.model.input {
                violations.push(
                    Violation::new(
                        "dataset_fit",
                        format!(
                            "the model takes {:?} but dataset {} holds {:?}",
                            job.model.input, manifest.prepared_id, manifest.input
                        ),
                    )
                    .with_values(
                        format!("{:?}", job.model.input),
                        format!("{:?}", manifest.input),
                    ),
                );
            }
            let classes = manifest.class_names.len() as u32;
            if job.model.num_classes != classes {
                violations.push(
                    Violation::new(
                        "dataset_fit",
                        format!(
                            "the model predicts {} classes but dataset {} has {classes}",
                            job.model.num_classes, manifest.prepared_id
                        ),
                    )
                    .with_values(job.model.num_classes.to_string(), classes.to_string()),
                );
            }
        }
    }
    report
}

fn missing_dataset(id: &str) -> Violation {
    Violation::new(
        "dataset_missing",
        format!("no prepared dataset {id:?}; prepare it with dataset-svc first"),
    )
    .with_values(id, "a prepared dataset id")
}

fn check_command(
    job: &CommandJob,
    policy: &Policy,
    limits: &Limits,
    manifest_of: &dyn Fn(&str) -> Option<Manifest>,
    violations: &mut Vec<Violation>,
) {
    match job.argv.first() {
        None => violations.push(Violation::new(
            "command_allowlist",
            "argv is empty: name the program to run",
        )),
        Some(program) => {
            let name = program.rsplit('/').next().unwrap_or(program);
            let allowed = policy
                .command_allowlist
                .iter()
                .any(|entry| entry == program || (!program.contains('/') && entry == name));
            if !allowed {
                violations.push(
                    Violation::new(
                        "command_allowlist",
                        format!(
                            "{program:?} is not an allowed program; the allowlist has {:?}",
                            policy.command_allowlist
                        ),
                    )
                    .with_values(program.clone(), policy.command_allowlist.join(", ")),
                );
            }
        }
    }
    for name in job.env.keys() {
        let reserved = RESERVED_ENV.contains(&name.as_str());
        if reserved || !policy.env_allowlist.contains(name) {
            let why = if reserved {
                "is set by the sandbox itself"
            } else {
                "is not on the environment allowlist"
            };
            violations.push(
                Violation::new(
                    "env_allowlist",
                    format!("environment variable {name:?} {why}"),
                )
                .with_values(name.clone(), policy.env_allowlist.join(", ")),
            );
        }
    }
    check_files(&job.files, limits, violations);
    if let Some(id) = &job.prepared_dataset_id
        && manifest_of(id).is_none()
    {
        violations.push(missing_dataset(id));
    }
}

fn check_files(files: &[InputFile], limits: &Limits, violations: &mut Vec<Violation>) {
    let mut seen = std::collections::BTreeSet::new();
    for file in files {
        let path = std::path::Path::new(&file.path);
        let escapes = file.path.is_empty()
            || path.is_absolute()
            || path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)));
        if escapes {
            violations.push(
                Violation::new(
                    "input_file",
                    format!(
                        "input file path {:?} must be relative, non-empty and free of '..' and '.'",
                        file.path
                    ),
                )
                .with_values(
                    file.path.clone(),
                    "a relative path inside the scratch directory",
                ),
            );
        }
        if !seen.insert(file.path.as_str()) {
            violations.push(Violation::new(
                "input_file",
                format!("input file {:?} is given twice", file.path),
            ));
        }
    }
    let total: u64 = files.iter().map(|f| f.content.len() as u64).sum();
    if total > limits.scratch_bytes {
        violations.push(
            Violation::new(
                "input_file",
                format!(
                    "the input files take {total} bytes, above the scratch limit of {}",
                    limits.scratch_bytes
                ),
            )
            .with_values(total.to_string(), limits.scratch_bytes.to_string()),
        );
    }
}
