//! Shape inference on known models, a table of refused specs with their messages, the JSON and
//! proto forms, and property tests over random specs.

use proptest::prelude::*;
use ra_spec::strategies::arb_spec;
use ra_spec::{
    Activation, Budget, InputSpec, Layer, ModelSpec, PoolKind, SkipConnection, validate_model,
};

fn conv(out_channels: u32, kernel_size: u32, padding: u32) -> Layer {
    Layer::Conv2d {
        out_channels,
        kernel_size,
        stride: 1,
        padding,
        bias: true,
        in_channels: 0,
    }
}
fn relu() -> Layer {
    Layer::Activation {
        function: Activation::Relu,
    }
}
fn max_pool(kernel_size: u32) -> Layer {
    Layer::Pool2d {
        pool: PoolKind::Max,
        kernel_size,
        stride: None,
        padding: 0,
    }
}
fn linear(out_features: u32) -> Layer {
    Layer::Linear {
        out_features,
        bias: true,
        in_features: 0,
    }
}
fn image(channels: u32, side: u32) -> InputSpec {
    InputSpec::Image {
        channels,
        height: side,
        width: side,
    }
}

/// The issue's reference CNN for 28×28 grey images.
fn reference_cnn() -> ModelSpec {
    ModelSpec {
        name: "reference-cnn".into(),
        input: image(1, 28),
        num_classes: 10,
        layers: vec![
            conv(16, 3, 1),
            relu(),
            max_pool(2),
            conv(32, 3, 1),
            relu(),
            max_pool(2),
            Layer::Flatten,
            linear(128),
            relu(),
            linear(10),
        ],
    }
}

#[test]
fn reference_cnn_shapes_parameters_and_flops() {
    let report = validate_model(&reference_cnn(), &Budget::default()).expect("valid");
    let shapes: Vec<String> = report
        .layers
        .iter()
        .map(|l| l.output_shape.to_string())
        .collect();
    assert_eq!(
        shapes,
        [
            "16×28×28",
            "16×28×28",
            "16×14×14",
            "32×14×14",
            "32×14×14",
            "32×7×7",
            "1568",
            "128",
            "128",
            "10"
        ]
    );
    assert_eq!(report.parameters, 160 + 4_640 + 200_832 + 1_290);
    let conv1_flops = 2 * 16 * 9 * 28 * 28;
    assert_eq!(report.layers[0].flops, conv1_flops);
    assert_eq!(report.layers[7].flops, 2 * 1568 * 128);
    assert_eq!(report.layers[0].activation_bytes, 16 * 28 * 28 * 4);
}

#[test]
fn residual_blocks_with_projection_and_text_models() {
    let resnet = ModelSpec {
        name: "tiny-resnet".into(),
        input: image(3, 32),
        num_classes: 10,
        layers: vec![
            conv(16, 3, 1),
            Layer::Residual {
                layers: vec![
                    Layer::Conv2d {
                        out_channels: 32,
                        kernel_size: 3,
                        stride: 2,
                        padding: 1,
                        bias: false,
                        in_channels: 16,
                    },
                    Layer::BatchNorm {
                        epsilon: None,
                        momentum: None,
                    },
                    relu(),
                    conv(32, 3, 1),
                ],
                skip: SkipConnection::Projection,
                post_activation: Some(Activation::Relu),
            },
            Layer::GlobalAvgPool,
            linear(10),
        ],
    };
    let report = validate_model(&resnet, &Budget::default()).expect("valid resnet");
    let block = report
        .layers
        .iter()
        .find(|l| l.kind == "residual")
        .expect("block reported");
    assert_eq!(block.output_shape.to_string(), "32×16×16");
    assert_eq!(
        block.parameters,
        16 * 32 * 9 + 4 * 32 + (32 * 32 * 9 + 32) + 16 * 32
    );
    assert!(
        report.layers.iter().any(|l| l.index == "1.3"),
        "inner layers are reported with their path"
    );

    let text = ModelSpec {
        name: "bag-of-embeddings".into(),
        input: InputSpec::Text {
            vocab_size: 5000,
            sequence_length: 64,
        },
        num_classes: 2,
        layers: vec![
            Layer::Embedding { embedding_dim: 32 },
            Layer::Conv1d {
                out_channels: 64,
                kernel_size: 3,
                stride: 1,
                padding: 1,
                bias: true,
                in_channels: 0,
            },
            relu(),
            Layer::SequenceMeanPool,
            Layer::LayerNorm { epsilon: None },
            Layer::Dropout { probability: 0.1 },
            linear(2),
        ],
    };
    let report = validate_model(&text, &Budget::default()).expect("valid text model");
    assert_eq!(
        report.parameters,
        5000 * 32 + (32 * 64 * 3 + 64) + 2 * 64 + (64 * 2 + 2)
    );
}

#[test]
fn bad_specs_are_refused_with_the_layer_and_rule() {
    let mlp = |layers: Vec<Layer>| ModelSpec {
        name: String::new(),
        input: InputSpec::Tabular { features: 8 },
        num_classes: 3,
        layers,
    };
    let cnn = |layers: Vec<Layer>| ModelSpec {
        name: String::new(),
        input: image(1, 28),
        num_classes: 10,
        layers,
    };
    let text = |layers: Vec<Layer>| ModelSpec {
        name: String::new(),
        input: InputSpec::Text {
            vocab_size: 100,
            sequence_length: 16,
        },
        num_classes: 2,
        layers,
    };
    let cases: Vec<(&str, ModelSpec, Option<&str>, &str, &str)> = vec![
        (
            "wrong declared in_features",
            cnn(vec![
                conv(32, 3, 1),
                max_pool(2),
                Layer::Flatten,
                Layer::Linear {
                    out_features: 10,
                    bias: true,
                    in_features: 1568,
                },
            ]),
            Some("3"),
            "input_features",
            "expects 1568 input features, gets 6272",
        ),
        (
            "linear on an image",
            cnn(vec![conv(8, 3, 1), linear(10)]),
            Some("1"),
            "needs_vector",
            "add flatten or global_avg_pool",
        ),
        (
            "conv on a vector",
            mlp(vec![conv(8, 3, 1), linear(3)]),
            Some("0"),
            "needs_image",
            "expects a C×H×W image, gets a vector of 8",
        ),
        (
            "kernel larger than the image",
            cnn(vec![conv(8, 31, 1), Layer::Flatten, linear(10)]),
            Some("0"),
            "kernel_too_large",
            "kernel 31 is larger than the height 28",
        ),
        (
            "pool shrinks to nothing",
            cnn(vec![
                max_pool(2),
                max_pool(2),
                max_pool(2),
                max_pool(2),
                max_pool(2),
                Layer::Flatten,
                linear(10),
            ]),
            Some("4"),
            "kernel_too_large",
            "kernel 2 is larger than the height 1",
        ),
        (
            "zero out_channels",
            cnn(vec![conv(0, 3, 1), Layer::Flatten, linear(10)]),
            Some("0"),
            "positive",
            "out_channels must be at least 1",
        ),
        (
            "wrong declared in_channels",
            cnn(vec![
                Layer::Conv2d {
                    out_channels: 8,
                    kernel_size: 3,
                    stride: 1,
                    padding: 1,
                    bias: true,
                    in_channels: 3,
                },
                Layer::Flatten,
                linear(10),
            ]),
            Some("0"),
            "input_channels",
            "expects 3 input channels, gets 1",
        ),
        (
            "dropout of one",
            mlp(vec![Layer::Dropout { probability: 1.0 }, linear(3)]),
            Some("0"),
            "probability",
            "must be in [0, 1)",
        ),
        (
            "NaN dropout",
            mlp(vec![
                Layer::Dropout {
                    probability: f64::NAN,
                },
                linear(3),
            ]),
            Some("0"),
            "probability",
            "must be in [0, 1)",
        ),
        (
            "wrong number of classes at the end",
            mlp(vec![linear(16), relu(), linear(4)]),
            None,
            "output",
            "must end with 3 logits",
        ),
        ("no layers", mlp(vec![]), None, "no_layers", "has no layers"),
        (
            "one class",
            ModelSpec {
                num_classes: 1,
                ..mlp(vec![linear(1)])
            },
            None,
            "num_classes",
            "must be in 2..=",
        ),
        (
            "empty input",
            ModelSpec {
                input: InputSpec::Tabular { features: 0 },
                ..mlp(vec![linear(3)])
            },
            None,
            "input",
            "input.features = 0",
        ),
        (
            "text without embedding",
            text(vec![linear(2)]),
            Some("0"),
            "needs_embedding",
            "must go through an embedding layer first",
        ),
        (
            "embedding after embedding",
            text(vec![
                Layer::Embedding { embedding_dim: 8 },
                Layer::Embedding { embedding_dim: 8 },
                Layer::SequenceMeanPool,
                linear(2),
            ]),
            Some("1"),
            "needs_tokens",
            "must come first on text input",
        ),
        (
            "global pool on a sequence",
            text(vec![
                Layer::Embedding { embedding_dim: 8 },
                Layer::GlobalAvgPool,
                linear(2),
            ]),
            Some("1"),
            "needs_image",
            "use sequence_mean_pool",
        ),
        (
            "layer norm on an image",
            cnn(vec![
                Layer::LayerNorm { epsilon: None },
                Layer::Flatten,
                linear(10),
            ]),
            Some("0"),
            "needs_vector",
            "use batch_norm on images",
        ),
        (
            "identity skip with a shape change",
            cnn(vec![
                Layer::Residual {
                    layers: vec![conv(8, 3, 1)],
                    skip: SkipConnection::Identity,
                    post_activation: None,
                },
                Layer::Flatten,
                linear(10),
            ]),
            Some("0"),
            "identity_skip",
            "use \"skip\": \"projection\"",
        ),
        (
            "empty residual block",
            cnn(vec![
                Layer::Residual {
                    layers: vec![],
                    skip: SkipConnection::Identity,
                    post_activation: None,
                },
                Layer::Flatten,
                linear(10),
            ]),
            Some("0"),
            "empty_block",
            "needs inner layers",
        ),
        (
            "bad layer inside a block",
            cnn(vec![
                Layer::Residual {
                    layers: vec![conv(1, 3, 1), linear(3)],
                    skip: SkipConnection::Identity,
                    post_activation: None,
                },
                Layer::Flatten,
                linear(10),
            ]),
            Some("0.1"),
            "needs_vector",
            "expects a vector",
        ),
        (
            "pool padding over half the kernel",
            cnn(vec![
                Layer::Pool2d {
                    pool: PoolKind::Average,
                    kernel_size: 2,
                    stride: None,
                    padding: 2,
                },
                Layer::Flatten,
                linear(10),
            ]),
            Some("0"),
            "padding",
            "at most half the kernel",
        ),
        (
            "batch norm epsilon of zero",
            mlp(vec![
                Layer::BatchNorm {
                    epsilon: Some(-1.0),
                    momentum: None,
                },
                linear(3),
            ]),
            Some("0"),
            "epsilon",
            "must be in (0, 1)",
        ),
    ];
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for (name, spec, layer, rule, fragment) in cases {
        match validate_model(&spec, &Budget::default()) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(error) => {
                let text = error.to_string();
                if error.layer.as_deref() != layer || error.rule != rule || !text.contains(fragment)
                {
                    failures.push(format!(
                        "{name}: got layer {:?} rule {} message {text:?}",
                        error.layer, error.rule
                    ));
                }
                if let Some(layer) = layer {
                    assert!(
                        text.starts_with(&format!("layer {layer} ")),
                        "{name}: {text}"
                    );
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn budgets_cap_parameters_flops_and_memory() {
    let spec = reference_cnn();
    let report = validate_model(&spec, &Budget::default()).expect("valid");
    for (budget, rule) in [
        (
            Budget {
                max_parameters: report.parameters - 1,
                ..Budget::default()
            },
            "parameter_budget",
        ),
        (
            Budget {
                max_flops_per_sample: report.flops_per_sample - 1,
                ..Budget::default()
            },
            "flops_budget",
        ),
        (
            Budget {
                max_activation_bytes_per_sample: report.activation_bytes_per_sample - 1,
                ..Budget::default()
            },
            "memory_budget",
        ),
    ] {
        let error = validate_model(&spec, &budget).expect_err(rule);
        assert_eq!(error.rule, rule);
        assert!(error.to_string().contains("the budget allows"), "{error}");
    }
    assert!(
        validate_model(
            &spec,
            &Budget {
                max_parameters: report.parameters,
                ..Budget::default()
            }
        )
        .is_ok()
    );
}

#[test]
fn json_form_parses_with_defaults_and_refuses_unknown_fields() {
    let spec = ModelSpec::from_json(
        r#"{"input": {"kind": "image", "channels": 1, "height": 28, "width": 28}, "num_classes": 10,
            "layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 3},
                       {"type": "activation", "function": "gelu"},
                       {"type": "pool2d", "pool": "average", "kernel_size": 2},
                       {"type": "flatten"}, {"type": "linear", "out_features": 10}]}"#,
    )
    .expect("parses");
    assert_eq!(
        spec.layers[0],
        Layer::Conv2d {
            out_channels: 4,
            kernel_size: 3,
            stride: 1,
            padding: 0,
            bias: true,
            in_channels: 0
        }
    );
    assert!(validate_model(&spec, &Budget::default()).is_ok());
    let error = ModelSpec::from_json(r#"{"input": {"kind": "tabular", "features": 3}, "num_classes": 2, "layers": [{"type": "linear", "out_features": 2, "units": 5}]}"#)
        .expect_err("unknown field");
    assert!(error.to_string().contains("units"), "{error}");
    let again = ModelSpec::from_json(&spec.to_json_pretty()).expect("round trip");
    assert_eq!(again, spec);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_specs_never_panic_and_survive_the_proto_round_trip(spec in arb_spec()) {
        let outcome = validate_model(&spec, &Budget::default());
        if let Err(error) = &outcome {
            prop_assert!(!error.message.is_empty());
        }
        let wire = ra_proto::common::v1::ModelSpec::from(&spec);
        let back = ModelSpec::try_from(&wire).expect("our own proto converts back");
        // Stride 0 means "default" on the wire; every other spec comes back exactly.
        if !spec_has_zero_stride(&spec) {
            prop_assert_eq!(&back, &spec);
            prop_assert_eq!(validate_model(&back, &Budget::default()), outcome);
        }
    }
}

fn spec_has_zero_stride(spec: &ModelSpec) -> bool {
    fn any_zero(layers: &[Layer]) -> bool {
        layers.iter().any(|layer| match layer {
            Layer::Conv2d { stride, .. } | Layer::Conv1d { stride, .. } => *stride == 0,
            Layer::Pool2d { stride, .. } => *stride == Some(0),
            Layer::Residual { layers, .. } => any_zero(layers),
            _ => false,
        })
    }
    any_zero(&spec.layers)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Spec JSON with any Unicode in its names and odd values parses or is refused, and what
    /// parses is validated, without a panic.
    #[test]
    fn any_spec_json_is_parsed_or_refused(
        name in "\\PC{0,24}",
        width in proptest::num::i64::ANY,
        rate in proptest::num::f64::ANY,
        kind in proptest::sample::select(vec!["tabular", "image", "text", "ünknown", ""]),
    ) {
        let model = format!(
            r#"{{"name": {name:?}, "input": {{"kind": "{kind}", "features": {width}}}, "num_classes": 3,
               "layers": [{{"type": "linear", "out_features": {width}}}, {{"type": "linear", "out_features": 3}}]}}"#
        );
        if let Ok(spec) = ra_spec::ModelSpec::from_json(&model) {
            let _ = validate_model(&spec, &Budget::default());
        }
        let train = format!(r#"{{"learning_rate": {rate}, "batch_size": {width}, "epochs": 1, "optimizer": {name:?}}}"#);
        if let Ok(train) = ra_spec::TrainSpec::from_json(&train) {
            let _ = train.validate();
        }
    }
}
