//! Batch normalization and its gradients, repeating `ops::norm`'s arithmetic in its order:
//! statistics and gradient sums per channel in `f64` (split between the cores by channels),
//! the elementwise parts as one per-channel multiply-add in `f32` (split by rows). So these agree with the
//! interpreter bit for bit.

use super::nodes::{Cx, by_rows};
use super::split::{PARALLEL_MAP, halves};
use crate::graph::NodeId;
use crate::ops::norm::{block_sum, block_sum2, gradient_affine, normalize_affine};
use crate::ops::{NormOp, NormParam, RunningKind};
use std::collections::HashMap;

/// Per channel `(sum(dy), sum(dy * xhat))` of a normalization's gradient, by `(x, stats, dy)`:
/// its input gradient and both parameter gradients need them, so they are summed once per
/// piece (the engine clears this at the start of every run of steps).
pub(super) type GradientSums = HashMap<(NodeId, NodeId, NodeId), Vec<(f64, f64)>>;

/// Runs a normalization op into `out`.
pub(super) fn run(cx: &Cx, op: &NormOp, out: &mut [f32], training: bool, sums: &mut GradientSums) {
    match *op {
        NormOp::BatchStats { x, channels, spatial } => {
            let x = cx.value(x);
            let moments = per_channel(cx, channels, x.len(), &|c| moments(x, channels, spatial, c));
            for (c, (mean, var)) in moments.into_iter().enumerate() {
                out[c] = mean as f32;
                out[channels + c] = var as f32;
            }
        }
        NormOp::Normalize {
            x,
            stats,
            mean,
            var,
            scale,
            shift,
            eps,
            channels,
            spatial,
        } => {
            let normal = if training {
                centre_and_inverse_std(cx.value(stats), channels, eps)
            } else {
                let (mean, var) = (cx.value(mean), cx.value(var));
                (0..channels)
                    .map(|c| (mean[c] as f64, 1.0 / (var[c] as f64 + eps).sqrt()))
                    .collect()
            };
            let (x, scale, shift) = (cx.value(x), cx.value(scale), cx.value(shift));
            let per_channel: Vec<(f32, f32)> = normal
                .iter()
                .enumerate()
                .map(|(c, &(mean, inv_std))| {
                    let (a, b) = normalize_affine(mean, inv_std, scale[c] as f64, shift[c] as f64);
                    (a as f32, b as f32)
                })
                .collect();
            let cols = channels * spatial;
            by_rows(cx.pair, x.len() / cols.max(1), out, cols, &|range, out| {
                for (o, x) in out
                    .chunks_exact_mut(cols)
                    .zip(x[range.start * cols..].chunks_exact(cols))
                {
                    for (c, &(a, b)) in per_channel.iter().enumerate() {
                        let block = c * spatial..(c + 1) * spatial;
                        for (o, &x) in o[block.clone()].iter_mut().zip(&x[block]) {
                            *o = x * a + b;
                        }
                    }
                }
            });
        }
        NormOp::NormalizeGrad {
            x,
            stats,
            scale,
            dy,
            eps,
            channels,
            spatial,
        } => {
            let normal = centre_and_inverse_std(cx.value(stats), channels, eps);
            let sums = gradient_sums(cx, sums, (x, stats, dy), &normal, spatial);
            let (x, dy, scale) = (cx.value(x), cx.value(dy), cx.value(scale));
            let cols = channels * spatial;
            let rows = x.len() / cols.max(1);
            let m = (rows * spatial) as f64;
            let per_channel: Vec<[f32; 3]> = (0..channels)
                .map(|c| gradient_affine(normal[c], sums[c], scale[c] as f64, m).map(|v| v as f32))
                .collect();
            by_rows(cx.pair, rows, out, cols, &|range, out| {
                let rows = out.chunks_exact_mut(cols);
                let inputs = x[range.start * cols..].chunks_exact(cols);
                for ((o, x), dy) in rows.zip(inputs).zip(dy[range.start * cols..].chunks_exact(cols)) {
                    for (c, &[a, k, b]) in per_channel.iter().enumerate() {
                        let block = c * spatial..(c + 1) * spatial;
                        let (o, x, dy) = (&mut o[block.clone()], &x[block.clone()], &dy[block]);
                        for ((o, &x), &dy) in o.iter_mut().zip(x).zip(dy) {
                            *o = dy * a + x * k + b;
                        }
                    }
                }
            });
        }
        NormOp::NormalizeParamGrad {
            x,
            stats,
            dy,
            eps,
            channels,
            spatial,
            of,
        } => {
            let normal = centre_and_inverse_std(cx.value(stats), channels, eps);
            let sums = gradient_sums(cx, sums, (x, stats, dy), &normal, spatial);
            for (o, &(sum_dy, sum_dy_xhat)) in out.iter_mut().zip(sums) {
                *o = match of {
                    NormParam::Scale => sum_dy_xhat,
                    NormParam::Shift => sum_dy,
                } as f32;
            }
        }
        NormOp::RunningStat {
            stats,
            x,
            of,
            channels,
            spatial,
        } => {
            let stats = cx.value(stats);
            let m = cx.rows_of(x) * spatial;
            // Bessel's correction, except for a single value (as the reference).
            let correction = if m > 1 { m as f64 / (m - 1) as f64 } else { 1.0 };
            for (c, o) in out.iter_mut().enumerate().take(channels) {
                *o = match of {
                    RunningKind::Mean => stats[c],
                    RunningKind::Var => (stats[channels + c] as f64 * correction) as f32,
                };
            }
        }
    }
}

/// `f(c)` for every channel, the channels split between the cores over enough `elements`
/// (each channel's value is computed the same way wherever it runs).
fn per_channel(cx: &Cx, channels: usize, elements: usize, f: &(dyn Fn(usize) -> (f64, f64) + Sync)) -> Vec<(f64, f64)> {
    let mut values = vec![(0.0, 0.0); channels];
    let fill = |(first, part): (usize, &mut [(f64, f64)])| {
        for (c, v) in (first..).zip(part.iter_mut()) {
            *v = f(c);
        }
    };
    if cx.pair.is_none() || channels < 2 || elements < PARALLEL_MAP {
        fill((0, &mut values));
    } else {
        let half = channels / 2;
        let (a, b) = values.split_at_mut(half);
        halves(cx.pair, (0, a), (half, b), &fill);
    }
    values
}

/// Channel `c`'s `(mean, biased variance)`, two passes in `f64`, summed as the reference
/// sums them ([`block_sum`]).
fn moments(x: &[f32], channels: usize, spatial: usize, c: usize) -> (f64, f64) {
    let count = (x.len() / (channels * spatial).max(1) * spatial) as f64;
    let blocks = || {
        x.chunks_exact(channels * spatial)
            .map(|row| &row[c * spatial..][..spatial])
    };
    let mean = blocks().map(|b| block_sum(b.len(), |j| b[j] as f64)).sum::<f64>() / count;
    let squares: f64 = blocks()
        .map(|b| {
            block_sum(b.len(), |j| {
                let v = b[j] as f64 - mean;
                v * v
            })
        })
        .sum();
    (mean, squares / count)
}

/// Per channel, `(mean, 1 / sqrt(var + eps))` from a `[2, channels]` statistics value.
fn centre_and_inverse_std(stats: &[f32], channels: usize, eps: f64) -> Vec<(f64, f64)> {
    (0..channels)
        .map(|c| (stats[c] as f64, 1.0 / (stats[channels + c] as f64 + eps).sqrt()))
        .collect()
}

/// The gradient sums of `(x, stats, dy)`, computed on first use in this piece.
fn gradient_sums<'s>(
    cx: &Cx,
    cache: &'s mut GradientSums,
    (x, stats, dy): (NodeId, NodeId, NodeId),
    normal: &[(f64, f64)],
    spatial: usize,
) -> &'s [(f64, f64)] {
    cache.entry((x, stats, dy)).or_insert_with(|| {
        let channels = normal.len();
        let (xv, dyv) = (cx.value(x), cx.value(dy));
        let cols = channels * spatial;
        per_channel(cx, channels, xv.len(), &|c| {
            let (mean, inv_std) = normal[c];
            let mut sums = (0.0, 0.0);
            for (x, dy) in xv.chunks_exact(cols).zip(dyv.chunks_exact(cols)) {
                let (x, dy) = (&x[c * spatial..][..spatial], &dy[c * spatial..][..spatial]);
                let (d, dx) = block_sum2(spatial, |j| {
                    let d = dy[j] as f64;
                    (d, d * (x[j] as f64 - mean) * inv_std)
                });
                sums.0 += d;
                sums.1 += dx;
            }
            sums
        })
    })
}
