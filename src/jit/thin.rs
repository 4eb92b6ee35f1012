//! Products with a few rows against a large row-major matrix (batch-1 inference).
//!
//! `gemm` packs the right operand into panels on every call: for one row that copy of the whole
//! weight matrix costs more than the product (measured: 46% of a batch-1 forward pass). Here the
//! weights are read in place, one row at a time, into accumulators for 64 output columns that
//! stay in registers; with AVX-512 where the CPU has it.

/// Rows up to which [`Product`] is used instead of `gemm`.
pub const MAX_ROWS: usize = 4;

/// Columns accumulated in registers at once.
const CHUNK: usize = 128;

/// `out[r, c] = sum_i a[r, i] * b[i, c]` for `r < m`, `i < k`, `c < n`.
#[derive(Clone, Copy)]
pub struct Product {
    /// Rows.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Output columns (and the row stride of `out`).
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
    /// The output, row-major `m x n`.
    pub out: *mut f32,
}

impl Product {
    /// Computes output columns `c0..c1`.
    ///
    /// # Safety
    /// `a` addresses `(r, i)` for `r < m`, `i < k`; `b` holds columns `c0..c1` of rows `i < k`;
    /// `out` holds columns `c0..c1` of rows `r < m` and does not overlap `a` or `b`. Other
    /// threads may write other columns of `out` at the same time.
    pub unsafe fn columns(&self, c0: usize, c1: usize) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX-512F and FMA; the caller's contract is passed on.
            return unsafe { self.columns_avx512(c0, c1) };
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { self.columns_with::<false>(c0, c1) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn columns_avx512(&self, c0: usize, c1: usize) {
        // SAFETY: the caller's contract is passed on.
        unsafe { self.columns_with::<true>(c0, c1) }
    }

    #[inline(always)]
    unsafe fn columns_with<const FMA: bool>(&self, c0: usize, c1: usize) {
        for r in 0..self.m {
            let mut c = c0;
            while c < c1 {
                let width = CHUNK.min(c1 - c);
                let mut acc = [0.0f32; CHUNK];
                for i in 0..self.k {
                    // SAFETY: `r < m`, `i < k` and `c + width <= c1` are inside the caller's
                    // ranges.
                    let (x, row) = unsafe {
                        (
                            *self.a.offset(r as isize * self.a_rs + i as isize * self.a_cs),
                            std::slice::from_raw_parts(self.b.add(i * self.b_rs + c), width),
                        )
                    };
                    if width == CHUNK {
                        let row: &[f32; CHUNK] = row.try_into().expect("a full chunk");
                        for j in 0..CHUNK {
                            acc[j] = multiply_add::<FMA>(x, row[j], acc[j]);
                        }
                    } else {
                        for (s, &w) in acc.iter_mut().zip(row) {
                            *s = multiply_add::<FMA>(x, w, *s);
                        }
                    }
                }
                // SAFETY: row `r`, columns `c..c + width` of `out`, inside the caller's range.
                let dst = unsafe { std::slice::from_raw_parts_mut(self.out.add(r * self.n + c), width) };
                dst.copy_from_slice(&acc[..width]);
                c += width;
            }
        }
    }
}

/// `s + x * w`, fused where the CPU has FMA (a call to a software `fmaf` otherwise).
#[inline(always)]
fn multiply_add<const FMA: bool>(x: f32, w: f32, s: f32) -> f32 {
    if FMA { x.mul_add(w, s) } else { s + x * w }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_naive_product() {
        let (m, k, n) = (3, 37, 150);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 31) % 11) as f32 * 0.25 - 1.0).collect();
        let mut out = vec![f32::NAN; m * n];
        let product = Product {
            m,
            k,
            n,
            a: a.as_ptr(),
            a_rs: k as isize,
            a_cs: 1,
            b: b.as_ptr(),
            b_rs: n,
            out: out.as_mut_ptr(),
        };
        // Two column ranges, as two threads would compute them.
        // SAFETY: the vectors hold exactly the addressed ranges.
        unsafe {
            product.columns(0, 80);
            product.columns(80, n);
        }
        for r in 0..m {
            for c in 0..n {
                let want: f32 = (0..k).map(|i| a[r * k + i] * b[i * n + c]).sum();
                assert!((out[r * n + c] - want).abs() <= 1e-4 * want.abs().max(1.0), "{r},{c}");
            }
        }
    }
}
