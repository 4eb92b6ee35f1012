//! One optimizer step per parameter, and the reference rules of every optimizer.

use super::{EvalCx, Family, Float, Fusion, GradCx, NodeId, ShapeCx, cast};
use crate::ir::{OptimizerKind, Shape};
use ndarray::{Array2, Zip};

/// The update op.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOp {
    /// One optimizer step for a parameter, in place (the rule is the graph's optimizer).
    Update {
        /// The parameter index.
        param: usize,
        /// Its final gradient.
        grad: NodeId,
    },
}

impl Family for UpdateOp {
    fn inputs(&self) -> Vec<NodeId> {
        let UpdateOp::Update { grad, .. } = *self;
        vec![grad]
    }

    fn map_inputs(&self, f: &mut dyn FnMut(NodeId) -> NodeId) -> Self {
        let UpdateOp::Update { param, grad } = *self;
        UpdateOp::Update { param, grad: f(grad) }
    }

    fn name(&self) -> &'static str {
        "update"
    }

    fn shape(&self, cx: &dyn ShapeCx) -> Shape {
        let UpdateOp::Update { grad, .. } = *self;
        cx.of(grad)
    }

    fn fusion(&self) -> Fusion {
        Fusion::Update
    }

    fn eval<F: Float>(&self, _cx: &EvalCx<F>) -> Array2<F> {
        unreachable!("updates change their parameter in place: UpdateOp::apply")
    }

    fn differentiate(&self, _node: NodeId, _dy: Option<NodeId>, _cx: &mut dyn GradCx) {
        unreachable!("updates are not differentiated")
    }
}

impl UpdateOp {
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
