//! Backend choice at run time: `flex` (pure Rust, the default), or LibTorch on the CPU (`tch`)
//! or on a CUDA GPU (`tch-cuda`) when built with the `tch` cargo feature.

use burn::tensor::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Pure-Rust CPU backend.
    Flex,
    /// LibTorch on the CPU (build with `--features tch`).
    Tch,
    /// LibTorch on the first CUDA GPU (build with `--features tch` against a CUDA libtorch).
    TchCuda,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendUnavailable {
    #[error(
        "this ra-trainer was built without the tch feature; rebuild with `--features tch` (see the README's libtorch section)"
    )]
    NotBuilt,
    #[error(
        "libtorch sees no CUDA device: use --backend tch for the CPU, or a CUDA build of torch on a machine with a GPU"
    )]
    NoCuda,
}

impl Backend {
    pub fn device(self) -> Result<Device, BackendUnavailable> {
        match self {
            Self::Flex => Ok(Device::flex()),
            Self::Tch => libtorch::cpu(),
            Self::TchCuda => libtorch::cuda(),
        }
    }

    /// The device's name outside the trainer (requests, config, trial records).
    pub fn device_name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Tch => "libtorch",
            Self::TchCuda => "libtorch-cuda",
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Tch => "tch",
            Self::TchCuda => "tch-cuda",
        }
    }
}

/// One line of `ra-trainer devices`: a device and whether it can run here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceReport {
    pub name: String,
    pub available: bool,
    /// What is missing; empty when available.
    pub unavailable_reason: String,
}

impl DeviceReport {
    /// A backend of this trainer, tried here (LibTorch asked for its CUDA devices).
    fn tried(backend: Backend) -> Self {
        let outcome = backend.device().map(|_| ());
        Self {
            name: backend.device_name().to_owned(),
            available: outcome.is_ok(),
            unavailable_reason: outcome.err().map(|e| e.to_string()).unwrap_or_default(),
        }
    }
}

/// Every device, fastest first: LibTorch's CUDA, Burn's CubeCL CUDA (known by name, not built
/// into any trainer yet), LibTorch on the CPU, flex.
pub fn device_reports() -> Vec<DeviceReport> {
    vec![
        DeviceReport::tried(Backend::TchCuda),
        DeviceReport {
            name: "cuda".into(),
            available: false,
            unavailable_reason: "Burn's CubeCL CUDA backend is not built into this ra-trainer"
                .into(),
        },
        DeviceReport::tried(Backend::Tch),
        DeviceReport::tried(Backend::Flex),
    ]
}

/// Sizes the CPU thread pools (rayon for flex, LibTorch's intra-op pool for tch); call once,
/// before any tensor work. 0 keeps each library's default (all cores).
pub fn set_threads(threads: usize) {
    if threads == 0 {
        return;
    }
    // Fails only if the pool was already built, in which case the first size stands.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    libtorch::set_threads(threads);
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn-tch is deprecated upstream, but it is our LibTorch path for now
mod libtorch {
    use super::{BackendUnavailable, Device};

    pub fn cpu() -> Result<Device, BackendUnavailable> {
        Ok(Device::libtorch())
    }

    pub fn cuda() -> Result<Device, BackendUnavailable> {
        if tch::Cuda::is_available() {
            Ok(Device::libtorch_cuda(0))
        } else {
            Err(BackendUnavailable::NoCuda)
        }
    }

    pub fn set_threads(threads: usize) {
        tch::set_num_threads(i32::try_from(threads).unwrap_or(i32::MAX));
    }
}

#[cfg(not(feature = "tch"))]
mod libtorch {
    use super::{BackendUnavailable, Device};

    pub fn cpu() -> Result<Device, BackendUnavailable> {
        Err(BackendUnavailable::NotBuilt)
    }

    pub fn cuda() -> Result<Device, BackendUnavailable> {
        Err(BackendUnavailable::NotBuilt)
    }

    pub fn set_threads(_threads: usize) {}
}
