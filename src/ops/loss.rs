//! Losses (means over the batch) and their gradients. Cross-entropies are computed stably from
//! the logits, fused with their output activation: their gradient w.r.t. the logits is
//! `probabilities - targets`, never formed through the softmax's Jacobian.

use super::activation::sigmoid;
use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, Op, ShapeCx, cast, wide};
use crate::ir::Shape;
use ndarray::{Array2, Zip};

/// The loss ops.
#[derive(Debug, Clone, PartialEq)]
pub enum LossOp {
    /// Mean over the batch of `-sum(t log softmax(z))`.
    SoftmaxCrossEntropy {
        /// Logits.
        logits: NodeId,
        /// One-hot targets.
        targets: NodeId,
    },
    /// Mean over all elements of the sigmoid cross-entropy.
    SigmoidCrossEntropy {
        /// Logits.
        logits: NodeId,
        /// 0/1 targets.
        targets: NodeId,
    },
    /// Mean over all elements of `(y - t)^2`.
    MeanSquaredError {
        /// Outputs.
        output: NodeId,
        /// Targets.
        targets: NodeId,
    },
    /// `(softmax(z) - t) / batch`.
    SoftmaxCrossEntropyGrad {
        /// Logits.
        logits: NodeId,
        /// Targets.
        targets: NodeId,
    },
    /// `(sigmoid(z) - t) / (batch * n)`.
    SigmoidCrossEntropyGrad {
        /// Logits.
        logits: NodeId,
        /// Targets.
        targets: NodeId,
    },
    /// `2 (y - t) / (batch * n)`.
    MeanSquaredErrorGrad {
        /// Outputs.
        output: NodeId,
        /// Targets.
        targets: NodeId,
    },
}

fn scalar<F: Float>(x: f64) -> Array2<F> {
    Array2::from_elem((1, 1), cast(x))
}

impl Family for LossOp {
    fn inputs(&self) -> Vec<NodeId> {
        match *self {
            LossOp::SoftmaxCrossEntropy { logits, targets }
            | LossOp::SigmoidCrossEntropy { logits, targets }
            | LossOp::SoftmaxCrossEntropyGrad { logits, targets }
            | LossOp::SigmoidCrossEntropyGrad { logits, targets } => vec![logits, targets],
            LossOp::MeanSquaredError { output, targets } | LossOp::MeanSquaredErrorGrad { output, targets } => {
                vec![output, targets]
            }
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match *self {
            LossOp::SoftmaxCrossEntropy { logits, targets } => LossOp::SoftmaxCrossEntropy {
                logits: f(logits),
                targets: f(targets),
            },
            LossOp::SigmoidCrossEntropy { logits, targets } => LossOp::SigmoidCrossEntropy {
                logits: f(logits),
                targets: f(targets),
            },
            LossOp::MeanSquaredError { output, targets } => LossOp::MeanSquaredError {
                output: f(output),
                targets: f(targets),
            },
            LossOp::SoftmaxCrossEntropyGrad { logits, targets } => LossOp::SoftmaxCrossEntropyGrad {
                logits: f(logits),
                targets: f(targets),
            },
            LossOp::SigmoidCrossEntropyGrad { logits, targets } => LossOp::SigmoidCrossEntropyGrad {
                logits: f(logits),
                targets: f(targets),
            },
            LossOp::MeanSquaredErrorGrad { output, targets } => LossOp::MeanSquaredErrorGrad {
                output: f(output),
                targets: f(targets),
            },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            LossOp::SoftmaxCrossEntropy { .. } => "softmax_cross_entropy",
            LossOp::SigmoidCrossEntropy { .. } => "sigmoid_cross_entropy",
            LossOp::MeanSquaredError { .. } => "mean_squared_error",
            LossOp::SoftmaxCrossEntropyGrad { .. } => "softmax_cross_entropy_grad",
            LossOp::SigmoidCrossEntropyGrad { .. } => "sigmoid_cross_entropy_grad",
            LossOp::MeanSquaredErrorGrad { .. } => "mean_squared_error_grad",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            LossOp::SoftmaxCrossEntropy { .. }
            | LossOp::SigmoidCrossEntropy { .. }
            | LossOp::MeanSquaredError { .. } => Shape::scalar(),
            LossOp::SoftmaxCrossEntropyGrad { logits, .. } | LossOp::SigmoidCrossEntropyGrad { logits, .. } => {
                cx.of(logits)
            }
            LossOp::MeanSquaredErrorGrad { output, .. } => cx.of(output),
        }
    }

    fn fusion(&self) -> Fusion {
        Fusion::Row
    }

    fn eval<F: Float>(&self, cx: &EvalCx<F>) -> Array2<F> {
        match *self {
            LossOp::SoftmaxCrossEntropy { logits, targets } => {
                let (z, t) = (cx.value(logits), cx.value(targets));
                let mut total = 0.0f64;
                for (zr, tr) in z.rows().into_iter().zip(t.rows()) {
                    let m = wide(zr.fold(F::neg_infinity(), |a, &b| a.max(b)));
                    let lse = m + zr.iter().map(|&e| (wide(e) - m).exp()).sum::<f64>().ln();
                    for (&ze, &te) in zr.iter().zip(tr) {
                        let te = wide(te);
                        if te != 0.0 {
                            total += te * (lse - wide(ze));
                        }
                    }
                }
                scalar(total / z.nrows().max(1) as f64)
            }
            LossOp::SigmoidCrossEntropy { logits, targets } => {
                let (z, t) = (cx.value(logits), cx.value(targets));
                let mut total = 0.0f64;
                Zip::from(z).and(t).for_each(|&ze, &te| {
                    let (ze, te) = (wide(ze), wide(te));
                    total += ze.max(0.0) - ze * te + (-ze.abs()).exp().ln_1p();
                });
                scalar(total / z.len().max(1) as f64)
            }
            LossOp::MeanSquaredError { output, targets } => {
                let (y, t) = (cx.value(output), cx.value(targets));
                let mut total = 0.0f64;
                Zip::from(y).and(t).for_each(|&ye, &te| {
                    let d = wide(ye - te);
                    total += d * d;
                });
                scalar(total / y.len().max(1) as f64)
            }
            LossOp::SoftmaxCrossEntropyGrad { logits, targets } => {
                let n: F = cast(cx.value(logits).nrows().max(1) as f64);
                let mut p = super::softmax::softmax(cx.value(logits));
                Zip::from(&mut p)
                    .and(cx.value(targets))
                    .for_each(|p, &t| *p = (*p - t) / n);
                p
            }
            LossOp::SigmoidCrossEntropyGrad { logits, targets } => {
                let n: F = cast(cx.value(logits).len().max(1) as f64);
                let mut out = cx.value(logits).mapv(|z| cast(sigmoid(wide(z))));
                Zip::from(&mut out)
                    .and(cx.value(targets))
                    .for_each(|p, &t| *p = (*p - t) / n);
                out
            }
            LossOp::MeanSquaredErrorGrad { output, targets } => {
                let n: F = cast(cx.value(output).len().max(1) as f64);
                let two: F = cast(2.0);
                let mut out = cx.value(output).clone();
                Zip::from(&mut out)
                    .and(cx.value(targets))
                    .for_each(|y, &t| *y = two * (*y - t) / n);
                out
            }
        }
    }

    /// The seed of differentiation: the gradient of the (mean) loss w.r.t. what it reads.
    fn differentiate(&self, _node: NodeId, dy: Option<NodeId>, cx: &mut dyn GradCx) {
        debug_assert!(dy.is_none(), "a loss is the root of differentiation");
        let (read, grad) = match *self {
            LossOp::SoftmaxCrossEntropy { logits, targets } => {
                (logits, LossOp::SoftmaxCrossEntropyGrad { logits, targets })
            }
            LossOp::SigmoidCrossEntropy { logits, targets } => {
                (logits, LossOp::SigmoidCrossEntropyGrad { logits, targets })
            }
            LossOp::MeanSquaredError { output, targets } => (output, LossOp::MeanSquaredErrorGrad { output, targets }),
            ref backward => unreachable!("{backward:?} is a backward op"),
        };
        let g = cx.add(Op::Loss(grad));
        cx.accumulate(read, g);
    }
}
