//! Hugging Face datasets named `hf:<owner>/<name>[:<config>]`, read from their parquet files:
//! a folder holding them (a request's `source_dir`, `<data_dir>/hf/<owner>/<name>/`, or the
//! local Hugging Face cache), or downloaded from the Hub's parquet listing when online. Parquet
//! is read with the `parquet` crate's row API; a column mapping picks the text, label or image
//! column (defaults: the usual names). Class names come from the `ClassLabel` feature in the
//! file's `huggingface` metadata, else from the label values themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, bad_option, io, malformed};
use crate::raw::{RawDataset, RawPart, Samples};

mod locate;
mod read;

pub use locate::parquet_files;
pub use read::load;
pub(crate) use read::read_rows;

/// A Hub dataset reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubDataset {
    /// `owner/name`.
    pub repo: String,
    pub config: Option<String>,
}

/// Which columns hold what; empty picks the usual names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMapping {
    pub text: String,
    pub label: String,
    pub image: String,
}

const TEXT_COLUMNS: [&str; 5] = ["text", "sentence", "content", "review", "document"];
const LABEL_COLUMNS: [&str; 3] = ["label", "labels", "class"];
const IMAGE_COLUMNS: [&str; 2] = ["image", "img"];
