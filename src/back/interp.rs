//! Stage 5: the reference interpreter. Executes a [`Graph`]'s forward, backward and update
//! pieces with ndarray, in f32 for training or f64 for gradient checks.
//!
//! This is the oracle: every other backend is tested against it. It favours obviously-correct
//! code (one arm per op, the math written out) over speed; matrix products go to ndarray's
//! matrixmultiply kernels.

use crate::graph::{Graph, NodeId, Op, ParamInit};
use crate::ir::{DropoutMode, OptimizerKind};
use crate::rng::{self, Rng, streams};
use ndarray::{Array2, ArrayView2, Axis, Zip};
use std::fmt::Debug;

/// The float types the interpreter runs in.
pub trait Float:
    num_traits::Float
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + num_traits::FromPrimitive
    + Debug
    + Send
    + Sync
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + 'static
{
}
impl Float for f32 {}
impl Float for f64 {}

fn c<F: Float>(x: f64) -> F {
    F::from_f64(x).expect("every f64 converts to f32 or f64")
}

/// Settings of one execution.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Training (dropout masks drawn) or evaluation (dropout scales applied).
    pub training: bool,
    /// The global step, which selects the dropout masks.
    pub step: u64,
    /// The learning rate of this step.
    pub lr: f64,
}

/// The interpreter: a graph, its parameters and optimizer state, and the values of one batch.
pub struct Interpreter<F: Float> {
    /// The graph being executed.
    pub graph: Graph,
    /// Parameter values, indexed like `graph.params` (weights `[inputs, outputs]`, rows `[1, n]`).
    pub params: Vec<Array2<F>>,
    /// Optimizer state per parameter (velocity, squared-gradient sums, moments).
    pub state: Vec<Vec<Array2<F>>>,
    /// Updates applied so far (Adam's `t`).
    pub updates: u64,
    /// The seed of initialization and dropout masks.
    pub seed: u64,
    values: Vec<Option<Array2<F>>>,
    batch: usize,
}

impl<F: Float> Interpreter<F> {
    /// An interpreter with freshly initialized parameters.
    pub fn new(graph: Graph, seed: u64) -> Self {
        let params = graph
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut r = Rng::new(seed, streams::INIT + i as u64);
                Array2::from_shape_fn((p.rows, p.cols), |_| {
                    c(match p.init {
                        ParamInit::Normal(std) => r.normal() * std,
                        ParamInit::Uniform(limit) => (2.0 * r.uniform() - 1.0) * limit,
                        ParamInit::Constant(v) => v,
                    })
                })
            })
            .collect::<Vec<_>>();
        let slots = graph.optimizer.state_slots();
        let state = params
            .iter()
            .map(|p| (0..slots).map(|_| Array2::zeros(p.raw_dim())).collect())
            .collect();
        let values = vec![None; graph.nodes.len()];
        Interpreter {
            graph,
            params,
            state,
            updates: 0,
            seed,
            values,
            batch: 0,
        }
    }

    /// Sets the batch: features `[batch, input_width]` and targets `[batch, output_width]`.
    pub fn set_batch(&mut self, x: ArrayView2<F>, targets: ArrayView2<F>) {
        self.batch = x.nrows();
        self.values[self.graph.input.index()] = Some(x.to_owned());
        self.values[self.graph.targets.index()] = Some(targets.to_owned());
    }

    /// The value of a node after it ran.
    pub fn value(&self, node: NodeId) -> &Array2<F> {
        if let Op::Param(p) = self.graph.nodes[node].op {
            return &self.params[p];
        }
        self.values[node.index()]
            .as_ref()
            .expect("nodes are read only after they ran")
    }

    /// The value of a node, if it has run.
    pub fn try_value(&self, node: NodeId) -> Option<&Array2<F>> {
        match self.graph.nodes[node].op {
            Op::Param(p) => Some(&self.params[p]),
            _ => self.values[node.index()].as_ref(),
        }
    }

    /// Runs the forward piece; returns the mean data loss.
    pub fn forward(&mut self, ctx: &Context) -> f64 {
        let list = self.graph.forward.clone();
        self.run(&list, ctx);
        self.value(self.graph.loss)[[0, 0]].to_f64().unwrap_or(f64::NAN)
    }

    /// Runs the backward piece (after [`Interpreter::forward`]).
    pub fn backward(&mut self, ctx: &Context) {
        let list = self.graph.backward.clone();
        self.run(&list, ctx);
    }

    /// Applies one optimizer step to every parameter (after [`Interpreter::backward`]).
    pub fn update(&mut self, ctx: &Context) {
        self.updates += 1;
        let list = self.graph.update.clone();
        self.run(&list, ctx);
    }

    /// Forward, backward and update on the current batch; returns the loss before the update.
    pub fn train_step(&mut self, ctx: &Context) -> f64 {
        let loss = self.forward(ctx);
        self.backward(ctx);
        self.update(ctx);
        loss
    }

    /// The regularization penalty of the current parameters (0 when none).
    pub fn penalty(&mut self) -> f64 {
        match self.graph.penalty {
            Some(p) => {
                self.run(
                    &[p],
                    &Context {
                        training: false,
                        step: 0,
                        lr: 0.0,
                    },
                );
                self.value(p)[[0, 0]].to_f64().unwrap_or(f64::NAN)
            }
            None => 0.0,
        }
    }

    /// Runs nodes in order, adding each node's seconds to `seconds[node index]`.
    pub fn run_timed(&mut self, list: &[NodeId], ctx: &Context, seconds: &mut [f64]) {
        for &node in list {
            let started = std::time::Instant::now();
            let out = self.eval(node, ctx);
            if let Some(out) = out {
                self.values[node.index()] = Some(out);
            }
            seconds[node.index()] += started.elapsed().as_secs_f64();
        }
    }

    /// Runs nodes in order.
    pub fn run(&mut self, list: &[NodeId], ctx: &Context) {
        for &node in list {
            let out = self.eval(node, ctx);
            if let Some(out) = out {
                self.values[node.index()] = Some(out);
            }
        }
    }

    fn eval(&mut self, node: NodeId, ctx: &Context) -> Option<Array2<F>> {
        let op = &self.graph.nodes[node].op;
        let v = |n: &NodeId| self.value(*n);
        Some(match op {
            Op::Input | Op::Targets | Op::Param(_) => return None,
            Op::MatMul {
                a,
                b,
                transpose_a,
                transpose_b,
            } => {
                let a = if *transpose_a { v(a).t() } else { v(a).view() };
                let b = if *transpose_b { v(b).t() } else { v(b).view() };
                a.dot(&b)
            }
            Op::AddRow { x, row } => v(x) + v(row),
            Op::Unary { func, x } => {
                let f = *func;
                v(x).mapv(|e| c(f.apply(e.to_f64().unwrap_or(f64::NAN))))
            }
            Op::Prelu { x, slope } => {
                let mut out = v(x).clone();
                let s = v(slope);
                for mut r in out.rows_mut() {
                    Zip::from(&mut r).and(s.row(0)).for_each(|e, &a| {
                        if *e <= F::zero() {
                            *e *= a;
                        }
                    });
                }
                out
            }
            Op::Maxout { x, pieces } => {
                let x = v(x);
                let p = *pieces;
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
            Op::DropoutMask {
                like,
                rate,
                mode,
                layer,
            } => {
                let (rows, cols) = v(like).dim();
                if ctx.training {
                    let keep_scale = match mode {
                        DropoutMode::Inverted => 1.0 / (1.0 - rate),
                        DropoutMode::ScaleAtTest => 1.0,
                    };
                    let (seed, layer, step, rate32) = (self.seed, *layer, ctx.step, *rate as f32);
                    Array2::from_shape_fn((rows, cols), |(r, j)| {
                        if rng::dropout_keep(seed, layer, step, (r * cols + j) as u64, rate32) {
                            c(keep_scale)
                        } else {
                            F::zero()
                        }
                    })
                } else {
                    let scale = match mode {
                        DropoutMode::Inverted => 1.0,
                        DropoutMode::ScaleAtTest => 1.0 - rate,
                    };
                    Array2::from_elem((rows, cols), c(scale))
                }
            }
            Op::Mul { a, b } => v(a) * v(b),
            Op::Add { a, b } => v(a) + v(b),
            Op::Softmax { x } => softmax(v(x)),
            Op::SoftmaxCrossEntropy { logits, targets } => {
                let (z, t) = (v(logits), v(targets));
                let mut total = 0.0f64;
                for (zr, tr) in z.rows().into_iter().zip(t.rows()) {
                    let m = zr
                        .fold(F::neg_infinity(), |a, &b| a.max(b))
                        .to_f64()
                        .unwrap_or(f64::NAN);
                    let lse = m + zr
                        .iter()
                        .map(|&e| (e.to_f64().unwrap_or(f64::NAN) - m).exp())
                        .sum::<f64>()
                        .ln();
                    for (&ze, &te) in zr.iter().zip(tr) {
                        let te = te.to_f64().unwrap_or(f64::NAN);
                        if te != 0.0 {
                            total += te * (lse - ze.to_f64().unwrap_or(f64::NAN));
                        }
                    }
                }
                scalar(total / z.nrows().max(1) as f64)
            }
            Op::SigmoidCrossEntropy { logits, targets } => {
                let (z, t) = (v(logits), v(targets));
                let mut total = 0.0f64;
                Zip::from(z).and(t).for_each(|&ze, &te| {
                    let (ze, te) = (ze.to_f64().unwrap_or(f64::NAN), te.to_f64().unwrap_or(f64::NAN));
                    total += ze.max(0.0) - ze * te + (-ze.abs()).exp().ln_1p();
                });
                scalar(total / z.len().max(1) as f64)
            }
            Op::MeanSquaredError { output, targets } => {
                let (y, t) = (v(output), v(targets));
                let mut total = 0.0f64;
                Zip::from(y).and(t).for_each(|&ye, &te| {
                    let d = (ye - te).to_f64().unwrap_or(f64::NAN);
                    total += d * d;
                });
                scalar(total / y.len().max(1) as f64)
            }
            Op::Penalty { terms } => {
                let mut total = 0.0f64;
                for &(p, l1, l2) in terms {
                    for &w in self.params[p].iter() {
                        let w = w.to_f64().unwrap_or(f64::NAN);
                        total += l1 * w.abs() + 0.5 * l2 * w * w;
                    }
                }
                scalar(total)
            }
            Op::UnaryGrad { func, x, y, dy } => {
                let f = *func;
                let mut out = v(dy).clone();
                Zip::from(&mut out).and(v(x)).and(v(y)).for_each(|g, &xe, &ye| {
                    let d = f.derivative(xe.to_f64().unwrap_or(f64::NAN), ye.to_f64().unwrap_or(f64::NAN));
                    *g *= c(d);
                });
                out
            }
            Op::SoftmaxGrad { y, dy } => {
                let (y, dy) = (v(y), v(dy));
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
            Op::PreluGradInput { x, slope, dy } => {
                let mut out = v(dy).clone();
                let s = v(slope);
                for (mut o, xr) in out.rows_mut().into_iter().zip(v(x).rows()) {
                    Zip::from(&mut o).and(xr).and(s.row(0)).for_each(|g, &xe, &a| {
                        if xe <= F::zero() {
                            *g *= a;
                        }
                    });
                }
                out
            }
            Op::PreluGradSlope { x, dy } => {
                let mut out = Array2::zeros((1, v(x).ncols()));
                for (xr, gr) in v(x).rows().into_iter().zip(v(dy).rows()) {
                    Zip::from(out.row_mut(0)).and(xr).and(gr).for_each(|o, &xe, &ge| {
                        if xe <= F::zero() {
                            *o += ge * xe;
                        }
                    });
                }
                out
            }
            Op::MaxoutGrad { x, pieces, dy } => {
                let (x, dy) = (v(x), v(dy));
                let p = *pieces;
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
            Op::SumRows { x } => v(x).sum_axis(Axis(0)).insert_axis(Axis(0)),
            Op::SoftmaxCrossEntropyGrad { logits, targets } => {
                let n: F = c(v(logits).nrows().max(1) as f64);
                let mut p = softmax(v(logits));
                Zip::from(&mut p).and(v(targets)).for_each(|p, &t| *p = (*p - t) / n);
                p
            }
            Op::SigmoidCrossEntropyGrad { logits, targets } => {
                let n: F = c(v(logits).len().max(1) as f64);
                let mut out = v(logits).mapv(|z| c(crate::graph::sigmoid(z.to_f64().unwrap_or(f64::NAN))));
                Zip::from(&mut out).and(v(targets)).for_each(|p, &t| *p = (*p - t) / n);
                out
            }
            Op::MeanSquaredErrorGrad { output, targets } => {
                let n: F = c(v(output).len().max(1) as f64);
                let two: F = c(2.0);
                let mut out = v(output).clone();
                Zip::from(&mut out)
                    .and(v(targets))
                    .for_each(|y, &t| *y = two * (*y - t) / n);
                out
            }
            Op::PenaltyGrad { grad, param, l1, l2 } => {
                let (l1, l2): (F, F) = (c(*l1), c(*l2));
                let mut out = v(grad).clone();
                Zip::from(&mut out).and(&self.params[*param]).for_each(|g, &w| {
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
            Op::Update { param, grad } => {
                let g = self.values[grad.index()]
                    .take()
                    .expect("the gradient ran before its update");
                let (param, kind, t) = (*param, self.graph.optimizer, self.updates);
                apply_update(&mut self.params[param], &mut self.state[param], &g, kind, ctx.lr, t);
                self.values[grad.index()] = Some(g);
                return None;
            }
        })
    }

    /// Releases the values of one batch (keeps parameters and state).
    pub fn clear_values(&mut self) {
        for v in &mut self.values {
            *v = None;
        }
    }

    /// The batch size of the current batch.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

fn scalar<F: Float>(x: f64) -> Array2<F> {
    Array2::from_elem((1, 1), c(x))
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

/// One optimizer step on one parameter tensor. `t` is the number of updates including this one.
pub fn apply_update<F: Float>(
    w: &mut Array2<F>,
    state: &mut [Array2<F>],
    g: &Array2<F>,
    kind: OptimizerKind,
    lr: f64,
    t: u64,
) {
    let rate = lr;
    let lr: F = c(lr);
    match kind {
        OptimizerKind::Sgd => Zip::from(w).and(g).for_each(|w, &g| *w -= lr * g),
        OptimizerKind::Momentum { lambda } => {
            // The lecture's form: v = lambda v - lr g; w = w + v.
            let lambda: F = c(lambda);
            Zip::from(w).and(&mut state[0]).and(g).for_each(|w, v, &g| {
                *v = lambda * *v - lr * g;
                *w += *v;
            });
        }
        OptimizerKind::Nesterov { lambda } => {
            // v = lambda v - lr g; w = w + lambda v - lr g (the look-ahead folded into the step).
            let lambda: F = c(lambda);
            Zip::from(w).and(&mut state[0]).and(g).for_each(|w, v, &g| {
                *v = lambda * *v - lr * g;
                *w += lambda * *v - lr * g;
            });
        }
        OptimizerKind::Adagrad { eps } => {
            let eps: F = c(eps);
            Zip::from(w).and(&mut state[0]).and(g).for_each(|w, s, &g| {
                *s += g * g;
                *w -= lr * g / (s.sqrt() + eps);
            });
        }
        OptimizerKind::Rmsprop { alpha, eps } => {
            let (alpha, eps): (F, F) = (c(alpha), c(eps));
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
            let step: F = c(rate / (1.0 - beta1.powi(t as i32)));
            let root2: F = c(1.0 / (1.0 - beta2.powi(t as i32)).sqrt());
            let (beta1, beta2, eps): (F, F, F) = (c(beta1), c(beta2), c(eps));
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
