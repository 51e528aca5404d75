//! Backend choice at run time: `flex` (pure Rust, the default); LibTorch on the CPU (`tch`) or
//! on a CUDA GPU (`tch-cuda`) when built with the `tch` cargo feature; Burn's own CUDA backend
//! (CubeCL, `cuda`) when built with the `cuda` feature. The CUDA backend loads the driver
//! (`libcuda.so`) and NVRTC (`libnvrtc.so`) at run time, so it builds on a machine without a
//! CUDA toolkit; its device report names the folders they were loaded from, which the sandbox
//! makes visible to the job.

use burn::tensor::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Pure-Rust CPU backend.
    Flex,
    /// LibTorch on the CPU (build with `--features tch`).
    Tch,
    /// LibTorch on the first CUDA GPU (build with `--features tch` against a CUDA libtorch).
    TchCuda,
    /// Burn's CubeCL CUDA backend on the first GPU (build with `--features cuda`).
    Cuda,
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
    #[error(
        "this ra-trainer was built without the cuda feature; rebuild with `--features cuda` (Burn's CubeCL CUDA backend)"
    )]
    CudaNotBuilt,
    #[error("Burn's CUDA backend cannot start: {0}")]
    CudaMissing(String),
}

impl Backend {
    pub fn device(self) -> Result<Device, BackendUnavailable> {
        match self {
            Self::Flex => Ok(Device::flex()),
            Self::Tch => libtorch::cpu(),
            Self::TchCuda => libtorch::cuda(),
            Self::Cuda => cubecl_cuda::device(),
        }
    }

    /// The device's name outside the trainer (requests, config, trial records).
    pub fn device_name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Tch => "libtorch",
            Self::TchCuda => "libtorch-cuda",
            Self::Cuda => "cuda",
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Tch => "tch",
            Self::TchCuda => "tch-cuda",
            Self::Cuda => "cuda",
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
    /// Folders of the libraries the device loads at run time (the CUDA driver, NVRTC), which a
    /// sandbox must make visible and put on the job's library path; empty for the others.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub library_folders: Vec<String>,
}

impl DeviceReport {
    /// A backend of this trainer, tried here (LibTorch asked for its CUDA devices).
    fn tried(backend: Backend) -> Self {
        let outcome = backend.device().map(|_| ());
        let library_folders = if outcome.is_ok() && backend == Backend::Cuda {
            cubecl_cuda::library_folders()
        } else {
            Vec::new()
        };
        Self {
            name: backend.device_name().to_owned(),
            available: outcome.is_ok(),
            unavailable_reason: outcome.err().map(|e| e.to_string()).unwrap_or_default(),
            library_folders,
        }
    }
}

/// Every device, fastest first: LibTorch's CUDA, Burn's CubeCL CUDA, LibTorch on the CPU, flex.
pub fn device_reports() -> Vec<DeviceReport> {
    vec![
        DeviceReport::tried(Backend::TchCuda),
        DeviceReport::tried(Backend::Cuda),
        DeviceReport::tried(Backend::Tch),
        DeviceReport::tried(Backend::Flex),
    ]
}

/// The folders of the loaded shared objects whose file names start with one of `prefixes`, as
/// this process's memory map lists them (canonical paths, each folder once).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn loaded_library_folders(maps: &str, prefixes: &[&str]) -> Vec<String> {
    let mut folders: Vec<String> = Vec::new();
    for path in maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
    {
        let path = std::path::Path::new(path);
        let named = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| prefixes.iter().any(|prefix| name.starts_with(prefix)));
        if !named || !path.is_absolute() {
            continue;
        }
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(folder) = real.parent().and_then(|folder| folder.to_str())
            && !folders.iter().any(|known| known == folder)
        {
            folders.push(folder.to_owned());
        }
    }
    folders
}

/// Makes glibc's allocator keep what a training step frees for the next step instead of handing
/// it back to the kernel: by default every buffer above the (dynamic, at most 32 MiB) mmap
/// threshold is its own mapping, unmapped when freed, so each step's activations and gradients
/// are mapped, zero-filled page by page and unmapped again, with a TLB shootdown on every core
/// the pool runs on. A fifth of a flex CNN step went to the kernel that way (perf); with the heap
/// kept, the reference CNN trains ~40% faster on 2 cores and the peak RSS is the same within 4%.
/// Call once, first thing; elsewhere than glibc, nothing.
pub fn keep_freed_memory() {
    #[cfg(target_env = "gnu")]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes allocator parameters; called before this process allocates
    // from more than one thread.
    unsafe {
        // Allocations of up to 1 GiB come from the heap, and the heap is trimmed only when 2 GiB
        // lie free at its top (never, in practice).
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
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

#[cfg(feature = "cuda")]
mod cubecl_cuda {
    use super::{BackendUnavailable, Device};

    /// The first GPU, once the driver and NVRTC load and the driver counts a device; NVRTC is
    /// asked to compile a trivial kernel so that a broken install is found here, not mid-run.
    pub fn device() -> Result<Device, BackendUnavailable> {
        let missing = |what: String| Err(BackendUnavailable::CudaMissing(what));
        if !loadable(Library::Driver) {
            return missing(
                "the NVIDIA driver's libcuda.so does not load (no driver on this machine, or not on the library path)"
                    .into(),
            );
        }
        if let Err(error) = cudarc::driver::result::init() {
            return missing(format!("the CUDA driver does not initialise: {error:?}"));
        }
        match cudarc::driver::result::device::get_count() {
            Ok(count) if count > 0 => {}
            Ok(_) => return missing("the CUDA driver sees no GPU".into()),
            Err(error) => return missing(format!("the CUDA driver counts no GPU: {error:?}")),
        }
        if !loadable(Library::Nvrtc) {
            return missing(format!(
                "NVRTC (libnvrtc.so.{}) does not load: put the folder of a CUDA {} NVRTC (a CUDA toolkit, or the `nvidia-cuda-nvrtc` wheel that torch brings) on LD_LIBRARY_PATH",
                env!("CUDA_MAJOR_VERSION"),
                env!("CUDA_MAJOR_VERSION"),
            ));
        }
        if let Err(error) = cudarc::nvrtc::compile_ptx("extern \"C\" __global__ void probe() {}") {
            return missing(format!("NVRTC cannot compile a kernel: {error:?}"));
        }
        Ok(Device::cuda(0))
    }

    enum Library {
        Driver,
        Nvrtc,
    }

    /// Whether the library loads, tried the way the CUDA backend will load it.
    #[allow(unsafe_code)]
    fn loadable(library: Library) -> bool {
        // SAFETY: loading the vendor's libcuda / libnvrtc runs their initialisers, which the
        // CUDA backend does anyway on first use; the handle is dropped again at once.
        unsafe {
            match library {
                Library::Driver => cudarc::driver::sys::is_culib_present(),
                Library::Nvrtc => cudarc::nvrtc::sys::is_culib_present(),
            }
        }
    }

    /// Where the driver and NVRTC were loaded from (after [`device`] loaded them).
    pub fn library_folders() -> Vec<String> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        super::loaded_library_folders(&maps, &["libcuda.so", "libnvrtc", "libnvJitLink"])
    }
}

#[cfg(not(feature = "cuda"))]
mod cubecl_cuda {
    use super::{BackendUnavailable, Device};

    pub fn device() -> Result<Device, BackendUnavailable> {
        Err(BackendUnavailable::CudaNotBuilt)
    }

    pub fn library_folders() -> Vec<String> {
        Vec::new()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_folders_come_from_the_memory_map_each_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = dir.path().join("libnvrtc.so.13");
        std::fs::write(&lib, b"").expect("write");
        let real = std::fs::canonicalize(dir.path()).expect("canonical");
        let maps = format!(
            "7f00-7f01 r--p 00000000 fd:01 1 {lib}\n7f01-7f02 r-xp 00001000 fd:01 1 {lib}\n7f02-7f03 rw-p 00000000 00:00 0 [heap]\n7f03-7f04 r--p 00000000 fd:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6\n",
            lib = lib.display()
        );
        assert_eq!(
            loaded_library_folders(&maps, &["libcuda.so", "libnvrtc"]),
            vec![real.display().to_string()]
        );
        assert!(loaded_library_folders("", &["libnvrtc"]).is_empty());
    }

    #[test]
    fn every_device_is_reported_and_flex_is_always_there() {
        let reports = device_reports();
        let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["libtorch-cuda", "cuda", "libtorch", "flex"]);
        assert!(reports[3].available);
        for report in &reports {
            assert_eq!(report.available, report.unavailable_reason.is_empty());
        }
    }
}
