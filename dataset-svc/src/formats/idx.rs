//! IDX (MNIST and its relatives): a big-endian magic `0x0000 <type> <rank>`, `rank` big-endian
//! u32 dimensions, then the data. Only unsigned bytes (type 0x08) occur in the catalog.

use std::path::Path;

use crate::error::{DatasetError, malformed};

/// Dimensions and data of an IDX file of unsigned bytes.
pub fn parse_idx_u8(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<u8>), DatasetError> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(malformed(
            path,
            "IDX",
            "bad magic: the first two bytes must be zero",
        ));
    }
    if bytes[2] != 0x08 {
        return Err(malformed(
            path,
            "IDX",
            format!(
                "element type 0x{:02x}; only unsigned bytes (0x08) are supported",
                bytes[2]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    if rank == 0 || rank > 4 {
        return Err(malformed(
            path,
            "IDX",
            format!("rank {rank}, expected 1 to 4"),
        ));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(malformed(path, "IDX", "truncated header"));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let at = 4 + 4 * i;
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| malformed(path, "IDX", format!("dimensions {dims:?} overflow")))?;
    let data = &bytes[header..];
    if data.len() != expected {
        return Err(malformed(
            path,
            "IDX",
            format!(
                "dimensions {dims:?} need {expected} data bytes, the file has {}",
                data.len()
            ),
        ));
    }
    Ok((dims, data.to_vec()))
}
