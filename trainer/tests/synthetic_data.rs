//! The offline synthetic datasets are learnable by the model families the planner proposes,
//! within a few epochs on a CPU: the README's demo goal (a CNN on `shapes`) depends on it.

mod common;

use common::{adam, run};
use dataset_svc::config::DataSettings;
use dataset_svc::service::{Datasets, Origin};
use dataset_svc::{DatasetConfig, PrepareOptions};
use ra_prepared::PreparedDataset;
use ra_spec::{Layer, ModelSpec, TrainSpec};

/// The generated dataset `name` at its default options (samples drawn from seed 1),
/// prepared through dataset-svc under `cache`.
fn prepared(name: &str, cache: &std::path::Path) -> PreparedDataset {
    let datasets = Datasets::new(DataSettings {
        cache_dir: cache.to_path_buf(),
        ..DatasetConfig::default().data
    });
    let options = PrepareOptions {
        seed: 1,
        ..PrepareOptions::default()
    };
    datasets
        .prepare(name, &Origin::default(), &options, &mut |_| {})
        .expect("prepare")
}

#[test]
fn a_small_cnn_learns_the_default_shapes_in_a_few_epochs() {
    let cache = tempfile::tempdir().expect("tempdir");
    let dataset = prepared("shapes", cache.path());
    let model = ModelSpec {
        name: "shapes-cnn".into(),
        input: dataset.manifest().input.clone(),
        num_classes: 5,
        layers: vec![
            Layer::conv2d(16, 3, 1, 1),
            Layer::relu(),
            Layer::max_pool(2),
            Layer::conv2d(32, 3, 1, 1),
            Layer::relu(),
            Layer::max_pool(2),
            Layer::Flatten,
            Layer::linear(64),
            Layer::relu(),
            Layer::linear(5),
        ],
    };
    let outcome = run(model, adam(8), 1, &dataset);
    let accuracy = outcome.final_record.val_accuracy;
    eprintln!("shapes: val accuracy {accuracy:.4}");
    assert!(accuracy >= 0.85, "shapes val accuracy {accuracy:.4} < 0.85");
}

#[test]
fn mlps_and_a_bag_of_embeddings_learn_the_other_generators() {
    let cache = tempfile::tempdir().expect("tempdir");
    for (generator, bar) in [("synthetic", 0.9), ("synthetic-tabular", 0.8)] {
        let dataset = prepared(generator, cache.path());
        let classes = dataset.manifest().class_names.len() as u32;
        let model = ModelSpec {
            name: "mlp".into(),
            input: dataset.manifest().input.clone(),
            num_classes: classes,
            layers: vec![Layer::linear(64), Layer::relu(), Layer::linear(classes)],
        };
        let accuracy = run(model, adam(15), 1, &dataset).final_record.val_accuracy;
        eprintln!("{generator}: val accuracy {accuracy:.4}");
        assert!(
            accuracy >= bar,
            "{generator} val accuracy {accuracy:.4} < {bar}"
        );
    }
    let dataset = prepared("synthetic-text", cache.path());
    let model = ModelSpec {
        name: "bag-of-embeddings".into(),
        input: dataset.manifest().input.clone(),
        num_classes: 4,
        layers: vec![
            Layer::Embedding { embedding_dim: 32 },
            Layer::SequenceMeanPool,
            Layer::linear(4),
        ],
    };
    let train_spec = TrainSpec {
        learning_rate: 5e-3,
        ..adam(10)
    };
    let accuracy = run(model, train_spec, 1, &dataset)
        .final_record
        .val_accuracy;
    eprintln!("synthetic-text: val accuracy {accuracy:.4}");
    assert!(
        accuracy >= 0.8,
        "synthetic-text val accuracy {accuracy:.4} < 0.8"
    );
}
