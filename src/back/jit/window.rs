//! Max and average pooling and their gradients, sample by sample, repeating `ops::pool`'s
//! arithmetic in its order: a max window's winner is its first largest tap in scan order (`ky`
//! outer, `kx` inner), recomputed from the input for the gradient; an average divides by the
//! window's taps inside the image; gradients are added to the input in window order. So these
//! agree with the interpreter bit for bit. Samples are independent: split by rows.

use super::nodes::{Cx, by_rows};
use crate::ir::Window;
use crate::ops::PoolOp;

/// The input positions `start..end` along one axis that window position `o` covers inside the
/// image (`size` positions, `pad` of padding before).
fn inside(o: usize, stride: usize, pad: usize, kernel: usize, size: usize) -> (usize, usize) {
    let first = o * stride;
    let start = first.max(pad) - pad;
    let end = (first + kernel).min(size + pad).saturating_sub(pad);
    (start, end.max(start))
}

/// Where each window of a channel falls: per output row its input rows `y0..y1`, per output
/// column its input columns `x0..x1` (taps inside the image only).
struct Spans {
    rows: Vec<(usize, usize)>,
    cols: Vec<(usize, usize)>,
    width: usize,
}

impl Spans {
    fn new(g: &Window) -> Spans {
        Spans {
            rows: (0..g.out_h)
                .map(|oy| inside(oy, g.stride_h, g.pad_top, g.kernel_h, g.height))
                .collect(),
            cols: (0..g.out_w)
                .map(|ox| inside(ox, g.stride_w, g.pad_left, g.kernel_w, g.width))
                .collect(),
            width: g.width,
        }
    }

    /// Calls `visit(output position, rows, columns)` for each window, in output order.
    #[inline(always)]
    fn for_each(&self, mut visit: impl FnMut(usize, (usize, usize), (usize, usize))) {
        for (oy, &ys) in self.rows.iter().enumerate() {
            for (ox, &xs) in self.cols.iter().enumerate() {
                visit(oy * self.cols.len() + ox, ys, xs);
            }
        }
    }

    /// The index (in the channel's image) of a max window's winner, the first of its largest
    /// values in scan order, and that value; `None` for a window with no tap in the image.
    #[inline(always)]
    fn winner(&self, image: &[f32], (y0, y1): (usize, usize), (x0, x1): (usize, usize)) -> Option<(usize, f32)> {
        if y0 == y1 || x0 == x1 {
            return None;
        }
        let mut best = (y0 * self.width + x0, image[y0 * self.width + x0]);
        for iy in y0..y1 {
            let row = iy * self.width;
            for (ix, &v) in (x0..x1).zip(&image[row + x0..row + x1]) {
                if v > best.1 {
                    best = (row + ix, v);
                }
            }
        }
        Some(best)
    }
}

/// Runs a pooling op into `out`.
pub(super) fn pool(cx: &Cx, op: &PoolOp, out: &mut [f32]) {
    match *op {
        PoolOp::MaxPool { x, ref g } if pairs(g) => {
            let x = cx.value(x);
            per_sample(cx, g, out, g.positions(), &|_, i, o| {
                let image = &x[i..][..g.height * g.width];
                for (oy, o) in o.chunks_exact_mut(g.out_w).enumerate() {
                    let (a, b) = (&image[2 * oy * g.width..], &image[(2 * oy + 1) * g.width..]);
                    for (ox, o) in o.iter_mut().enumerate() {
                        *o = winner_of_four([a[2 * ox], a[2 * ox + 1], b[2 * ox], b[2 * ox + 1]]).1;
                    }
                }
            });
        }
        PoolOp::MaxPoolGrad { x, dy, ref g } if pairs(g) => {
            let (x, dy) = (cx.value(x), cx.value(dy));
            let (p, width) = (g.positions(), g.width);
            per_sample(cx, g, out, g.height * width, &|c_at, i, dx| {
                let image = &x[i..][..g.height * width];
                let d = &dy[c_at * p..][..p];
                dx.fill(0.0);
                for (oy, d) in d.chunks_exact(g.out_w).enumerate() {
                    let (top, bottom) = (2 * oy * width, (2 * oy + 1) * width);
                    for (ox, &d) in d.iter().enumerate() {
                        let (a, b) = (top + 2 * ox, bottom + 2 * ox);
                        let taps = [a, a + 1, b, b + 1];
                        let (w, _) = winner_of_four(taps.map(|t| image[t]));
                        dx[taps[w]] += d;
                    }
                }
            });
        }
        PoolOp::MaxPool { x, ref g } => {
            let (x, spans) = (cx.value(x), Spans::new(g));
            per_sample(cx, g, out, g.positions(), &|_, i, o| {
                let image = &x[i..][..g.height * g.width];
                spans.for_each(|at, ys, xs| {
                    o[at] = spans.winner(image, ys, xs).map_or(0.0, |(_, v)| v);
                });
            });
        }
        PoolOp::MaxPoolGrad { x, dy, ref g } => {
            let (x, dy, spans) = (cx.value(x), cx.value(dy), Spans::new(g));
            let p = g.positions();
            per_sample(cx, g, out, g.height * g.width, &|c_at, i, dx| {
                let image = &x[i..][..g.height * g.width];
                let d = &dy[c_at * p..][..p];
                dx.fill(0.0);
                spans.for_each(|at, ys, xs| {
                    if let Some((w, _)) = spans.winner(image, ys, xs) {
                        dx[w] += d[at];
                    }
                });
            });
        }
        PoolOp::AvgPool { x, ref g } => {
            let (x, spans) = (cx.value(x), Spans::new(g));
            per_sample(cx, g, out, g.positions(), &|_, i, o| {
                let image = &x[i..][..g.height * g.width];
                spans.for_each(|at, (y0, y1), (x0, x1)| {
                    let mut sum = 0.0f32;
                    for iy in y0..y1 {
                        for &v in &image[iy * g.width + x0..iy * g.width + x1] {
                            sum += v;
                        }
                    }
                    let count = (y1 - y0) * (x1 - x0);
                    o[at] = sum / count.max(1) as f32;
                });
            });
        }
        PoolOp::AvgPoolGrad { dy, ref g } => {
            let (dy, spans) = (cx.value(dy), Spans::new(g));
            let p = g.positions();
            per_sample(cx, g, out, g.height * g.width, &|c_at, _, dx| {
                let d = &dy[c_at * p..][..p];
                dx.fill(0.0);
                spans.for_each(|at, (y0, y1), (x0, x1)| {
                    let count = (y1 - y0) * (x1 - x0);
                    let share = d[at] / count.max(1) as f32;
                    for iy in y0..y1 {
                        for v in &mut dx[iy * g.width + x0..iy * g.width + x1] {
                            *v += share;
                        }
                    }
                });
            });
        }
    }
}

/// Whether a pooling's windows are 2x2 with stride 2 and no padding, tiling the image (the
/// common `maxpool 2`): such windows take the fast path, with the same winners.
fn pairs(g: &Window) -> bool {
    (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) == (2, 2, 2, 2)
        && (g.pad_top, g.pad_left) == (0, 0)
        && 2 * g.out_h <= g.height
        && 2 * g.out_w <= g.width
}

/// The first largest of a 2x2 window's taps in scan order (`v > best`, as [`Spans::winner`]):
/// its index among the four and its value.
#[inline(always)]
fn winner_of_four(v: [f32; 4]) -> (usize, f32) {
    let mut best = (0, v[0]);
    for (t, &v) in v.iter().enumerate().skip(1) {
        if v > best.1 {
            best = (t, v);
        }
    }
    best
}

/// Runs `work(c_at, i, part)` for every channel of every sample of the batch: `c_at` numbers the
/// channel across the batch (`sample * channels + c`), `i` is where the channel's image starts in
/// the input, `part` is its `out_len` values of `out`.
fn per_sample(cx: &Cx, g: &Window, out: &mut [f32], out_len: usize, work: &(dyn Fn(usize, usize, &mut [f32]) + Sync)) {
    let per_row = g.channels * out_len;
    let rows = out.len() / per_row.max(1);
    by_rows(cx.pair, rows, out, g.input_len(), &|range, out| {
        for (part, c_at) in out.chunks_exact_mut(out_len).zip(range.start * g.channels..) {
            work(c_at, c_at * g.height * g.width, part);
        }
    });
}
