//! Ops on the channel blocks of NCHW rows: a per-channel row repeated over each channel's
//! positions (conv biases, prelu slopes), its adjoint the per-channel sum, and concatenation of
//! images along channels with its inverse selection.
//!
//! Channel `c` of a row is the `spatial` columns starting at `c * spatial` (`spatial = height *
//! width`; 1 for `[batch, features]` rows).

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, Op, ShapeCx, with_cols};
use crate::ir::{Dim, Shape};
use ndarray::{Array2, s};

/// The channel ops.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelOp {
    /// `[rows, channels]` to `[rows, channels * spatial]`, each channel's value repeated
    /// `spatial` times: a per-channel row that `AddRow` or `Prelu` broadcast over a batch of
    /// images. Its rows are kept (one, for a parameter row).
    Expand {
        /// `[1, channels]`.
        x: NodeId,
        /// Values per channel.
        spatial: usize,
    },
    /// `[rows, channels * spatial]` to `[rows, channels]`, the sum of each channel's block (the
    /// adjoint of [`ChannelOp::Expand`]).
    SumSpatial {
        /// Input.
        x: NodeId,
        /// Values per channel.
        spatial: usize,
    },
    /// Images concatenated along channels, sample by sample, in order: `[batch, sum of channels,
    /// height, width]` (rank 2, `[batch, sum * spatial]`, when the first part is not rank 4).
    Concat {
        /// The parts, each `[batch, channels_i * spatial]`.
        parts: Vec<NodeId>,
        /// Each part's channels.
        channels: Vec<usize>,
        /// Values per channel (the same for every part).
        spatial: usize,
    },
    /// Channels `start .. start + channels` of images with `total` channels, shaped like the
    /// part of a [`ChannelOp::Concat`] that they are.
    Slice {
        /// `[batch, total * spatial]`.
        x: NodeId,
        /// The first channel taken.
        start: usize,
        /// Channels taken.
        channels: usize,
        /// Channels of `x`.
        total: usize,
        /// Values per channel.
        spatial: usize,
    },
}

/// `shape` (rank 4) with `channels` channels, or `[rows, channels * spatial]` for another rank.
fn with_channels(shape: Shape, channels: usize, spatial: usize) -> Shape {
    match *shape.dims() {
        [rows, _, h, w] => Shape::new(&[rows, Dim::Fixed(channels), h, w]),
        _ => with_cols(shape, channels * spatial),
    }
}

impl Family for ChannelOp {
    fn inputs(&self) -> Vec<NodeId> {
        match self {
            ChannelOp::Expand { x, .. } | ChannelOp::SumSpatial { x, .. } | ChannelOp::Slice { x, .. } => vec![*x],
            ChannelOp::Concat { parts, .. } => parts.clone(),
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match *self {
            ChannelOp::Expand { x, spatial } => ChannelOp::Expand { x: f(x), spatial },
            ChannelOp::SumSpatial { x, spatial } => ChannelOp::SumSpatial { x: f(x), spatial },
            ChannelOp::Concat {
                ref parts,
                ref channels,
                spatial,
            } => ChannelOp::Concat {
                parts: parts.iter().map(|&p| f(p)).collect(),
                channels: channels.clone(),
                spatial,
            },
            ChannelOp::Slice {
                x,
                start,
                channels,
                total,
                spatial,
            } => ChannelOp::Slice {
                x: f(x),
                start,
                channels,
                total,
                spatial,
            },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            ChannelOp::Expand { .. } => "expand_channels",
            ChannelOp::SumSpatial { .. } => "sum_spatial",
            ChannelOp::Concat { .. } => "concat",
            ChannelOp::Slice { .. } => "slice_channels",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            ChannelOp::Expand { x, spatial } => with_cols(cx.of(x), cx.of(x).cols() * spatial),
            ChannelOp::SumSpatial { x, spatial } => with_cols(cx.of(x), cx.of(x).cols() / spatial),
            ChannelOp::Concat {
                ref parts,
                ref channels,
                spatial,
            } => {
                let first = parts.first().expect("a concatenation has parts");
                with_channels(cx.of(*first), channels.iter().sum(), spatial)
            }
            ChannelOp::Slice {
                x, channels, spatial, ..
            } => with_channels(cx.of(x), channels, spatial),
        }
    }

    fn fusion(&self) -> Fusion {
        Fusion::Kernel
    }

    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        match *self {
            ChannelOp::Expand { x, spatial } => {
                let x = cx.value(x);
                Array2::from_shape_fn((x.nrows(), x.ncols() * spatial), |(r, j)| x[[r, j / spatial]])
            }
            ChannelOp::SumSpatial { x, spatial } => {
                let x = cx.value(x);
                debug_assert_eq!(x.ncols() % spatial, 0);
                let mut out = Array2::zeros((x.nrows(), x.ncols() / spatial));
                for ((r, j), &v) in x.indexed_iter() {
                    out[[r, j / spatial]] += v;
                }
                out
            }
            ChannelOp::Concat {
                ref parts,
                ref channels,
                spatial,
            } => {
                debug_assert_eq!(parts.len(), channels.len());
                let rows = cx.value(parts[0]).nrows();
                let mut out = Array2::zeros((rows, channels.iter().sum::<usize>() * spatial));
                let mut offset = 0;
                for (&part, &c) in parts.iter().zip(channels) {
                    let part = cx.value(part);
                    debug_assert_eq!(part.dim(), (rows, c * spatial));
                    out.slice_mut(s![.., offset..offset + c * spatial]).assign(part);
                    offset += c * spatial;
                }
                out
            }
            ChannelOp::Slice {
                x,
                start,
                channels,
                total,
                spatial,
            } => {
                let x = cx.value(x);
                debug_assert_eq!(x.ncols(), total * spatial);
                x.slice(s![.., start * spatial..(start + channels) * spatial])
                    .to_owned()
            }
        }
    }

    fn differentiate(&self, _node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx) {
        let dy = dy.expect("a channel op is never the loss");
        match *self {
            ChannelOp::Expand { x, spatial } => {
                if cx.needs(x) {
                    let dx = cx.add(Op::Channel(ChannelOp::SumSpatial { x: dy, spatial }));
                    cx.accumulate(x, dx);
                }
            }
            ChannelOp::SumSpatial { x, spatial } => {
                if cx.needs(x) {
                    let dx = cx.add(Op::Channel(ChannelOp::Expand { x: dy, spatial }));
                    cx.accumulate(x, dx);
                }
            }
            ChannelOp::Concat {
                ref parts,
                ref channels,
                spatial,
            } => {
                let total = channels.iter().sum();
                let mut start = 0;
                for (&part, &c) in parts.iter().zip(channels) {
                    if cx.needs(part) {
                        let d = cx.add(Op::Channel(ChannelOp::Slice {
                            x: dy,
                            start,
                            channels: c,
                            total,
                            spatial,
                        }));
                        cx.accumulate(part, d);
                    }
                    start += c;
                }
            }
            ChannelOp::Slice { .. } => unreachable!("slice_channels is a backward op (concat's gradient)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{TestGraph, batch, fixed, image};
    use crate::ops::{ArithOp, LinearOp};

    #[test]
    fn expand_repeats_each_channel_and_sum_spatial_adds_it_back() {
        let mut t = TestGraph::new(0);
        let row = t.param(
            fixed(1, 3),
            Array2::from_shape_vec((1, 3), vec![1.0, -2.0, 0.5]).expect("3 values"),
        );
        let wide = t.add(Op::Channel(ChannelOp::Expand { x: row, spatial: 2 }));
        assert_eq!(t.nodes[wide].shape, Shape::fixed(1, 6));
        assert_eq!(
            t.value(wide).iter().copied().collect::<Vec<_>>(),
            [1.0, 1.0, -2.0, -2.0, 0.5, 0.5]
        );
        let back = t.add(Op::Channel(ChannelOp::SumSpatial { x: wide, spatial: 2 }));
        assert_eq!(t.nodes[back].shape, Shape::fixed(1, 3));
        assert_eq!(t.value(back).iter().copied().collect::<Vec<_>>(), [2.0, -4.0, 1.0]);
    }

    #[test]
    fn expanded_bias_gradients_match_finite_differences() {
        // A per-channel bias over images, the way a convolution layer adds it.
        let mut t = TestGraph::new(1);
        let xv = t.random(3, 2 * 6);
        let x = t.param(image(2, 2, 3), xv);
        let bv = t.random(1, 2);
        let bias = t.param(fixed(1, 2), bv);
        let row = t.add(Op::Channel(ChannelOp::Expand { x: bias, spatial: 6 }));
        let y = t.add(Op::Linear(LinearOp::AddRow { x, row }));
        assert_eq!(t.nodes[y].shape, image(2, 2, 3));
        assert_eq!(t.check_gradients(y, &[x, bias]), 36 + 2);

        // Sum spatial on its own, over several rows.
        let mut t = TestGraph::new(2);
        let xv = t.random(3, 4 * 5);
        let x = t.param(batch(20), xv);
        let y = t.add(Op::Channel(ChannelOp::SumSpatial { x, spatial: 5 }));
        assert_eq!(t.check_gradients(y, &[x]), 60);
    }

    #[test]
    fn concat_places_parts_in_order_and_slice_takes_them_back() {
        let mut t = TestGraph::new(3);
        let (av, bv) = (t.random(2, 4), t.random(2, 8));
        let a = t.param(image(1, 2, 2), av.clone());
        let b = t.param(image(2, 2, 2), bv.clone());
        let y = t.add(Op::Channel(ChannelOp::Concat {
            parts: vec![a, b],
            channels: vec![1, 2],
            spatial: 4,
        }));
        assert_eq!(t.nodes[y].shape, image(3, 2, 2));
        let out = t.value(y);
        for r in 0..2 {
            let row: Vec<f64> = av.row(r).iter().chain(bv.row(r).iter()).copied().collect();
            assert_eq!(out.row(r).to_vec(), row);
        }
        let second = t.add(Op::Channel(ChannelOp::Slice {
            x: y,
            start: 1,
            channels: 2,
            total: 3,
            spatial: 4,
        }));
        assert_eq!(t.nodes[second].shape, image(2, 2, 2));
        assert_eq!(t.value(second), bv);

        // Features (rank 2) concatenate as rows.
        let mut t = TestGraph::new(4);
        let (av, bv) = (t.random(3, 2), t.random(3, 5));
        let a = t.param(batch(2), av);
        let b = t.param(batch(5), bv);
        let y = t.add(Op::Channel(ChannelOp::Concat {
            parts: vec![a, b],
            channels: vec![2, 5],
            spatial: 1,
        }));
        assert_eq!(t.nodes[y].shape, batch(7));
    }

    #[test]
    fn concat_gradients_match_finite_differences() {
        let mut t = TestGraph::new(5);
        let shapes = [(2, image(2, 3, 1)), (1, image(1, 3, 1)), (3, image(3, 3, 1))];
        let parts: Vec<NodeId> = shapes
            .iter()
            .map(|&(c, shape)| {
                let v = t.random(3, c * 3);
                t.param(shape, v)
            })
            .collect();
        let y = t.add(Op::Channel(ChannelOp::Concat {
            parts: parts.clone(),
            channels: vec![2, 1, 3],
            spatial: 3,
        }));
        assert_eq!(t.check_gradients(y, &parts), 3 * 6 * 3);

        // A part used twice (a residual-style skip next to a branch) sums both gradients.
        let mut t = TestGraph::new(6);
        let av = t.random(2, 4);
        let a = t.param(batch(4), av);
        let twice = t.add(Op::Arith(ArithOp::Add { a, b: a }));
        let y = t.add(Op::Channel(ChannelOp::Concat {
            parts: vec![a, twice],
            channels: vec![4, 4],
            spatial: 1,
        }));
        assert_eq!(t.check_gradients(y, &[a]), 8);
    }
}
