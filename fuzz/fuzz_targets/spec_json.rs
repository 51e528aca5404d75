//! ModelSpec and TrainSpec JSON (LLM answers, `quick-evaluator --model`, spec files), then the
//! shape inference and budget checks that every proposal goes through.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(model) = ra_spec::ModelSpec::from_json(text) {
        let _ = ra_spec::validate_model(&model, &ra_spec::Budget::default());
    }
    if let Ok(train) = ra_spec::TrainSpec::from_json(text) {
        let _ = train.validate();
    }
});
