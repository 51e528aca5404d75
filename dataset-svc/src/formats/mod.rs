//! Parsers of the original file formats. Each takes the bytes of one file (already gunzipped
//! where the original is compressed) and the file's path for its error messages.

pub mod cifar;
pub mod delimited;
pub mod idx;

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{DatasetError, io, malformed};

/// A file's bytes as stored and their sha256.
pub fn read_stored(path: &Path) -> Result<(Vec<u8>, String), DatasetError> {
    let stored = std::fs::read(path).map_err(io(path))?;
    let sha256 = hex::encode(Sha256::digest(&stored));
    Ok((stored, sha256))
}

/// The content of a stored original: gunzipped when its name ends in `.gz`.
pub fn decompressed(path: &Path, stored: Vec<u8>) -> Result<Vec<u8>, DatasetError> {
    if path.extension().is_some_and(|extension| extension == "gz") {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(stored.as_slice())
            .read_to_end(&mut bytes)
            .map_err(|error| malformed(path, "gzip", error.to_string()))?;
        return Ok(bytes);
    }
    Ok(stored)
}
