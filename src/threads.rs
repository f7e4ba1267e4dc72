//! Thread settings: one `--threads` value applied to every pool before the first candle op.
//!
//! candle reads `RAYON_NUM_THREADS` (rayon's global pool, used by most CPU kernels) and
//! `CANDLE_NUM_THREADS` (its own spin-waiting pool for quantized matmuls) once, the first
//! time they are needed. qeval therefore sets both in the environment at the start of
//! `main` and passes them to every worker process it starts, with a short spin limit for
//! candle's pool (`CANDLE_BARRIER_POOL_SPIN_LIMIT`).
//! qeval's own kernels run their parallel ops on `kernels::team`, whose size follows rayon's
//! pool (its threads minus the caller).

/// Spins of candle's pool threads before they park (candle's default: 25,000).
pub const CANDLE_SPIN_LIMIT: &str = "500";

/// Apply `threads` to every pool qeval and candle use. Must run before any candle op.
pub fn apply(threads: usize) {
    let n = threads.max(1).to_string();
    // Safe here: called once planning is done, before any compute or worker thread exists.
    std::env::set_var("RAYON_NUM_THREADS", &n);
    std::env::set_var("CANDLE_NUM_THREADS", &n);
    // candle's pool spins 25,000 times before it parks; between its own ops (the k-quant
    // matmuls candle still runs) that spinning takes a core from the rayon threads running
    // qeval's kernels. At 500 spins, decode measured q4_k_m 119.6 -> 154.9 t/s and
    // q6_k 109.5 -> 128.9 t/s (2 threads, 2 cores); a value set by the user is kept.
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT);
    }
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
