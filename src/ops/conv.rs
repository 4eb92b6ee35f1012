//! Convolutions over NCHW images (cross-correlation, as every framework computes it) and their
//! gradients to the input and to the filters. The bias is a separate per-channel row.
//!
//! A batch of images is `[batch, channels * height * width]`, sample `b`, channel `c`, row `y`,
//! column `x` at `[b, (c * height + y) * width + x]`; filters are `[filters, channels * kernel_h *
//! kernel_w]`, PyTorch's `[out, in, kh, kw]` flattened row-major. Taps on padding read zero.

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, Op, ShapeCx};
use crate::ir::{Dim, Shape, Window};
use ndarray::Array2;

/// The convolution ops.
#[derive(Debug, Clone, PartialEq)]
pub enum ConvOp {
    /// `out[b, f, oy, ox] = sum over c, ky, kx of w[f, (c * kh + ky) * kw + kx] * x[b, c, iy, ix]`
    /// over the taps inside the image: `[batch, filters, out_h, out_w]`.
    Conv {
        /// Images `[batch, channels * height * width]`.
        x: NodeId,
        /// Filters `[filters, channels * kernel_h * kernel_w]`.
        w: NodeId,
        /// The geometry (`channels` are the input's).
        g: Window,
    },
    /// The gradient to the input: `[batch, channels, height, width]`, each output gradient sent
    /// back through the filter taps that produced it (summed where windows overlap).
    ConvGradInput {
        /// The output's gradient `[batch, filters * out_h * out_w]`.
        dy: NodeId,
        /// The filters.
        w: NodeId,
        /// The forward convolution's geometry.
        g: Window,
    },
    /// The gradient to the filters, summed over the batch: `[filters, channels * kernel_h *
    /// kernel_w]`.
    ConvGradWeight {
        /// The forward convolution's input.
        x: NodeId,
        /// The output's gradient.
        dy: NodeId,
        /// The forward convolution's geometry.
        g: Window,
    },
}

/// A fixed dimension's size (filter counts are the rows of a parameter).
fn fixed(d: Dim) -> usize {
    match d {
        Dim::Fixed(n) => n,
        Dim::Batch => unreachable!("filters are parameters, whose rows are fixed"),
    }
}

/// Column of filter tap `(c, ky, kx)` in a filter row.
fn tap(g: &Window, c: usize, ky: usize, kx: usize) -> usize {
    (c * g.kernel_h + ky) * g.kernel_w + kx
}

/// Column of input value `(c, y, x)` in a sample row.
fn pixel(g: &Window, c: usize, y: usize, x: usize) -> usize {
    (c * g.height + y) * g.width + x
}

/// Column of output value `(f, oy, ox)` in a sample row.
fn output(g: &Window, f: usize, oy: usize, ox: usize) -> usize {
    (f * g.out_h + oy) * g.out_w + ox
}

/// Calls `visit(c, ky, kx, column of the input value)` for every tap of output position
/// `(oy, ox)` that lies inside the image, in scan order (c, then ky, then kx).
fn for_each_tap(g: &Window, oy: usize, ox: usize, mut visit: impl FnMut(usize, usize, usize, usize)) {
    for c in 0..g.channels {
        for ky in 0..g.kernel_h {
            let Some(iy) = g.input_y(oy, ky) else { continue };
            for kx in 0..g.kernel_w {
                let Some(ix) = g.input_x(ox, kx) else { continue };
                visit(c, ky, kx, pixel(g, c, iy, ix));
            }
        }
    }
}

impl Family for ConvOp {
    fn inputs(&self) -> Vec<NodeId> {
        match *self {
            ConvOp::Conv { x, w, .. } => vec![x, w],
            ConvOp::ConvGradInput { dy, w, .. } => vec![dy, w],
            ConvOp::ConvGradWeight { x, dy, .. } => vec![x, dy],
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match *self {
            ConvOp::Conv { x, w, g } => ConvOp::Conv { x: f(x), w: f(w), g },
            ConvOp::ConvGradInput { dy, w, g } => ConvOp::ConvGradInput { dy: f(dy), w: f(w), g },
            ConvOp::ConvGradWeight { x, dy, g } => ConvOp::ConvGradWeight { x: f(x), dy: f(dy), g },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            ConvOp::Conv { .. } => "conv",
            ConvOp::ConvGradInput { .. } => "conv_grad_input",
            ConvOp::ConvGradWeight { .. } => "conv_grad_weight",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            ConvOp::Conv { x, w, g } => {
                let filters = fixed(cx.of(w).rows());
                Shape::new(&[
                    cx.of(x).rows(),
                    Dim::Fixed(filters),
                    Dim::Fixed(g.out_h),
                    Dim::Fixed(g.out_w),
                ])
            }
            ConvOp::ConvGradInput { dy, g, .. } => Shape::new(&[
                cx.of(dy).rows(),
                Dim::Fixed(g.channels),
                Dim::Fixed(g.height),
                Dim::Fixed(g.width),
            ]),
            ConvOp::ConvGradWeight { dy, g, .. } => {
                Shape::fixed(cx.of(dy).cols() / g.positions(), g.channels * g.taps())
            }
        }
    }

    fn fusion(&self) -> Fusion {
        Fusion::Kernel
    }

    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        match *self {
            ConvOp::Conv { x, w, ref g } => {
                let (x, w) = (cx.value(x), cx.value(w));
                debug_assert_eq!(x.ncols(), g.input_len());
                debug_assert_eq!(w.ncols(), g.channels * g.taps());
                let filters = w.nrows();
                let mut out = Array2::zeros((x.nrows(), filters * g.positions()));
                for b in 0..x.nrows() {
                    for f in 0..filters {
                        for oy in 0..g.out_h {
                            for ox in 0..g.out_w {
                                let mut sum = F::zero();
                                for_each_tap(g, oy, ox, |c, ky, kx, i| {
                                    sum += w[[f, tap(g, c, ky, kx)]] * x[[b, i]];
                                });
                                out[[b, output(g, f, oy, ox)]] = sum;
                            }
                        }
                    }
                }
                out
            }
            ConvOp::ConvGradInput { dy, w, ref g } => {
                let (dy, w) = (cx.value(dy), cx.value(w));
                let filters = w.nrows();
                debug_assert_eq!(dy.ncols(), filters * g.positions());
                let mut dx = Array2::zeros((dy.nrows(), g.input_len()));
                for b in 0..dy.nrows() {
                    for f in 0..filters {
                        for oy in 0..g.out_h {
                            for ox in 0..g.out_w {
                                let d = dy[[b, output(g, f, oy, ox)]];
                                for_each_tap(g, oy, ox, |c, ky, kx, i| {
                                    dx[[b, i]] += w[[f, tap(g, c, ky, kx)]] * d;
                                });
                            }
                        }
                    }
                }
                dx
            }
            ConvOp::ConvGradWeight { x, dy, ref g } => {
                let (x, dy) = (cx.value(x), cx.value(dy));
                debug_assert_eq!(x.ncols(), g.input_len());
                let filters = dy.ncols() / g.positions();
                let mut dw = Array2::zeros((filters, g.channels * g.taps()));
                for b in 0..x.nrows() {
                    for f in 0..filters {
                        for oy in 0..g.out_h {
                            for ox in 0..g.out_w {
                                let d = dy[[b, output(g, f, oy, ox)]];
                                for_each_tap(g, oy, ox, |c, ky, kx, i| {
                                    dw[[f, tap(g, c, ky, kx)]] += x[[b, i]] * d;
                                });
                            }
                        }
                    }
                }
                dw
            }
        }
    }

    fn differentiate(&self, _node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx) {
        let dy = dy.expect("a convolution is never the loss");
        match *self {
            ConvOp::Conv { x, w, g } => {
                if cx.needs(x) {
                    let dx = cx.add(Op::Conv(ConvOp::ConvGradInput { dy, w, g }));
                    cx.accumulate(x, dx);
                }
                if cx.needs(w) {
                    let dw = cx.add(Op::Conv(ConvOp::ConvGradWeight { x, dy, g }));
                    cx.accumulate(w, dw);
                }
            }
            ref backward => unreachable!("{} is a backward op", backward.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Padding;
    use crate::ops::testing::{TestGraph, fixed as fixed_shape, image, max_difference};

    /// A window with explicit, possibly asymmetric, padding.
    fn window(
        c: usize,
        (h, w): (usize, usize),
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        [top, left, bottom, right]: [usize; 4],
    ) -> Window {
        let out = |size: usize, k: usize, s: usize, a: usize, b: usize| (size + a + b - k) / s + 1;
        Window {
            channels: c,
            height: h,
            width: w,
            kernel_h: kh,
            kernel_w: kw,
            stride_h: sh,
            stride_w: sw,
            pad_top: top,
            pad_left: left,
            pad_bottom: bottom,
            pad_right: right,
            out_h: out(h, kh, sh, top, bottom),
            out_w: out(w, kw, sw, left, right),
        }
    }

    /// The convolution as PyTorch defines it, with a padded copy of the image and an im2col
    /// matrix product: `[batch, filters * positions]`.
    fn im2col_conv(x: &Array2<f64>, w: &Array2<f64>, g: &Window) -> Array2<f64> {
        let (ph, pw) = (g.height + g.pad_top + g.pad_bottom, g.width + g.pad_left + g.pad_right);
        let mut out = Array2::zeros((x.nrows(), w.nrows() * g.positions()));
        for b in 0..x.nrows() {
            let mut padded = ndarray::Array3::<f64>::zeros((g.channels, ph, pw));
            for c in 0..g.channels {
                for y in 0..g.height {
                    for xx in 0..g.width {
                        padded[[c, y + g.pad_top, xx + g.pad_left]] = x[[b, (c * g.height + y) * g.width + xx]];
                    }
                }
            }
            // Columns: one per output position; rows: one per (c, ky, kx).
            let mut cols = Array2::zeros((g.channels * g.taps(), g.positions()));
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let mut row = 0;
                    for c in 0..g.channels {
                        for ky in 0..g.kernel_h {
                            for kx in 0..g.kernel_w {
                                cols[[row, oy * g.out_w + ox]] =
                                    padded[[c, oy * g.stride_h + ky, ox * g.stride_w + kx]];
                                row += 1;
                            }
                        }
                    }
                }
            }
            let product = w.dot(&cols);
            for (i, v) in product.iter().enumerate() {
                out[[b, i]] = *v;
            }
        }
        out
    }

    fn conv_graph(batch: usize, filters: usize, g: Window, seed: u64) -> (TestGraph, NodeId, NodeId, NodeId) {
        let mut t = TestGraph::new(seed);
        let xv = t.random(batch, g.input_len());
        let wv = t.random(filters, g.channels * g.taps());
        let x = t.param(image(g.channels, g.height, g.width), xv);
        let w = t.param(fixed_shape(filters, g.channels * g.taps()), wv);
        let y = t.add(Op::Conv(ConvOp::Conv { x, w, g }));
        (t, x, w, y)
    }

    #[test]
    fn conv_equals_im2col_times_the_filters() {
        let cases = [
            (2, 3, window(2, (5, 7), (3, 3), (1, 1), [1, 1, 1, 1])),
            (1, 2, window(3, (6, 5), (2, 2), (2, 2), [0, 0, 1, 1])),
            (3, 1, window(1, (5, 7), (5, 5), (1, 2), [2, 2, 2, 2])),
            (2, 4, window(2, (4, 4), (3, 2), (2, 1), [0, 1, 2, 0])),
        ];
        for (seed, (batch, filters, g)) in cases.into_iter().enumerate() {
            let (t, x, w, y) = conv_graph(batch, filters, g, seed as u64);
            let out = t.value(y);
            assert_eq!(t.nodes[y].shape, Shape::per_sample(&[filters, g.out_h, g.out_w]));
            let expected = im2col_conv(&t.value(x), &t.value(w), &g);
            assert!(max_difference(&out, &expected) < 1e-12, "{g:?}");
        }
    }

    #[test]
    fn a_one_by_one_convolution_is_a_matrix_product_per_pixel() {
        let g = window(3, (2, 3), (1, 1), (1, 1), [0; 4]);
        let (t, x, w, y) = conv_graph(2, 4, g, 7);
        let (x, w, out) = (t.value(x), t.value(w), t.value(y));
        for b in 0..2 {
            // The sample as [channels, pixels]; the output is w times it.
            let sample = x.row(b).into_shape_with_order((3, 6)).expect("3 x 6 values").to_owned();
            let expected = w.dot(&sample);
            let got = out
                .row(b)
                .into_shape_with_order((4, 6))
                .expect("4 x 6 values")
                .to_owned();
            assert!(max_difference(&got, &expected) < 1e-12);
        }
    }

    #[test]
    fn same_padding_keeps_the_size_and_zero_pads() {
        // A 3x3 filter of ones over an image of ones: each output counts its in-image taps.
        let g = Window::new(1, 3, 4, 3, 1, Padding::Same).expect("fits");
        let mut t = TestGraph::new(0);
        let x = t.param(image(1, 3, 4), Array2::ones((1, 12)));
        let w = t.param(fixed_shape(1, 9), Array2::ones((1, 9)));
        let y = t.add(Op::Conv(ConvOp::Conv { x, w, g }));
        let expected = [4.0, 6.0, 6.0, 4.0, 6.0, 9.0, 9.0, 6.0, 4.0, 6.0, 6.0, 4.0];
        assert_eq!(t.value(y).iter().copied().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn conv_gradients_match_finite_differences() {
        let cases = [
            // (batch, filters, geometry)
            (1, 1, window(1, (3, 3), (1, 1), (1, 1), [0; 4])),
            (3, 2, window(2, (4, 3), (1, 1), (2, 2), [0; 4])),
            (1, 3, window(2, (4, 5), (2, 2), (1, 1), [0; 4])),
            (3, 2, window(1, (5, 4), (2, 2), (2, 2), [0; 4])),
            (1, 2, window(3, (5, 7), (3, 3), (1, 1), [1, 1, 1, 1])),
            (3, 1, window(1, (5, 7), (3, 3), (2, 2), [1, 1, 1, 1])),
            (1, 4, Window::new(2, 4, 4, 2, 1, Padding::Same).expect("fits")),
            (1, 1, Window::new(1, 5, 7, 3, 2, Padding::Same).expect("fits")),
            (1, 2, window(1, (5, 7), (5, 5), (1, 1), [2, 2, 2, 2])),
            (1, 1, window(2, (5, 6), (5, 5), (2, 2), [0, 1, 2, 0])),
            (3, 1, window(1, (3, 5), (3, 2), (1, 2), [2, 0, 0, 1])),
        ];
        let mut checked = 0;
        for (seed, (batch, filters, g)) in cases.into_iter().enumerate() {
            let (mut t, x, w, y) = conv_graph(batch, filters, g, 100 + seed as u64);
            checked += t.check_gradients(y, &[x, w]);
        }
        assert!(checked > 800, "{checked} elements checked");
    }

    #[test]
    fn no_input_gradient_when_the_input_is_data() {
        let g = window(1, (3, 3), (2, 2), (1, 1), [0; 4]);
        let mut t = TestGraph::new(3);
        let x = t.constant(image(1, 3, 3), Array2::ones((2, 9)));
        let wv = t.random(2, 4);
        let w = t.param(fixed_shape(2, 4), wv);
        let y = t.add(Op::Conv(ConvOp::Conv { x, w, g }));
        let dyv = t.random(2, 8);
        let dy = t.constant(t.nodes[y].shape, dyv);
        let grads = t.differentiate(y, dy);
        assert!(!grads.contains_key(&x));
        let dw = grads[&w];
        assert_eq!(t.nodes[dw].shape, Shape::fixed(2, 4));
        assert!(matches!(t.nodes[dw].op, Op::Conv(ConvOp::ConvGradWeight { .. })));
        let grad_input = t.add(Op::Conv(ConvOp::ConvGradInput { dy, w, g }));
        assert_eq!(t.nodes[grad_input].shape, Shape::per_sample(&[1, 3, 3]));
    }
}
