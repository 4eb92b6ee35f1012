//! Stage 5: the reference interpreter. Executes a [`Graph`]'s forward, backward and update
//! pieces with ndarray, in f32 for training or f64 for gradient checks.
//!
//! This is the oracle: every other backend is tested against it. It favours obviously-correct
//! code (one arm per op, the math written out) over speed; matrix products go to ndarray's
//! matrixmultiply kernels.

pub use crate::ops::Float;
pub use crate::ops::softmax::softmax;

use crate::graph::{Graph, NodeId, Op};
use crate::ops::{EvalCx, UpdateOp};
use ndarray::{Array2, ArrayView2};

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
        let params = crate::graph::init::initial_params(&graph, seed);
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

    /// Sets the batch: features `[batch, input_width]` and targets `[batch, output_width]`
    /// (ignored by an inference graph, which has none).
    pub fn set_batch(&mut self, x: ArrayView2<F>, targets: ArrayView2<F>) {
        self.batch = x.nrows();
        self.values[self.graph.input.index()] = Some(x.to_owned());
        if let Some(t) = self.graph.targets {
            self.values[t.index()] = Some(targets.to_owned());
        }
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

    /// Runs the forward piece; returns the mean data loss (NaN for an inference graph).
    pub fn forward(&mut self, ctx: &Context) -> f64 {
        let list = self.graph.forward.clone();
        self.run(&list, ctx);
        match self.graph.loss {
            Some(loss) => self.value(loss)[[0, 0]].to_f64().unwrap_or(f64::NAN),
            None => f64::NAN,
        }
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
        match &self.graph.nodes[node].op {
            Op::Input | Op::Targets | Op::Param(_) => None,
            &Op::Update(UpdateOp::Update { param, grad }) => {
                let g = self.values[grad.index()]
                    .take()
                    .expect("the gradient ran before its update");
                let (kind, t) = (self.graph.optimizer, self.updates);
                UpdateOp::apply(&mut self.params[param], &mut self.state[param], &g, kind, ctx.lr, t);
                self.values[grad.index()] = Some(g);
                None
            }
            &Op::Update(UpdateOp::Average { param, value, momentum }) => {
                let v = self.values[value.index()]
                    .as_ref()
                    .expect("the value ran before its running average");
                UpdateOp::average(&mut self.params[param], v, momentum);
                None
            }
            op => Some(op.eval(&EvalCx {
                nodes: &self.graph.nodes,
                values: &self.values,
                params: &self.params,
                node,
                training: ctx.training,
                step: ctx.step,
                seed: self.seed,
            })),
        }
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
