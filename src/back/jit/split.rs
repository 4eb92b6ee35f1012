//! Splitting work across the two cores: the thresholds (each measured), where a split falls, and
//! running two halves on this thread and the helper.

use super::{UpdateFn, pair};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// Multiply-adds above which a matrix product may use both cores.
pub(super) const PARALLEL_MACS: usize = 1 << 19;

/// The arguments of one update kernel call.
#[derive(Clone, Copy)]
pub(super) struct UpdateArgs {
    pub(super) kernel: UpdateFn,
    pub(super) w: *mut f32,
    pub(super) g: *const f32,
    pub(super) s0: *mut f32,
    pub(super) s1: *mut f32,
    pub(super) slots: usize,
    pub(super) scalars: [f32; 3],
}

// SAFETY: the pointers refer to buffers owned by the `Jit` that builds these arguments and
// outlive the (joined) calls; concurrent calls cover disjoint element ranges.
unsafe impl Send for UpdateArgs {}
// SAFETY: as above; the struct itself is never mutated.
unsafe impl Sync for UpdateArgs {}

impl UpdateArgs {
    /// Updates elements `start..end`.
    ///
    /// # Safety
    /// `w`, `g` and the first `slots` state pointers must hold at least `end` floats, and no
    /// other call may touch `start..end` at the same time.
    pub(super) unsafe fn run(&self, start: usize, end: usize) {
        // Floating-point modes: set by `Jit::run` on the calling thread, for good on the helper.
        let at = |p: *mut f32, used: bool| if used { p.wrapping_add(start) } else { p };
        // SAFETY: per this function's contract; the kernel only touches the state slots its
        // optimizer has, so an unused (empty) slot pointer is never dereferenced.
        unsafe {
            (self.kernel)(
                self.w.wrapping_add(start),
                self.g.wrapping_add(start),
                at(self.s0, self.slots > 0),
                at(self.s1, self.slots > 1),
                self.scalars.as_ptr(),
                (end - start) as i64,
            )
        };
    }
}

/// Elements from which a map kernel over at least [`PARALLEL_ROWS`] rows is split by rows.
pub(super) const PARALLEL_MAP: usize = 1 << 13;

/// Where work over `m` rows (or columns) is split between the cores: whole 16-wide tiles of
/// the matrix-product micro-kernel first.
pub(super) fn halfway(m: usize) -> usize {
    (m / 2).div_ceil(16) * 16
}

/// Runs `first` on this thread and `second` on the helper, or both here, in order, without a
/// helper.
pub(super) fn both(pair: Option<&pair::Pair>, first: impl FnOnce(), second: &(dyn Fn() + Sync)) {
    match pair {
        Some(pair) => pair.join(first, second),
        None => {
            first();
            second();
        }
    }
}

/// Runs `work(first)` on this thread and `work(second)` on the helper, or both here, in order,
/// without a helper: [`both`] for work that owns its part (disjoint output slices, its own
/// scratch), without unsafe code. Where the parts fall is the caller's choice and must not
/// depend on whether there is a helper (each part is computed the same way either way).
pub(super) fn halves<T: Send>(pair: Option<&pair::Pair>, first: T, second: T, work: &(dyn Fn(T) + Sync)) {
    // The helper's part travels in a mutex: its closure is `Fn`, called once.
    let second = Mutex::new(Some(second));
    let finished = AtomicBool::new(false);
    both(pair, || work(first), &|| {
        let part = second.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(part) = part {
            work(part);
            finished.store(true, Ordering::Release);
        }
    });
    // The helper swallows a panic (so that the caller never waits forever): report it here.
    assert!(finished.load(Ordering::Acquire), "the second half of a kernel panicked");
}

/// Parameters above which an update is split across both cores.
pub(super) const PARALLEL_UPDATE: usize = 1 << 16;

/// Rows (the batch) below which a matrix product, an elementwise kernel or a batch gather
/// stays on one core: small pieces cost more in thread hand-off than they save. Splitting at 64
/// rows pays with the helper thread's atomic hand-off (deep, batch 64: epochs of 1.31-1.37 s
/// alone, 1.02-1.07 s split; docs/results.md); fewer rows were not measured.
pub(super) const PARALLEL_ROWS: usize = 64;

/// Multiply-adds from which a product with at most [`thin::MAX_ROWS`] rows is summed as two
/// halves of its inner dimension (one per core when there are two).
pub(super) const PARALLEL_THIN_MACS: usize = 1 << 15;
