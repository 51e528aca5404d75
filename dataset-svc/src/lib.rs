//! dataset-svc: datasets read from their original files, preprocessed with statistics of the
//! train split only, split deterministically and written in the prepared-dataset format.
//!
//! - [`catalog`]: every dataset by name, its original files and their pinned sha256, loading
//!   with checksum verification.
//! - [`formats`]: parsers of the original file formats (IDX, CIFAR binary, delimited text),
//!   each refusing truncated or malformed input with the file and the rule.
//! - [`sources`]: one loader per catalog dataset, from a folder holding the original file names.
//! - [`split`]: deterministic stratified splits and subsets from a seed.
//! - [`tabular`]: column typing, imputation, one-hot encoding and standardisation.
//! - [`text`]: a word-level vocabulary built on the train split, and padding / truncation.
//! - [`prepare`]: the whole preparation, from a [`RawDataset`] to a `PreparedDataset`.

pub mod catalog;
pub mod error;
pub mod formats;
pub mod prepare;
pub mod raw;
pub mod sources;
pub mod split;
pub mod tabular;
pub mod text;

pub use error::DatasetError;
pub use prepare::{PrepareOptions, prepare};
pub use raw::{RawDataset, RawPart, Samples};
