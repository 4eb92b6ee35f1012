//! Matrix products on the standard workloads' shapes: the Cranelift-generated tile kernel
//! (f32x4, Cranelift's widest vector on x86-64) against the `gemm` crate on one core. The JIT's
//! choice of `gemm` for training rests on these figures; how the JIT splits products across two
//! cores is measured end to end by `netc bench` (see docs/results.md).
//!
//! `machine`: the two ceilings the speed targets run into, on one core: fused multiply-adds from
//! registers (AVX-512, no memory traffic: the FLOP/s no product can exceed) and reading a 400 KB
//! array that stays in the L2 cache (a batch-1 forward pass reads each core's half of the
//! weights, 535 KB for the mlp workload, at no more than this rate).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn shapes() -> Vec<(&'static str, usize, usize, usize)> {
    vec![
        ("mlp fwd1 128x784x256", 128, 784, 256),
        ("mlp fwd2 128x256x256", 128, 256, 256),
        ("deep fwd 64x128x128", 64, 128, 128),
        ("wide fwd2 256x1024x1024", 256, 1024, 1024),
        ("infer1 1x784x256", 1, 784, 256),
    ]
}

fn matrix_products(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(20);
    for (name, m, k, n) in shapes() {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let cranelift = netc::back::jit::CompiledMatmul::new(k, n).expect("compiles");
        group.bench_function(format!("{name} cranelift"), |bench| {
            bench.iter(|| cranelift.run(black_box(&a), black_box(&b), &mut out))
        });
        group.bench_function(format!("{name} gemm 1 thread"), |bench| {
            bench.iter(|| {
                // SAFETY: a is m x k, b is k x n, out is m x n, all row-major and distinct.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        out.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        k as isize,
                        b.as_ptr(),
                        1,
                        n as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
            })
        });
    }
    group.finish();
}

#[cfg(target_arch = "x86_64")]
mod ceilings {
    use std::arch::x86_64::*;

    /// `rounds` x 16 independent AVX-512 multiply-adds (2 x 16 x 16 FLOP each round).
    #[target_feature(enable = "avx512f")]
    pub fn multiply_adds(rounds: usize) -> f32 {
        let mut acc = [_mm512_set1_ps(1.0); 16];
        let (x, y) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        for _ in 0..rounds {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
    }

    /// Sums `v` with eight independent AVX-512 accumulators.
    #[target_feature(enable = "avx512f")]
    pub fn read(v: &[f32]) -> f32 {
        let mut acc = [_mm512_setzero_ps(); 8];
        for chunk in v.chunks_exact(128) {
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: `chunk` holds 128 floats, so 16 from `16 * j` are inside it.
                *a = _mm512_add_ps(*a, unsafe { _mm512_loadu_ps(chunk.as_ptr().add(16 * j)) });
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
    }
}

fn machine(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        let mut group = c.benchmark_group("machine");
        group.sample_size(20);
        let rounds = 100_000;
        group.throughput(Throughput::Elements((rounds * 16 * 16 * 2) as u64));
        // SAFETY: the CPU has AVX-512F (checked above).
        group.bench_function("avx512 multiply-adds (FLOP)", |bench| {
            bench.iter(|| unsafe { ceilings::multiply_adds(black_box(rounds)) })
        });
        let v = vec![1.0f32; 400 * 256];
        group.throughput(Throughput::Bytes((v.len() * 4) as u64));
        // SAFETY: as above.
        group.bench_function("read 400 KB from L2", |bench| {
            bench.iter(|| unsafe { ceilings::read(black_box(&v)) })
        });
        group.finish();
    }
    let _ = c;
}

criterion_group!(benches, matrix_products, machine);
criterion_main!(benches);
