//! The training devices of this sandbox: what `ra-trainer devices` says it can run (asked once,
//! when the service starts), per backend, and the choice a train job's `device` makes —
//! `auto` resolved to the fastest one present, an unknown name told apart from a known device
//! this sandbox lacks (which is a precondition, not a bad request).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::events::BackendKind;

/// Every device name a train job may give, fastest first; "" means flex.
pub use ra_spec::device::NAMES as KNOWN;

/// One device and whether it can run here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeviceReport {
    pub name: String,
    pub available: bool,
    #[serde(default)]
    pub unavailable_reason: String,
    /// Folders of libraries the device loads at run time (Burn's CUDA backend: the driver and
    /// NVRTC), made visible to train jobs and put on their library path.
    #[serde(default)]
    pub library_folders: Vec<std::path::PathBuf>,
}

/// What the trainer said about its devices, or why it could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices {
    reports: Vec<DeviceReport>,
}

/// Why a job's device cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceRefusal {
    #[error("{}", ra_spec::device::check("device", .0, true).err().unwrap_or_default())]
    Unknown(String),
    #[error("device {device} is unavailable on the {backend} backend: {why}")]
    Unavailable {
        device: String,
        backend: &'static str,
        why: String,
    },
}

impl Devices {
    /// Asks `trainer devices` (at most 30 s); without a trainer, or when it does not answer,
    /// only flex is assumed (every trainer has it) and the others say why.
    pub async fn probe(trainer: Option<&Path>) -> Self {
        let Some(trainer) = trainer else {
            return Self::flex_only("no trainer to ask");
        };
        let asked = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(trainer)
                // The multi-call research-agent is the trainer by this name.
                .arg0("ra-trainer")
                .arg("devices")
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await;
        let output = match asked {
            Ok(Ok(output)) if output.status.success() => output,
            Ok(Ok(output)) => {
                let said = String::from_utf8_lossy(&output.stderr);
                return Self::flex_only(&format!(
                    "`{} devices` failed ({}): {}",
                    trainer.display(),
                    output.status,
                    said.trim()
                ));
            }
            Ok(Err(error)) => {
                return Self::flex_only(&format!("cannot run {}: {error}", trainer.display()));
            }
            Err(_) => {
                return Self::flex_only(&format!(
                    "`{} devices` did not answer within 30 s",
                    trainer.display()
                ));
            }
        };
        Self::parse(&String::from_utf8_lossy(&output.stdout))
    }

    /// Reads the trainer's JSON lines; devices it does not mention are unavailable.
    pub fn parse(lines: &str) -> Self {
        let said: Vec<DeviceReport> = lines
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let reports = KNOWN
            .iter()
            .map(|name| {
                said.iter()
                    .find(|r| r.name == *name)
                    .cloned()
                    .unwrap_or_else(|| assumed(name, "this ra-trainer does not know the device"))
            })
            .collect();
        Self { reports }
    }

    fn flex_only(why: &str) -> Self {
        Self {
            reports: KNOWN.iter().map(|name| assumed(name, why)).collect(),
        }
    }

    /// The folders every available device loads libraries from at run time, each once.
    pub fn library_folders(&self) -> Vec<std::path::PathBuf> {
        let mut folders: Vec<std::path::PathBuf> = Vec::new();
        for folder in self
            .reports
            .iter()
            .filter(|report| report.available)
            .flat_map(|report| &report.library_folders)
        {
            if folder.is_absolute() && !folders.contains(folder) {
                folders.push(folder.clone());
            }
        }
        folders
    }

    /// The library path a job on `device` needs (its run-time library folders), if any.
    pub fn library_path(&self, device: &str) -> Option<String> {
        let report = self.reports.iter().find(|report| report.name == device)?;
        let folders: Vec<String> = report
            .library_folders
            .iter()
            .filter(|folder| folder.is_absolute())
            .map(|folder| folder.display().to_string())
            .collect();
        (!folders.is_empty()).then(|| folders.join(":"))
    }

    /// Each device on `backend`, fastest first. The process and docker sandboxes run the trainer
    /// that was asked, with its library folders visible, so both have what the trainer said;
    /// the kubernetes backend runs the trainer of the deployed image, a static build that
    /// carries no LibTorch and cannot load the CUDA driver.
    pub fn on(&self, backend: BackendKind) -> Vec<DeviceReport> {
        self.reports
            .iter()
            .map(|report| {
                if report.available && report.name != "flex" && backend == BackendKind::Kubernetes
                {
                    let why = "the kubernetes backend's trainer image (deploy/docker) is a static build that carries no LibTorch and cannot load the CUDA driver".to_owned();
                    DeviceReport {
                        available: false,
                        unavailable_reason: why,
                        ..report.clone()
                    }
                } else {
                    report.clone()
                }
            })
            .collect()
    }

    /// The device a job asking for `requested` runs on with `backend`: `auto` → the fastest
    /// available, "" → flex.
    pub fn choose(&self, requested: &str, backend: BackendKind) -> Result<String, DeviceRefusal> {
        let on = self.on(backend);
        let pick = |report: &DeviceReport| -> Result<String, DeviceRefusal> {
            if report.available {
                Ok(report.name.clone())
            } else {
                Err(DeviceRefusal::Unavailable {
                    device: report.name.clone(),
                    backend: backend.label(),
                    why: report.unavailable_reason.clone(),
                })
            }
        };
        match requested {
            ra_spec::device::AUTO => on
                .iter()
                .find(|r| r.available)
                .map(|r| r.name.clone())
                .ok_or_else(|| DeviceRefusal::Unavailable {
                    device: "auto".into(),
                    backend: backend.label(),
                    why: "no device is available".into(),
                }),
            "" => self.choose(ra_spec::device::DEFAULT, backend),
            name => match on.iter().find(|r| r.name == name) {
                Some(report) => pick(report),
                None => Err(DeviceRefusal::Unknown(name.to_owned())),
            },
        }
    }
}

/// A device the trainer did not report on: flex (every trainer has it), or unavailable for `why`.
fn assumed(name: &str, why: &str) -> DeviceReport {
    let flex = name == "flex";
    DeviceReport {
        name: name.to_owned(),
        available: flex,
        unavailable_reason: if flex { String::new() } else { why.to_owned() },
        library_folders: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLEX_AND_LIBTORCH: &str = r#"{"name":"libtorch-cuda","available":false,"unavailable_reason":"libtorch sees no CUDA device"}
{"name":"cuda","available":false,"unavailable_reason":"not built"}
{"name":"libtorch","available":true,"unavailable_reason":""}
{"name":"flex","available":true,"unavailable_reason":""}
"#;

    #[test]
    fn auto_takes_the_fastest_device_the_backend_has() {
        let devices = Devices::parse(FLEX_AND_LIBTORCH);
        // The trainer has LibTorch: the process sandbox runs it, the images carry none.
        assert_eq!(
            devices.choose("auto", BackendKind::Process),
            Ok("libtorch".into())
        );
        let fast = Devices::parse(
            r#"{"name":"cuda","available":true}
{"name":"flex","available":true}"#,
        );
        assert_eq!(fast.choose("auto", BackendKind::Docker), Ok("cuda".into()));
        assert_eq!(
            devices.choose("auto", BackendKind::Docker),
            Ok("libtorch".into())
        );
        assert_eq!(
            devices.choose("auto", BackendKind::Kubernetes),
            Ok("flex".into())
        );
        assert_eq!(devices.choose("", BackendKind::Process), Ok("flex".into()));
    }

    #[test]
    fn a_missing_device_names_what_is_missing_and_an_unknown_one_is_told_apart() {
        let devices = Devices::parse(FLEX_AND_LIBTORCH);
        let refused = devices.choose("libtorch-cuda", BackendKind::Process);
        assert!(
            matches!(&refused, Err(DeviceRefusal::Unavailable { why, .. }) if why.contains("no CUDA device")),
            "{refused:?}"
        );
        let refused = devices.choose("libtorch", BackendKind::Kubernetes);
        assert!(
            matches!(&refused, Err(DeviceRefusal::Unavailable { why, .. }) if why.contains("carries no LibTorch")),
            "{refused:?}"
        );
        assert_eq!(
            devices.choose("tpu", BackendKind::Process),
            Err(DeviceRefusal::Unknown("tpu".into()))
        );
    }

    #[test]
    fn an_old_or_silent_trainer_has_flex_only() {
        let devices = Devices::parse("not json\n");
        assert_eq!(
            devices.choose("auto", BackendKind::Process),
            Ok("flex".into())
        );
        assert!(matches!(
            devices.choose("libtorch", BackendKind::Process),
            Err(DeviceRefusal::Unavailable { .. })
        ));
        let none = Devices::flex_only("no trainer to ask");
        assert_eq!(none.on(BackendKind::Process).len(), KNOWN.len());
    }

    #[test]
    fn cuda_library_folders_are_taken_from_available_devices_only() {
        let devices = Devices::parse(
            r#"{"name":"cuda","available":true,"library_folders":["/usr/lib/x86_64-linux-gnu","/venv/nvidia/cu13/lib","relative"]}
{"name":"libtorch-cuda","available":false,"unavailable_reason":"no","library_folders":["/elsewhere"]}
{"name":"flex","available":true}"#,
        );
        assert_eq!(
            devices.library_folders(),
            [
                std::path::PathBuf::from("/usr/lib/x86_64-linux-gnu"),
                "/venv/nvidia/cu13/lib".into()
            ]
        );
        assert_eq!(
            devices.library_path("cuda").as_deref(),
            Some("/usr/lib/x86_64-linux-gnu:/venv/nvidia/cu13/lib")
        );
        assert_eq!(devices.library_path("flex"), None);
        // The kubernetes backend's image cannot load the driver.
        assert!(matches!(
            devices.choose("cuda", BackendKind::Kubernetes),
            Err(DeviceRefusal::Unavailable { why, .. }) if why.contains("CUDA driver")
        ));
    }
}
