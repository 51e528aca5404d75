//! Benchmark (not a test): the planner's own overhead per proposal for the built-in strategies
//! (sampling or mutating, `ra-spec` validation, the repeat check against the history), per
//! input kind, with a growing history of scored candidates. Target: ≤ 1 ms per proposal
//! (Optuna's TPE takes 2-4 ms per trial).
//!
//! `cargo run --release -p ra-bench --bin planner-bench`

use std::time::Instant;

use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL};
use planner_svc::strategy::{Context, Evolution, HistoryEntry, RandomSearch, Strategy};
use ra_spec::{Budget, InputSpec};

#[derive(Debug, Parser)]
#[command(about = "planner-svc: overhead per proposal of the built-in strategies")]
struct Args {
    /// Proposals per strategy and input kind (the history grows by each).
    #[arg(long, default_value_t = 200)]
    proposals: usize,
    /// Repeats of the whole run; the table shows medians.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
}

/// Microseconds per proposal over `proposals` proposals, one at a time, each scored and added
/// to the history before the next.
fn per_proposal(strategy: &mut dyn Strategy, input: &InputSpec, proposals: usize) -> f64 {
    let budget = Budget::default();
    let mut history: Vec<HistoryEntry> = Vec::with_capacity(proposals);
    let mut spent = 0.0;
    for index in 0..proposals {
        let context = Context {
            input,
            num_classes: 10,
            family: None,
            history: &history,
            budget: &budget,
            max_epochs: 10,
            maximize: true,
            train_samples: 0,
        };
        let began = Instant::now();
        let proposal = match strategy.propose(&context, 1) {
            Ok(mut proposals) => proposals.remove(0),
            Err(error) => panic!("{} on {input:?}: {error}", strategy.name()),
        };
        spent += began.elapsed().as_secs_f64();
        // A made-up score that favours wider models a little, so that evolution has a signal.
        let parameters =
            ra_spec::validate_model(&proposal.model, &budget).map_or(0, |report| report.parameters);
        let score =
            0.5 + 0.4 * (1.0 - 1.0 / (1.0 + parameters as f64 / 1e5)) + 0.01 * (index % 7) as f64;
        history.push(HistoryEntry {
            model: proposal.model,
            train: proposal.train,
            score: Some(score),
            failure: None,
            improving: false,
        });
    }
    spent / proposals as f64 * 1e6
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let args = Args::parse();
    let inputs = [
        (
            "image 3×32×32",
            InputSpec::Image {
                channels: 3,
                height: 32,
                width: 32,
            },
        ),
        ("tabular 64", InputSpec::Tabular { features: 64 }),
        (
            "text 5000×64",
            InputSpec::Text {
                vocab_size: 5000,
                sequence_length: 64,
            },
        ),
    ];
    let mut table = Table::new();
    table.load_preset(UTF8_FULL);
    table.set_header([
        "strategy",
        "input",
        "µs per proposal (median)",
        "range",
        "of the 1 ms target",
    ]);
    for name in ["random", "evolution"] {
        for (label, input) in &inputs {
            let mut samples: Vec<f64> = (0..args.repeats)
                .map(|repeat| {
                    let seed = repeat as u64 + 1;
                    let mut strategy: Box<dyn Strategy> = match name {
                        "random" => Box::new(RandomSearch::new(seed)),
                        _ => Box::new(Evolution::new(seed)),
                    };
                    per_proposal(strategy.as_mut(), input, args.proposals)
                })
                .collect();
            let low = samples.iter().copied().fold(f64::INFINITY, f64::min);
            let high = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let value = median(&mut samples);
            table.add_row([
                name.to_owned(),
                (*label).to_owned(),
                format!("{value:.1}"),
                format!("{low:.1} – {high:.1}"),
                format!("{:.3}", value / 1000.0),
            ]);
        }
    }
    println!(
        "{} proposals per run (history growing to {}), {} repeats",
        args.proposals, args.proposals, args.repeats
    );
    println!("{table}");
}
