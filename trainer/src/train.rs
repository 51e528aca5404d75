//! The training loop: epochs of shuffled mini-batches with the TrainSpec's optimizer, schedule,
//! clipping and augmentation; evaluation on val (and test at the end); early stopping; the
//! metrics protocol records; the final weights saved as safetensors.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::GradientsParams;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use ra_prepared::{PreparedDataset, Split};
use ra_spec::{ModelSpec, TrainSpec};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::data::{Pipeline, PipelineError, epoch_order};
use crate::metrics::{EpochRecord, Evaluation, FinalRecord, classification_scores, peak_rss_bytes};
use crate::model::{ForwardError, Network};
use crate::optim::build_optimizer;

/// Batch size used for evaluation.
const EVAL_BATCH: usize = 512;
/// Above this train imbalance, macro-F1 is reported too.
const IMBALANCE_FOR_F1: f64 = 1.5;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid model spec: {0}")]
    Spec(#[from] ra_spec::SpecError),
    #[error("invalid train spec: {0}")]
    TrainSpec(#[from] ra_spec::TrainSpecError),
    #[error("prepared dataset: {0}")]
    Data(#[from] ra_prepared::PreparedError),
    #[error("{0}")]
    Pipeline(#[from] PipelineError),
    #[error("forward pass: {0}")]
    Forward(#[from] ForwardError),
    #[error("the loss became {0} at epoch {1}; lower the learning rate or clip gradients")]
    Diverged(f64, u32),
    #[error("cannot save the weights to {path}: {message}")]
    Save { path: PathBuf, message: String },
    #[error("the run stopped on an internal error: {0}")]
    Panicked(String),
    #[error("cannot load the weights from {path}: {message}")]
    Load { path: PathBuf, message: String },
}

/// What a run needs besides the data.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub model: ModelSpec,
    pub train: TrainSpec,
    pub seed: u64,
    pub device: Device,
    /// Directory for `weights.safetensors` and `model.json`; none saves nothing.
    pub output: Option<PathBuf>,
}

/// Everything a run reports.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub epochs: Vec<EpochRecord>,
    pub final_record: FinalRecord,
    pub model: Network,
}

/// A sink for the records as they happen (the binary prints them as JSON lines).
pub trait Reporter {
    fn epoch(&mut self, record: &EpochRecord);
    fn log(&mut self, line: &str);
    /// The run ended with `record` (called by [`crate::seeds::train_seeds`]; [`train`] returns it).
    fn finished(&mut self, _record: &FinalRecord) {}
    /// The run failed (called by [`crate::seeds::train_seeds`]; [`train`] returns the error).
    fn failed(&mut self, _error: &TrainError) {}
}

/// Trains `config.model` on `dataset`, reporting each epoch.
pub fn train(
    dataset: &PreparedDataset,
    config: &RunConfig,
    reporter: &mut dyn Reporter,
) -> Result<RunOutcome, TrainError> {
    config.train.validate()?;
    let started = Instant::now();
    let manifest = dataset.manifest();
    let pipeline = Pipeline::new(manifest, &config.model.input, config.model.num_classes)?;
    let train_split = dataset.split("train")?;
    let val_split = dataset.split("val")?;
    let report_f1 = manifest.imbalance_ratio > IMBALANCE_FOR_F1;

    let autodiff = config.device.clone().autodiff();
    let mut model = build_seeded(&config.model, &autodiff, config.seed)?;
    let parameters = model.num_params() as u64;
    reporter.log(&format!(
        "training {} ({parameters} parameters) on {} ({} train / {} val samples), seed {}",
        if config.model.name.is_empty() {
            "model"
        } else {
            &config.model.name
        },
        manifest.dataset,
        train_split.len(),
        val_split.len(),
        config.seed
    ));
    let mut optimizer = build_optimizer(&config.train);
    let loss = loss_function(&config.train, &autodiff);
    let eval_loss = loss_function(&config.train, &config.device);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let batch_size = config.train.batch_size as usize;

    let mut epochs = Vec::new();
    let mut best_val_loss = f64::INFINITY;
    let mut epochs_without_improvement = 0u32;
    let mut stopped_early = false;
    let mut last_eval = Evaluation {
        loss: f64::NAN,
        accuracy: 0.0,
        macro_f1: 0.0,
    };
    for epoch in 0..config.train.epochs {
        let epoch_started = Instant::now();
        let learning_rate = config.train.schedule.learning_rate(
            config.train.learning_rate,
            epoch,
            config.train.epochs,
        );
        let order = epoch_order(train_split.len(), &mut rng);
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        for indices in order.chunks(batch_size) {
            let augmentation = Some((&config.train.augmentation, &mut rng));
            let (x, y) = pipeline.batch(train_split, indices, augmentation, &autodiff);
            let logits = model.forward(x)?;
            let batch_loss = loss.forward(logits, y);
            let value = f64::from(batch_loss.clone().into_scalar::<f32>());
            if !value.is_finite() {
                return Err(TrainError::Diverged(value, epoch + 1));
            }
            loss_sum += value * indices.len() as f64;
            seen += indices.len();
            let gradients = GradientsParams::from_grads(batch_loss.backward(), &model);
            model = optimizer.step(learning_rate, model, gradients);
        }
        let train_seconds = epoch_started.elapsed().as_secs_f64();
        last_eval = evaluate(
            &model.valid(),
            &pipeline,
            val_split,
            &eval_loss,
            &config.device,
            config.model.num_classes,
        )?;
        let record = EpochRecord {
            event: "epoch",
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            val_loss: last_eval.loss,
            val_accuracy: last_eval.accuracy,
            val_macro_f1: report_f1.then_some(last_eval.macro_f1),
            learning_rate,
            seconds: epoch_started.elapsed().as_secs_f64(),
            samples_per_second: seen as f64 / train_seconds.max(1e-9),
        };
        reporter.epoch(&record);
        epochs.push(record);
        if last_eval.loss < best_val_loss - 1e-6 {
            best_val_loss = last_eval.loss;
            epochs_without_improvement = 0;
        } else {
            epochs_without_improvement += 1;
        }
        let patience = config.train.early_stopping_patience;
        if patience > 0 && epochs_without_improvement >= patience && epoch + 1 < config.train.epochs
        {
            reporter.log(&format!(
                "early stop after epoch {}: no better val loss for {patience} epochs",
                epoch + 1
            ));
            stopped_early = true;
            break;
        }
    }

    let trained = model.valid();
    let test = match dataset.split("test") {
        Ok(split) => Some(evaluate(
            &trained,
            &pipeline,
            split,
            &eval_loss,
            &config.device,
            config.model.num_classes,
        )?),
        Err(_) => None,
    };
    if let Some(output) = &config.output {
        save(&trained, &config.model, output)?;
    }
    let final_record = FinalRecord {
        event: "final",
        epochs: epochs.len() as u32,
        val_loss: last_eval.loss,
        val_accuracy: last_eval.accuracy,
        val_macro_f1: report_f1.then_some(last_eval.macro_f1),
        test_loss: test.map(|t| t.loss),
        test_accuracy: test.map(|t| t.accuracy),
        test_macro_f1: test.filter(|_| report_f1).map(|t| t.macro_f1),
        parameters,
        peak_rss_bytes: peak_rss_bytes(),
        stopped_early,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(RunOutcome {
        epochs,
        final_record,
        model: trained,
    })
}

/// Parameter initialisation draws from the backend's process-wide generator (flex's and
/// LibTorch's alike): one run at a time seeds it and builds its network, so that runs of
/// several seeds at once in one process get the parameters each gets alone.
static INITIALISING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The network of `spec` on `device` with its parameters and dropout stream seeded by `seed`.
fn build_seeded(spec: &ModelSpec, device: &Device, seed: u64) -> Result<Network, TrainError> {
    let model = {
        let _only_us = INITIALISING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        device.seed(seed);
        let model = Network::build(spec, device)?;
        // Burn initialises parameters lazily, on first use: draw them now, under the lock.
        model.visit(&mut Materialise);
        model
    };
    model.seed_dropout(seed);
    Ok(model)
}

/// Reads every parameter once, which makes Burn draw the lazily initialised ones.
struct Materialise;

impl burn::module::ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::tensor::Tensor<D>>,
    ) {
        let _ = param.val();
    }
}

fn loss_function(spec: &TrainSpec, device: &Device) -> CrossEntropyLoss {
    let smoothing = (spec.label_smoothing > 0.0).then_some(spec.label_smoothing as f32);
    CrossEntropyLossConfig::new()
        .with_smoothing(smoothing)
        .init(device)
}

/// Mean loss, accuracy and macro-F1 of `model` on a whole split, in file order.
pub fn evaluate(
    model: &Network,
    pipeline: &Pipeline,
    split: &Split,
    loss: &CrossEntropyLoss,
    device: &Device,
    classes: u32,
) -> Result<Evaluation, TrainError> {
    let (predictions, loss_sum) = predict(model, pipeline, split, Some(loss), device)?;
    let (accuracy, macro_f1) =
        classification_scores(split.labels(), &predictions, classes as usize);
    Ok(Evaluation {
        loss: loss_sum / split.len().max(1) as f64,
        accuracy,
        macro_f1,
    })
}

/// Predicted classes for a whole split (and the summed loss when a loss is given).
pub fn predict(
    model: &Network,
    pipeline: &Pipeline,
    split: &Split,
    loss: Option<&CrossEntropyLoss>,
    device: &Device,
) -> Result<(Vec<i64>, f64), TrainError> {
    let order: Vec<usize> = (0..split.len()).collect();
    let mut predictions = Vec::with_capacity(split.len());
    let mut loss_sum = 0.0;
    for indices in order.chunks(EVAL_BATCH) {
        let (x, y) = pipeline.batch(split, indices, None, device);
        let logits = model.forward(x)?;
        if let Some(loss) = loss {
            loss_sum += f64::from(loss.forward(logits.clone(), y).into_scalar::<f32>())
                * indices.len() as f64;
        }
        let classes = logits.argmax(1).into_data().convert::<i64>();
        predictions.extend(classes.iter::<i64>());
    }
    Ok((predictions, loss_sum))
}

/// Writes `weights.safetensors` and the `model.json` it belongs to.
pub fn save(model: &Network, spec: &ModelSpec, output: &Path) -> Result<(), TrainError> {
    let failed = |message: String| TrainError::Save {
        path: output.to_path_buf(),
        message,
    };
    std::fs::create_dir_all(output).map_err(|e| failed(e.to_string()))?;
    std::fs::write(output.join("model.json"), spec.to_json_pretty())
        .map_err(|e| failed(e.to_string()))?;
    let mut store = SafetensorsStore::from_file(output.join("weights.safetensors"));
    model
        .save_into(&mut store)
        .map_err(|e| failed(e.to_string()))?;
    Ok(())
}

/// Rebuilds a saved model on `device`.
pub fn load(output: &Path, device: &Device) -> Result<(ModelSpec, Network), TrainError> {
    let failed = |message: String| TrainError::Load {
        path: output.to_path_buf(),
        message,
    };
    let text =
        std::fs::read_to_string(output.join("model.json")).map_err(|e| failed(e.to_string()))?;
    let spec = ModelSpec::from_json(&text).map_err(|e| failed(e.to_string()))?;
    let mut model = Network::build(&spec, device)?;
    let mut store = SafetensorsStore::from_file(output.join("weights.safetensors"));
    model
        .load_from(&mut store)
        .map_err(|e| failed(e.to_string()))?;
    Ok((spec, model))
}
