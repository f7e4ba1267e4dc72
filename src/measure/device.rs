//! The GPU side of measurement: what the device is (name, driver, compute capability, memory)
//! for the provenance, the up-front check that a CUDA device can be opened at all, and the
//! memory a level holds on the device, read from the driver. Host RSS says nothing about
//! weights held on a GPU, so a GPU level's memory is sampled here: CUDA's `cuMemGetInfo`
//! (device-wide bytes in use) every 2 ms from a thread of its own, so the peak is a real one;
//! Metal's `currentAllocatedSize` (this process's allocations). Without the `cuda` / `metal`
//! features every function here answers "nothing to measure".

use crate::results::{DeviceKind, DeviceMemory};
use anyhow::Result;
use candle_core::Device;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// CUDA's answer from a stand-in driver library (NVIDIA's `stubs/libcuda.so`, or the one in
/// `scripts/cuda/`): a CUDA build running where no NVIDIA driver is installed.
pub const CUDA_ERROR_STUB_LIBRARY: u32 = 34;
/// CUDA's answer when the driver is there but sees no GPU.
pub const CUDA_ERROR_NO_DEVICE: u32 = 100;

/// The words for a CUDA driver error that means "no usable GPU here".
pub fn cuda_unavailable(code: u32, detail: &str) -> String {
    match code {
        CUDA_ERROR_STUB_LIBRARY => "--device cuda: no CUDA driver: the libcuda.so.1 this qeval loaded is a stub (CUDA_ERROR_STUB_LIBRARY), not NVIDIA's driver. Install the NVIDIA driver (it provides libcuda.so.1) and take the stub's folder off LD_LIBRARY_PATH, or run with --device cpu".to_string(),
        CUDA_ERROR_NO_DEVICE => "--device cuda: the NVIDIA driver sees no CUDA device (CUDA_ERROR_NO_DEVICE); check `nvidia-smi` and CUDA_VISIBLE_DEVICES, or run with --device cpu".to_string(),
        _ => format!("--device cuda: cannot initialise CUDA: {detail}; run with --device cpu"),
    }
}

/// Refuse a CUDA run, before anything is loaded, when no CUDA device can be opened.
#[cfg(feature = "cuda")]
pub fn check_cuda() -> Result<()> {
    use cudarc::driver::CudaContext;
    match CudaContext::device_count() {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err(crate::error::usage(cuda_unavailable(
            CUDA_ERROR_NO_DEVICE,
            "",
        ))),
        Err(e) => Err(crate::error::usage(cuda_unavailable(
            e.0 as u32,
            &format!("{e:?}"),
        ))),
    }
}

/// What the provenance says of the device: its name, and for a GPU its driver, compute
/// capability and memory. Asks the driver (CUDA) without opening candle's device.
pub fn describe(kind: DeviceKind) -> DeviceFacts {
    match kind {
        DeviceKind::Cpu => DeviceFacts {
            name: cpu_name(),
            ..DeviceFacts::default()
        },
        DeviceKind::Cuda => cuda_facts().unwrap_or_else(|e| DeviceFacts {
            name: format!("cuda (unavailable: {e})"),
            ..DeviceFacts::default()
        }),
        DeviceKind::Metal => DeviceFacts {
            name: "metal".into(),
            ..DeviceFacts::default()
        },
    }
}

/// The facts [`describe`] gathers.
#[derive(Debug, Clone, Default)]
pub struct DeviceFacts {
    pub name: String,
    pub driver: Option<String>,
    pub compute_capability: Option<String>,
    pub memory_bytes: Option<u64>,
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "cpu".into())
}

#[cfg(feature = "cuda")]
fn cuda_facts() -> Result<DeviceFacts> {
    use cudarc::driver::CudaContext;
    let ctx = CudaContext::new(0).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut v = 0i32;
    // SAFETY: cuDriverGetVersion writes one int; the driver was initialised by CudaContext::new.
    let rc = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
    let driver = (rc == cudarc::driver::sys::CUresult::CUDA_SUCCESS)
        .then(|| format!("CUDA {}.{}", v / 1000, (v % 1000) / 10));
    let (major, minor) = ctx
        .compute_capability()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(DeviceFacts {
        name: ctx.name().map_err(|e| anyhow::anyhow!("{e:?}"))?,
        driver,
        compute_capability: Some(format!("{major}.{minor}")),
        memory_bytes: ctx.total_mem().ok().map(|b| b as u64),
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda_facts() -> Result<DeviceFacts> {
    anyhow::bail!("this qeval was built without the cuda feature")
}

/// Bytes in use on the device now and its total: CUDA device-wide, Metal this process's.
/// None on the CPU.
fn used_and_total(dev: &Device) -> Option<(u64, u64)> {
    match dev {
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => {
            let ctx = d.cuda_stream().context().clone();
            let (free, total) = ctx.mem_get_info().ok()?;
            Some(((total - free) as u64, total as u64))
        }
        #[cfg(feature = "metal")]
        Device::Metal(m) => {
            let md = m.device();
            Some((
                md.current_allocated_size() as u64,
                md.recommended_max_working_set_size() as u64,
            ))
        }
        _ => None,
    }
}

fn source(dev: &Device) -> &'static str {
    match dev {
        Device::Metal(_) => "Metal currentAllocatedSize (this process's allocations), sampled every 2 ms; total is recommendedMaxWorkingSetSize",
        _ => "cuMemGetInfo (device-wide bytes in use, over the baseline read after the level's process opened the device), sampled every 2 ms",
    }
}

/// Samples a GPU's memory in use from a thread of its own, keeping the highest reading.
pub struct Sampler {
    dev: Device,
    total: u64,
    baseline: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    /// Start sampling `dev`; None on the CPU (nothing to sample) or when the driver does not
    /// answer. Call it right after opening the device, before loading anything: the first
    /// reading is the baseline.
    pub fn start(dev: &Device) -> Option<Sampler> {
        let (baseline, total) = used_and_total(dev)?;
        let peak = Arc::new(AtomicU64::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, p, s) = (dev.clone(), peak.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("qeval-device-memory".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Some((used, _)) = used_and_total(&d) {
                        p.fetch_max(used, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
            .ok()?;
        Some(Sampler {
            dev: dev.clone(),
            total,
            baseline,
            peak,
            stop,
            thread: Some(thread),
        })
    }

    /// Bytes the level holds now, over the baseline (read on the caller's thread).
    pub fn now(&self) -> u64 {
        used_and_total(&self.dev)
            .map(|(u, _)| u.saturating_sub(self.baseline))
            .unwrap_or(0)
    }

    /// The highest reading so far, over the baseline (with one fresh reading).
    pub fn peak(&self) -> u64 {
        if let Some((u, _)) = used_and_total(&self.dev) {
            self.peak.fetch_max(u, Ordering::Relaxed);
        }
        self.peak
            .load(Ordering::Relaxed)
            .saturating_sub(self.baseline)
    }

    /// Stop sampling; the level's device memory with the readings taken at its stages.
    pub fn finish(mut self, after_load: u64, peak_bench: u64) -> DeviceMemory {
        let peak_with_eval = self.peak();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        DeviceMemory {
            source: source(&self.dev).into(),
            total_bytes: self.total,
            baseline_bytes: self.baseline,
            after_load_bytes: after_load,
            peak_bytes: peak_bench,
            peak_with_eval_bytes: peak_with_eval,
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_has_no_device_memory_to_sample() {
        assert!(Sampler::start(&Device::Cpu).is_none());
        let f = describe(DeviceKind::Cpu);
        assert!(!f.name.is_empty() && f.driver.is_none() && f.memory_bytes.is_none());
    }

    #[test]
    fn driver_answers_that_mean_no_gpu_say_what_to_do() {
        let e = cuda_unavailable(CUDA_ERROR_STUB_LIBRARY, "");
        assert!(e.contains("stub") && e.contains("--device cpu"), "{e}");
        let e = cuda_unavailable(CUDA_ERROR_NO_DEVICE, "");
        assert!(e.contains("no CUDA device"), "{e}");
    }
}
