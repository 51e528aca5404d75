//! Property: for every spec that ra-spec's valid-by-construction generator produces, the Burn module
//! built from it has exactly the parameter count that ra-spec's validation reports, and its
//! forward pass gives one logit per class.

use burn::module::Module;
use burn::tensor::Device;
use burn::tensor::{Int, Tensor};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use ra_spec::InputSpec;
use ra_spec::strategies::arb_valid_spec;
use ra_spec::{Budget, validate_model};
use ra_trainer::Network;
use ra_trainer::model::Activations;

/// Modules above this size take long to initialise and add nothing to the property.
const LARGEST_CHECKED: u64 = 2_000_000;
const CASES: usize = 500;

#[test]
fn every_generated_valid_spec_builds_a_module_with_the_reported_parameter_count() {
    // Deterministic: the same specs on every run, so a failure reproduces.
    let mut runner = TestRunner::deterministic();
    let strategy = arb_valid_spec();
    let mut checked = 0usize;
    for _ in 0..CASES {
        let spec = strategy.new_tree(&mut runner).expect("a spec").current();
        let report = match validate_model(&spec, &Budget::default()) {
            Ok(report) => report,
            Err(error) => panic!(
                "the generator promised a valid spec: {error}\n{}",
                spec.to_json_pretty()
            ),
        };
        if report.parameters > LARGEST_CHECKED {
            continue;
        }
        let network = Network::build(&spec, &Device::flex()).expect("a valid spec builds");
        assert_eq!(
            network.num_params() as u64,
            report.parameters,
            "{}",
            spec.to_json_pretty()
        );
        let logits = network
            .forward(zeros(&spec.input, 2))
            .expect("a valid spec runs forward");
        assert_eq!(
            logits.dims(),
            [2, spec.num_classes as usize],
            "{}",
            spec.to_json_pretty()
        );
        checked += 1;
    }
    assert!(
        checked >= CASES * 9 / 10,
        "only {checked} of {CASES} specs were small enough to check; the generator drifted"
    );
}

/// A batch of `batch` all-zero inputs (token id 0 for text).
fn zeros(input: &InputSpec, batch: usize) -> Activations {
    let device = Device::flex();
    match *input {
        InputSpec::Image {
            channels,
            height,
            width,
        } => Activations::Image(Tensor::zeros(
            [batch, channels as usize, height as usize, width as usize],
            &device,
        )),
        InputSpec::Tabular { features } => {
            Activations::Vector(Tensor::zeros([batch, features as usize], &device))
        }
        InputSpec::Text {
            sequence_length, ..
        } => Activations::Tokens(Tensor::<2, Int>::zeros(
            [batch, sequence_length as usize],
            &device,
        )),
    }
}
