//! One optimizer step per parameter, and the reference rules of every optimizer.

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, ShapeCx, cast};
use crate::ir::{OptimizerKind, Shape};
use ndarray::{Array2, Zip};

/// The update ops: what the update piece does to a parameter, in place.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOp {
    /// One optimizer step for a parameter, in place (the rule is the graph's optimizer).
    Update {
        /// The parameter index.
        param: usize,
        /// Its final gradient.
        grad: NodeId,
    },
    /// A running average moved towards a value, in place: `p = (1 - momentum) p + momentum
    /// value` (PyTorch's batch-normalization convention; its default momentum is 0.1). It runs
    /// in the update piece, after backward, so it reads this step's batch statistics.
    Average {
        /// The parameter index (a running statistic, not trained by the optimizer).
        param: usize,
        /// What it moves towards, shaped like the parameter.
        value: NodeId,
        /// The weight of the new value.
        momentum: f64,
    },
}

impl Family for UpdateOp {
    fn inputs(&self) -> Vec<NodeId> {
        match *self {
            UpdateOp::Update { grad, .. } => vec![grad],
            UpdateOp::Average { value, .. } => vec![value],
        }
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        match *self {
            UpdateOp::Update { param, grad } => UpdateOp::Update { param, grad: f(grad) },
            UpdateOp::Average { param, value, momentum } => UpdateOp::Average {
                param,
                value: f(value),
                momentum,
            },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            UpdateOp::Update { .. } => "update",
            UpdateOp::Average { .. } => "running_average",
        }
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        match *self {
            UpdateOp::Update { grad, .. } => cx.of(grad),
            UpdateOp::Average { value, .. } => cx.of(value),
        }
    }

    fn fusion(&self) -> Fusion {
        Fusion::Update
    }

    fn eval<F: Float>(&self, _cx: &EvalCx<F>) -> Array2<F> {
        unreachable!("updates change their parameter in place: UpdateOp::apply, UpdateOp::average")
    }

    fn differentiate(&self, _node: NodeId, _dy: Option<NodeId>, _cx: &mut dyn GradCx) {
        unreachable!("updates are not differentiated")
    }
}

impl UpdateOp {
    /// [`UpdateOp::Average`] on one parameter tensor: `p = (1 - momentum) p + momentum value`.
    pub fn average<F: Float>(p: &mut Array2<F>, value: &Array2<F>, momentum: f64) {
        let (keep, take): (F, F) = (cast(1.0 - momentum), cast(momentum));
        Zip::from(p).and(value).for_each(|p, &v| *p = keep * *p + take * v);
    }

    /// One optimizer step on one parameter tensor. `t` is the number of updates including this
    /// one.
    pub fn apply<F: Float>(
        w: &mut Array2<F>,
        state: &mut [Array2<F>],
        g: &Array2<F>,
        kind: OptimizerKind,
        lr: f64,
        t: u64,
    ) {
        let rate = lr;
        let lr: F = cast(lr);
        match kind {
            OptimizerKind::Sgd => Zip::from(w).and(g).for_each(|w, &g| *w -= lr * g),
            OptimizerKind::Momentum { lambda } => {
                // The lecture's form: v = lambda v - lr g; w = w + v.
                let lambda: F = cast(lambda);
                Zip::from(w).and(&mut state[0]).and(g).for_each(|w, v, &g| {
                    *v = lambda * *v - lr * g;
                    *w += *v;
                });
            }
            OptimizerKind::Nesterov { lambda } => {
                // v = lambda v - lr g; w = w + lambda v - lr g (the look-ahead folded into the step).
                let lambda: F = cast(lambda);
                Zip::from(w).and(&mut state[0]).and(g).for_each(|w, v, &g| {
                    *v = lambda * *v - lr * g;
                    *w += lambda * *v - lr * g;
                });
            }
            OptimizerKind::Adagrad { eps } => {
                let eps: F = cast(eps);
                Zip::from(w).and(&mut state[0]).and(g).for_each(|w, s, &g| {
                    *s += g * g;
                    *w -= lr * g / (s.sqrt() + eps);
                });
            }
            OptimizerKind::Rmsprop { alpha, eps } => {
                let (alpha, eps): (F, F) = (cast(alpha), cast(eps));
                Zip::from(w).and(&mut state[0]).and(g).for_each(|w, s, &g| {
                    *s = alpha * *s + (F::one() - alpha) * g * g;
                    *w -= lr * g / (s.sqrt() + eps);
                });
            }
            OptimizerKind::Adam { beta1, beta2, eps } => {
                // lr m^ / (sqrt(v^) + eps) with the bias corrections folded into two scalars,
                // (lr / c1) m / (sqrt(v) / sqrt(c2) + eps): one division and one square root per
                // element instead of three divisions. The JIT's kernel does the same operations in
                // the same order.
                let step: F = cast(rate / (1.0 - beta1.powi(t as i32)));
                let root2: F = cast(1.0 / (1.0 - beta2.powi(t as i32)).sqrt());
                let (beta1, beta2, eps): (F, F, F) = (cast(beta1), cast(beta2), cast(eps));
                let (m, v) = state.split_at_mut(1);
                Zip::from(w)
                    .and(&mut m[0])
                    .and(&mut v[0])
                    .and(g)
                    .for_each(|w, m, v, &g| {
                        *m = beta1 * *m + (F::one() - beta1) * g;
                        *v = beta2 * *v + (F::one() - beta2) * g * g;
                        *w -= step * *m / (v.sqrt() * root2 + eps);
                    });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_average_moves_by_its_momentum() {
        let mut p = Array2::from_shape_vec((1, 3), vec![0.0, 1.0, -2.0]).expect("3 values");
        let value = Array2::from_shape_vec((1, 3), vec![10.0, 1.0, 2.0]).expect("3 values");
        UpdateOp::average(&mut p, &value, 0.1);
        let expected: [f64; 3] = [1.0, 1.0, -1.6];
        assert!(p.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-15), "{p}");
        // Momentum 1 takes the value; 0 keeps the parameter.
        UpdateOp::average(&mut p, &value, 1.0);
        assert_eq!(p, value);
        UpdateOp::average(&mut p, &Array2::zeros((1, 3)), 0.0);
        assert_eq!(p, value);
    }
}
