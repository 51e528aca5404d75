//! The prepared-dataset format: what dataset-svc writes and ra-trainer reads.
//!
//! A directory named by its content id holds `manifest.json` ([`Manifest`]) and one safetensors
//! file per split (`train`, `val`, optional `test`) with tensors `x` (u8 or f32 samples, or i64
//! token ids; shape `[n, …sample]`) and `y` (i64 labels, shape `[n]`). [`write_prepared`] builds
//! it in a temporary directory and renames it into place, so a reader never sees half a
//! dataset; [`PreparedDataset::open`] checks the manifest against the files (format version,
//! shapes, sizes, and on request every sha256) and maps the splits read-only.
//! Python reads the same files with the `safetensors` package.

mod error;
mod manifest;
mod reader;
mod writer;

pub use error::PreparedError;
pub use manifest::{
    FORMAT_VERSION, Manifest, Normalization, SplitInfo, XDtype, content_id, sample_shape,
};
pub use reader::{PreparedDataset, Split, Verify};
pub use writer::{ManifestDraft, SplitData, XData, write_prepared};
