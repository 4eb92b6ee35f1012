//! Convolutions as matrix products (im2col). The taps of a chunk of `s` samples are laid out as
//! the columns of `col`, a `[channels * kernel_h * kernel_w, s * positions]` matrix (zero where
//! a tap falls on padding), so that, as `ops::conv` defines them,
//! - the output is `W [filters, taps] x col`, scattered to each sample's `[filters, positions]`;
//! - the input's gradient is col2im of `W^T x dy` (each column's taps added back to the pixels
//!   they were read from);
//! - the filters' gradient is the sum over the chunks of `dy x col^T`.
//!
//! Products go to the `gemm` crate, as the dense layers' do. The batch is cut into chunks whose
//! `col` fits in a core's L2 cache; the forward pass and the input's gradient split the chunks
//! between the cores (whole samples); the filters' gradient is two partial sums over the two
//! halves of the chunks, one per core, then added: every value is the same arithmetic on one
//! core or two.

use super::nodes::Cx;
use super::split::{PARALLEL_MACS, halves};
use crate::graph::Graph;
use crate::ir::Window;
use crate::ops::{ConvOp, Op};
use std::ops::Range;

/// The most floats of one `col` matrix: 1 MiB, half of a core's L2 cache on the 2-core Xeon
/// netc is measured on (2 MiB each), leaving room for the filters and the product.
const COL_FLOATS: usize = 1 << 18;

/// Rows of `col` (and columns of the filters): `channels * kernel_h * kernel_w`.
fn taps(g: &Window) -> usize {
    g.channels * g.taps()
}

/// The most samples in one chunk.
fn chunk_limit(g: &Window) -> usize {
    (COL_FLOATS / (taps(g) * g.positions()).max(1)).max(1)
}

/// Samples per chunk for a batch of `rows`: chunks of at most [`chunk_limit`] samples, as even as
/// they come, and an even number of them when there are several (so that each core takes half).
/// A function of the sizes alone, so results do not depend on the thread count.
fn chunk(g: &Window, rows: usize) -> usize {
    let mut count = rows.div_ceil(chunk_limit(g)).max(1);
    if count % 2 == 1 && count < rows {
        count += 1;
    }
    rows.div_ceil(count).max(1)
}

/// The geometry and filter count of a convolution op.
fn geometry(graph: &Graph, op: &ConvOp) -> (Window, usize) {
    match *op {
        ConvOp::Conv { w, g, .. } | ConvOp::ConvGradInput { w, g, .. } => (g, graph.nodes[w].shape.rows_for(1)),
        ConvOp::ConvGradWeight { dy, g, .. } => (g, graph.nodes[dy].shape.cols() / g.positions()),
    }
}

/// Floats of scratch one core needs for convolution `node` over batches of up to `capacity`
/// samples (0 for other nodes): one chunk's `col` and its `[filters, s * positions]` product or
/// gradient, and a partial filter gradient `[filters, taps]` (the second half's sum); for a
/// stride-1 input gradient, the same for its [`transposed`] convolution and the flipped filters.
pub(super) fn scratch_len(graph: &Graph, node: crate::graph::NodeId, capacity: usize) -> usize {
    let Op::Conv(op) = &graph.nodes[node].op else { return 0 };
    let (g, filters) = geometry(graph, op);
    let direct = chunk_limit(&g).min(capacity.max(1)) * g.positions() * (taps(&g) + filters) + filters * taps(&g);
    let transposed = transposed(&g, filters).map_or(0, |t| {
        chunk_limit(&t).min(capacity.max(1)) * t.positions() * (taps(&t) + g.channels) + filters * taps(&g)
    });
    direct.max(transposed)
}

/// Runs a convolution op into `out`, with one scratch buffer per core (each of
/// [`scratch_len`]).
pub(super) fn run(cx: &Cx, op: &ConvOp, out: &mut [f32], scratch: &mut [Vec<f32>; 2]) {
    let (g, filters) = geometry(cx.graph, op);
    let (k, p) = (taps(&g), g.positions());
    let [first, second] = scratch;
    match *op {
        ConvOp::Conv { x, w, .. } => {
            let (x, w) = (cx.value(x), cx.value(w));
            let rows = x.len() / g.input_len();
            let per = chunk(&g, rows);
            by_samples(
                cx,
                &g,
                filters,
                rows,
                out,
                filters * p,
                [&mut first[..], &mut second[..]],
                &|range, out, scratch| forward(&g, x, w, filters, per, range, out, scratch),
            );
        }
        ConvOp::ConvGradInput { dy, w, .. } => {
            let (dy, w) = (cx.value(dy), cx.value(w));
            let rows = dy.len() / (filters * p);
            if let Some(t) = transposed(&g, filters) {
                // A stride-1 gradient is the convolution of dy with the flipped, transposed
                // filters: one product with `filters * taps` terms per value, no col2im.
                let (flipped, first) = first.split_at_mut(filters * k);
                flip(&g, filters, w, flipped);
                let flipped = &*flipped;
                let second = &mut second[filters * k..];
                let per = chunk(&t, rows);
                by_samples(
                    cx,
                    &t,
                    g.channels,
                    rows,
                    out,
                    g.input_len(),
                    [first, second],
                    &|range, out, scratch| forward(&t, dy, flipped, g.channels, per, range, out, scratch),
                );
                return;
            }
            let per = chunk(&g, rows);
            by_samples(
                cx,
                &g,
                filters,
                rows,
                out,
                g.input_len(),
                [&mut first[..], &mut second[..]],
                &|range, out, scratch| grad_input(&g, dy, w, filters, per, range, out, scratch),
            );
        }
        ConvOp::ConvGradWeight { x, dy, .. } => {
            let (x, dy) = (cx.value(x), cx.value(dy));
            let rows = x.len() / g.input_len();
            let per = chunk(&g, rows);
            let work = |samples: Range<usize>, out: &mut [f32], scratch: &mut [f32]| {
                grad_weight(&g, x, dy, filters, per, samples, out, scratch)
            };
            let chunks = rows.div_ceil(per);
            if chunks < 2 || rows * filters * k * p < PARALLEL_MACS {
                work(0..rows, out, first);
                return;
            }
            // Two partial sums over the two halves of the chunks (on one core or two), then
            // their sum: the same arithmetic whatever the thread count.
            let at = chunks.div_ceil(2) * per;
            let (partial, rest) = second.split_at_mut(filters * k);
            halves(
                cx.pair,
                (0..at, &mut out[..], &mut first[..]),
                (at..rows, partial, rest),
                &|(range, out, scratch)| work(range, out, scratch),
            );
            for (o, &q) in out.iter_mut().zip(second.iter()) {
                *o += q;
            }
        }
    }
}

/// Work over a range of samples: `(samples, their rows of the output, scratch)`.
type SampleWork<'a> = dyn Fn(Range<usize>, &mut [f32], &mut [f32]) + Sync + 'a;

/// Runs `work(samples, their rows of out, scratch)` over the batch: over enough work, the first
/// half of the chunks on this core and the rest on the other.
#[allow(clippy::too_many_arguments)]
fn by_samples(
    cx: &Cx,
    g: &Window,
    filters: usize,
    rows: usize,
    out: &mut [f32],
    out_row: usize,
    [first, second]: [&mut [f32]; 2],
    work: &SampleWork,
) {
    let per = chunk(g, rows);
    let chunks = rows.div_ceil(per);
    if chunks < 2 || rows * filters * taps(g) * g.positions() < PARALLEL_MACS {
        work(0..rows, out, first);
        return;
    }
    let at = chunks.div_ceil(2) * per;
    let (a, b) = out.split_at_mut(at * out_row);
    halves(cx.pair, (0..at, a, first), (at..rows, b, second), &|(
        range,
        out,
        scratch,
    )| {
        work(range, out, scratch)
    });
}

/// For a stride-1 convolution `g` with `filters` filters, the geometry of its input gradient as
/// a convolution: over `dy` (`filters` channels of the output's size), the same window, the
/// padding that makes its output the input's size (`kernel - 1 - pad` on each side); `None`
/// unless the stride is 1 and the padding keeps the size (`pad same`, odd kernels).
fn transposed(g: &Window, filters: usize) -> Option<Window> {
    // Padding of `kernel - 1` in all keeps the image's size: then the transposed convolution
    // has as many terms as the direct one (with less padding it would multiply zeros).
    let same = g.pad_top + g.pad_bottom + 1 == g.kernel_h && g.pad_left + g.pad_right + 1 == g.kernel_w;
    if (g.stride_h, g.stride_w) != (1, 1) || !same {
        return None;
    }
    let t = Window {
        channels: filters,
        height: g.out_h,
        width: g.out_w,
        kernel_h: g.kernel_h,
        kernel_w: g.kernel_w,
        stride_h: 1,
        stride_w: 1,
        pad_top: g.kernel_h - 1 - g.pad_top,
        pad_left: g.kernel_w - 1 - g.pad_left,
        pad_bottom: g.kernel_h - 1 - g.pad_bottom,
        pad_right: g.kernel_w - 1 - g.pad_right,
        out_h: g.height,
        out_w: g.width,
    };
    // Stride 1 covers every input pixel, so the transposed output is exactly the input.
    debug_assert_eq!((t.height + t.pad_top + t.pad_bottom + 1 - t.kernel_h), g.height);
    Some(t)
}

/// The filters of [`transposed`]: `[channels, filters * kernel_h * kernel_w]` with element
/// `(c, (f, ky, kx))` the filter weight `(f, c, kernel_h - 1 - ky, kernel_w - 1 - kx)`.
fn flip(g: &Window, filters: usize, w: &[f32], flipped: &mut [f32]) {
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    for c in 0..g.channels {
        for f in 0..filters {
            for ky in 0..kh {
                for kx in 0..kw {
                    flipped[((c * filters + f) * kh + ky) * kw + kx] =
                        w[((f * g.channels + c) * kh + kh - 1 - ky) * kw + kw - 1 - kx];
                }
            }
        }
    }
}

/// The outputs of samples `range` (`out` holds their rows), chunk by chunk.
#[allow(clippy::too_many_arguments)]
fn forward(
    g: &Window,
    x: &[f32],
    w: &[f32],
    filters: usize,
    per: usize,
    range: Range<usize>,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let (k, p, len) = (taps(g), g.positions(), g.input_len());
    let mut start = range.start;
    while start < range.end {
        let s = per.min(range.end - start);
        let n = s * p;
        let (col, rest) = scratch.split_at_mut(k * n);
        let product = &mut rest[..filters * n];
        for i in 0..s {
            im2col(g, &x[(start + i) * len..][..len], col, n, i * p);
        }
        matmul(filters, n, k, product, n, false, (w, k, 1), (col, n, 1));
        for i in 0..s {
            let sample = &mut out[(start - range.start + i) * filters * p..][..filters * p];
            for (f, o) in sample.chunks_exact_mut(p).enumerate() {
                o.copy_from_slice(&product[f * n + i * p..][..p]);
            }
        }
        start += s;
    }
}

/// The input gradients of samples `range` (`out` holds their rows), chunk by chunk.
#[allow(clippy::too_many_arguments)]
fn grad_input(
    g: &Window,
    dy: &[f32],
    w: &[f32],
    filters: usize,
    per: usize,
    range: Range<usize>,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let (k, p, len) = (taps(g), g.positions(), g.input_len());
    let mut start = range.start;
    while start < range.end {
        let s = per.min(range.end - start);
        let n = s * p;
        let (col, rest) = scratch.split_at_mut(k * n);
        let gathered = &mut rest[..filters * n];
        for i in 0..s {
            let d = &dy[(start + i) * filters * p..][..filters * p];
            for (f, d) in d.chunks_exact(p).enumerate() {
                gathered[f * n + i * p..][..p].copy_from_slice(d);
            }
        }
        // W^T: element (tap r, filter f) is w[f * k + r].
        matmul(k, n, filters, col, n, false, (w, 1, k), (gathered, n, 1));
        for i in 0..s {
            let dx = &mut out[(start - range.start + i) * len..][..len];
            dx.fill(0.0);
            col2im(g, col, n, i * p, dx);
        }
        start += s;
    }
}

/// The gradient of every filter over samples `samples` (`out`, `[filters, taps]`), summed over
/// their chunks in order.
#[allow(clippy::too_many_arguments)]
fn grad_weight(
    g: &Window,
    x: &[f32],
    dy: &[f32],
    filters: usize,
    per: usize,
    samples: Range<usize>,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let (k, p, len) = (taps(g), g.positions(), g.input_len());
    let out = &mut out[..filters * k];
    if samples.is_empty() {
        out.fill(0.0);
    }
    let mut start = samples.start;
    while start < samples.end {
        let s = per.min(samples.end - start);
        let n = s * p;
        let (col, rest) = scratch.split_at_mut(k * n);
        for i in 0..s {
            im2col(g, &x[(start + i) * len..][..len], col, n, i * p);
        }
        let accumulate = start > samples.start;
        if s == 1 {
            // One sample's gradient is already `[filters, positions]`.
            let d = &dy[start * filters * p..][..filters * p];
            matmul(filters, k, n, out, k, accumulate, (d, n, 1), (col, 1, n));
        } else {
            let gathered = &mut rest[..filters * n];
            for i in 0..s {
                let d = &dy[(start + i) * filters * p..][..filters * p];
                for (f, d) in d.chunks_exact(p).enumerate() {
                    gathered[f * n + i * p..][..p].copy_from_slice(d);
                }
            }
            // col^T: element (column j, tap r) is col[r * n + j].
            matmul(filters, k, n, out, k, accumulate, (gathered, n, 1), (col, 1, n));
        }
        start += s;
    }
}

/// The output columns `lo..hi` whose window column `kx` falls inside the image.
fn columns_inside(g: &Window, kx: usize) -> (usize, usize) {
    let (stride, pad) = (g.stride_w, g.pad_left);
    let lo = if kx >= pad { 0 } else { (pad - kx).div_ceil(stride) };
    // Column ox reads input column ox * stride + kx - pad, inside while below the width.
    let hi = (g.width + pad)
        .checked_sub(kx)
        .map_or(0, |room| room.div_ceil(stride))
        .min(g.out_w);
    (lo.min(hi), hi)
}

/// Writes one sample's taps into columns `offset..offset + positions` of `col` (row length
/// `ld`): row `(c * kernel_h + ky) * kernel_w + kx`, column `oy * out_w + ox` holds the input at
/// `(c, oy * stride_h + ky - pad_top, ox * stride_w + kx - pad_left)`, or 0 on padding.
fn im2col(g: &Window, sample: &[f32], col: &mut [f32], ld: usize, offset: usize) {
    let (plane, p) = (g.height * g.width, g.positions());
    for c in 0..g.channels {
        let image = &sample[c * plane..][..plane];
        for ky in 0..g.kernel_h {
            for kx in 0..g.kernel_w {
                let r = (c * g.kernel_h + ky) * g.kernel_w + kx;
                let (lo, hi) = columns_inside(g, kx);
                for (oy, dst) in col[r * ld + offset..][..p].chunks_exact_mut(g.out_w).enumerate() {
                    let Some(iy) = g.input_y(oy, ky) else {
                        dst.fill(0.0);
                        continue;
                    };
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if lo < hi {
                        let src = &image[iy * g.width..][..g.width];
                        let first = lo * g.stride_w + kx - g.pad_left;
                        if g.stride_w == 1 {
                            dst[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
                        } else {
                            for (d, &s) in dst[lo..hi].iter_mut().zip(src[first..].iter().step_by(g.stride_w)) {
                                *d = s;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds columns `offset..offset + positions` of `col` to the pixels
/// their taps read, in `dx` (one sample).
fn col2im(g: &Window, col: &[f32], ld: usize, offset: usize, dx: &mut [f32]) {
    let (plane, p) = (g.height * g.width, g.positions());
    for c in 0..g.channels {
        let image = &mut dx[c * plane..][..plane];
        for ky in 0..g.kernel_h {
            for kx in 0..g.kernel_w {
                let r = (c * g.kernel_h + ky) * g.kernel_w + kx;
                let (lo, hi) = columns_inside(g, kx);
                if lo == hi {
                    continue;
                }
                for (oy, src) in col[r * ld + offset..][..p].chunks_exact(g.out_w).enumerate() {
                    let Some(iy) = g.input_y(oy, ky) else { continue };
                    let dst = &mut image[iy * g.width..][..g.width];
                    let first = lo * g.stride_w + kx - g.pad_left;
                    if g.stride_w == 1 {
                        for (d, &s) in dst[first..first + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *d += s;
                        }
                    } else {
                        for (d, &s) in dst[first..].iter_mut().step_by(g.stride_w).zip(&src[lo..hi]) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }
}

/// `dst[m x n] = lhs[m x k] rhs[k x n]` (added to `dst` when `accumulate`), through `gemm`.
/// `dst` is row-major with row length `dst_rs`; each operand is `(slice, row stride, column
/// stride)`.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    (lhs, lhs_rs, lhs_cs): (&[f32], usize, usize),
    (rhs, rhs_rs, rhs_cs): (&[f32], usize, usize),
) {
    // Every product here has a tap, a filter and a position at least.
    debug_assert!(m > 0 && n > 0 && k > 0, "an empty convolution product");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        last(m, n, dst_rs, 1) < dst.len()
            && last(m, k, lhs_rs, lhs_cs) < lhs.len()
            && last(k, n, rhs_rs, rhs_cs) < rhs.len(),
        "a convolution's product addresses its operands only"
    );
    // SAFETY: the assertion above: every element the sizes and strides address lies inside its
    // slice; `dst` is borrowed mutably, so it overlaps neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
