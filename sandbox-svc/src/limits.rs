//! Resource limits of a job: what a request asks for (0 = the configured default), the
//! configured defaults, and hard caps no request may exceed.

use serde::{Deserialize, Serialize};

use crate::validate::Violation;

/// Limits of one job; in a request, 0 asks for the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub timeout_seconds: u64,
    /// Thousandths of a core (2000 = two cores).
    pub cpu_millis: u32,
    pub memory_bytes: u64,
    pub max_processes: u32,
    /// stdout + stderr; beyond it the job ends.
    pub max_output_bytes: u64,
    pub scratch_bytes: u64,
    pub max_open_files: u32,
}

/// The configured defaults and caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitPolicy {
    pub defaults: Limits,
    pub caps: Limits,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        Self {
            defaults: Limits {
                timeout_seconds: 3_600,
                cpu_millis: 1_000 * cores,
                memory_bytes: 4 << 30,
                max_processes: 64,
                max_output_bytes: 16 << 20,
                scratch_bytes: 1 << 30,
                max_open_files: 256,
            },
            caps: Limits {
                timeout_seconds: 24 * 3_600,
                cpu_millis: 1_000 * cores,
                memory_bytes: 64 << 30,
                max_processes: 1_024,
                max_output_bytes: 256 << 20,
                scratch_bytes: 64 << 30,
                max_open_files: 4_096,
            },
        }
    }
}

impl LimitPolicy {
    /// A configuration whose defaults exceed its caps, or that has a zero, is refused.
    pub fn check(&self) -> Result<(), String> {
        for (name, default, cap) in self.fields(&self.defaults) {
            if default == 0 || cap == 0 {
                return Err(format!("limits.{name}: defaults and caps must be above 0"));
            }
            if default > cap {
                return Err(format!(
                    "limits.{name}: the default {default} exceeds the cap {cap}"
                ));
            }
        }
        Ok(())
    }

    /// `(name, value of limits, cap)` for every limit.
    fn fields(&self, limits: &Limits) -> [(&'static str, u64, u64); 7] {
        let caps = &self.caps;
        [
            (
                "timeout_seconds",
                limits.timeout_seconds,
                caps.timeout_seconds,
            ),
            (
                "cpu_millis",
                limits.cpu_millis.into(),
                caps.cpu_millis.into(),
            ),
            ("memory_bytes", limits.memory_bytes, caps.memory_bytes),
            (
                "max_processes",
                limits.max_processes.into(),
                caps.max_processes.into(),
            ),
            (
                "max_output_bytes",
                limits.max_output_bytes,
                caps.max_output_bytes,
            ),
            ("scratch_bytes", limits.scratch_bytes, caps.scratch_bytes),
            (
                "max_open_files",
                limits.max_open_files.into(),
                caps.max_open_files.into(),
            ),
        ]
    }

    /// The limits a job runs with: each requested value (0 = the default), refused above its
    /// cap with a `limit_cap` violation naming the limit, the value and the cap.
    pub fn effective(&self, requested: &Limits) -> (Limits, Vec<Violation>) {
        let pick64 = |value: u64, default: u64| if value == 0 { default } else { value };
        let pick32 = |value: u32, default: u32| if value == 0 { default } else { value };
        let d = &self.defaults;
        let effective = Limits {
            timeout_seconds: pick64(requested.timeout_seconds, d.timeout_seconds),
            cpu_millis: pick32(requested.cpu_millis, d.cpu_millis),
            memory_bytes: pick64(requested.memory_bytes, d.memory_bytes),
            max_processes: pick32(requested.max_processes, d.max_processes),
            max_output_bytes: pick64(requested.max_output_bytes, d.max_output_bytes),
            scratch_bytes: pick64(requested.scratch_bytes, d.scratch_bytes),
            max_open_files: pick32(requested.max_open_files, d.max_open_files),
        };
        let violations = self
            .fields(&effective)
            .into_iter()
            .filter(|(_, value, cap)| value > cap)
            .map(|(name, value, cap)| {
                Violation::new(
                    "limit_cap",
                    format!("limits.{name} = {value} is above the cap of {cap}"),
                )
                .with_values(value.to_string(), cap.to_string())
            })
            .collect();
        (effective, violations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_takes_the_default_and_a_value_above_its_cap_is_named() {
        let policy = LimitPolicy::default();
        assert_eq!(policy.check(), Ok(()));
        let (effective, violations) = policy.effective(&Limits::default());
        assert_eq!(effective, policy.defaults);
        assert!(violations.is_empty());
        let requested = Limits {
            memory_bytes: 1 << 20,
            max_processes: 100_000,
            ..Limits::default()
        };
        let (effective, violations) = policy.effective(&requested);
        assert_eq!(effective.memory_bytes, 1 << 20);
        assert_eq!(effective.timeout_seconds, 3_600);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].rule, "limit_cap");
        assert!(
            violations[0]
                .message
                .contains("limits.max_processes = 100000")
        );
        assert_eq!(violations[0].limit.as_deref(), Some("1024"));
        let broken = LimitPolicy {
            defaults: Limits {
                timeout_seconds: 10 * 24 * 3_600,
                ..policy.defaults
            },
            ..policy
        };
        assert!(
            broken
                .check()
                .expect_err("default above cap")
                .contains("timeout_seconds")
        );
    }
}
