//! `quick-evaluator`: one model evaluated over seeds, embedded (the services started in this
//! process on real gRPC) or against a running evaluator; progress bars while it trains, then a
//! table per seed and the aggregate with its confidence interval and decision, or `--json`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ra_proto::common::v1 as common;
use ra_proto::dataset::v1 as ds;
use ra_proto::dataset::v1::dataset_service_client::DatasetServiceClient;
use ra_proto::evaluator::v1 as pb;
use ra_proto::evaluator::v1::evaluator_service_client::EvaluatorServiceClient;
use serde_json::{Value, json};

use crate::stack::{Stack, StackOptions};

/// Evaluate one model over several seeds and decide, with a confidence interval and a t-test,
/// whether it reaches a target.
#[derive(Debug, Clone, Parser)]
#[command(name = "quick-evaluator", version, about)]
pub struct QuickArgs {
    /// Dataset to prepare (catalog name such as digits, shapes, synthetic, mnist, cifar10).
    #[arg(long, required_unless_present = "prepared")]
    pub dataset: Option<String>,
    /// An already prepared dataset id instead of --dataset.
    #[arg(long, conflicts_with = "dataset")]
    pub prepared: Option<String>,
    /// Stratified subset of the train split (0: all of it).
    #[arg(long, default_value_t = 0)]
    pub subset: u32,
    /// ModelSpec JSON file; default: a small model for the dataset's input kind.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// TrainSpec JSON file; default: Adam 1e-3, batch 64.
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Epochs (overrides the TrainSpec's).
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Seeds to train (the first round, with --max-seeds).
    #[arg(long, default_value_t = 5)]
    pub num_seeds: u32,
    /// First seed; seeds are base, base+1, ….
    #[arg(long, default_value_t = 0)]
    pub base_seed: u64,
    /// Adaptive seeding: add seeds while undecided, up to this many.
    #[arg(long)]
    pub max_seeds: Option<u32>,
    /// Target on val_accuracy (shorthand for --metric val_accuracy --threshold X).
    #[arg(long, conflicts_with_all = ["metric", "threshold"])]
    pub target_accuracy: Option<f64>,
    /// Target metric (val_accuracy, val_loss, test_accuracy, …).
    #[arg(long, requires = "threshold")]
    pub metric: Option<String>,
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Confidence level of the interval and the test.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Wall-clock limit per seed, seconds.
    #[arg(long)]
    pub timeout_seconds: Option<u64>,
    /// Memory limit per seed, MiB.
    #[arg(long)]
    pub memory_mib: Option<u64>,
    /// Training device: auto (the fastest the sandbox has), libtorch-cuda, cuda, libtorch or
    /// flex; the evaluator's default (`[evaluator] device`, flex) otherwise.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(ra_spec::device::CHOICES))]
    pub device: Option<String>,
    /// Use a running evaluator-svc instead of starting the services here.
    #[arg(long)]
    pub evaluator: Option<String>,
    /// dataset-svc to prepare through with --evaluator.
    #[arg(long, default_value = ra_client::ports::LOCAL_DATASET)]
    pub dataset_service: String,
    /// Embedded mode: where the services keep their state.
    #[arg(long, default_value = ".research-agent")]
    pub state_dir: PathBuf,
    /// TOML configuration of the embedded services (see `research-agent --help`); `RA_*`
    /// variables layer over it.
    #[arg(long, value_name = "FILE", env = "RA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Embedded mode: folder of original dataset files (one sub-folder per dataset).
    #[arg(long, env = "RA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Never download datasets.
    #[arg(long)]
    pub offline: bool,
    /// Print the result as JSON (no progress bars).
    #[arg(long)]
    pub json: bool,
    /// Print every epoch and the services' logs.
    #[arg(long)]
    pub verbose: bool,
}

/// The target named by the flags.
fn target(args: &QuickArgs) -> anyhow::Result<common::Target> {
    let (metric, threshold) = match (args.target_accuracy, &args.metric, args.threshold) {
        (Some(accuracy), _, _) => ("val_accuracy".to_owned(), accuracy),
        (None, Some(metric), Some(threshold)) => (metric.clone(), threshold),
        _ => bail!("give a target: --target-accuracy 0.95, or --metric NAME --threshold X"),
    };
    Ok(common::Target {
        metric,
        threshold,
        direction: common::Direction::Unspecified as i32,
        open_ended: false,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &PathBuf, what: &str) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("read {what} {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a valid {what}", path.display()))
}

/// Runs quick-evaluator; the result as JSON (also printed unless tables were asked for).
pub async fn run(args: QuickArgs) -> anyhow::Result<Value> {
    let target = target(&args)?;
    let model_file: Option<ra_spec::ModelSpec> = args
        .model
        .as_ref()
        .map(|p| read_json(p, "ModelSpec"))
        .transpose()?;
    let mut train: ra_spec::TrainSpec = match &args.train {
        Some(path) => read_json(path, "TrainSpec")?,
        None => ra_spec::examples::baseline_train(5),
    };
    if let Some(epochs) = args.epochs {
        train.epochs = epochs;
    }
    let stack = match &args.evaluator {
        Some(_) => None,
        None => Some(
            Stack::start(&StackOptions {
                root: args.state_dir.clone(),
                data_dir: args.data_dir.clone(),
                offline: args.offline,
                log_filter: if args.verbose {
                    "info".into()
                } else {
                    "warn".into()
                },
                config_file: args.config.clone(),
                environment: std::env::vars().collect(),
                ..StackOptions::default()
            })
            .await?,
        ),
    };
    let (evaluator_url, dataset_url) = match &stack {
        Some(stack) => (stack.evaluator_url(), stack.dataset_url()),
        None => (
            args.evaluator.clone().unwrap_or_default(),
            args.dataset_service.clone(),
        ),
    };
    let outcome = evaluate(
        &args,
        target,
        model_file,
        train,
        &evaluator_url,
        &dataset_url,
    )
    .await;
    if let Some(stack) = stack {
        stack.stop().await?;
    }
    outcome
}

async fn evaluate(
    args: &QuickArgs,
    target: common::Target,
    model_file: Option<ra_spec::ModelSpec>,
    train: ra_spec::TrainSpec,
    evaluator_url: &str,
    dataset_url: &str,
) -> anyhow::Result<Value> {
    let bars = MultiProgress::new();
    if args.json {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let manifest = prepare(args, dataset_url, &bars).await?;
    let input: ra_spec::InputSpec = manifest
        .input
        .as_ref()
        .context("the dataset's manifest has no input description")
        .and_then(|input| ra_spec::InputSpec::try_from(input).map_err(anyhow::Error::from))?;
    let model = match model_file {
        Some(model) => model,
        None => ra_spec::examples::baseline(&input, manifest.class_names.len() as u32),
    };
    let seeds = match args.max_seeds {
        Some(max_seeds) => pb::evaluate_request::Seeds::Adaptive(pb::AdaptiveSeeding {
            initial_seeds: args.num_seeds,
            max_seeds,
        }),
        None => pb::evaluate_request::Seeds::SeedCount(pb::SeedCount {
            count: args.num_seeds,
            base_seed: args.base_seed,
        }),
    };
    let limits = (args.timeout_seconds.is_some() || args.memory_mib.is_some()).then(|| {
        common::ResourceLimits {
            timeout_seconds: args.timeout_seconds.unwrap_or(0),
            memory_bytes: args.memory_mib.unwrap_or(0) << 20,
            ..Default::default()
        }
    });
    let request = pb::EvaluateRequest {
        model: Some(common::ModelSpec::from(&model)),
        train: Some(common::TrainSpec::from(&train)),
        dataset: Some(pb::evaluate_request::Dataset::PreparedDatasetId(
            manifest.prepared_id.clone(),
        )),
        seeds: Some(seeds),
        target: Some(target),
        confidence: args.confidence,
        limits,
        device: args.device.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut client = EvaluatorServiceClient::connect(evaluator_url.to_owned())
        .await
        .with_context(|| format!("connect to the evaluator at {evaluator_url}"))?;
    let mut stream = client
        .evaluate(request)
        .await
        .map_err(|status| anyhow::anyhow!("Evaluate refused: {}", status.message()))?
        .into_inner();
    let style = ProgressStyle::with_template("{prefix:>9} [{bar:30}] epoch {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut seed_bars: HashMap<u64, ProgressBar> = HashMap::new();
    let metric = request_metric(args);
    let result = loop {
        let event = match stream.message().await {
            Ok(Some(event)) => event,
            Ok(None) => bail!("the evaluator ended the stream without a result"),
            Err(status) => bail!(
                "evaluation failed ({:?}): {}",
                status.code(),
                status.message()
            ),
        };
        match event.event {
            Some(pb::evaluate_event::Event::SeedStarted(started)) => {
                let bar = bars.add(ProgressBar::new(u64::from(train.epochs)));
                bar.set_style(style.clone());
                bar.set_prefix(format!("seed {}", started.seed));
                bar.enable_steady_tick(Duration::from_millis(250));
                seed_bars.insert(started.seed, bar);
            }
            Some(pb::evaluate_event::Event::SeedEpoch(epoch)) => {
                let value = epoch.metrics.get(&metric).copied().unwrap_or(f64::NAN);
                if let Some(bar) = seed_bars.get(&epoch.seed) {
                    bar.set_position(epoch.epoch);
                    bar.set_message(format!("{metric} {value:.4}"));
                }
                if args.verbose && !args.json {
                    let _ = bars.println(format!(
                        "seed {} epoch {}: {metric} {value:.4}",
                        epoch.seed, epoch.epoch
                    ));
                }
            }
            Some(pb::evaluate_event::Event::SeedFinished(finished)) => {
                let bar = seed_bars
                    .remove(&finished.seed)
                    .unwrap_or_else(|| bars.add(ProgressBar::hidden()));
                let state = state_name(finished.state);
                let value = finished.final_metrics.get(&metric).copied();
                bar.finish_with_message(match value {
                    Some(value) => format!("{state}: {metric} {value:.4}"),
                    None => format!("{state}: {}", finished.message),
                });
            }
            Some(pb::evaluate_event::Event::Result(result)) => break result,
            None => {}
        }
    };
    let _ = bars.clear();
    let json = result_json(&result, &manifest.prepared_id, &model.name);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_tables(&result, &metric);
    }
    Ok(json)
}

fn request_metric(args: &QuickArgs) -> String {
    match (&args.target_accuracy, &args.metric) {
        (Some(_), _) | (None, None) => "val_accuracy".into(),
        (None, Some(metric)) => metric.clone(),
    }
}

/// The prepared dataset's manifest: prepared now (with a progress bar), or read by id.
async fn prepare(
    args: &QuickArgs,
    dataset_url: &str,
    bars: &MultiProgress,
) -> anyhow::Result<ds::Manifest> {
    let mut client = DatasetServiceClient::connect(dataset_url.to_owned())
        .await
        .with_context(|| format!("connect to dataset-svc at {dataset_url}"))?;
    if let Some(prepared_id) = &args.prepared {
        return client
            .get_prepared(ds::GetPreparedRequest {
                prepared_id: prepared_id.clone(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| {
                anyhow::anyhow!("prepared dataset {prepared_id}: {}", status.message())
            });
    }
    let name = args.dataset.clone().unwrap_or_default();
    let bar = bars.add(ProgressBar::new(1000));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(name.clone());
    let options = ds::PrepareOptions {
        subset_size: args.subset,
        offline: args.offline,
        ..Default::default()
    };
    let mut stream = client
        .prepare_dataset(ds::PrepareDatasetRequest {
            name: name.clone(),
            options: Some(options),
        })
        .await
        .map_err(|status| anyhow::anyhow!("dataset {name}: {}", status.message()))?
        .into_inner();
    loop {
        match stream.message().await {
            Ok(Some(event)) => match event.event {
                Some(ds::prepare_dataset_event::Event::Progress(progress)) => {
                    bar.set_message(progress.stage.clone());
                    bar.set_position((progress.fraction * 1000.0) as u64);
                }
                Some(ds::prepare_dataset_event::Event::Manifest(manifest)) => {
                    bar.finish_and_clear();
                    return Ok(manifest);
                }
                None => {}
            },
            Ok(None) => bail!("dataset {name}: the preparation ended without a manifest"),
            Err(status) => bail!("dataset {name}: {}", status.message()),
        }
    }
}

fn state_name(state: i32) -> &'static str {
    match common::TrialState::try_from(state).unwrap_or_default() {
        common::TrialState::Succeeded => "succeeded",
        common::TrialState::Failed => "failed",
        common::TrialState::Pruned => "pruned",
        common::TrialState::Cancelled => "cancelled",
        common::TrialState::Running => "running",
        _ => "pending",
    }
}

fn decision_name(decision: i32) -> &'static str {
    match common::GoalDecision::try_from(decision).unwrap_or_default() {
        common::GoalDecision::Achieved => "ACHIEVED",
        common::GoalDecision::NotAchieved => "NOT ACHIEVED",
        common::GoalDecision::Undecided => "UNDECIDED",
        common::GoalDecision::Unspecified => "-",
    }
}

/// A number for JSON: NaN and infinities become null.
fn number(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

fn cell(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        "—".into()
    }
}

/// The result for machines.
pub fn result_json(result: &pb::EvaluationResult, prepared_id: &str, model_name: &str) -> Value {
    let aggregate = result.aggregate.clone().unwrap_or_default();
    let target = result.target.clone().unwrap_or_default();
    json!({
        "evaluation_id": result.evaluation_id,
        "experiment_id": result.experiment_id,
        "candidate_id": result.candidate_id,
        "prepared_dataset_id": prepared_id,
        "model": model_name,
        "target": {"metric": target.metric, "threshold": target.threshold},
        "decision": decision_name(result.decision),
        "p_value": number(result.p_value),
        "t_statistic": number(result.t_statistic),
        "aggregate": {
            "n": aggregate.n,
            "mean": number(aggregate.mean),
            "std_dev": number(aggregate.std_dev),
            "min": number(aggregate.min),
            "max": number(aggregate.max),
            "std_error": number(aggregate.std_error),
            "ci_low": number(aggregate.ci_low),
            "ci_high": number(aggregate.ci_high),
            "confidence": aggregate.confidence,
        },
        "failed_seeds": result.failed_seeds,
        "explanation": result.explanation,
        "seeds": result.seeds.iter().map(|seed| json!({
            "seed": seed.seed,
            "trial_id": seed.trial_id,
            "state": state_name(seed.state),
            "device": seed.device,
            "final_metrics": seed.final_metrics.iter().map(|(k, v)| (k.clone(), number(*v))).collect::<serde_json::Map<_, _>>(),
            "wall_seconds": seed.usage.map(|u| u.wall_seconds),
            "message": seed.message,
        })).collect::<Vec<_>>(),
    })
}

fn print_tables(result: &pb::EvaluationResult, metric: &str) {
    let mut seeds = Table::new();
    seeds.load_preset(UTF8_FULL_CONDENSED);
    seeds.set_header([
        "seed",
        "device",
        "state",
        metric,
        "wall s",
        "peak RSS MiB",
        "note",
    ]);
    for seed in &result.seeds {
        let usage = seed.usage.unwrap_or_default();
        seeds.add_row([
            seed.seed.to_string(),
            seed.device.clone(),
            state_name(seed.state).to_owned(),
            cell(seed.final_metrics.get(metric).copied().unwrap_or(f64::NAN)),
            format!("{:.1}", usage.wall_seconds),
            format!("{:.0}", usage.peak_rss_bytes as f64 / (1 << 20) as f64),
            seed.message.chars().take(60).collect(),
        ]);
    }
    println!("{seeds}");
    let aggregate = result.aggregate.clone().unwrap_or_default();
    let target = result.target.clone().unwrap_or_default();
    let mut summary = Table::new();
    summary.load_preset(UTF8_FULL_CONDENSED);
    summary.set_header([
        "metric".to_owned(),
        "n".to_owned(),
        "mean".to_owned(),
        "sd".to_owned(),
        format!("{:.0}% CI", aggregate.confidence * 100.0),
        "target".to_owned(),
        "p".to_owned(),
        "decision".to_owned(),
    ]);
    summary.add_row([
        aggregate.metric.clone(),
        aggregate.n.to_string(),
        cell(aggregate.mean),
        cell(aggregate.std_dev),
        format!("[{}, {}]", cell(aggregate.ci_low), cell(aggregate.ci_high)),
        format!("{}", target.threshold),
        if result.p_value.is_finite() {
            format!("{:.4}", result.p_value)
        } else {
            "—".into()
        },
        decision_name(result.decision).to_owned(),
    ]);
    println!("{summary}");
    println!("{}", result.explanation);
    println!(
        "evaluation {} (candidate {}, experiment {})",
        result.evaluation_id, result.candidate_id, result.experiment_id
    );
}
