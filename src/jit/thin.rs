//! Products with a few rows against a large row-major matrix (batch-1 inference).
//!
//! `gemm` packs the right operand into panels on every call: for one row that copy of the whole
//! weight matrix costs more than the product (measured: 46% of a batch-1 forward pass). Here the
//! weights are read in place, one row at a time, into accumulators for 64 output columns that
//! stay in registers; with AVX-512 where the CPU has it.

/// Rows up to which [`product`] is used instead of `gemm`.
pub const MAX_ROWS: usize = 4;

/// Columns accumulated in registers at once.
const CHUNK: usize = 128;

/// `out[r, c0..c1] = sum_i a[r, i] * b[i, c0..c1]` for `r < m`, `i < k`.
///
/// # Safety
/// `a` addresses `a[r * a_rs + i * a_cs]` for `r < m`, `i < k`; `b` holds row-major rows of
/// stride `b_rs` with columns `c0..c1` present for `i < k`; `out` holds rows of stride `n` with
/// columns `c0..c1` for `r < m`, and does not overlap `a` or `b`. Other threads may write other
/// columns of `out` at the same time.
#[allow(clippy::too_many_arguments)]
pub unsafe fn product(
    m: usize,
    k: usize,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: usize,
    out: *mut f32,
    n: usize,
    c0: usize,
    c1: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX-512F; the caller's contract is passed on.
        return unsafe { product_avx512(m, k, a, a_rs, a_cs, b, b_rs, out, n, c0, c1) };
    }
    // SAFETY: the caller's contract is passed on.
    unsafe { product_body::<false>(m, k, a, a_rs, a_cs, b, b_rs, out, n, c0, c1) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn product_avx512(
    m: usize,
    k: usize,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: usize,
    out: *mut f32,
    n: usize,
    c0: usize,
    c1: usize,
) {
    // SAFETY: the caller's contract is passed on.
    unsafe { product_body::<true>(m, k, a, a_rs, a_cs, b, b_rs, out, n, c0, c1) }
}

/// `s + x * w`, fused where the CPU has FMA (a call to a software `fmaf` otherwise).
#[inline(always)]
fn multiply_add<const FMA: bool>(x: f32, w: f32, s: f32) -> f32 {
    if FMA { x.mul_add(w, s) } else { s + x * w }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn product_body<const FMA: bool>(
    m: usize,
    k: usize,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: usize,
    out: *mut f32,
    n: usize,
    c0: usize,
    c1: usize,
) {
    for r in 0..m {
        let mut c = c0;
        while c < c1 {
            let width = CHUNK.min(c1 - c);
            let mut acc = [0.0f32; CHUNK];
            for i in 0..k {
                // SAFETY: `r < m`, `i < k` and `c + width <= c1` are inside the caller's ranges.
                let (x, row) = unsafe {
                    (
                        *a.offset(r as isize * a_rs + i as isize * a_cs),
                        std::slice::from_raw_parts(b.add(i * b_rs + c), width),
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
            let dst = unsafe { std::slice::from_raw_parts_mut(out.add(r * n + c), width) };
            dst.copy_from_slice(&acc[..width]);
            c += width;
        }
    }
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
        // Two column ranges, as two threads would compute them.
        // SAFETY: the slices hold exactly the addressed ranges.
        unsafe {
            product(
                m,
                k,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                n,
                out.as_mut_ptr(),
                n,
                0,
                80,
            );
            product(
                m,
                k,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                n,
                out.as_mut_ptr(),
                n,
                80,
                n,
            );
        }
        for r in 0..m {
            for c in 0..n {
                let want: f32 = (0..k).map(|i| a[r * k + i] * b[i * n + c]).sum();
                assert!((out[r * n + c] - want).abs() <= 1e-4 * want.abs().max(1.0), "{r},{c}");
            }
        }
    }
}
