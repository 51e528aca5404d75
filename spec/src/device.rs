//! Training devices by name, as requests, configurations, flags and trial records spell them:
//! one list for every program, fastest first, and the one rule for a requested device.

/// Every device ra-trainer knows, fastest first: LibTorch on a CUDA GPU, Burn's CubeCL CUDA
/// backend, LibTorch on the CPU, Burn's pure-Rust CPU backend.
pub const NAMES: [&str; 4] = ["libtorch-cuda", "cuda", "libtorch", "flex"];

/// The request that means "the fastest device present".
pub const AUTO: &str = "auto";

/// What a request may name: [`AUTO`], then [`NAMES`] (a flag's possible values).
pub const CHOICES: [&str; 5] = [AUTO, NAMES[0], NAMES[1], NAMES[2], NAMES[3]];

/// The device a request that names none trains on.
pub const DEFAULT: &str = "flex";

/// Whether `device` trains on a GPU (it needs the host's NVIDIA devices).
pub fn on_gpu(device: &str) -> bool {
    matches!(device, "libtorch-cuda" | "cuda")
}

/// A requested device: `auto`, one of [`NAMES`], or "" when `empty_allowed` (a default then
/// applies). The refusal names the field, the value and what would be accepted.
pub fn check(field: &str, value: &str, empty_allowed: bool) -> Result<(), String> {
    if value == AUTO || NAMES.contains(&value) || (empty_allowed && value.is_empty()) {
        return Ok(());
    }
    let shown: String = value.chars().take(64).collect();
    Err(format!(
        "{field} = {shown:?} is not a training device: use auto (the fastest one present), {}{}",
        NAMES.join(", "),
        if empty_allowed {
            ", or leave it empty for the default"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_and_every_name_pass_and_anything_else_is_refused_by_field() {
        for name in NAMES.iter().chain([&AUTO]) {
            assert_eq!(check("device", name, false), Ok(()));
        }
        assert_eq!(check("device", "", true), Ok(()));
        let refused = check("run.device", "", false).expect_err("empty refused");
        assert!(refused.starts_with("run.device = \"\""), "{refused}");
        for bad in [
            "tpu",
            "CUDA",
            " flex",
            "flex\n",
            "设备",
            &"x".repeat(10_000),
        ] {
            let refused = check("device", bad, true).expect_err("refused");
            assert!(refused.contains("libtorch-cuda"), "{refused}");
            assert!(refused.len() < 400, "{refused}");
        }
        assert!(NAMES.contains(&DEFAULT));
    }
}
