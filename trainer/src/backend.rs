//! Backend choice at run time: `flex` (pure Rust, the default) or `tch` (LibTorch, with the
//! `tch` cargo feature).

use burn::tensor::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Pure-Rust CPU backend.
    Flex,
    /// LibTorch on the CPU (build with `--features tch`).
    Tch,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "this ra-trainer was built without the tch feature; rebuild with `--features tch` (see the README's libtorch section)"
)]
pub struct BackendUnavailable;

impl Backend {
    pub fn device(self) -> Result<Device, BackendUnavailable> {
        match self {
            Self::Flex => Ok(Device::flex()),
            Self::Tch => tch_device(),
        }
    }
}

#[cfg(feature = "tch")]
fn tch_device() -> Result<Device, BackendUnavailable> {
    Ok(Device::libtorch())
}

#[cfg(not(feature = "tch"))]
fn tch_device() -> Result<Device, BackendUnavailable> {
    Err(BackendUnavailable)
}

/// Sizes the CPU thread pool used by the flex backend; call once, before any tensor work.
pub fn set_threads(threads: usize) {
    if threads > 0 {
        // Fails only if the pool was already built, in which case the first size stands.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}
