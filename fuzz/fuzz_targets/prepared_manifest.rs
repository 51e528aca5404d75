//! A prepared dataset's `manifest.json` as the trainer and the sandbox open it (a cache folder
//! is only as trustworthy as the disk it is on).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ra_prepared::{PreparedDataset, Verify};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    if std::fs::write(dir.path().join("manifest.json"), data).is_ok() {
        let _ = PreparedDataset::open(dir.path(), Verify::Sizes);
    }
});
