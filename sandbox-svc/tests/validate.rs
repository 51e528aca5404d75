//! ValidateJob's static checks against a real prepared dataset (written with ra-prepared): a
//! valid job passes with its shape report and effective limits; every broken rule is reported
//! at once, each naming its rule, value and limit.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use ra_prepared::{Manifest, PreparedDataset, Verify};
use ra_spec::{InputSpec, Layer, ModelSpec, TrainSpec};
use sandbox_svc::{
    CommandJob, InputFile, Job, JobKind, Limits, Policy, TrainJob, Validation, validate,
};

/// A 16-feature, 4-class tabular dataset prepared under `cache`; its id.
fn prepared(cache: &Path) -> String {
    common::prepared_tabular(cache, 1)
}

fn manifests(cache: &Path) -> impl Fn(&str) -> Option<Manifest> + '_ {
    move |id| {
        PreparedDataset::open(&cache.join(id), Verify::Sizes)
            .ok()
            .map(|dataset| dataset.manifest().clone())
    }
}

fn mlp(features: u32, classes: u32) -> ModelSpec {
    ModelSpec {
        name: "mlp".into(),
        input: InputSpec::Tabular { features },
        num_classes: classes,
        layers: vec![Layer::linear(32), Layer::relu(), Layer::linear(classes)],
    }
}

fn train_job(model: ModelSpec, train: TrainSpec, dataset: &str) -> Job {
    Job {
        kind: JobKind::Train(TrainJob {
            model,
            train,
            prepared_dataset_id: dataset.to_owned(),
            seed: 1,
            seeds: Vec::new(),
            save_weights: false,
            device: String::new(),
        }),
        limits: Limits::default(),
    }
}

fn rules(validation: &Validation) -> Vec<&'static str> {
    validation.violations.iter().map(|v| v.rule).collect()
}

#[test]
fn a_valid_train_job_passes_with_its_report_and_effective_limits() {
    let cache = tempfile::tempdir().expect("tempdir");
    let id = prepared(cache.path());
    let policy = Policy::default();
    let job = train_job(mlp(16, 4), TrainSpec::default(), &id);
    let validation = validate(&job, &policy, &manifests(cache.path()));
    assert!(validation.ok(), "{:?}", validation.violations);
    let report = validation.report.expect("a shape report");
    assert_eq!(report.parameters, 16 * 32 + 32 + 32 * 4 + 4);
    assert_eq!(validation.effective_limits, policy.limits.defaults);
}

#[test]
fn every_broken_rule_of_a_train_job_is_reported_with_its_values() {
    let cache = tempfile::tempdir().expect("tempdir");
    let id = prepared(cache.path());
    let manifest_of = manifests(cache.path());
    let policy = Policy::default();
    let check = |job: &Job| validate(job, &policy, &manifest_of);

    // Wrong input width and class count for the dataset, a bad learning rate, an unknown
    // device, and limits above their caps: all at once.
    let mut job = train_job(
        mlp(10, 3),
        TrainSpec {
            learning_rate: f64::NAN,
            ..TrainSpec::default()
        },
        &id,
    );
    if let JobKind::Train(train) = &mut job.kind {
        train.device = "tpu".into();
    }
    job.limits = Limits {
        timeout_seconds: 1 << 40,
        ..Limits::default()
    };
    let validation = check(&job);
    let found = rules(&validation);
    for rule in ["limit_cap", "train_spec", "device", "dataset_fit"] {
        assert!(found.contains(&rule), "{rule} missing from {found:?}");
    }
    assert_eq!(found.iter().filter(|r| **r == "dataset_fit").count(), 2);
    let fit = &validation.violations[found.iter().position(|r| *r == "dataset_fit").expect("fit")];
    assert!(fit.message.contains(&id), "{}", fit.message);

    // A shape error names the layer; a missing dataset says to prepare it.
    let mut model = mlp(16, 4);
    model.layers.insert(0, Layer::conv2d(8, 3, 1, 1));
    let validation = check(&train_job(model, TrainSpec::default(), "synthetic-000"));
    assert_eq!(
        validation.violations.len(),
        2,
        "{:?}",
        validation.violations
    );
    assert_eq!(validation.violations[0].layer.as_deref(), Some("0"));
    assert!(validation.report.is_none());
    assert_eq!(validation.violations[1].rule, "dataset_missing");
    assert!(
        validation.violations[1]
            .message
            .contains("prepare it with dataset-svc")
    );

    // Training memory above the memory limit.
    let mut job = train_job(mlp(16, 4), TrainSpec::default(), &id);
    job.limits.memory_bytes = 10_000;
    let validation = check(&job);
    assert_eq!(rules(&validation), ["memory_cap"]);
    assert_eq!(validation.violations[0].limit.as_deref(), Some("10000"));
}

#[test]
fn command_jobs_are_held_to_the_allowlists_and_safe_input_files() {
    let cache = tempfile::tempdir().expect("tempdir");
    let manifest_of = manifests(cache.path());
    let policy = Policy::default();
    let command = |argv: &[&str], env: &[(&str, &str)], files: Vec<InputFile>| Job {
        kind: JobKind::Command(CommandJob {
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            files,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            prepared_dataset_id: None,
        }),
        limits: Limits::default(),
    };
    let file = |path: &str, size: usize| InputFile {
        path: path.into(),
        content: vec![b'x'; size],
        executable: false,
    };
    let ok = command(
        &["python3", "train.py"],
        &[("OMP_NUM_THREADS", "1")],
        vec![file("train.py", 100), file("lib/util.py", 10)],
    );
    assert!(validate(&ok, &policy, &manifest_of).ok());

    let bad = command(
        &["/usr/bin/curl", "http://example.com"],
        &[("PATH", "/tmp"), ("AWS_SECRET_ACCESS_KEY", "x")],
        vec![
            file("../escape.py", 1),
            file("/etc/passwd", 1),
            file("a.py", 1),
            file("a.py", 1),
            file("./b.py", 1),
        ],
    );
    let validation = validate(&bad, &policy, &manifest_of);
    assert_eq!(
        rules(&validation),
        [
            "command_allowlist",
            "env_allowlist",
            "env_allowlist",
            "input_file",
            "input_file",
            "input_file",
            "input_file",
        ],
        "{:?}",
        validation.violations
    );
    // The environment is checked in name order.
    let env_messages = [
        &validation.violations[1].message,
        &validation.violations[2].message,
    ];
    assert!(
        env_messages[0].contains("\"AWS_SECRET_ACCESS_KEY\" is not on the environment allowlist")
    );
    assert!(env_messages[1].contains("\"PATH\" is set by the sandbox"));

    let mut big = command(&["sh", "run.sh"], &[], vec![file("run.sh", 2_000)]);
    big.limits.scratch_bytes = 1_000;
    if let JobKind::Command(job) = &mut big.kind {
        job.prepared_dataset_id = Some("nothing-here".into());
    }
    let validation = validate(&big, &policy, &manifest_of);
    assert_eq!(rules(&validation), ["input_file", "dataset_missing"]);
    assert_eq!(
        validate(&command(&[], &[], vec![]), &policy, &manifest_of).violations[0].rule,
        "command_allowlist"
    );
}

#[test]
fn the_seeds_of_one_job_are_few_and_distinct_and_their_memory_adds_up() {
    let cache = tempfile::tempdir().expect("tempdir");
    let id = prepared(cache.path());
    let manifest_of = manifests(cache.path());
    let policy = Policy::default();
    let with_seeds = |seeds: Vec<u64>, limits: Limits| {
        let mut job = train_job(mlp(16, 4), TrainSpec::default(), &id);
        if let JobKind::Train(train) = &mut job.kind {
            train.seeds = seeds;
        }
        job.limits = limits;
        validate(&job, &policy, &manifest_of)
    };
    assert!(with_seeds(vec![1, 2, 3], Limits::default()).ok());
    let repeated = with_seeds(vec![1, 2, 1], Limits::default());
    assert_eq!(rules(&repeated), ["seeds"]);
    assert!(
        repeated.violations[0]
            .message
            .contains("seed 1 is listed twice")
    );
    let many = with_seeds((0..65).collect(), Limits::default());
    assert_eq!(rules(&many), ["seeds"]);
    assert!(many.violations[0].message.contains("at most 64"));

    // Memory for one seed is enough for one, not for two at once on two CPUs.
    let alone = with_seeds(Vec::new(), Limits::default());
    let needed = alone
        .report
        .as_ref()
        .expect("a report")
        .training_memory_bytes(u64::from(TrainSpec::default().batch_size));
    let tight = Limits {
        memory_bytes: needed + 1,
        cpu_millis: 1_000,
        ..Limits::default()
    };
    let one = with_seeds(vec![7], tight);
    assert!(one.ok(), "{:?}", one.violations);
    // On one CPU the seeds take turns: one model at a time.
    assert!(with_seeds(vec![1, 2, 3, 4], tight).ok());
    if policy.limits.caps.cpu_millis >= 2_000 {
        let two_cpus = Limits {
            cpu_millis: 2_000,
            ..tight
        };
        let four = with_seeds(vec![1, 2, 3, 4], two_cpus);
        assert_eq!(rules(&four), ["memory_cap"]);
        assert!(four.violations[0].message.contains("for 2 seeds at once"));
    }
}
