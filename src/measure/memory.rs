//! Peak resident memory of this process (each level runs in its own worker process, so this
//! is that level's peak: weights, KV cache, activations and runtime together).

/// Peak resident set size of the current process in bytes.
///
/// On Linux this is `VmHWM` from `/proc/self/status`: the high-water mark of this process's
/// own address space. `getrusage`'s `ru_maxrss` is not used there because Linux carries it
/// over from the parent across fork and exec, so a worker would report its parent's peak.
/// Elsewhere (macOS) `ru_maxrss` is used (bytes there).
pub fn peak_rss_bytes() -> Option<u64> {
    if let Ok(s) = std::fs::read_to_string("/proc/self/status") {
        return s
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024);
    }
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return None;
    }
    let v = ru.ru_maxrss as u64;
    if cfg!(target_os = "macos") {
        Some(v)
    } else {
        Some(v * 1024)
    }
}

/// How [`peak_rss_bytes`] measures, for the results file.
pub const METHOD: &str = "peak resident memory (Linux VmHWM; getrusage elsewhere) of the level's own worker process after loading and the speed benchmark (a 512-token prefill and decoding: what a deployment uses); peak_rss_with_eval_bytes adds the scoring of full-vocabulary logit windows";

/// Memory available to a new process now (Linux `MemAvailable`), or None where unknown.
pub fn available_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Estimated peak memory of one level's worker: its weights (at the level's base type; mixtures
/// add a few percent), the KV cache, a window of full-vocabulary logits, and runtime overhead
/// (256 MiB + 20% of the weights, from the peaks measured on the small models).
pub fn estimate_level_bytes(weight_bytes: u64, kv_bytes: u64, ctx: usize, vocab: usize) -> u64 {
    let logits = (ctx * vocab * 4 * 3) as u64;
    weight_bytes + weight_bytes / 5 + kv_bytes + logits + (256 << 20)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_grows_with_touched_memory() {
        let before = super::peak_rss_bytes().unwrap();
        let mut v = std::hint::black_box(vec![0u8; 64 << 20]);
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        let v = std::hint::black_box(v);
        assert_eq!(v.iter().step_by(4096).filter(|&&x| x == 1).count(), 16384);
        let after = super::peak_rss_bytes().unwrap();
        // The peak never goes down and now covers at least the 64 MiB just touched.
        assert!(
            after >= before && after >= 64 << 20,
            "before {before} after {after}"
        );
    }
}
