//! Elementwise sums (gradient accumulation) and products (dropout masks, their gradients).

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, Op, Scalar, ShapeCx};
use crate::ir::Shape;
use ndarray::Array2;

/// The arithmetic ops; both operands have the output's shape.
#[derive(Debug, Clone, PartialEq)]
pub enum ArithOp {
    /// `a + b`.
    Add {
        /// Left.
        a: NodeId,
        /// Right.
        b: NodeId,
    },
    /// `a * b`.
    Mul {
        /// Left.
        a: NodeId,
        /// Right.
        b: NodeId,
    },
}

impl Family for ArithOp {
    fn inputs(&self) -> Vec<NodeId> {
        match *self {
            ArithOp::Add { a, b } | ArithOp::Mul { a, b } => vec![a, b],
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match *self {
            ArithOp::Add { a, b } => ArithOp::Add { a: f(a), b: f(b) },
            ArithOp::Mul { a, b } => ArithOp::Mul { a: f(a), b: f(b) },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            ArithOp::Add { .. } => "add",
            ArithOp::Mul { .. } => "mul",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            ArithOp::Add { a, .. } | ArithOp::Mul { a, .. } => cx.of(a),
        }
    }

    fn fusion(&self) -> Fusion {
        Fusion::Elementwise
    }

    fn scalar<S: Scalar>(&self, s: &mut S, args: &[S::V]) -> S::V {
        match self {
            ArithOp::Add { .. } => s.add(args[0], args[1]),
            ArithOp::Mul { .. } => s.mul(args[0], args[1]),
        }
    }

    // The same operations as `scalar`, vectorized: rounding an f32 sum or product computed in
    // f64 gives the correctly rounded f32 result (53 >= 2 * 24 + 2 bits), so both agree bit for bit.
    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        match *self {
            ArithOp::Add { a, b } => cx.value(a) + cx.value(b),
            ArithOp::Mul { a, b } => cx.value(a) * cx.value(b),
        }
    }

    fn differentiate(&self, _node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx) {
        let dy = dy.expect("arithmetic is never the loss");
        match *self {
            ArithOp::Add { a, b } => {
                cx.accumulate(a, dy);
                cx.accumulate(b, dy);
            }
            ArithOp::Mul { a, b } => {
                if cx.needs(a) {
                    let da = cx.add(Op::Arith(ArithOp::Mul { a: dy, b }));
                    cx.accumulate(a, da);
                }
                if cx.needs(b) {
                    let db = cx.add(Op::Arith(ArithOp::Mul { a: dy, b: a }));
                    cx.accumulate(b, db);
                }
            }
        }
    }
}
