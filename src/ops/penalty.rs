//! The L1/L2 penalty on weights (never on biases, slopes or other parameters) and its gradient.

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, ShapeCx, cast, wide};
use crate::ir::Shape;
use ndarray::{Array2, Zip};

/// The penalty ops.
#[derive(Debug, Clone, PartialEq)]
pub enum PenaltyOp {
    /// `sum_p l1_p |w_p| + l2_p / 2 |w_p|^2` over regularized weights (a scalar).
    Penalty {
        /// (parameter index, l1, l2).
        terms: Vec<(usize, f64, f64)>,
    },
    /// `grad + l1 sign(w) + l2 w`: the regularizer's gradient added to a weight's.
    PenaltyGrad {
        /// Data-loss gradient.
        grad: NodeId,
        /// The parameter index.
        param: usize,
        /// L1 strength.
        l1: f64,
        /// L2 strength.
        l2: f64,
    },
}

impl Family for PenaltyOp {
    fn inputs(&self) -> Vec<NodeId> {
        match *self {
            PenaltyOp::Penalty { .. } => vec![],
            PenaltyOp::PenaltyGrad { grad, .. } => vec![grad],
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match self {
            PenaltyOp::Penalty { terms } => PenaltyOp::Penalty { terms: terms.clone() },
            &PenaltyOp::PenaltyGrad { grad, param, l1, l2 } => PenaltyOp::PenaltyGrad {
                grad: f(grad),
                param,
                l1,
                l2,
            },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            PenaltyOp::Penalty { .. } => "penalty",
            PenaltyOp::PenaltyGrad { .. } => "penalty_grad",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            PenaltyOp::Penalty { .. } => Shape::scalar(),
            PenaltyOp::PenaltyGrad { grad, .. } => cx.of(grad),
        }
    }

    fn fusion(&self) -> Fusion {
        match self {
            PenaltyOp::Penalty { .. } => Fusion::Report,
            PenaltyOp::PenaltyGrad { .. } => Fusion::IntoUpdate,
        }
    }

    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        match *self {
            PenaltyOp::Penalty { ref terms } => {
                let mut total = 0.0f64;
                for &(p, l1, l2) in terms {
                    for &w in cx.params[p].iter() {
                        let w = wide(w);
                        total += l1 * w.abs() + 0.5 * l2 * w * w;
                    }
                }
                Array2::from_elem((1, 1), cast(total))
            }
            PenaltyOp::PenaltyGrad { grad, param, l1, l2 } => {
                let (l1, l2): (F, F) = (cast(l1), cast(l2));
                let mut out = cx.value(grad).clone();
                Zip::from(&mut out).and(&cx.params[param]).for_each(|g, &w| {
                    let sign = if w > F::zero() {
                        F::one()
                    } else if w < F::zero() {
                        -F::one()
                    } else {
                        F::zero()
                    };
                    *g = *g + l1 * sign + l2 * w;
                });
                out
            }
        }
    }

    fn differentiate(&self, _node: NodeId, _dy: Option<NodeId>, _cx: &mut dyn GradCx) {
        unreachable!("the penalty's gradient is added per weight by autodiff (PenaltyGrad)")
    }
}
