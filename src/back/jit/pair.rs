//! Two cores without a thread pool: one helper thread, kept hot between kernels, runs the second
//! half of a split product or update while the calling thread runs the first.
//!
//! A pool (rayon) hands each job over through a queue and puts idle workers to sleep on a futex:
//! measured on the mlp workload, waking them cost about 15% of a training step. Here the hand-off
//! is one atomic store; the helper spins for a short while after each job (the next product of
//! the step follows within microseconds) and only then parks.

use std::cell::UnsafeCell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the helper spins for the next job before parking.
const SPIN: Duration = Duration::from_micros(300);

type Job = *const (dyn Fn() + Sync + 'static);

struct Shared {
    /// The posted job; written by the caller before `posted` is incremented, read by the helper
    /// after it sees the increment, and not touched again until `done` catches up.
    job: UnsafeCell<Option<Job>>,
    posted: AtomicU64,
    done: AtomicU64,
    sleeping: AtomicBool,
    stop: AtomicBool,
}

// SAFETY: `job` is accessed by one side at a time, ordered by `posted` (release by the caller,
// acquire by the helper) and `done` (release by the helper, acquire by the caller).
unsafe impl Sync for Shared {}
// SAFETY: as above; the job pointer refers to a `Sync` closure.
unsafe impl Send for Shared {}

/// The calling thread plus one helper.
pub struct Pair {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Pair {
    /// Starts the helper, which first runs `setup` (thread-local settings such as floating-point
    /// modes); `None` when the system refuses a thread (the caller then runs alone).
    pub fn new(setup: fn()) -> Option<Pair> {
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            posted: AtomicU64::new(0),
            done: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let helper = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("netc-jit-helper".to_string())
            .spawn(move || {
                setup();
                helper_loop(&helper)
            })
            .ok()?;
        Some(Pair {
            shared,
            thread: Some(thread),
        })
    }

    /// Runs `first` on this thread and `second` on the helper; returns when both have finished.
    pub fn join(&self, first: impl FnOnce(), second: &(dyn Fn() + Sync)) {
        let job: *const (dyn Fn() + Sync + '_) = second;
        // SAFETY: only the lifetime is erased. The helper calls the job before it increments
        // `done`, and `Wait` (below, also on unwinding) does not return before `done` reaches this
        // job's number, so the closure outlives every use.
        let job: Job = unsafe { std::mem::transmute(job) };
        // SAFETY: the helper is not reading `job`: every earlier job is done (see `Wait`).
        unsafe { *self.shared.job.get() = Some(job) };
        let number = self.shared.posted.fetch_add(1, Ordering::SeqCst) + 1;
        if self.shared.sleeping.load(Ordering::SeqCst)
            && let Some(t) = &self.thread
        {
            t.thread().unpark();
        }
        let _wait = Wait {
            shared: &self.shared,
            number,
        };
        first();
    }
}

/// Waits for the helper's job `number`, also when `first` unwinds.
struct Wait<'a> {
    shared: &'a Shared,
    number: u64,
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let mut spins = 0u32;
        while self.shared.done.load(Ordering::Acquire) < self.number {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) {
                // The helper may have been descheduled: let it run.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

fn helper_loop(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        let mut idle_since = Instant::now();
        let mut spins = 0u32;
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let posted = shared.posted.load(Ordering::Acquire);
            if posted != seen {
                seen = posted;
                break;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(2048) {
                // Should the OS put both threads on one core, give the caller its turn.
                std::thread::yield_now();
            }
            if spins.is_multiple_of(256) && idle_since.elapsed() > SPIN {
                shared.sleeping.store(true, Ordering::SeqCst);
                if shared.posted.load(Ordering::SeqCst) == seen && !shared.stop.load(Ordering::SeqCst) {
                    std::thread::park();
                }
                shared.sleeping.store(false, Ordering::SeqCst);
                idle_since = Instant::now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: the caller wrote the job before publishing `posted` (acquired above) and keeps
        // it alive until `done` reaches `seen`.
        if let Some(job) = unsafe { *shared.job.get() } {
            // A panic must not leave the caller waiting forever; kernels do not panic.
            // SAFETY: see above.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| unsafe { (*job)() }));
        }
        shared.done.store(seen, Ordering::Release);
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn both_halves_run_every_time() {
        let pair = Pair::new(|| {}).expect("a thread");
        let count = AtomicUsize::new(0);
        for i in 0..10_000 {
            let mut mine = 0;
            pair.join(|| mine = i, &|| {
                count.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(mine, i);
            assert_eq!(count.load(Ordering::Relaxed), i + 1);
            if i % 1000 == 0 {
                // Let the helper park, then wake it.
                std::thread::sleep(SPIN * 2);
            }
        }
    }
}
