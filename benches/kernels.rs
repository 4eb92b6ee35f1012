//! Matrix products on the standard workloads' shapes: the Cranelift-generated tile kernel
//! (f32x4, Cranelift's widest vector on x86-64) against the `gemm` crate on one core. The JIT's
//! choice of `gemm` for training rests on these figures; how the JIT splits products across two
//! cores is measured end to end by `netc bench` (see docs/results.md).

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
        let cranelift = netc::jit::CompiledMatmul::new(k, n).expect("compiles");
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

criterion_group!(benches, matrix_products);
criterion_main!(benches);
