//! Peak resident memory of this process (each level runs in its own worker process, so this
//! is that level's peak: weights, KV cache, activations and runtime together).

/// Peak resident set size of the current process in bytes, from `getrusage`.
pub fn peak_rss_bytes() -> Option<u64> {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return None;
    }
    let v = ru.ru_maxrss as u64;
    // Linux reports KiB, macOS bytes.
    if cfg!(target_os = "macos") {
        Some(v)
    } else {
        Some(v * 1024)
    }
}

/// How [`peak_rss_bytes`] measures, for the results file.
pub const METHOD: &str =
    "getrusage ru_maxrss of the level's own worker process (load, evaluation and benchmark)";

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
