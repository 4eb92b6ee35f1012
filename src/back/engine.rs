//! The interface every backend offers to training, evaluation and prediction.

use crate::back::interp::{Context, Interpreter};
use crate::graph::Graph;
use ndarray::{Array2, ArrayView2};

/// A backend executing a graph's forward, backward and update pieces in f32.
pub trait Engine {
    /// The graph being executed.
    fn graph(&self) -> &Graph;
    /// A short name (`interp`, `jit`).
    fn name(&self) -> &'static str;
    /// Sets the batch: features `[rows, input_width]`, targets `[rows, output_width]`.
    fn set_batch(&mut self, x: ArrayView2<f32>, targets: ArrayView2<f32>);
    /// Runs the forward piece; returns the mean data loss.
    fn forward(&mut self, ctx: &Context) -> f64;
    /// Runs the backward piece (after `forward`).
    fn backward(&mut self, ctx: &Context);
    /// Applies one optimizer step (after `backward`).
    fn update(&mut self, ctx: &Context);
    /// The model's output for the current batch (after `forward`).
    fn output(&self) -> Array2<f32>;
    /// The final gradient of parameter `p` (after `backward`).
    fn gradient(&self, p: usize) -> Array2<f32>;
    /// Copies of the parameters, in the interpreter's layout.
    fn params(&self) -> Vec<Array2<f32>>;
    /// Replaces the parameters.
    fn set_params(&mut self, params: &[Array2<f32>]);
    /// Copies of the optimizer state.
    fn state(&self) -> Vec<Vec<Array2<f32>>>;
    /// Replaces the optimizer state.
    fn set_state(&mut self, state: &[Vec<Array2<f32>>]);
    /// Updates applied so far.
    fn updates(&self) -> u64;
    /// Sets the update counter (when resuming).
    fn set_updates(&mut self, updates: u64);
    /// The first layer (in forward order) whose parameters or current outputs are not finite.
    fn non_finite_layer(&self) -> Option<String>;
    /// One training step on the current batch, timed: seconds per layer in the forward piece
    /// and in the backward and update pieces (indexed like `graph().layers`; time outside any
    /// layer, such as the loss, counts to the last layer).
    fn profile_step(&mut self, ctx: &Context) -> (Vec<f64>, Vec<f64>);
    /// Like [`Engine::set_batch`] with rows `rows` of `features` gathered as the batch
    /// (training's shuffled batches), without an intermediate copy where the engine can.
    fn set_batch_rows(&mut self, features: ArrayView2<f32>, rows: &[usize], targets: ArrayView2<f32>) {
        self.set_batch(features.select(ndarray::Axis(0), rows).view(), targets);
    }
    /// Starts over: parameters initialized from `seed` (as a new engine would be), optimizer
    /// state zeroed, no updates. Compiled code is kept.
    fn reset(&mut self, seed: u64);
    /// Trains on the current batch: forward, backward, update; returns the loss.
    fn train_step(&mut self, ctx: &Context) -> f64 {
        let loss = self.forward(ctx);
        self.backward(ctx);
        self.update(ctx);
        loss
    }
}

impl Engine for Interpreter<f32> {
    fn reset(&mut self, seed: u64) {
        *self = Interpreter::new(self.graph.clone(), seed);
    }
    fn graph(&self) -> &Graph {
        &self.graph
    }
    fn name(&self) -> &'static str {
        "interp"
    }
    fn set_batch(&mut self, x: ArrayView2<f32>, targets: ArrayView2<f32>) {
        Interpreter::set_batch(self, x, targets)
    }
    fn forward(&mut self, ctx: &Context) -> f64 {
        Interpreter::forward(self, ctx)
    }
    fn backward(&mut self, ctx: &Context) {
        Interpreter::backward(self, ctx)
    }
    fn update(&mut self, ctx: &Context) {
        Interpreter::update(self, ctx)
    }
    fn output(&self) -> Array2<f32> {
        self.value(self.graph.output).clone()
    }
    fn gradient(&self, p: usize) -> Array2<f32> {
        self.value(self.graph.grads[p]).clone()
    }
    fn params(&self) -> Vec<Array2<f32>> {
        self.params.clone()
    }
    fn set_params(&mut self, params: &[Array2<f32>]) {
        self.params = params.to_vec();
    }
    fn state(&self) -> Vec<Vec<Array2<f32>>> {
        self.state.clone()
    }
    fn set_state(&mut self, state: &[Vec<Array2<f32>>]) {
        self.state = state.to_vec();
    }
    fn updates(&self) -> u64 {
        self.updates
    }
    fn set_updates(&mut self, updates: u64) {
        self.updates = updates;
    }
    fn profile_step(&mut self, ctx: &Context) -> (Vec<f64>, Vec<f64>) {
        let mut seconds = vec![0.0; self.graph.nodes.len()];
        let (f, b, u) = (
            self.graph.forward.clone(),
            self.graph.backward.clone(),
            self.graph.update.clone(),
        );
        self.run_timed(&f, ctx, &mut seconds);
        self.run_timed(&b, ctx, &mut seconds);
        self.updates += 1;
        self.run_timed(&u, ctx, &mut seconds);
        let layers = self.graph.layers.len();
        let (mut forward, mut backward) = (vec![0.0; layers], vec![0.0; layers]);
        let last = layers.saturating_sub(1);
        for &n in &f {
            forward[self.graph.nodes[n].layer.unwrap_or(last)] += seconds[n.index()];
        }
        for &n in b.iter().chain(&u) {
            backward[self.graph.nodes[n].layer.unwrap_or(last)] += seconds[n.index()];
        }
        (forward, backward)
    }
    fn non_finite_layer(&self) -> Option<String> {
        let graph = &self.graph;
        for (i, p) in graph.params.iter().enumerate() {
            if self.params[i].iter().any(|v| !v.is_finite()) {
                return Some(format!(
                    "layer `{}` (parameter `{}`)",
                    graph.layers[p.layer].name, p.name
                ));
            }
        }
        for &n in &graph.forward {
            if let Some(v) = self.try_value(n)
                && v.iter().any(|x| !x.is_finite())
            {
                return Some(match graph.nodes[n].layer {
                    Some(l) => format!("layer `{}` (its outputs)", graph.layers[l].name),
                    None => "the loss".to_string(),
                });
            }
        }
        None
    }
}
