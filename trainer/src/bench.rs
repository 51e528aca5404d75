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
use ra_spec::{Activation, Budget, InputSpec, Layer, ModelSpec, PoolKind};

use crate::model::{Activations, Network};

/// The reference CNN for 1×28×28 inputs.
pub fn reference_cnn() -> ModelSpec {
    let conv = |out_channels| Layer::Conv2d {
        out_channels,
        kernel_size: 3,
        stride: 1,
        padding: 1,
        bias: true,
        in_channels: 0,
    };
    let relu = || Layer::Activation {
        function: Activation::Relu,
    };
    let pool = || Layer::Pool2d {
        pool: PoolKind::Max,
        kernel_size: 2,
        stride: None,
        padding: 0,
    };
    ModelSpec {
        name: "reference-cnn".into(),
        input: InputSpec::Image {
            channels: 1,
            height: 28,
            width: 28,
        },
        num_classes: 10,
        layers: vec![
            conv(16),
            relu(),
            pool(),
            conv(32),
            relu(),
            pool(),
            Layer::Flatten,
            Layer::Linear {
                out_features: 128,
                bias: true,
                in_features: 1568,
            },
            relu(),
            Layer::Linear {
                out_features: 10,
                bias: true,
                in_features: 0,
            },
        ],
    }
}

/// MLP 784 → 256 → 10.
pub fn reference_mlp() -> ModelSpec {
    ModelSpec {
        name: "mlp-784-256-10".into(),
        input: InputSpec::Tabular { features: 784 },
        num_classes: 10,
        layers: vec![
            Layer::Linear {
                out_features: 256,
                bias: true,
                in_features: 0,
            },
            Layer::Activation {
                function: Activation::Relu,
            },
            Layer::Linear {
                out_features: 10,
                bias: true,
                in_features: 0,
            },
        ],
    }
}

/// Training samples per second after warm-up, on synthetic data already in tensors.
pub fn train_throughput(
    spec: &ModelSpec,
    device: &Device,
    batch: usize,
    warmup: usize,
    steps: usize,
) -> Result<f64, crate::TrainError> {
    device.seed(0);
    let autodiff = device.clone().autodiff();
    let mut model = Network::build(spec, &autodiff)?;
    let mut optimizer = AdamConfig::new().init();
    let loss = CrossEntropyLossConfig::new().init(&autodiff);
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
        InputSpec::Text { .. } => unimplemented_text(),
    };
    let labels: Vec<i64> = (0..batch as i64)
        .map(|i| i % i64::from(spec.num_classes))
        .collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &autodiff);
    let mut step = |model: Network| -> Result<Network, crate::TrainError> {
        let logits = model.forward(x.clone())?;
        let value = loss.forward(logits, y.clone());
        let _ = value.clone().into_scalar::<f32>();
        let gradients = GradientsParams::from_grads(value.backward(), &model);
        Ok(optimizer.step(1e-3, model, gradients))
    };
    for _ in 0..warmup {
        model = step(model)?;
    }
    let started = Instant::now();
    for _ in 0..steps {
        model = step(model)?;
    }
    Ok((batch * steps) as f64 / started.elapsed().as_secs_f64())
}

fn unimplemented_text() -> ! {
    panic!("the benchmark models take images or vectors")
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

/// Runs the PyTorch reference; `None` (with the reason) when Python or torch is missing.
pub fn torch_reference(
    script: &Path,
    python: &str,
    threads: usize,
    batch: usize,
    steps: usize,
    warmup: usize,
) -> Result<(f64, f64, String), String> {
    let output = Command::new(python)
        .arg(script)
        .args([
            "--threads",
            &threads.to_string(),
            "--batch",
            &batch.to_string(),
        ])
        .args([
            "--steps",
            &steps.to_string(),
            "--warmup",
            &warmup.to_string(),
        ])
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
    let cnn = value["cnn"].as_f64().ok_or("no cnn figure")?;
    let mlp = value["mlp"].as_f64().ok_or("no mlp figure")?;
    Ok((cnn, mlp, value["torch"].as_str().unwrap_or("?").to_owned()))
}
