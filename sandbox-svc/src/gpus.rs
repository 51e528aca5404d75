//! The host's NVIDIA GPUs and their sharing: what `nvidia-smi` lists when the service starts
//! (index, name, memory), and GPU slots — at most `jobs_per_gpu` GPU jobs on each GPU, the rest
//! waiting in submission order; each job gets the least-busy GPU, told to it through
//! `CUDA_VISIBLE_DEVICES` (process) or a device request for that GPU (docker). Without
//! `nvidia-smi` or a GPU the list is empty and GPU jobs are not held back here (their device
//! says whether they can run at all).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One GPU of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    pub index: u32,
    pub name: String,
    pub memory_bytes: u64,
}

/// Asks `nvidia-smi` (at most 30 s); none when it is missing or says nothing readable.
pub async fn probe() -> Vec<Gpu> {
    let asked = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("nvidia-smi")
            .args([
                "--query-gpu=index,name,memory.total",
                "--format=csv,noheader,nounits",
            ])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match asked {
        Ok(Ok(output)) if output.status.success() => {
            parse(&String::from_utf8_lossy(&output.stdout))
        }
        _ => Vec::new(),
    }
}

/// `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits` lines.
pub fn parse(listing: &str) -> Vec<Gpu> {
    listing
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [index, name, memory_mib] = fields[..] else {
                return None;
            };
            Some(Gpu {
                index: index.parse().ok()?,
                name: name.to_owned(),
                memory_bytes: memory_mib.parse::<u64>().ok()? << 20,
            })
        })
        .collect()
}

/// GPU jobs per GPU, shared by every job of the service.
#[derive(Debug)]
pub struct GpuSlots {
    gpus: Vec<Gpu>,
    free: Arc<Semaphore>,
    /// GPU jobs running on each GPU, by position in `gpus`.
    busy: Arc<Mutex<Vec<u32>>>,
}

/// A GPU held by one job until it is dropped.
#[derive(Debug)]
pub struct GpuLease {
    pub index: u32,
    slot: usize,
    busy: Arc<Mutex<Vec<u32>>>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for GpuLease {
    fn drop(&mut self) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = busy.get_mut(self.slot) {
            *count = count.saturating_sub(1);
        }
    }
}

impl GpuSlots {
    pub fn new(gpus: Vec<Gpu>, jobs_per_gpu: u32) -> Self {
        let slots = gpus.len() * jobs_per_gpu.max(1) as usize;
        Self {
            busy: Arc::new(Mutex::new(vec![0; gpus.len()])),
            free: Arc::new(Semaphore::new(slots)),
            gpus,
        }
    }

    pub fn gpus(&self) -> &[Gpu] {
        &self.gpus
    }

    /// Waits for a free slot and takes the least-busy GPU; `None` when the host lists no GPU.
    pub async fn acquire(&self) -> Option<GpuLease> {
        if self.gpus.is_empty() {
            return None;
        }
        let permit = self.free.clone().acquire_owned().await.ok()?;
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (0..busy.len()).min_by_key(|&i| (busy[i], i))?;
        busy[slot] += 1;
        Some(GpuLease {
            index: self.gpus[slot].index,
            slot,
            busy: Arc::clone(&self.busy),
            _permit: permit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_lines_are_read_and_anything_else_is_ignored() {
        let gpus = parse("0, NVIDIA H200, 143771\n1, NVIDIA H200, 143771\nNo devices were found\n");
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[1].index, 1);
        assert_eq!(gpus[0].name, "NVIDIA H200");
        assert_eq!(gpus[0].memory_bytes, 143_771 << 20);
        assert!(parse("").is_empty());
        assert!(parse("x, y\n").is_empty());
    }

    #[tokio::test]
    async fn jobs_per_gpu_bound_the_gpu_jobs_and_spread_them_over_the_gpus() {
        let gpus = parse("0, A, 1024\n1, B, 1024\n");
        let slots = Arc::new(GpuSlots::new(gpus, 2));
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(slots.acquire().await.expect("a slot"));
        }
        let mut on: Vec<u32> = held.iter().map(|l| l.index).collect();
        on.sort_unstable();
        assert_eq!(on, [0, 0, 1, 1], "two jobs on each GPU");
        // A fifth waits until one ends, then takes the GPU that was freed.
        let waiting = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire().await.map(|l| l.index) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a fifth GPU job waits");
        let freed = held.remove(0).index;
        assert_eq!(waiting.await.expect("joined"), Some(freed));
        let none = GpuSlots::new(Vec::new(), 1);
        assert!(
            none.acquire().await.is_none(),
            "no GPU: nothing to hold back"
        );
    }
}
