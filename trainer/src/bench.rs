//! `ra-trainer bench`: training throughput of the reference CNN and the MLP (batch 64, Adam)
//! on each available backend, the input pipeline's own throughput, and the PyTorch reference
//! (`bench/torch_reference.py`) measured in the same run, as a table with ratios and the
//! fraction of this CPU's peak FLOP rate.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use ra_prepared::{
    ManifestDraft, Normalization, PreparedDataset, SplitData, XData, write_prepared,
};
use ra_spec::{Augmentation, Budget, InputSpec, Layer, ModelSpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::{Pipeline, epoch_order};
use crate::model::{Activations, Network};

/// The reference CNN for 1×28×28 inputs (linear 1568 → 128 after the poolings).
pub fn reference_cnn() -> ModelSpec {
    ra_spec::examples::reference_cnn(
        InputSpec::Image {
            channels: 1,
            height: 28,
            width: 28,
        },
        10,
    )
}

/// MLP 784 → 256 → 10.
pub fn reference_mlp() -> ModelSpec {
    mlp_for(784)
}

/// MLP `features` → 256 → 10.
fn mlp_for(features: u32) -> ModelSpec {
    ModelSpec {
        name: format!("mlp-{features}-256-10"),
        input: InputSpec::Tabular { features },
        num_classes: 10,
        layers: vec![Layer::linear(256), Layer::relu(), Layer::linear(10)],
    }
}

/// The step benchmark's input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchInput {
    /// 1×28×28 (the reference CNN's own).
    Mnist,
    /// 3×32×32 (CIFAR-10-shaped).
    Cifar10,
}

impl BenchInput {
    /// Channels, height, width.
    fn shape(self) -> (u32, u32, u32) {
        match self {
            Self::Mnist => (1, 28, 28),
            Self::Cifar10 => (3, 32, 32),
        }
    }

    /// The name `torch_reference.py --input` knows it by.
    fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::Cifar10 => "cifar10",
        }
    }

    /// The reference CNN and the MLP on this input.
    fn models(self) -> (ModelSpec, ModelSpec) {
        let (channels, height, width) = self.shape();
        let mut cnn = ra_spec::examples::reference_cnn(
            InputSpec::Image {
                channels,
                height,
                width,
            },
            10,
        );
        if self != Self::Mnist {
            cnn.name = format!("reference-cnn {channels}×{height}×{width}");
        }
        (cnn, mlp_for(channels * height * width))
    }
}

/// A model training on synthetic data already in tensors, measured in blocks of steps, so
/// that blocks of several backends can alternate (this machine's speed drifts between runs by
/// more than the differences measured).
pub struct ThroughputRun {
    model: Option<Network>,
    optimizer: burn::optim::ModuleOptimizer,
    loss: burn::nn::loss::CrossEntropyLoss,
    x: Activations,
    y: Tensor<1, Int>,
    batch: usize,
}

impl ThroughputRun {
    pub fn new(spec: &ModelSpec, device: &Device, batch: usize) -> Result<Self, crate::TrainError> {
        device.seed(0);
        let autodiff = device.clone().autodiff();
        let model = Network::build(spec, &autodiff)?;
        let x = match spec.input {
            InputSpec::Image {
                channels,
                height,
                width,
            } => Activations::Image(Tensor::<4>::random(
                [batch, channels as usize, height as usize, width as usize],
                Distribution::Normal(0.0, 1.0),
                &autodiff,
            )),
            InputSpec::Tabular { features } => Activations::Vector(Tensor::<2>::random(
                [batch, features as usize],
                Distribution::Normal(0.0, 1.0),
                &autodiff,
            )),
            InputSpec::Text {
                vocab_size,
                sequence_length,
            } => Activations::Tokens(Tensor::<2, Int>::random(
                [batch, sequence_length as usize],
                Distribution::Uniform(0.0, f64::from(vocab_size)),
                &autodiff,
            )),
        };
        let labels: Vec<i64> = (0..batch as i64)
            .map(|i| i % i64::from(spec.num_classes))
            .collect();
        Ok(Self {
            model: Some(model),
            optimizer: AdamConfig::new().init(),
            loss: CrossEntropyLossConfig::new().init(&autodiff),
            x,
            y: Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &autodiff),
            batch,
        })
    }

    /// Runs `steps` training steps and returns their samples per second. The step is the
    /// training loop's: forward, the loss read back (a synchronisation, as the loop's
    /// divergence check does), backward, optimizer.
    pub fn measure(&mut self, steps: usize) -> Result<f64, crate::TrainError> {
        let started = Instant::now();
        for _ in 0..steps {
            let Some(model) = self.model.take() else {
                break;
            };
            let logits = model.forward(self.x.clone())?;
            let value = self.loss.forward(logits, self.y.clone());
            let _ = value.clone().into_scalar::<f32>();
            let gradients = GradientsParams::from_grads(value.backward(), &model);
            self.model = Some(self.optimizer.step(1e-3, model, gradients));
        }
        Ok((self.batch * steps) as f64 / started.elapsed().as_secs_f64())
    }
}

/// Samples per second the input pipeline delivers as training batches (memory-mapped u8
/// images normalised, randomly cropped and flipped, packed into a tensor on `device`): one
/// figure per repeat over a prepared split of 1×28×28 images written for the purpose.
pub fn pipeline_throughput(
    device: &Device,
    batch: usize,
    repeats: usize,
) -> Result<Vec<f64>, crate::TrainError> {
    const SAMPLES: usize = 8192;
    let root = std::env::temp_dir().join(format!("ra-trainer-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let result = (|| {
        let dataset = synthetic_images(&root, SAMPLES)?;
        let model = reference_cnn();
        let pipeline = Pipeline::new(dataset.manifest(), &model.input, model.num_classes)?;
        let split = dataset.split("train")?;
        let augmentation = Augmentation {
            random_crop_padding: 2,
            horizontal_flip: true,
        };
        let mut rng = StdRng::seed_from_u64(0);
        let mut rates = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            let started = Instant::now();
            let order = epoch_order(split.len(), &mut rng);
            for indices in order.chunks(batch) {
                let (x, y) =
                    pipeline.batch(split, indices, Some((&augmentation, &mut rng)), device);
                std::hint::black_box((x, y));
            }
            rates.push(SAMPLES as f64 / started.elapsed().as_secs_f64());
        }
        Ok(rates)
    })();
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// A prepared dataset of `samples` random 1×28×28 u8 images in 10 classes.
fn synthetic_images(root: &Path, samples: usize) -> Result<PreparedDataset, crate::TrainError> {
    let mut rng = StdRng::seed_from_u64(1);
    let split = |name: &str, n: usize, rng: &mut StdRng| SplitData {
        name: name.into(),
        x: XData::U8((0..n * 784).map(|_| rng.random::<u8>()).collect()),
        y: (0..n as i64).map(|i| i % 10).collect(),
    };
    let draft = ManifestDraft {
        dataset: "bench-images".into(),
        input: reference_cnn().input,
        class_names: (0..10).map(|c| c.to_string()).collect(),
        normalization: Normalization {
            mean: vec![127.5],
            std: vec![73.9],
        },
        source_checksums: Default::default(),
        checksums_verified: false,
        options: serde_json::json!({"synthetic": samples}),
        created_at: "1970-01-01T00:00:00Z".into(),
    };
    let splits = vec![
        split("train", samples, &mut rng),
        split("val", 64, &mut rng),
    ];
    Ok(write_prepared(root, "bench-images", draft, splits)?)
}

/// The median of a non-empty list (NaN for an empty one).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Forward FLOPs per sample × 3 (forward plus a backward pass of about twice the cost).
pub fn training_flops_per_sample(spec: &ModelSpec) -> f64 {
    ra_spec::validate_model(spec, &Budget::unlimited())
        .map_or(0.0, |report| 3.0 * report.flops_per_sample as f64)
}

/// Peak single-precision FLOP rate of `threads` cores: clock × FLOPs per cycle from the vector
/// units the CPU reports (AVX-512: 64, AVX2 + FMA: 32, otherwise 8).
pub fn peak_flops(threads: usize) -> Option<(f64, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags"))?.to_owned();
    let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
    let (per_cycle, isa) = if has("avx512f") {
        (64.0, "AVX-512")
    } else if has("avx2") && has("fma") {
        (32.0, "AVX2+FMA")
    } else {
        (8.0, "SSE")
    };
    Some((
        mhz * 1e6 * per_cycle * threads as f64,
        format!("{threads} cores × {mhz:.0} MHz × {per_cycle} FLOP/cycle ({isa})"),
    ))
}

/// The PyTorch reference's figures: one per repeat for each model, and torch's version.
#[derive(Debug, Clone)]
pub struct TorchReference {
    pub cnn: Vec<f64>,
    pub mlp: Vec<f64>,
    pub version: String,
}

/// Runs the PyTorch reference `repeats` times with `options`' shape, sizes and device; the
/// reason when Python or torch is missing.
pub fn torch_reference(options: &BenchOptions, repeats: usize) -> Result<TorchReference, String> {
    let (script, python) = (&options.torch_script, &options.python);
    let output = Command::new(python)
        .arg(script)
        .args([
            "--threads",
            &options.threads.to_string(),
            "--batch",
            &options.batch.to_string(),
        ])
        .args([
            "--steps",
            &options.steps.to_string(),
            "--warmup",
            &options.warmup.to_string(),
            "--repeats",
            &repeats.to_string(),
        ])
        .args(["--input", options.input.name()])
        .args(["--device", &options.torch_device])
        .output()
        .map_err(|error| format!("cannot run {python}: {error}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "{} failed: {}",
            script.display(),
            stderr.lines().last().unwrap_or_default()
        ));
    }
    let line = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    let value: serde_json::Value = serde_json::from_str(&line)
        .map_err(|error| format!("unreadable reference output: {error}"))?;
    let figures = |key: &str| -> Result<Vec<f64>, String> {
        value[key]
            .as_array()
            .map(|list| list.iter().filter_map(serde_json::Value::as_f64).collect())
            .filter(|list: &Vec<f64>| !list.is_empty())
            .ok_or_else(|| format!("no {key} figures in the reference output"))
    };
    Ok(TorchReference {
        cnn: figures("cnn")?,
        mlp: figures("mlp")?,
        version: value["torch"].as_str().unwrap_or("?").to_owned(),
    })
}

/// A benchmark model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchModel {
    /// The reference CNN (conv 1→16, pool, conv 16→32, pool, linear 1568→128→10).
    Cnn,
    /// MLP 784 → 256 → 10.
    Mlp,
}

/// What `ra-trainer bench` measures.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Training steps per measurement.
    #[arg(long, default_value_t = 40)]
    pub steps: usize,
    #[arg(long, default_value_t = 8)]
    pub warmup: usize,
    /// Measurements per row (the table shows their median and range).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Backends to measure (those not built in are left out).
    #[arg(long, value_delimiter = ',', default_value = "flex,tch")]
    pub backends: Vec<crate::backend::Backend>,
    /// Models to measure.
    #[arg(long, value_delimiter = ',', default_value = "cnn,mlp")]
    pub models: Vec<BenchModel>,
    /// Leave out the PyTorch reference.
    #[arg(long)]
    pub no_torch: bool,
    /// The PyTorch reference script.
    #[arg(long, default_value = "bench/torch_reference.py")]
    pub torch_script: std::path::PathBuf,
    /// Python interpreter with torch installed.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Input shape of both models (the MLP takes it flattened).
    #[arg(long, value_enum, default_value_t = BenchInput::Mnist)]
    pub input: BenchInput,
    /// PyTorch's device ("cpu", "cuda").
    #[arg(long, default_value = "cpu")]
    pub torch_device: String,
}

fn rate_cells(rates: &[f64]) -> (String, String) {
    let low = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let high = rates.iter().copied().fold(0.0, f64::max);
    (
        format!("{:.0}", median(rates)),
        format!("{low:.0}–{high:.0}"),
    )
}

/// The rows of one workload: figures per backend (and PyTorch's), one per repeat.
struct Workload {
    spec: ModelSpec,
    is_cnn: bool,
    /// Each backend's run and its figures, one per repeat.
    runs: Vec<(crate::backend::Backend, ThroughputRun, Vec<f64>)>,
    torch: Vec<f64>,
}

/// Every measurement, as a printable report: the training rows (each backend, then PyTorch)
/// of both models, and the input pipeline against the fastest training rate. Each repeat
/// measures every backend and PyTorch back to back, so that drift hits them alike.
pub fn run(options: &BenchOptions) -> Result<String, crate::TrainError> {
    use comfy_table::{Table, presets::UTF8_FULL};

    let mut workloads = Vec::new();
    let (cnn, mlp) = options.input.models();
    for model in &options.models {
        let (spec, is_cnn) = match model {
            BenchModel::Cnn => (cnn.clone(), true),
            BenchModel::Mlp => (mlp.clone(), false),
        };
        let mut runs = Vec::new();
        for backend in &options.backends {
            let Ok(device) = backend.device() else {
                continue;
            };
            let mut run = ThroughputRun::new(&spec, &device, options.batch)?;
            run.measure(options.warmup)?;
            runs.push((*backend, run, Vec::with_capacity(options.repeats)));
        }
        workloads.push(Workload {
            spec,
            is_cnn,
            runs,
            torch: Vec::new(),
        });
    }
    let mut torch_status: Result<String, String> = Err("left out (--no-torch)".to_owned());
    // Cleared when Python or torch is missing: reported once, not retried every repeat.
    let mut measure_torch = !options.no_torch;
    for _ in 0..options.repeats.max(1) {
        if measure_torch {
            match torch_reference(options, 1) {
                Ok(reference) => {
                    for workload in &mut workloads {
                        let figures = if workload.is_cnn {
                            &reference.cnn
                        } else {
                            &reference.mlp
                        };
                        workload.torch.extend(figures);
                    }
                    torch_status = Ok(reference.version);
                }
                Err(reason) => {
                    torch_status = Err(reason);
                    measure_torch = false;
                }
            }
        }
        for workload in &mut workloads {
            for (_, run, rates) in &mut workload.runs {
                rates.push(run.measure(options.steps)?);
            }
        }
    }

    let peak = peak_flops(options.threads);
    let mut table = Table::new();
    table.load_preset(UTF8_FULL).set_header([
        "workload",
        "backend",
        "samples/s (median)",
        "range",
        "× PyTorch",
        "% of peak FLOP/s",
    ]);
    let mut fastest_training = 0f64;
    for workload in &workloads {
        let flops = training_flops_per_sample(&workload.spec);
        // Of this CPU's peak: for the CPU rows only.
        let percent = |rate: f64, on_cpu: bool| match &peak {
            Some((p, _)) if on_cpu => format!("{:.1}", 100.0 * rate * flops / p),
            _ => "n/a".to_owned(),
        };
        let torch_median = (!workload.torch.is_empty()).then(|| median(&workload.torch));
        for (backend, _, rates) in &workload.runs {
            let rate = median(rates);
            fastest_training = fastest_training.max(rate);
            let (shown, range) = rate_cells(rates);
            table.add_row([
                workload.spec.name.clone(),
                backend.name().to_owned(),
                shown,
                range,
                torch_median.map_or("n/a".to_owned(), |t| format!("{:.2}", rate / t)),
                percent(rate, !ra_spec::device::on_gpu(backend.device_name())),
            ]);
        }
        if let Some(torch) = torch_median {
            let (shown, range) = rate_cells(&workload.torch);
            table.add_row([
                workload.spec.name.clone(),
                "pytorch".into(),
                shown,
                range,
                "1.00".into(),
                percent(torch, options.torch_device == "cpu"),
            ]);
        }
    }
    let pipeline = pipeline_throughput(&Device::flex(), options.batch, options.repeats)?;
    let (shown, range) = rate_cells(&pipeline);
    table.add_row([
        "input pipeline (1×28×28 u8, crop + flip)".to_owned(),
        "flex".into(),
        shown,
        range,
        format!(
            "{:.0}× the fastest training row",
            median(&pipeline) / fastest_training.max(1e-9)
        ),
        String::new(),
    ]);
    let mut report = table.to_string();
    report.push_str(&format!(
        "\nbatch {}, Adam, {} threads, {} repeats of {} steps after {} warm-up steps; each repeat \
         measures every backend and PyTorch back to back; input {}; PyTorch on {}",
        options.batch,
        options.threads,
        options.repeats,
        options.steps,
        options.warmup,
        options.input.name(),
        options.torch_device
    ));
    match &torch_status {
        Ok(version) => report.push_str(&format!(
            "\nPyTorch {version} via {}",
            options.torch_script.display()
        )),
        Err(reason) => report.push_str(&format!("\nPyTorch reference not measured: {reason}")),
    }
    if let Some((_, how)) = &peak {
        report.push_str(&format!("\npeak: {how}"));
    }
    Ok(report)
}
