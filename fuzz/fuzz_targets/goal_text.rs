//! A research goal in words, as StartResearch and ParseGoal receive it.
#![no_main]

use libfuzzer_sys::fuzz_target;

const CATALOG: &[&str] = &[
    "synthetic", "shapes", "synthetic-tabular", "synthetic-text", "digits", "iris", "mnist",
    "fashion-mnist", "kmnist", "cifar10", "cifar100", "titanic", "adult", "sst2", "imdb",
];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = planner_svc::parse_goal(text, CATALOG);
    }
});
