//! The floating-point modes kernels run under (flush-to-zero, denormals-are-zero).

/// Sets flush-to-zero and denormals-are-zero for the current thread while alive.
///
/// Optimizer state of weights whose gradient is zero decays geometrically into the subnormal
/// range (Adam's first moment after ~800 steps), where x86 arithmetic is about 100 times
/// slower. XLA and TensorFlow flush subnormals on CPU for the same reason; the values involved
/// are below 1e-38, far under the tolerance the JIT is held to against the interpreter.
pub(super) struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl FlushDenormals {
    pub(super) fn new() -> FlushDenormals {
        #[cfg(target_arch = "x86_64")]
        {
            #[allow(deprecated)]
            // SAFETY: reading and writing MXCSR only changes this thread's floating-point
            // modes; FTZ (bit 15) and DAZ (bit 6) are valid on every x86-64 CPU with SSE2.
            let saved = unsafe {
                let saved = std::arch::x86_64::_mm_getcsr();
                std::arch::x86_64::_mm_setcsr(saved | 0x8040);
                saved
            };
            FlushDenormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushDenormals {}
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        #[allow(deprecated)]
        // SAFETY: restores the modes saved in `new`.
        unsafe {
            std::arch::x86_64::_mm_setcsr(self.saved)
        };
    }
}
