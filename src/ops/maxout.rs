//! Maxout: the largest of each group of consecutive columns, and its gradient (to the winner).

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, Op, ShapeCx, with_cols};
use crate::ir::Shape;
use ndarray::Array2;

/// The maxout ops.
#[derive(Debug, Clone, PartialEq)]
pub enum MaxoutOp {
    /// Largest of each group of `pieces` consecutive columns.
    Maxout {
        /// `[batch, units]`.
        x: NodeId,
        /// Group size.
        pieces: usize,
    },
    /// Maxout backward: the gradient goes to the winning unit of each group only (the first
    /// of equal ones).
    MaxoutGrad {
        /// Maxout input.
        x: NodeId,
        /// Group size.
        pieces: usize,
        /// Upstream gradient.
        dy: NodeId,
    },
}

impl Family for MaxoutOp {
    fn inputs(&self) -> Vec<NodeId> {
        match *self {
            MaxoutOp::Maxout { x, .. } => vec![x],
            MaxoutOp::MaxoutGrad { x, dy, .. } => vec![x, dy],
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match *self {
            MaxoutOp::Maxout { x, pieces } => MaxoutOp::Maxout { x: f(x), pieces },
            MaxoutOp::MaxoutGrad { x, pieces, dy } => MaxoutOp::MaxoutGrad {
                x: f(x),
                pieces,
                dy: f(dy),
            },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            MaxoutOp::Maxout { .. } => "maxout",
            MaxoutOp::MaxoutGrad { .. } => "maxout_grad",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            MaxoutOp::Maxout { x, pieces } => with_cols(cx.of(x), cx.of(x).cols() / pieces),
            MaxoutOp::MaxoutGrad { x, .. } => cx.of(x),
        }
    }

    fn fusion(&self) -> Fusion {
        Fusion::Row
    }

    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        match *self {
            MaxoutOp::Maxout { x, pieces: p } => {
                let x = cx.value(x);
                Array2::from_shape_fn((x.nrows(), x.ncols() / p), |(r, j)| {
                    let group = x.row(r);
                    let mut best = group[j * p];
                    for k in 1..p {
                        let e = group[j * p + k];
                        if e > best {
                            best = e;
                        }
                    }
                    best
                })
            }
            MaxoutOp::MaxoutGrad { x, pieces: p, dy } => {
                let (x, dy) = (cx.value(x), cx.value(dy));
                let mut out = Array2::zeros(x.raw_dim());
                for r in 0..x.nrows() {
                    for j in 0..dy.ncols() {
                        let mut best = 0;
                        for k in 1..p {
                            if x[[r, j * p + k]] > x[[r, j * p + best]] {
                                best = k;
                            }
                        }
                        out[[r, j * p + best]] = dy[[r, j]];
                    }
                }
                out
            }
        }
    }

    fn differentiate(&self, _node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx) {
        let dy = dy.expect("a maxout is never the loss");
        match *self {
            MaxoutOp::Maxout { x, pieces } => {
                let dx = cx.add(Op::Maxout(MaxoutOp::MaxoutGrad { x, pieces, dy }));
                cx.accumulate(x, dx);
            }
            MaxoutOp::MaxoutGrad { .. } => unreachable!("maxout_grad is a backward op"),
        }
    }
}
