//! Max and average pooling over NCHW images, channel by channel, and their gradients.
//!
//! Padding never takes part: a max window's winner and an average window's count are over its
//! taps inside the image (PyTorch's `count_include_pad = False`). Global average pooling is
//! [`PoolOp::AvgPool`] with [`Window::global`].

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, Op, ShapeCx, cast};
use crate::ir::{Dim, Shape, Window};
use ndarray::{Array2, ArrayView1};

/// The pooling ops.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolOp {
    /// The largest in-image value of each window: `[batch, channels, out_h, out_w]`.
    MaxPool {
        /// Images `[batch, channels * height * width]`.
        x: NodeId,
        /// The geometry.
        g: Window,
    },
    /// Max pooling backward: `[batch, channels, height, width]`, each window's gradient sent to
    /// its winner (recomputed from `x`; the first of equal values in scan order), summed where
    /// windows overlap.
    MaxPoolGrad {
        /// The forward pooling's input.
        x: NodeId,
        /// The output's gradient.
        dy: NodeId,
        /// The forward pooling's geometry.
        g: Window,
    },
    /// The mean of each window's in-image values: `[batch, channels, out_h, out_w]`.
    AvgPool {
        /// Images.
        x: NodeId,
        /// The geometry.
        g: Window,
    },
    /// Average pooling backward: `[batch, channels, height, width]`, each window's gradient
    /// shared equally by its in-image taps, summed where windows overlap.
    AvgPoolGrad {
        /// The output's gradient.
        dy: NodeId,
        /// The forward pooling's geometry.
        g: Window,
    },
}

/// The shape of an image batch with `rows` samples of `c x h x w`.
fn images(rows: Dim, c: usize, h: usize, w: usize) -> Shape {
    Shape::new(&[rows, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)])
}

/// Column of output value `(c, oy, ox)` in a sample row.
fn output(g: &Window, c: usize, oy: usize, ox: usize) -> usize {
    (c * g.out_h + oy) * g.out_w + ox
}

/// The columns (in a sample row) of the in-image taps of channel `c`'s window at `(oy, ox)`, in
/// scan order: `ky` outer, `kx` inner.
fn taps(g: &Window, c: usize, oy: usize, ox: usize) -> impl Iterator<Item = usize> + '_ {
    (0..g.kernel_h)
        .filter_map(move |ky| g.input_y(oy, ky))
        .flat_map(move |iy| {
            (0..g.kernel_w)
                .filter_map(move |kx| g.input_x(ox, kx))
                .map(move |ix| (c * g.height + iy) * g.width + ix)
        })
}

/// The column of the winner of a max window in `sample`: the first of the largest values in
/// scan order. `None` only for a window with no tap inside the image, which the checker never
/// allows.
fn winner<F: Float>(sample: ArrayView1<F>, g: &Window, c: usize, oy: usize, ox: usize) -> Option<usize> {
    let mut best: Option<usize> = None;
    for i in taps(g, c, oy, ox) {
        if best.is_none_or(|b| sample[i] > sample[b]) {
            best = Some(i);
        }
    }
    debug_assert!(best.is_some(), "every pooling window holds an in-image tap: {g:?}");
    best
}

/// Calls `visit(channel, oy, ox)` for every output position of one sample.
fn for_each_window(g: &Window, mut visit: impl FnMut(usize, usize, usize)) {
    for c in 0..g.channels {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                visit(c, oy, ox);
            }
        }
    }
}

impl Family for PoolOp {
    fn inputs(&self) -> Vec<NodeId> {
        match *self {
            PoolOp::MaxPool { x, .. } | PoolOp::AvgPool { x, .. } => vec![x],
            PoolOp::MaxPoolGrad { x, dy, .. } => vec![x, dy],
            PoolOp::AvgPoolGrad { dy, .. } => vec![dy],
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match *self {
            PoolOp::MaxPool { x, g } => PoolOp::MaxPool { x: f(x), g },
            PoolOp::MaxPoolGrad { x, dy, g } => PoolOp::MaxPoolGrad { x: f(x), dy: f(dy), g },
            PoolOp::AvgPool { x, g } => PoolOp::AvgPool { x: f(x), g },
            PoolOp::AvgPoolGrad { dy, g } => PoolOp::AvgPoolGrad { dy: f(dy), g },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            PoolOp::MaxPool { .. } => "maxpool",
            PoolOp::MaxPoolGrad { .. } => "maxpool_grad",
            PoolOp::AvgPool { .. } => "avgpool",
            PoolOp::AvgPoolGrad { .. } => "avgpool_grad",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            PoolOp::MaxPool { x, g } | PoolOp::AvgPool { x, g } => {
                images(cx.of(x).rows(), g.channels, g.out_h, g.out_w)
            }
            PoolOp::MaxPoolGrad { dy, g, .. } | PoolOp::AvgPoolGrad { dy, g } => {
                images(cx.of(dy).rows(), g.channels, g.height, g.width)
            }
        }
    }

    fn fusion(&self) -> Fusion {
        Fusion::Kernel
    }

    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        match *self {
            PoolOp::MaxPool { x, ref g } => {
                let x = cx.value(x);
                debug_assert_eq!(x.ncols(), g.input_len());
                let mut out = Array2::zeros((x.nrows(), g.channels * g.positions()));
                for b in 0..x.nrows() {
                    let sample = x.row(b);
                    for_each_window(g, |c, oy, ox| {
                        if let Some(i) = winner(sample, g, c, oy, ox) {
                            out[[b, output(g, c, oy, ox)]] = sample[i];
                        }
                    });
                }
                out
            }
            PoolOp::MaxPoolGrad { x, dy, ref g } => {
                let (x, dy) = (cx.value(x), cx.value(dy));
                debug_assert_eq!(dy.ncols(), g.channels * g.positions());
                let mut dx = Array2::zeros((x.nrows(), g.input_len()));
                for b in 0..x.nrows() {
                    let sample = x.row(b);
                    for_each_window(g, |c, oy, ox| {
                        if let Some(i) = winner(sample, g, c, oy, ox) {
                            dx[[b, i]] += dy[[b, output(g, c, oy, ox)]];
                        }
                    });
                }
                dx
            }
            PoolOp::AvgPool { x, ref g } => {
                let x = cx.value(x);
                debug_assert_eq!(x.ncols(), g.input_len());
                let mut out = Array2::zeros((x.nrows(), g.channels * g.positions()));
                for b in 0..x.nrows() {
                    for_each_window(g, |c, oy, ox| {
                        let (mut sum, mut count) = (F::zero(), 0usize);
                        for i in taps(g, c, oy, ox) {
                            sum += x[[b, i]];
                            count += 1;
                        }
                        debug_assert!(count > 0, "every pooling window holds an in-image tap: {g:?}");
                        out[[b, output(g, c, oy, ox)]] = sum / cast(count.max(1) as f64);
                    });
                }
                out
            }
            PoolOp::AvgPoolGrad { dy, ref g } => {
                let dy = cx.value(dy);
                debug_assert_eq!(dy.ncols(), g.channels * g.positions());
                let mut dx = Array2::zeros((dy.nrows(), g.input_len()));
                for b in 0..dy.nrows() {
                    for_each_window(g, |c, oy, ox| {
                        let count = taps(g, c, oy, ox).count();
                        let share = dy[[b, output(g, c, oy, ox)]] / cast(count.max(1) as f64);
                        for i in taps(g, c, oy, ox) {
                            dx[[b, i]] += share;
                        }
                    });
                }
                dx
            }
        }
    }

    fn differentiate(&self, _node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx) {
        let dy = dy.expect("a pooling is never the loss");
        match *self {
            PoolOp::MaxPool { x, g } => {
                let dx = cx.add(Op::Pool(PoolOp::MaxPoolGrad { x, dy, g }));
                cx.accumulate(x, dx);
            }
            PoolOp::AvgPool { x, g } => {
                let dx = cx.add(Op::Pool(PoolOp::AvgPoolGrad { dy, g }));
                cx.accumulate(x, dx);
            }
            ref backward => unreachable!("{} is a backward op", backward.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Padding;
    use crate::ops::testing::{TestGraph, image, max_difference};

    fn pooled(t: &mut TestGraph, x: Array2<f64>, g: Window, max: bool) -> (NodeId, NodeId) {
        let x = t.param(image(g.channels, g.height, g.width), x);
        let y = t.add(Op::Pool(if max {
            PoolOp::MaxPool { x, g }
        } else {
            PoolOp::AvgPool { x, g }
        }));
        (x, y)
    }

    #[test]
    fn maxpool_of_a_known_image() {
        // One 4x4 channel, 2x2 windows, stride 2; then 3x3 windows, stride 1, padding 1.
        #[rustfmt::skip]
        let pixels = [
            1.0, 5.0, -2.0, 0.0,
            3.0, 2.0, -1.0, -3.0,
            -4.0, 0.5, 7.0, 7.0,
            -5.0, -6.0, 7.0, 1.0,
        ];
        let x = Array2::from_shape_vec((1, 16), pixels.to_vec()).expect("16 values");
        let mut t = TestGraph::new(0);
        let g = Window::new(1, 4, 4, 2, 2, Padding::Valid).expect("fits");
        let (_, y) = pooled(&mut t, x.clone(), g, true);
        assert_eq!(t.nodes[y].shape, Shape::per_sample(&[1, 2, 2]));
        assert_eq!(t.value(y).iter().copied().collect::<Vec<_>>(), [5.0, 0.0, 0.5, 7.0]);

        let g = Window::new(1, 4, 4, 3, 1, Padding::Explicit(1)).expect("fits");
        let (xn, y) = pooled(&mut t, x, g, true);
        #[rustfmt::skip]
        let expected = [
            5.0, 5.0, 5.0, 0.0,
            5.0, 7.0, 7.0, 7.0,
            3.0, 7.0, 7.0, 7.0,
            0.5, 7.0, 7.0, 7.0,
        ];
        assert_eq!(t.value(y).iter().copied().collect::<Vec<_>>(), expected);

        // Ties go to the first in scan order: the 7 at (2, 2) takes every window's gradient
        // that its equals at (2, 3) and (3, 2) share.
        let dy = t.constant(t.nodes[y].shape, Array2::ones((1, 16)));
        let grads = t.differentiate(y, dy);
        let dx = t.value(grads[&xn]);
        #[rustfmt::skip]
        let routed = [
            0.0, 4.0, 0.0, 1.0,
            1.0, 0.0, 0.0, 0.0,
            0.0, 1.0, 9.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(dx.iter().copied().collect::<Vec<_>>(), routed);
    }

    #[test]
    fn padding_never_wins_a_max_window() {
        let x = Array2::from_elem((2, 2 * 9), -3.0);
        let mut t = TestGraph::new(0);
        let g = Window::new(2, 3, 3, 2, 2, Padding::Same).expect("fits");
        let (_, y) = pooled(&mut t, x, g, true);
        assert!(t.value(y).iter().all(|&v| v == -3.0));
    }

    #[test]
    fn avgpool_of_a_constant_is_the_constant() {
        for (g, c) in [
            (Window::new(3, 5, 7, 3, 2, Padding::Same).expect("fits"), 2.5),
            (Window::new(2, 5, 5, 3, 1, Padding::Explicit(1)).expect("fits"), -1.0),
            (Window::global(4, 3, 5), 0.75),
        ] {
            let mut t = TestGraph::new(0);
            let (_, y) = pooled(&mut t, Array2::from_elem((3, g.input_len()), c), g, false);
            let out = t.value(y);
            assert_eq!(out.dim(), (3, g.channels * g.positions()));
            assert!(out.iter().all(|&v| (v - c).abs() < 1e-15), "{g:?}");
        }
    }

    #[test]
    fn global_average_pooling_is_the_channel_mean() {
        let mut t = TestGraph::new(5);
        let g = Window::global(3, 4, 5);
        let xv = t.random(2, g.input_len());
        let (_, y) = pooled(&mut t, xv.clone(), g, false);
        assert_eq!(t.nodes[y].shape, Shape::per_sample(&[3, 1, 1]));
        let expected = Array2::from_shape_fn((2, 3), |(b, c)| {
            xv.row(b).iter().skip(c * 20).take(20).sum::<f64>() / 20.0
        });
        assert!(max_difference(&t.value(y), &expected) < 1e-14);
    }

    #[test]
    fn pooling_gradients_match_finite_differences() {
        let windows = [
            // Non-overlapping.
            Window::new(2, 4, 6, 2, 2, Padding::Valid).expect("fits"),
            // Overlapping, with padding (symmetric and same-style asymmetric).
            Window::new(1, 5, 7, 3, 1, Padding::Explicit(1)).expect("fits"),
            Window::new(2, 5, 4, 3, 2, Padding::Same).expect("fits"),
            Window::new(1, 6, 6, 2, 1, Padding::Same).expect("fits"),
            // Floor rounding drops the last row and column.
            Window::new(2, 5, 5, 2, 2, Padding::Valid).expect("fits"),
            Window::global(3, 3, 4),
        ];
        let mut checked = 0;
        for (seed, g) in windows.into_iter().enumerate() {
            for (batch, max) in [(1, true), (3, false), (3, true)] {
                let mut t = TestGraph::new(seed as u64);
                let xv = t.random(batch, g.input_len());
                let (x, y) = pooled(&mut t, xv, g, max);
                checked += t.check_gradients(y, &[x]);
            }
        }
        assert!(checked > 1000, "{checked} elements checked");
    }
}
