//! Products with a few rows against a large row-major matrix (batch-1 inference).
//!
//! `gemm` packs the right operand into panels on every call: for one row that copy of the whole
//! weight matrix costs more than the product (measured: 46% of a batch-1 forward pass). Here the
//! weights are read in place, one row at a time, into accumulators that stay in registers; with
//! AVX-512 where the CPU has it.
//!
//! A batch-1 forward pass is bound by the rate at which a core reads its weights from its L2
//! cache (about 108 GB/s per core here). Two cores each take a contiguous half of the weight
//! *rows* (the inner dimension) and the two partial sums are added: a contiguous half spreads
//! over every L2 set, where a half of the *columns* (every other 512 bytes of a 1 KB row) maps
//! onto half of the sets and stops fitting (measured: the column split ran 40% over the
//! bandwidth bound). Large products are always summed as these two halves, on one core or two,
//! so results do not depend on the thread count.

/// Rows up to which [`Product`] is used instead of `gemm`.
pub const MAX_ROWS: usize = 4;

/// `out[r, c] = sum_i a[r, i] * b[i, c]` for `r < m`, `c < n` and `i` in a range of `0..k`.
#[derive(Clone, Copy)]
pub struct Product {
    /// Rows.
    pub m: usize,
    /// Output columns (and the row stride of the output).
    pub n: usize,
    /// The left operand: element `(r, i)` at `a[r * a_rs + i * a_cs]`.
    pub a: *const f32,
    /// Row stride of `a`.
    pub a_rs: isize,
    /// Column stride of `a`.
    pub a_cs: isize,
    /// The right operand, row-major with row stride `b_rs`.
    pub b: *const f32,
    /// Row stride of `b`.
    pub b_rs: usize,
}

// SAFETY: a `Product` only describes buffers; `partial`'s contract says who may touch what, and
// concurrent calls read the operands and write different outputs.
unsafe impl Sync for Product {}
// SAFETY: as above.
unsafe impl Send for Product {}

impl Product {
    /// Writes `sum_{i in k0..k1} a[r, i] * b[i, c]` to `out[r * n + c]` for every `r < m`,
    /// `c < n`.
    ///
    /// # Safety
    /// `a` addresses `(r, i)` for `r < m`, `i < k`; `b` holds rows `k0..k1`, columns `0..n`;
    /// `out` holds `m * n` floats and overlaps neither.
    pub unsafe fn partial(&self, k0: usize, k1: usize, out: *mut f32) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; the caller's contract is passed on.
            return unsafe { self.partial_avx512(k0, k1, out) };
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { self.partial_portable(k0, k1, out) }
    }

    /// `a[r, i]`.
    ///
    /// # Safety
    /// `r < m`, `i < k`.
    #[inline(always)]
    unsafe fn lhs(&self, r: usize, i: usize) -> f32 {
        // SAFETY: per this function's contract and the struct's.
        unsafe { *self.a.offset(r as isize * self.a_rs + i as isize * self.a_cs) }
    }

    unsafe fn partial_portable(&self, k0: usize, k1: usize, out: *mut f32) {
        const CHUNK: usize = 64;
        for r in 0..self.m {
            for c in (0..self.n).step_by(CHUNK) {
                let width = CHUNK.min(self.n - c);
                let mut acc = [0.0f32; CHUNK];
                for i in k0..k1 {
                    // SAFETY: `r < m`, `k0 <= i < k1`, `c + width <= n`: inside the contract.
                    let (x, row) = unsafe {
                        (
                            self.lhs(r, i),
                            std::slice::from_raw_parts(self.b.add(i * self.b_rs + c), width),
                        )
                    };
                    for (s, &w) in acc.iter_mut().zip(row) {
                        *s += x * w;
                    }
                }
                // SAFETY: row `r`, columns `c..c + width` of `out`.
                unsafe { std::slice::from_raw_parts_mut(out.add(r * self.n + c), width) }
                    .copy_from_slice(&acc[..width]);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn partial_avx512(&self, k0: usize, k1: usize, out: *mut f32) {
        for r in 0..self.m {
            let mut c = 0;
            // SAFETY (all blocks): columns `c..c + 16 * V` (the last vector masked to `n`) of rows
            // `k0..k1` and of output row `r`, inside the caller's contract.
            while self.n - c >= 256 {
                unsafe { self.block::<16, 1>(r, c, k0, k1, u16::MAX, out) };
                c += 256;
            }
            while self.n - c >= 64 {
                unsafe { self.block::<4, 2>(r, c, k0, k1, u16::MAX, out) };
                c += 64;
            }
            while self.n - c >= 16 {
                unsafe { self.block::<1, 4>(r, c, k0, k1, u16::MAX, out) };
                c += 16;
            }
            if c < self.n {
                let mask = (1u16 << (self.n - c)) - 1;
                unsafe { self.block::<1, 4>(r, c, k0, k1, mask, out) };
            }
        }
    }

    /// Output row `r`, columns `c..c + 16 * V` (lanes of the last vector limited by `mask`),
    /// summed over `k0..k1` in `U` interleaved sets of accumulators (latency: a set of
    /// accumulators waits four cycles between its multiply-adds), added in a fixed order.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const V: usize, const U: usize>(
        &self,
        r: usize,
        c: usize,
        k0: usize,
        k1: usize,
        mask: u16,
        out: *mut f32,
    ) {
        use std::arch::x86_64::*;
        let mut acc = [[_mm512_setzero_ps(); V]; U];
        let load = |i: usize, v: usize| {
            let p = self.b.wrapping_add(i * self.b_rs + c + 16 * v);
            // SAFETY: row `i` of `b`, columns inside the block; masked-off lanes are not read.
            unsafe {
                if v + 1 == V {
                    _mm512_maskz_loadu_ps(mask, p)
                } else {
                    _mm512_loadu_ps(p)
                }
            }
        };
        let mut i = k0;
        while i + U <= k1 {
            for (u, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `i + u < k1`.
                let x = _mm512_set1_ps(unsafe { self.lhs(r, i + u) });
                for (v, s) in acc.iter_mut().enumerate() {
                    *s = _mm512_fmadd_ps(x, load(i + u, v), *s);
                }
            }
            i += U;
        }
        while i < k1 {
            // SAFETY: `i < k1`.
            let x = _mm512_set1_ps(unsafe { self.lhs(r, i) });
            for (v, s) in acc[0].iter_mut().enumerate() {
                *s = _mm512_fmadd_ps(x, load(i, v), *s);
            }
            i += 1;
        }
        for v in 0..V {
            let mut s = acc[0][v];
            for a in &acc[1..] {
                s = _mm512_add_ps(s, a[v]);
            }
            let p = out.wrapping_add(r * self.n + c + 16 * v);
            // SAFETY: output row `r`, columns inside the block; masked-off lanes not written.
            unsafe {
                if v + 1 == V {
                    _mm512_mask_storeu_ps(p, mask, s)
                } else {
                    _mm512_storeu_ps(p, s)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_naive_product() {
        for (m, k, n) in [(3, 37, 150), (1, 300, 10), (2, 5, 273), (4, 64, 16), (1, 1, 1)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 31) % 11) as f32 * 0.25 - 1.0).collect();
            let product = Product {
                m,
                n,
                a: a.as_ptr(),
                a_rs: k as isize,
                a_cs: 1,
                b: b.as_ptr(),
                b_rs: n,
            };
            // Two halves of the inner dimension, as two threads compute them.
            let (mut first, mut second) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            let h = k / 2;
            // SAFETY: the vectors hold exactly the addressed ranges.
            unsafe {
                product.partial(0, h, first.as_mut_ptr());
                product.partial(h, k, second.as_mut_ptr());
            }
            for r in 0..m {
                for c in 0..n {
                    let want: f32 = (0..k).map(|i| a[r * k + i] * b[i * n + c]).sum();
                    let got = first[r * n + c] + second[r * n + c];
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{m}x{k}x{n} at {r},{c}"
                    );
                }
            }
        }
    }
}
