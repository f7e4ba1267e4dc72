//! A team of threads that spins between the ops of a forward pass: `for_chunks` hands each op's
//! chunks to it. Decode runs a few hundred short parallel ops per token (Qwen2.5-1.5B: 7 matmuls,
//! attention and the SwiGLU per layer); in rayon's pool each one wakes a sleeping worker
//! through a futex, and on this project's VMs those wake-ups and task switches took about a
//! tenth of a q2_k decode's samples. The team's helpers (one fewer than the rayon threads) spin
//! for a short while after each op, so the next op finds them awake, and park after that.
//!
//! One op at a time: a caller that finds the team busy (another thread's op, or an op inside an
//! op) runs its chunks in rayon's pool instead. The calling thread takes chunks too, and returns
//! when every chunk is done, so `f` outlives every use of it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a helper spins for the next op before it parks (decode's ops come tens of
/// microseconds apart; a longer spin would take the core from rayon's workers, which run
/// candle's own ops between ours).
const SPIN: Duration = Duration::from_micros(200);

/// The op in flight, as the helpers see it.
struct Shared {
    /// Epoch (high 32 bits) and chunk count (low 32 bits) of the current op.
    limit: AtomicU64,
    /// Epoch (high 32 bits) and the next chunk to take (low 32 bits).
    next: AtomicU64,
    /// Chunks finished in the current op.
    done: AtomicUsize,
    /// The op's `&dyn Fn(usize)`, behind a thin pointer to the caller's stack.
    job: AtomicPtr<()>,
    /// A chunk panicked.
    panicked: AtomicBool,
    /// Per helper: parked (or about to park) and needs an unpark.
    parked: Vec<AtomicBool>,
}

/// The team: the shared state, the helpers' handles, and the lock that makes one op at a time.
pub struct Team {
    shared: Arc<Shared>,
    helpers: Vec<Thread>,
    busy: Mutex<()>,
}

type Job<'a> = &'a (dyn Fn(usize) + Sync);

impl Team {
    /// A team of `helpers` threads (none: every op runs on the caller).
    fn new(helpers: usize) -> Team {
        let shared = Arc::new(Shared {
            limit: AtomicU64::new(0),
            next: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            panicked: AtomicBool::new(false),
            parked: (0..helpers).map(|_| AtomicBool::new(false)).collect(),
        });
        let mut threads = Vec::new();
        for i in 0..helpers {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("qeval-team-{i}"))
                .spawn(move || helper(&s, i));
            // Without the thread the team is smaller; ops still complete (the caller takes
            // every chunk no helper took).
            if let Ok(h) = spawned {
                threads.push(h.thread().clone());
            }
        }
        Team {
            shared,
            helpers: threads,
            busy: Mutex::new(()),
        }
    }

    /// Run `f(c)` for every `c < chunks` on the team and the calling thread; `false` (nothing
    /// run) when the team is busy with another op.
    pub fn run(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) -> bool {
        let guard = match self.busy.try_lock() {
            Ok(g) => g,
            // a chunk's panic is re-raised below after the guard is dropped; nothing is
            // left half-done either way
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return false,
        };
        let s = &*self.shared;
        let epoch = (s.limit.load(Relaxed) >> 32).wrapping_add(1) & 0xFFFF_FFFF;
        let job: Job = f;
        s.job.store(&job as *const Job as *mut (), SeqCst);
        s.done.store(0, SeqCst);
        s.next.store(epoch << 32, SeqCst);
        s.limit.store((epoch << 32) | chunks as u64, SeqCst);
        for (p, t) in s.parked.iter().zip(&self.helpers) {
            if p.load(SeqCst) {
                t.unpark();
            }
        }
        take_chunks(s, epoch, chunks as u64);
        while s.done.load(Acquire) < chunks {
            std::hint::spin_loop();
        }
        let panicked = s.panicked.swap(false, SeqCst);
        drop(guard);
        if panicked {
            panic!("a chunk of a parallel kernel panicked");
        }
        true
    }
}

/// Take and run chunks of op `epoch` until none is left (or the op is no longer current).
fn take_chunks(s: &Shared, epoch: u64, chunks: u64) {
    loop {
        let v = s.next.load(Acquire);
        if v >> 32 != epoch || v & 0xFFFF_FFFF >= chunks {
            return;
        }
        if s.next.compare_exchange(v, v + 1, AcqRel, Relaxed).is_err() {
            continue;
        }
        // Safety: a chunk of `epoch` was claimed, so the caller of that op is still waiting
        // for it in `Team::run`, and `job` points at its live `&dyn Fn` (stored before the op
        // was published).
        let job = unsafe { *(s.job.load(Acquire) as *const Job) };
        let c = (v & 0xFFFF_FFFF) as usize;
        if catch_unwind(AssertUnwindSafe(|| job(c))).is_err() {
            s.panicked.store(true, SeqCst);
        }
        s.done.fetch_add(1, Release);
    }
}

/// A helper's life: wait for a new op (spinning, then parked), take its chunks, again.
fn helper(s: &Shared, i: usize) {
    let mut seen = 0u64;
    loop {
        let t0 = Instant::now();
        let mut spins = 0u32;
        let limit = loop {
            let l = s.limit.load(Acquire);
            if l >> 32 != seen {
                break l;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && t0.elapsed() > SPIN {
                s.parked[i].store(true, SeqCst);
                if s.limit.load(SeqCst) >> 32 == seen {
                    std::thread::park();
                }
                s.parked[i].store(false, SeqCst);
            } else {
                std::hint::spin_loop();
            }
        };
        seen = limit >> 32;
        take_chunks(s, seen, limit & 0xFFFF_FFFF);
    }
}

/// The process's team, sized from rayon's pool (its threads minus the caller), made on first
/// use.
pub fn team() -> &'static Team {
    static TEAM: OnceLock<Team> = OnceLock::new();
    TEAM.get_or_init(|| Team::new(rayon::current_num_threads().saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chunk runs exactly once per op, over many ops back to back, with ops of zero,
    /// one and many chunks, and a nested op falls back instead of deadlocking.
    #[test]
    fn every_chunk_runs_once() {
        let team = Team::new(3);
        for round in 0..2000usize {
            let chunks = round % 37;
            let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
            assert!(team.run(chunks, &|c| {
                hits[c].fetch_add(1, Relaxed);
            }));
            for (c, h) in hits.iter().enumerate() {
                assert_eq!(h.load(Relaxed), 1, "round {round} chunk {c}");
            }
        }
        let inner_ran = AtomicBool::new(false);
        assert!(team.run(1, &|_| {
            // the team is busy with this op: a nested one is refused, to run elsewhere
            assert!(!team.run(1, &|_| {}));
            inner_ran.store(true, Relaxed);
        }));
        assert!(inner_ran.load(Relaxed));
    }

    /// After the helpers have parked, the next op still completes (they are unparked).
    #[test]
    fn parked_helpers_wake_for_the_next_op() {
        let team = Team::new(2);
        let sum = AtomicUsize::new(0);
        for _ in 0..3 {
            std::thread::sleep(SPIN * 5);
            assert!(team.run(100, &|c| {
                sum.fetch_add(c, Relaxed);
            }));
        }
        assert_eq!(sum.load(Relaxed), 3 * (0..100).sum::<usize>());
    }

    /// A panicking chunk panics the caller instead of hanging it.
    #[test]
    fn a_panicking_chunk_panics_the_caller() {
        let team = Team::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.run(64, &|c| {
                if c == 40 {
                    panic!("chunk 40");
                }
            })
        }));
        assert!(r.is_err());
        // and the team still works
        let n = AtomicUsize::new(0);
        assert!(team.run(10, &|_| {
            n.fetch_add(1, Relaxed);
        }));
        assert_eq!(n.load(Relaxed), 10);
    }
}
