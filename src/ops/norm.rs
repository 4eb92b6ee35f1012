//! Batch normalization over the channels of NCHW images (or the features of `[batch, features]`
//! rows, with one value per channel and sample), and its gradients.
//!
//! Channel `c` of a sample is the `spatial` columns starting at `c * spatial`; its statistics
//! are over the `M = batch * spatial` values of that channel in the batch. While training the
//! layer normalizes with the batch's statistics ([`NormOp::BatchStats`]) and its gradient
//! accounts for them ([`NormOp::NormalizeGrad`]); in evaluation it uses the running statistics,
//! parameters that [`super::UpdateOp::Average`] moves towards [`NormOp::RunningStat`] after each
//! step. Sums are accumulated in `f64` ([`block_sum`]), and each channel's normalization and
//! input gradient become per-channel coefficients in `f64` applied as one multiply-add per
//! element in the working type ([`normalize_affine`], [`gradient_affine`]).

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, Op, ShapeCx, cast, wide};
use crate::ir::Shape;
use ndarray::Array2;

/// Which parameter a [`NormOp::NormalizeParamGrad`] is the gradient of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormParam {
    /// The per-channel scale (gamma): `sum(dy * xhat)`.
    Scale,
    /// The per-channel shift (beta): `sum(dy)`.
    Shift,
}

/// Which running statistic a [`NormOp::RunningStat`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunningKind {
    /// The batch mean.
    Mean,
    /// The unbiased batch variance (the biased one when the batch has one value per channel).
    Var,
}

/// The batch-normalization ops. Every per-channel row is `[1, channels]`.
#[derive(Debug, Clone, PartialEq)]
pub enum NormOp {
    /// The batch statistics `[2, channels]`: row 0 the mean, row 1 the biased variance (divided
    /// by `M`). No gradient flows through it on its own: [`NormOp::NormalizeGrad`] accounts for
    /// it.
    BatchStats {
        /// Images `[batch, channels * spatial]`.
        x: NodeId,
        /// Channels.
        channels: usize,
        /// Values per channel and sample (`height * width`; 1 for features).
        spatial: usize,
    },
    /// `(x - mean_c) / sqrt(var_c + eps) * scale_c + shift_c`, with the batch statistics
    /// `stats` while training and the running `mean` and `var` in evaluation; shaped like `x`.
    Normalize {
        /// Images.
        x: NodeId,
        /// Their [`NormOp::BatchStats`].
        stats: NodeId,
        /// The running mean `[1, channels]`.
        mean: NodeId,
        /// The running variance `[1, channels]`.
        var: NodeId,
        /// The scale (gamma) `[1, channels]`.
        scale: NodeId,
        /// The shift (beta) `[1, channels]`.
        shift: NodeId,
        /// Added to the variance.
        eps: f64,
        /// Channels.
        channels: usize,
        /// Values per channel and sample.
        spatial: usize,
    },
    /// The training-mode gradient to `x`, statistics included, per channel:
    /// `scale * inv_std / M * (M dy - sum(dy) - xhat sum(dy xhat))`.
    NormalizeGrad {
        /// The forward input.
        x: NodeId,
        /// Its batch statistics.
        stats: NodeId,
        /// The scale.
        scale: NodeId,
        /// The output's gradient.
        dy: NodeId,
        /// Added to the variance.
        eps: f64,
        /// Channels.
        channels: usize,
        /// Values per channel and sample.
        spatial: usize,
    },
    /// The gradient to the scale or the shift, `[1, channels]`.
    NormalizeParamGrad {
        /// The forward input.
        x: NodeId,
        /// Its batch statistics.
        stats: NodeId,
        /// The output's gradient.
        dy: NodeId,
        /// Added to the variance.
        eps: f64,
        /// Channels.
        channels: usize,
        /// Values per channel and sample.
        spatial: usize,
        /// Which parameter.
        of: NormParam,
    },
    /// What a running statistic moves towards, `[1, channels]`: the batch mean, or the unbiased
    /// batch variance `var * M / (M - 1)` (`M` from the rows of `x` when it runs). No gradient.
    RunningStat {
        /// The batch statistics.
        stats: NodeId,
        /// Their input (for `M`).
        x: NodeId,
        /// Which statistic.
        of: RunningKind,
        /// Channels.
        channels: usize,
        /// Values per channel and sample.
        spatial: usize,
    },
}

/// The sum of `f(j)` for `j` in `0..len`, as four interleaved partial sums (`j % 4`) added as
/// `(s0 + s1) + (s2 + s3)`: the order in which every backend sums one channel of one sample
/// (four independent additions at a time instead of a chain of `len`). A channel's total is the
/// sum of its samples' block sums, in sample order.
#[inline(always)]
pub fn block_sum(len: usize, f: impl Fn(usize) -> f64) -> f64 {
    let (s, _) = block_sum2(len, |j| (f(j), 0.0));
    s
}

/// Two [`block_sum`]s at once (the same order for each).
#[inline(always)]
pub fn block_sum2(len: usize, f: impl Fn(usize) -> (f64, f64)) -> (f64, f64) {
    let (mut a, mut b) = ([0.0f64; 4], [0.0f64; 4]);
    let full = len / 4 * 4;
    let mut j = 0;
    while j < full {
        for lane in 0..4 {
            let (u, v) = f(j + lane);
            a[lane] += u;
            b[lane] += v;
        }
        j += 4;
    }
    for (lane, j) in (full..len).enumerate() {
        let (u, v) = f(j);
        a[lane] += u;
        b[lane] += v;
    }
    ((a[0] + a[1]) + (a[2] + a[3]), (b[0] + b[1]) + (b[2] + b[3]))
}

/// A channel's normalization as one multiply-add, `y = x * a + b` with `a = scale * inv_std`,
/// `b = shift - mean * a` (computed in `f64`, applied in the working type by every backend).
pub fn normalize_affine(mean: f64, inv_std: f64, scale: f64, shift: f64) -> (f64, f64) {
    let a = scale * inv_std;
    (a, shift - mean * a)
}

/// A channel's input gradient `scale * inv_std / M * (M dy - sum(dy) - xhat sum(dy xhat))`
/// (with `xhat = (x - mean) inv_std`) as `dx = dy * a + x * k + b`: `[a, k, b]`, in `f64`.
pub fn gradient_affine((mean, inv_std): (f64, f64), (sum_dy, sum_dy_xhat): (f64, f64), scale: f64, m: f64) -> [f64; 3] {
    let g = scale * inv_std / m;
    let k = -g * inv_std * sum_dy_xhat;
    [g * m, k, -g * sum_dy - mean * k]
}

/// The `(mean, biased variance)` of every channel of `x`, in `f64` (two passes, each summed
/// with [`block_sum`]).
fn moments<F: Float>(x: &Array2<F>, channels: usize, spatial: usize) -> Vec<(f64, f64)> {
    debug_assert_eq!(x.ncols(), channels * spatial);
    let count = (x.nrows() * spatial) as f64;
    (0..channels)
        .map(|c| {
            let mut sum = 0.0;
            for row in x.rows() {
                sum += block_sum(spatial, |s| wide(row[c * spatial + s]));
            }
            let mean = sum / count;
            let mut squares = 0.0;
            for row in x.rows() {
                squares += block_sum(spatial, |s| {
                    let v = wide(row[c * spatial + s]) - mean;
                    v * v
                });
            }
            (mean, squares / count)
        })
        .collect()
}

/// Per channel, `(mean, 1 / sqrt(var + eps))` from a `[2, channels]` statistics value.
fn centre_and_inverse_std<F: Float>(stats: &Array2<F>, eps: f64) -> Vec<(f64, f64)> {
    (0..stats.ncols())
        .map(|c| (wide(stats[[0, c]]), 1.0 / (wide(stats[[1, c]]) + eps).sqrt()))
        .collect()
}

/// Per channel, `(sum(dy), sum(dy * xhat))` over the batch (with [`block_sum2`]).
fn gradient_sums<F: Float>(x: &Array2<F>, dy: &Array2<F>, normal: &[(f64, f64)], spatial: usize) -> Vec<(f64, f64)> {
    let mut sums = vec![(0.0, 0.0); normal.len()];
    for b in 0..x.nrows() {
        for (c, &(mean, inv_std)) in normal.iter().enumerate() {
            let (d, dx) = block_sum2(spatial, |s| {
                let j = c * spatial + s;
                let d = wide(dy[[b, j]]);
                (d, d * (wide(x[[b, j]]) - mean) * inv_std)
            });
            sums[c].0 += d;
            sums[c].1 += dx;
        }
    }
    sums
}

impl Family for NormOp {
    fn inputs(&self) -> Vec<NodeId> {
        match *self {
            NormOp::BatchStats { x, .. } => vec![x],
            NormOp::Normalize {
                x,
                stats,
                mean,
                var,
                scale,
                shift,
                ..
            } => vec![x, stats, mean, var, scale, shift],
            NormOp::NormalizeGrad {
                x, stats, scale, dy, ..
            } => vec![x, stats, scale, dy],
            NormOp::NormalizeParamGrad { x, stats, dy, .. } => vec![x, stats, dy],
            NormOp::RunningStat { stats, x, .. } => vec![stats, x],
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match *self {
            NormOp::BatchStats { x, channels, spatial } => NormOp::BatchStats {
                x: f(x),
                channels,
                spatial,
            },
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
            } => NormOp::Normalize {
                x: f(x),
                stats: f(stats),
                mean: f(mean),
                var: f(var),
                scale: f(scale),
                shift: f(shift),
                eps,
                channels,
                spatial,
            },
            NormOp::NormalizeGrad {
                x,
                stats,
                scale,
                dy,
                eps,
                channels,
                spatial,
            } => NormOp::NormalizeGrad {
                x: f(x),
                stats: f(stats),
                scale: f(scale),
                dy: f(dy),
                eps,
                channels,
                spatial,
            },
            NormOp::NormalizeParamGrad {
                x,
                stats,
                dy,
                eps,
                channels,
                spatial,
                of,
            } => NormOp::NormalizeParamGrad {
                x: f(x),
                stats: f(stats),
                dy: f(dy),
                eps,
                channels,
                spatial,
                of,
            },
            NormOp::RunningStat {
                stats,
                x,
                of,
                channels,
                spatial,
            } => NormOp::RunningStat {
                stats: f(stats),
                x: f(x),
                of,
                channels,
                spatial,
            },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            NormOp::BatchStats { .. } => "batch_stats",
            NormOp::Normalize { .. } => "batchnorm",
            NormOp::NormalizeGrad { .. } => "batchnorm_grad",
            NormOp::NormalizeParamGrad { .. } => "batchnorm_param_grad",
            NormOp::RunningStat { .. } => "running_stat",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            NormOp::BatchStats { channels, .. } => Shape::fixed(2, channels),
            NormOp::Normalize { x, .. } | NormOp::NormalizeGrad { x, .. } => cx.of(x),
            NormOp::NormalizeParamGrad { channels, .. } | NormOp::RunningStat { channels, .. } => {
                Shape::fixed(1, channels)
            }
        }
    }

    fn fusion(&self) -> Fusion {
        Fusion::Kernel
    }

    fn is_constant(&self) -> bool {
        matches!(self, NormOp::RunningStat { .. })
    }

    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        match *self {
            NormOp::BatchStats { x, channels, spatial } => {
                let m = moments(cx.value(x), channels, spatial);
                Array2::from_shape_fn((2, channels), |(r, c)| cast(if r == 0 { m[c].0 } else { m[c].1 }))
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
                let normal: Vec<(f64, f64)> = if cx.training {
                    centre_and_inverse_std(cx.value(stats), eps)
                } else {
                    let (mean, var) = (cx.value(mean), cx.value(var));
                    (0..channels)
                        .map(|c| (wide(mean[[0, c]]), 1.0 / (wide(var[[0, c]]) + eps).sqrt()))
                        .collect()
                };
                let (x, scale, shift) = (cx.value(x), cx.value(scale), cx.value(shift));
                let per_channel: Vec<(F, F)> = normal
                    .iter()
                    .enumerate()
                    .map(|(c, &(mean, inv_std))| {
                        let (a, b) = normalize_affine(mean, inv_std, wide(scale[[0, c]]), wide(shift[[0, c]]));
                        (cast(a), cast(b))
                    })
                    .collect();
                Array2::from_shape_fn(x.dim(), |(b, j)| {
                    let (a, shift) = per_channel[j / spatial];
                    x[[b, j]] * a + shift
                })
            }
            NormOp::NormalizeGrad {
                x,
                stats,
                scale,
                dy,
                eps,
                spatial,
                ..
            } => {
                let (x, dy, scale) = (cx.value(x), cx.value(dy), cx.value(scale));
                let normal = centre_and_inverse_std(cx.value(stats), eps);
                let sums = gradient_sums(x, dy, &normal, spatial);
                let m = (x.nrows() * spatial) as f64;
                let per_channel: Vec<[F; 3]> = (0..normal.len())
                    .map(|c| gradient_affine(normal[c], sums[c], wide(scale[[0, c]]), m).map(cast))
                    .collect();
                Array2::from_shape_fn(x.dim(), |(b, j)| {
                    let [a, k, shift] = per_channel[j / spatial];
                    dy[[b, j]] * a + x[[b, j]] * k + shift
                })
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
                let normal = centre_and_inverse_std(cx.value(stats), eps);
                let sums = gradient_sums(cx.value(x), cx.value(dy), &normal, spatial);
                Array2::from_shape_fn((1, channels), |(_, c)| {
                    cast(match of {
                        NormParam::Scale => sums[c].1,
                        NormParam::Shift => sums[c].0,
                    })
                })
            }
            NormOp::RunningStat {
                stats,
                x,
                of,
                channels,
                spatial,
            } => {
                let stats = cx.value(stats);
                let m = cx.value(x).nrows() * spatial;
                // Bessel's correction, except for a single value, whose unbiased variance is
                // undefined (0 / 0): the biased 0 is what it moves towards.
                let correction = if m > 1 { m as f64 / (m - 1) as f64 } else { 1.0 };
                Array2::from_shape_fn((1, channels), |(_, c)| match of {
                    RunningKind::Mean => stats[[0, c]],
                    RunningKind::Var => cast(wide(stats[[1, c]]) * correction),
                })
            }
        }
    }

    fn differentiate(&self, _node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx) {
        let dy = dy.expect("a normalization is never the loss");
        match *self {
            // Normalize's gradient to x includes the path through the statistics.
            NormOp::BatchStats { .. } | NormOp::RunningStat { .. } => {}
            NormOp::Normalize {
                x,
                stats,
                scale,
                shift,
                eps,
                channels,
                spatial,
                ..
            } => {
                if cx.needs(x) {
                    let dx = cx.add(Op::Norm(NormOp::NormalizeGrad {
                        x,
                        stats,
                        scale,
                        dy,
                        eps,
                        channels,
                        spatial,
                    }));
                    cx.accumulate(x, dx);
                }
                for (param, of) in [(scale, NormParam::Scale), (shift, NormParam::Shift)] {
                    if cx.needs(param) {
                        let d = cx.add(Op::Norm(NormOp::NormalizeParamGrad {
                            x,
                            stats,
                            dy,
                            eps,
                            channels,
                            spatial,
                            of,
                        }));
                        cx.accumulate(param, d);
                    }
                }
            }
            ref backward => unreachable!("{} is a backward op", backward.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{TestGraph, batch, fixed, image, max_difference};

    const EPS: f64 = 1e-5;

    /// Leaves and nodes of one batch normalization.
    struct Norm {
        x: NodeId,
        stats: NodeId,
        mean: NodeId,
        var: NodeId,
        scale: NodeId,
        shift: NodeId,
        y: NodeId,
    }

    /// A batch normalization of random `[rows, channels * spatial]` values (shifted and scaled
    /// per channel) with random parameters and running statistics.
    fn normalized(t: &mut TestGraph, rows: usize, channels: usize, spatial: usize, shape: Shape) -> Norm {
        let xv = Array2::from_shape_fn((rows, channels * spatial), |(_, j)| {
            let c = (j / spatial) as f64;
            t.rng.normal() * (1.0 + c) + 2.0 * c - 1.0
        });
        let x = t.param(shape, xv);
        let stats = t.add(Op::Norm(NormOp::BatchStats { x, channels, spatial }));
        let row = |t: &mut TestGraph, low: f64| {
            let v = Array2::from_shape_fn((1, channels), |_| low + t.rng.uniform());
            t.param(fixed(1, channels), v)
        };
        let (mean, var, scale, shift) = (row(t, -0.5), row(t, 0.5), row(t, 0.5), row(t, -0.5));
        let y = t.add(Op::Norm(NormOp::Normalize {
            x,
            stats,
            mean,
            var,
            scale,
            shift,
            eps: EPS,
            channels,
            spatial,
        }));
        Norm {
            x,
            stats,
            mean,
            var,
            scale,
            shift,
            y,
        }
    }

    /// Per channel `(mean, biased variance)` of a value, computed directly.
    fn channel_moments(v: &Array2<f64>, channels: usize, spatial: usize) -> Vec<(f64, f64)> {
        (0..channels)
            .map(|c| {
                let values: Vec<f64> = v
                    .rows()
                    .into_iter()
                    .flat_map(|r| r.iter().skip(c * spatial).take(spatial).copied().collect::<Vec<_>>())
                    .collect();
                let n = values.len() as f64;
                let mean = values.iter().sum::<f64>() / n;
                (mean, values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n)
            })
            .collect()
    }

    #[test]
    fn batch_statistics_are_the_mean_and_biased_variance() {
        let mut t = TestGraph::new(1);
        let n = normalized(&mut t, 3, 2, 6, image(2, 2, 3));
        let stats = t.value(n.stats);
        assert_eq!(t.nodes[n.stats].shape, Shape::fixed(2, 2));
        for (c, (mean, var)) in channel_moments(&t.value(n.x), 2, 6).into_iter().enumerate() {
            assert!((stats[[0, c]] - mean).abs() < 1e-12 && (stats[[1, c]] - var).abs() < 1e-12);
        }
    }

    #[test]
    fn training_normalizes_each_channel_to_mean_zero_and_variance_one() {
        for (rows, channels, spatial, shape) in [(4, 3, 10, image(3, 2, 5)), (5, 4, 1, batch(4))] {
            let mut t = TestGraph::new(2);
            let n = normalized(&mut t, rows, channels, spatial, shape);
            for (leaf, v) in [(n.scale, 1.0), (n.shift, 0.0)] {
                let Op::Param(p) = t.nodes[leaf].op else {
                    unreachable!("a parameter leaf")
                };
                t.params[p] = Array2::from_elem((1, channels), v);
            }
            let y = t.value(n.y);
            assert_eq!(t.nodes[n.y].shape, shape);
            for (mean, var) in channel_moments(&y, channels, spatial) {
                assert!(mean.abs() < 1e-12, "mean {mean}");
                // var / (var + eps) with var of order 1.
                assert!((var - 1.0).abs() < 1e-4, "variance {var}");
            }
        }
    }

    #[test]
    fn evaluation_uses_the_running_statistics() {
        let mut t = TestGraph::new(3);
        let (channels, spatial) = (2, 4);
        let n = normalized(&mut t, 3, channels, spatial, image(2, 2, 2));
        t.training = false;
        let y = t.value(n.y);
        let [x, mean, var, scale, shift] = [n.x, n.mean, n.var, n.scale, n.shift].map(|n| t.value(n));
        let expected = Array2::from_shape_fn(x.dim(), |(b, j)| {
            let c = j / spatial;
            (x[[b, j]] - mean[[0, c]]) / (var[[0, c]] + EPS).sqrt() * scale[[0, c]] + shift[[0, c]]
        });
        assert!(max_difference(&y, &expected) < 1e-12);
    }

    #[test]
    fn running_statistics_are_the_mean_and_the_unbiased_variance() {
        let mut t = TestGraph::new(4);
        let (channels, spatial) = (3, 2);
        let n = normalized(&mut t, 5, channels, spatial, image(3, 1, 2));
        let running = |t: &mut TestGraph, of| {
            t.add(Op::Norm(NormOp::RunningStat {
                stats: n.stats,
                x: n.x,
                of,
                channels,
                spatial,
            }))
        };
        let (mean, var) = (running(&mut t, RunningKind::Mean), running(&mut t, RunningKind::Var));
        assert_eq!(t.nodes[var].shape, Shape::fixed(1, 3));
        assert!(t.nodes[var].op.is_constant());
        let (mean, var) = (t.value(mean), t.value(var));
        for (c, (m, v)) in channel_moments(&t.value(n.x), channels, spatial)
            .into_iter()
            .enumerate()
        {
            assert!((mean[[0, c]] - m).abs() < 1e-12);
            assert!((var[[0, c]] - v * 10.0 / 9.0).abs() < 1e-12);
        }

        // One value per channel: the biased variance (0), not 0 / 0.
        let mut t = TestGraph::new(5);
        let x = t.param(
            batch(2),
            Array2::from_shape_vec((1, 2), vec![3.0, -1.0]).expect("2 values"),
        );
        let stats = t.add(Op::Norm(NormOp::BatchStats {
            x,
            channels: 2,
            spatial: 1,
        }));
        let var = t.add(Op::Norm(NormOp::RunningStat {
            stats,
            x,
            of: RunningKind::Var,
            channels: 2,
            spatial: 1,
        }));
        assert_eq!(t.value(var), Array2::<f64>::zeros((1, 2)));
    }

    #[test]
    fn batchnorm_gradients_match_finite_differences() {
        let cases = [
            (3, 2, 6, image(2, 2, 3)),
            (1, 3, 4, image(3, 2, 2)),
            (2, 1, 15, image(1, 3, 5)),
            (4, 3, 1, batch(3)),
            (7, 2, 1, batch(2)),
        ];
        let mut checked = 0;
        for (seed, (rows, channels, spatial, shape)) in cases.into_iter().enumerate() {
            let mut t = TestGraph::new(10 + seed as u64);
            let n = normalized(&mut t, rows, channels, spatial, shape);
            checked += t.check_gradients(n.y, &[n.x, n.scale, n.shift]);
        }
        assert!(checked > 100, "{checked} elements checked");
    }

    #[test]
    fn no_gradient_reaches_the_statistics() {
        let mut t = TestGraph::new(6);
        let n = normalized(&mut t, 3, 2, 3, image(2, 1, 3));
        let dyv = t.random(3, 6);
        let dy = t.constant(t.nodes[n.y].shape, dyv);
        let grads = t.differentiate(n.y, dy);
        for leaf in [n.stats, n.mean, n.var] {
            assert!(!grads.contains_key(&leaf), "{leaf:?} got a gradient");
        }
        for (leaf, shape) in [(n.x, image(2, 1, 3)), (n.scale, fixed(1, 2)), (n.shift, fixed(1, 2))] {
            assert_eq!(t.nodes[grads[&leaf]].shape, shape);
        }
    }
}
