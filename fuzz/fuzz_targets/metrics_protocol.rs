//! A job's output as the sandbox reads it: bytes in arbitrary chunks, split into lines (with the
//! line cap), each interpreted as a metrics-protocol record or a log line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox_svc::events::OutputStream;
use sandbox_svc::protocol::{LineSplitter, interpret};

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size, so that lines cross chunk boundaries.
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut splitter = LineSplitter::default();
    let mut lines = Vec::new();
    for piece in rest.chunks(chunk) {
        lines.extend(splitter.push(piece));
    }
    lines.extend(splitter.finish());
    for line in lines {
        let _ = interpret(OutputStream::Stdout, line);
    }
});
