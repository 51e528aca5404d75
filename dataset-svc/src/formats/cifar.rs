//! The CIFAR binary version: records of `<label bytes><1024 R><1024 G><1024 B>`, one label byte
//! for CIFAR-10 (two, coarse then fine, for CIFAR-100).

use std::path::Path;

use crate::error::{DatasetError, malformed};

pub const PIXELS_PER_IMAGE: usize = 3 * 32 * 32;

/// Pixels (`[n, 3, 32, 32]`) and the label at `label_index` of every record.
pub fn parse_cifar_records(
    bytes: &[u8],
    label_bytes: usize,
    label_index: usize,
    classes: usize,
    path: &Path,
) -> Result<(Vec<u8>, Vec<i64>), DatasetError> {
    let record = label_bytes + PIXELS_PER_IMAGE;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(malformed(
            path,
            "CIFAR binary",
            format!(
                "{} bytes is not a whole number of {record}-byte records",
                bytes.len()
            ),
        ));
    }
    let count = bytes.len() / record;
    let mut pixels = Vec::with_capacity(count * PIXELS_PER_IMAGE);
    let mut labels = Vec::with_capacity(count);
    for (index, chunk) in bytes.chunks_exact(record).enumerate() {
        let label = chunk[label_index] as usize;
        if label >= classes {
            return Err(malformed(
                path,
                "CIFAR binary",
                format!("record {index} has label {label}, outside 0..{classes}"),
            ));
        }
        labels.push(label as i64);
        pixels.extend_from_slice(&chunk[label_bytes..]);
    }
    Ok((pixels, labels))
}
