//! What the dataset-svc test files share: small builders of original files.

#![allow(dead_code)] // each test file uses its own part of this module

use std::path::Path;

use dataset_svc::DatasetError;

pub fn write(dir: &Path, name: &str, bytes: &[u8]) {
    if let Some(parent) = dir.join(name).parent() {
        std::fs::create_dir_all(parent).expect("folder of the original");
    }
    std::fs::write(dir.join(name), bytes).expect("write original");
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// An IDX file: magic, big-endian dims, then `data_len` bytes of 1.
pub fn idx(magic: [u8; 4], dims: &[u32], data_len: usize) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(std::iter::repeat_n(1u8, data_len));
    bytes
}

/// A gzipped tarball of `(path, bytes)` members.
pub fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, *bytes)
            .expect("tar member");
    }
    gzip(&builder.into_inner().expect("tar"))
}

pub fn message(result: Result<impl std::fmt::Debug, DatasetError>) -> String {
    result.expect_err("must be refused").to_string()
}
