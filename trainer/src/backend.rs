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

    /// Every backend this trainer knows, fastest first (the order `auto` picks in).
    pub const ALL: [Self; 3] = [Self::TchCuda, Self::Tch, Self::Flex];

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceReport {
    pub name: String,
    pub available: bool,
    /// What is missing; empty when available.
    #[serde(default)]
    pub unavailable_reason: String,
}

/// Devices known by name but not built into any trainer yet, with why.
const NOT_BUILT: [(&str, &str); 1] = [(
    "cuda",
    "Burn's CubeCL CUDA backend is not built into this ra-trainer",
)];

/// Every device, fastest first, each tried here (LibTorch asked for its CUDA devices).
pub fn device_reports() -> Vec<DeviceReport> {
    let mut reports: Vec<DeviceReport> = Backend::ALL
        .iter()
        .map(|backend| {
            let outcome = backend.device().map(|_| ());
            DeviceReport {
                name: backend.device_name().to_owned(),
                available: outcome.is_ok(),
                unavailable_reason: outcome.err().map(|e| e.to_string()).unwrap_or_default(),
            }
        })
        .collect();
    // CubeCL's CUDA sits between LibTorch's CUDA and the CPU backends in speed.
    for (name, why) in NOT_BUILT {
        reports.insert(
            1,
            DeviceReport {
                name: name.to_owned(),
                available: false,
                unavailable_reason: why.to_owned(),
            },
        );
    }
    reports
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
