//! What the model is told: the `full` prompt (every layer type and option, the specs' JSON
//! schema generated from the serde types, a worked example, the last candidates) or the
//! `compact` one for small local models (the layer types this input uses, an example, the best
//! and the last few candidates, one line each).

use ra_spec::{InputSpec, Layer, ModelSpec, TrainSpec};

use super::{Answer, Brief, json_of};
use crate::strategy::Context;

/// Candidates shown in the full prompt and in the compact one.
const FULL_HISTORY: usize = 20;
const COMPACT_HISTORY: usize = 5;

/// One candidate of the session, as the prompt shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PastCandidate {
    pub name: String,
    pub strategy: String,
    pub model: String,
    pub train: String,
    /// Mean and CI of the target metric, `None` without a result.
    pub result: Option<(f64, f64, f64, u32)>,
    /// Failure, or the decision ("rejected (p = 0.41)").
    pub outcome: String,
}

impl PastCandidate {
    pub fn new(model: &ModelSpec, train: &TrainSpec) -> Self {
        Self {
            model: model_summary(model),
            train: train_summary(train),
            ..Self::default()
        }
    }
}

/// A model in one line: "linear(64) relu dropout(0.2) linear(3)".
pub fn model_summary(model: &ModelSpec) -> String {
    model
        .layers
        .iter()
        .map(layer_summary)
        .collect::<Vec<_>>()
        .join(" ")
}

fn layer_summary(layer: &Layer) -> String {
    let json = serde_json::to_value(layer).unwrap_or_default();
    let kind = json["type"].as_str().unwrap_or("layer").to_owned();
    let fields: Vec<String> = json
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.as_str() != "type")
        .map(|(key, value)| match value {
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                format!("{key}=[…]")
            }
            other => other.to_string().trim_matches('"').to_owned(),
        })
        .collect();
    if fields.is_empty() {
        kind
    } else {
        format!("{kind}({})", fields.join(","))
    }
}

/// A recipe in one line: "adam lr=0.001 batch=32 epochs=10 cosine".
pub fn train_summary(train: &TrainSpec) -> String {
    let optimizer = serde_json::to_value(&train.optimizer).unwrap_or_default();
    let schedule = serde_json::to_value(&train.schedule).unwrap_or_default();
    format!(
        "{} lr={} batch={} epochs={} {}",
        optimizer["type"].as_str().unwrap_or("?"),
        train.learning_rate,
        train.batch_size,
        train.epochs,
        schedule["type"].as_str().unwrap_or("constant")
    )
}

/// The layer types a model of this input is built from.
fn layer_types(input: &InputSpec) -> &'static str {
    match input {
        InputSpec::Image { .. } => {
            "conv2d (out_channels, kernel_size, stride, padding), batch_norm, activation (function relu|gelu|silu|tanh), pool2d (pool max|avg, kernel_size), global_avg_pool, flatten, dropout (probability), linear (out_features), residual (layers, skip identity|projection)"
        }
        InputSpec::Text { .. } => {
            "embedding (embedding_dim), conv1d (out_channels, kernel_size), sequence_mean_pool, layer_norm, activation (function relu|gelu|silu|tanh), dropout (probability), linear (out_features)"
        }
        _ => {
            "linear (out_features), activation (function relu|gelu|silu|tanh), dropout (probability), batch_norm, layer_norm, residual (layers, skip identity|projection)"
        }
    }
}

/// The JSON schema of the answer, generated from the serde types.
pub fn answer_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Answer)).unwrap_or_default()
}

/// The layer types (serde tags) a model of this input is built from.
fn layer_tags(input: &InputSpec) -> &'static [&'static str] {
    match input {
        InputSpec::Image { .. } => &[
            "conv2d",
            "batch_norm",
            "activation",
            "pool2d",
            "global_avg_pool",
            "flatten",
            "dropout",
            "linear",
            "residual",
        ],
        InputSpec::Text { .. } => &[
            "embedding",
            "conv1d",
            "sequence_mean_pool",
            "layer_norm",
            "activation",
            "dropout",
            "linear",
        ],
        InputSpec::Tabular { .. } => &[
            "linear",
            "activation",
            "dropout",
            "batch_norm",
            "layer_norm",
            "residual",
        ],
    }
}

/// [`answer_schema`] narrowed to this session: `model.input` and `model.num_classes` fixed
/// to the dataset's (`const`), `train.epochs` within the limit, and only the layer types
/// this input uses — what a grammar-constrained server (llama.cpp) then cannot get wrong.
pub fn answer_schema_for(context: &Context<'_>) -> serde_json::Value {
    let mut schema = answer_schema();
    let Some(defs) = schema.get_mut("$defs").and_then(|d| d.as_object_mut()) else {
        return schema;
    };
    let properties = |defs: &mut serde_json::Map<String, serde_json::Value>, name: &str| {
        defs.get_mut(name)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.as_object_mut())
            .map(std::mem::take)
    };
    if let Some(mut model) = properties(defs, "ModelSpec") {
        model.insert(
            "input".into(),
            serde_json::json!({"const": serde_json::to_value(context.input).unwrap_or_default()}),
        );
        model.insert(
            "num_classes".into(),
            serde_json::json!({"const": context.num_classes}),
        );
        defs["ModelSpec"]["properties"] = serde_json::Value::Object(model);
    }
    if let Some(mut train) = properties(defs, "TrainSpec") {
        train.insert(
            "epochs".into(),
            serde_json::json!({"type": "integer", "minimum": 1, "maximum": context.max_epochs}),
        );
        defs["TrainSpec"]["properties"] = serde_json::Value::Object(train);
    }
    let allowed = layer_tags(context.input);
    if let Some(variants) = defs
        .get_mut("Layer")
        .and_then(|l| l.get_mut("oneOf"))
        .and_then(|o| o.as_array_mut())
    {
        variants.retain(|variant| {
            let tag = &variant["properties"]["type"];
            let tag = tag["const"].as_str().or_else(|| tag["enum"][0].as_str());
            tag.is_none_or(|tag| allowed.contains(&tag))
        });
    }
    schema
}

fn example(context: &Context<'_>) -> String {
    let model = ra_spec::examples::baseline(context.input, context.num_classes);
    let train = TrainSpec {
        epochs: context.max_epochs.min(5),
        ..TrainSpec::default()
    };
    format!(
        "{{\"rationale\": \"a baseline\", \"model\": {}, \"train\": {}}}",
        json_of(&model),
        json_of(&train)
    )
}

pub fn system(context: &Context<'_>, compact: bool) -> String {
    if compact {
        return format!(
            "You design neural networks. Reply with ONE JSON object and nothing else: \
             {{\"rationale\": \"why\", \"model\": {{...}}, \"train\": {{...}}}}. Keep \
             \"input\" and \"num_classes\" as in the example; the last layer outputs \
             {classes} features; epochs at most {epochs}. Layer types: {layers}.\nExample:\n{example}",
            classes = context.num_classes,
            epochs = context.max_epochs,
            layers = layer_types(context.input),
            example = example(context),
        );
    }
    format!(
        "You are a machine-learning researcher designing neural networks for a classification \
         goal. Propose ONE new candidate per answer. Answer with exactly one JSON object and \
         nothing else, of the form {{\"rationale\": \"why this candidate, given the history\", \
         \"model\": ModelSpec, \"train\": TrainSpec}}.\n\nModelSpec layers have a \"type\" \
         among conv2d (out_channels, kernel_size, stride, padding), conv1d, batch_norm, \
         layer_norm, activation (function relu|gelu|silu|tanh), pool2d (pool max|avg, \
         kernel_size), global_avg_pool, flatten, dropout (probability), linear (out_features), \
         residual (layers, skip identity|projection), embedding (embedding_dim), \
         sequence_mean_pool. For this dataset use: {layers}. The last layer must output \
         num_classes features. TrainSpec: optimizer ({{\"type\": \"adam\"|\"adamw\"|\"sgd\"}}), \
         learning_rate, schedule ({{\"type\": \"constant\"|\"cosine\"|\"step\"}}), \
         weight_decay, batch_size, epochs (at most {max_epochs}), gradient_clip_norm, \
         label_smoothing, early_stopping_patience.\n\nThe answer's JSON schema:\n{schema}\n\nA \
         valid example:\n{example}",
        layers = layer_types(context.input),
        max_epochs = context.max_epochs,
        schema = json_of(&answer_schema()),
        example = example(context),
    )
}

fn history_line(index: usize, c: &PastCandidate) -> String {
    let result = match c.result {
        Some((mean, low, high, n)) => format!("{mean:.4} [{low:.4}, {high:.4}] n={n}"),
        None => "no result".to_owned(),
    };
    format!(
        "#{index} {} ({}): {} | {} → {result}; {}",
        c.name, c.strategy, c.model, c.train, c.outcome
    )
}

fn history(brief: &Brief, context: &Context<'_>, compact: bool) -> String {
    if brief.history.is_empty() {
        return "No candidate has been evaluated yet.".to_owned();
    }
    let keep = if compact {
        COMPACT_HISTORY
    } else {
        FULL_HISTORY
    };
    let skip = brief.history.len().saturating_sub(keep);
    let mut lines: Vec<String> = Vec::new();
    let best = brief
        .history
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.result.map(|(mean, ..)| (i, mean)))
        .max_by(|a, b| {
            let order = a.1.total_cmp(&b.1);
            if context.maximize {
                order
            } else {
                order.reverse()
            }
        });
    if let Some((index, _)) = best {
        lines.push(format!(
            "Best so far: {}",
            history_line(index + 1, &brief.history[index])
        ));
    }
    lines.push(format!(
        "{} (of {}; do not repeat one):",
        if skip > 0 {
            "Latest candidates"
        } else {
            "Candidates"
        },
        brief.history.len()
    ));
    for (i, c) in brief.history.iter().enumerate().skip(skip) {
        lines.push(history_line(i + 1, c));
    }
    lines.join("\n")
}

pub fn user(brief: &Brief, context: &Context<'_>, compact: bool) -> String {
    let family = match context.family {
        Some(family) if !family.is_empty() => {
            format!("The researcher asked for a {family} model.\n")
        }
        _ => String::new(),
    };
    let budget = if compact {
        format!("At most {} parameters.", context.budget.max_parameters)
    } else {
        format!(
            "Budget per model: at most {} parameters and {} FLOPs per sample; at most {} epochs.",
            context.budget.max_parameters, context.budget.max_flops_per_sample, context.max_epochs
        )
    };
    format!(
        "Goal: {goal}\nTarget: {target}\nDataset: {dataset} — {description}\n{family}{budget}\n\n{history}\n\nPropose the next candidate.",
        goal = brief.goal_text,
        target = brief.target,
        dataset = brief.dataset,
        description = brief.dataset_description,
        history = history(brief, context, compact),
    )
}

#[cfg(test)]
mod tests {
    use ra_spec::Budget;

    use super::*;

    #[test]
    fn the_compact_prompt_is_short_and_the_schema_names_the_specs() {
        let input = InputSpec::Tabular { features: 4 };
        let budget = Budget::default();
        let context = Context {
            input: &input,
            num_classes: 3,
            family: None,
            history: &[],
            budget: &budget,
            max_epochs: 20,
            maximize: true,
            train_samples: 0,
        };
        let model = ra_spec::examples::baseline(&input, 3);
        let train = TrainSpec::default();
        let past: Vec<PastCandidate> = (0..30)
            .map(|i| PastCandidate {
                name: format!("c{i}"),
                strategy: "evolution".into(),
                result: Some((0.5 + f64::from(i) / 100.0, 0.4, 0.6, 3)),
                outcome: "rejected".into(),
                ..PastCandidate::new(&model, &train)
            })
            .collect();
        let brief = Brief {
            goal_text: "iris at least 93% accuracy".into(),
            target: "val_accuracy > 0.93".into(),
            dataset: "iris".into(),
            dataset_description: "4 features, 3 classes".into(),
            history: past,
        };
        let compact = format!("{}{}", system(&context, true), user(&brief, &context, true));
        let full = format!(
            "{}{}",
            system(&context, false),
            user(&brief, &context, false)
        );
        assert!(
            compact.len() * 3 < full.len(),
            "{} vs {}",
            compact.len(),
            full.len()
        );
        assert!(compact.contains("Best so far: #30 c29"), "{compact}");
        assert!(!compact.contains("#20 c19"), "only the last few: {compact}");
        assert!(
            compact.contains("linear(") && !compact.contains("conv2d"),
            "{compact}"
        );
        let schema = json_of(&answer_schema());
        for name in ["ModelSpec", "TrainSpec", "rationale", "out_features"] {
            assert!(schema.contains(name), "{name} in {schema}");
        }
        // Narrowed to the session: the input and classes fixed, no image layers for a table.
        let narrowed = answer_schema_for(&context);
        let model = &narrowed["$defs"]["ModelSpec"]["properties"];
        assert_eq!(
            model["input"]["const"],
            serde_json::json!({"kind": "tabular", "features": 4})
        );
        assert_eq!(model["num_classes"]["const"], 3);
        assert_eq!(
            narrowed["$defs"]["TrainSpec"]["properties"]["epochs"]["maximum"],
            20
        );
        let layers = json_of(&narrowed["$defs"]["Layer"]);
        assert!(
            layers.contains("\"linear\"") && !layers.contains("\"conv2d\""),
            "{layers}"
        );
    }
}
