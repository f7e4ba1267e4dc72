//! Thread settings: one `--threads` value applied to every pool before the first candle op.
//!
//! candle reads `RAYON_NUM_THREADS` (rayon's global pool, used by most CPU kernels) and
//! `CANDLE_NUM_THREADS` (its own spin-waiting pool for quantized matmuls) once, the first
//! time they are needed. qeval therefore sets both in the environment at the start of
//! `main` and passes them to every worker process it starts.

/// Apply `threads` to every pool qeval and candle use. Must run before any candle op.
pub fn apply(threads: usize) {
    let n = threads.max(1).to_string();
    // Safe here: called at the start of main, before any other thread exists.
    std::env::set_var("RAYON_NUM_THREADS", &n);
    std::env::set_var("CANDLE_NUM_THREADS", &n);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build_global();
}

/// The default thread count: the machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
