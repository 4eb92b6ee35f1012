//! Row softmax (a hidden softmax, or an output under a loss other than cross-entropy) and its
//! gradient. Under cross-entropy the output's softmax is fused with the loss (`loss.rs`).

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, Op, ShapeCx};
use crate::ir::Shape;
use ndarray::{Array2, Zip};

/// The softmax ops.
#[derive(Debug, Clone, PartialEq)]
pub enum SoftmaxOp {
    /// Row-wise softmax.
    Softmax {
        /// Logits.
        x: NodeId,
    },
    /// Softmax backward: `y * (dy - rowsum(dy * y))`.
    SoftmaxGrad {
        /// Softmax output.
        y: NodeId,
        /// Upstream gradient.
        dy: NodeId,
    },
}

/// Row-wise softmax, shifted by the row maximum.
pub fn softmax<F: Float>(z: &Array2<F>) -> Array2<F> {
    let mut out = z.clone();
    for mut r in out.rows_mut() {
        let m = r.fold(F::neg_infinity(), |a, &b| a.max(b));
        r.mapv_inplace(|e| (e - m).exp());
        let s = r.sum();
        r.mapv_inplace(|e| e / s);
    }
    out
}

impl Family for SoftmaxOp {
    fn inputs(&self) -> Vec<NodeId> {
        match *self {
            SoftmaxOp::Softmax { x } => vec![x],
            SoftmaxOp::SoftmaxGrad { y, dy } => vec![y, dy],
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match *self {
            SoftmaxOp::Softmax { x } => SoftmaxOp::Softmax { x: f(x) },
            SoftmaxOp::SoftmaxGrad { y, dy } => SoftmaxOp::SoftmaxGrad { y: f(y), dy: f(dy) },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            SoftmaxOp::Softmax { .. } => "softmax",
            SoftmaxOp::SoftmaxGrad { .. } => "softmax_grad",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            SoftmaxOp::Softmax { x } => cx.of(x),
            SoftmaxOp::SoftmaxGrad { y, .. } => cx.of(y),
        }
    }

    fn fusion(&self) -> Fusion {
        Fusion::Row
    }

    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        match *self {
            SoftmaxOp::Softmax { x } => softmax(cx.value(x)),
            SoftmaxOp::SoftmaxGrad { y, dy } => {
                let (y, dy) = (cx.value(y), cx.value(dy));
                let mut out = Array2::zeros(y.raw_dim());
                for ((mut o, yr), gr) in out.rows_mut().into_iter().zip(y.rows()).zip(dy.rows()) {
                    let dot = yr.iter().zip(gr).fold(F::zero(), |acc, (&a, &b)| acc + a * b);
                    Zip::from(&mut o)
                        .and(yr)
                        .and(gr)
                        .for_each(|o, &ye, &ge| *o = ye * (ge - dot));
                }
                out
            }
        }
    }

    fn differentiate(&self, node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx) {
        let dy = dy.expect("a softmax is never the loss");
        match *self {
            SoftmaxOp::Softmax { x } => {
                let dx = cx.add(Op::Softmax(SoftmaxOp::SoftmaxGrad { y: node, dy }));
                cx.accumulate(x, dx);
            }
            SoftmaxOp::SoftmaxGrad { .. } => unreachable!("softmax_grad is a backward op"),
        }
    }
}
