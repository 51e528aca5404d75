//! Parsers of the original file formats. Each takes the bytes of one file (already gunzipped
//! where the original is compressed) and the file's path for its error messages.

pub mod cifar;
pub mod delimited;
pub mod idx;

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{DatasetError, io, malformed};

/// An original file's bytes (gunzipped when its name ends in `.gz`) and the sha256 of the file
/// as stored.
pub fn read_original(path: &Path) -> Result<(Vec<u8>, String), DatasetError> {
    let stored = std::fs::read(path).map_err(io(path))?;
    let sha256 = hex::encode(Sha256::digest(&stored));
    if path.extension().is_some_and(|extension| extension == "gz") {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(stored.as_slice())
            .read_to_end(&mut bytes)
            .map_err(|error| malformed(path, "gzip", error.to_string()))?;
        return Ok((bytes, sha256));
    }
    Ok((stored, sha256))
}
