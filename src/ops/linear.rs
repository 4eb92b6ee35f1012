//! The affine part of a layer: matrix products, bias rows, and the column sums that are a bias
//! row's gradient.

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, Op, Scalar, ShapeCx};
use crate::ir::{Dim, Shape};
use ndarray::{Array2, Axis};

/// The linear ops.
#[derive(Debug, Clone, PartialEq)]
pub enum LinearOp {
    /// `op(a) op(b)` where `op` transposes when asked.
    MatMul {
        /// Left operand.
        a: NodeId,
        /// Right operand.
        b: NodeId,
        /// Use `a` transposed.
        transpose_a: bool,
        /// Use `b` transposed.
        transpose_b: bool,
    },
    /// Adds a `[1, n]` row to every row of `x` (bias).
    AddRow {
        /// `[batch, n]`.
        x: NodeId,
        /// `[1, n]`.
        row: NodeId,
    },
    /// Column sums as a `[1, n]` row (bias gradient).
    SumRows {
        /// Input.
        x: NodeId,
    },
}

/// `a b` as an op.
pub fn matmul(a: NodeId, b: NodeId) -> Op {
    Op::Linear(LinearOp::MatMul {
        a,
        b,
        transpose_a: false,
        transpose_b: false,
    })
}

impl Family for LinearOp {
    fn inputs(&self) -> Vec<NodeId> {
        match *self {
            LinearOp::MatMul { a, b, .. } => vec![a, b],
            LinearOp::AddRow { x, row } => vec![x, row],
            LinearOp::SumRows { x } => vec![x],
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match *self {
            LinearOp::MatMul {
                a,
                b,
                transpose_a,
                transpose_b,
            } => LinearOp::MatMul {
                a: f(a),
                b: f(b),
                transpose_a,
                transpose_b,
            },
            LinearOp::AddRow { x, row } => LinearOp::AddRow { x: f(x), row: f(row) },
            LinearOp::SumRows { x } => LinearOp::SumRows { x: f(x) },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            LinearOp::MatMul { .. } => "matmul",
            LinearOp::AddRow { .. } => "add_row",
            LinearOp::SumRows { .. } => "sum_rows",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            LinearOp::MatMul {
                a,
                b,
                transpose_a,
                transpose_b,
            } => {
                let (a, b) = (cx.of(a), cx.of(b));
                let rows = if transpose_a { Dim::Fixed(a.cols()) } else { a.rows() };
                let cols = if transpose_b {
                    match b.rows() {
                        Dim::Fixed(n) => n,
                        Dim::Batch => unreachable!("graphs never multiply by a transposed batch on the right"),
                    }
                } else {
                    b.cols()
                };
                Shape::new(&[rows, Dim::Fixed(cols)])
            }
            LinearOp::AddRow { x, .. } => cx.of(x),
            LinearOp::SumRows { x } => Shape::fixed(1, cx.of(x).cols()),
        }
    }

    fn fusion(&self) -> Fusion {
        match *self {
            LinearOp::MatMul { .. } => Fusion::MatMul,
            LinearOp::AddRow { .. } => Fusion::Elementwise,
            LinearOp::SumRows { x } => Fusion::ColumnSum { over: x },
        }
    }

    fn scalar<S: Scalar>(&self, s: &mut S, args: &[S::V]) -> S::V {
        match self {
            LinearOp::AddRow { .. } => s.add(args[0], args[1]),
            // The summed term is the value itself.
            LinearOp::SumRows { .. } => args[0],
            LinearOp::MatMul { .. } => unreachable!("a matrix product is not elementwise"),
        }
    }

    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        match *self {
            LinearOp::MatMul {
                a,
                b,
                transpose_a,
                transpose_b,
            } => {
                let a = if transpose_a {
                    cx.value(a).t()
                } else {
                    cx.value(a).view()
                };
                let b = if transpose_b {
                    cx.value(b).t()
                } else {
                    cx.value(b).view()
                };
                a.dot(&b)
            }
            // The same sums as `scalar`, vectorized: rounding an f32 sum computed in f64 gives the
            // correctly rounded f32 sum (53 >= 2 * 24 + 2 bits), so the results are bit for bit equal.
            LinearOp::AddRow { x, row } => cx.value(x) + cx.value(row),
            LinearOp::SumRows { x } => cx.value(x).sum_axis(Axis(0)).insert_axis(Axis(0)),
        }
    }

    fn differentiate(&self, _node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx) {
        let dy = dy.expect("linear ops are never the loss");
        match *self {
            LinearOp::MatMul {
                a,
                b: w,
                transpose_a: false,
                transpose_b: false,
            } => {
                if cx.needs(a) {
                    let da = cx.add(Op::Linear(LinearOp::MatMul {
                        a: dy,
                        b: w,
                        transpose_a: false,
                        transpose_b: true,
                    }));
                    cx.accumulate(a, da);
                }
                if cx.needs(w) {
                    let dw = cx.add(Op::Linear(LinearOp::MatMul {
                        a,
                        b: dy,
                        transpose_a: true,
                        transpose_b: false,
                    }));
                    cx.accumulate(w, dw);
                }
            }
            LinearOp::AddRow { x, row } => {
                cx.accumulate(x, dy);
                let drow = cx.add(Op::Linear(LinearOp::SumRows { x: dy }));
                cx.accumulate(row, drow);
            }
            ref backward => unreachable!("{backward:?} is a backward op"),
        }
    }
}
