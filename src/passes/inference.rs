//! The inference form of a trained graph: what `netc build` compiles.
//!
//! [`inference`] keeps the forward nodes the output depends on (no targets, loss, backward or
//! update nodes) and folds what is constant at test time into the parameters, so that
//! inference is matrix products, bias rows, activations and row kernels only:
//! - a dropout multiplies by a constant at test time (`1 - p` for `scale_at_test`, 1 for
//!   inverted dropout): its mask and product disappear, and the constant scales the rows of
//!   the weights of the matrix product that reads the dropout's output;
//! - the input normalization `x' = (x - shift) * scale` goes into the products that read the
//!   input: `W' = diag(scale) W`, and `b' = b - (shift * scale) W` into the bias row added next.
//!
//! Both are one rule: a value of the training graph is tracked as an affine function of its
//! counterpart in the inference graph, column by column ([`Fold`]), until a matrix product
//! absorbs the scale and a bias row the offset.

use crate::graph::{Graph, Node, NodeId, Op};
use crate::ir::Arena;
use crate::ops::{ArithOp, DropoutOp, LinearOp};
use ndarray::Array2;

/// An inference graph and the parameter values it computes with.
#[derive(Debug, Clone)]
pub struct Inference {
    /// The forward piece only: `targets` and `loss` are `None`, `backward` and `update` empty.
    pub graph: Graph,
    /// Parameter values with normalization and dropout folded in, indexed like `graph.params`.
    pub params: Vec<Array2<f32>>,
}

/// How a value of the training graph relates to its inference counterpart, per column:
/// `training = inference * scale + offset` (absent parts are 1 and 0).
#[derive(Debug, Clone, Default, PartialEq)]
struct Fold {
    scale: Option<Vec<f64>>,
    offset: Option<Vec<f64>>,
}

impl Fold {
    fn is_identity(&self) -> bool {
        self.scale.is_none() && self.offset.is_none()
    }

    /// The raw input against the normalized one: `x' = x * scale - shift * scale`.
    fn of_normalization(shift: &[f32], scale: &[f32]) -> Fold {
        let scale: Vec<f64> = scale.iter().map(|&k| k as f64).collect();
        let offset: Vec<f64> = shift.iter().zip(&scale).map(|(&s, &k)| -(s as f64) * k).collect();
        Fold {
            scale: scale.iter().any(|&k| k != 1.0).then_some(scale),
            offset: offset.iter().any(|&o| o != 0.0).then_some(offset),
        }
    }

    /// This fold followed by a multiplication by `factor`.
    fn times(&self, factor: f64, cols: usize) -> Fold {
        if factor == 1.0 {
            return self.clone();
        }
        let scale = self.scale.clone().unwrap_or_else(|| vec![1.0; cols]);
        Fold {
            scale: Some(scale.iter().map(|k| k * factor).collect()),
            offset: self.offset.as_ref().map(|o| o.iter().map(|v| v * factor).collect()),
        }
    }
}

/// The inference graph of a training graph, with `params` (its trained values, indexed like
/// `graph.params`) and the input normalization `x' = (x - shift) * scale` (one value per
/// feature, as `crate::data::Normalization` holds them) folded into the parameters. Evaluated
/// on raw inputs, the result computes what the training graph computes in evaluation mode on
/// normalized ones.
pub fn inference(graph: &Graph, params: &[Array2<f32>], shift: &[f32], scale: &[f32]) -> Inference {
    // The nodes the output depends on (forward lists are in dependency order).
    let mut needed = vec![false; graph.nodes.len()];
    needed[graph.output.index()] = true;
    for &n in graph.forward.iter().rev() {
        if needed[n.index()] {
            for i in graph.nodes[n].op.inputs() {
                needed[i.index()] = true;
            }
        }
    }
    let mut rebuild = Rebuild {
        graph,
        params,
        values: params.to_vec(),
        folded: vec![false; params.len()],
        nodes: Arena::new(),
        new_of: vec![None; graph.nodes.len()],
        fold_of: vec![Fold::default(); graph.nodes.len()],
        forward: Vec::new(),
    };
    let input = rebuild.nodes.append(graph.nodes[graph.input].clone());
    rebuild.new_of[graph.input.index()] = Some(input);
    rebuild.fold_of[graph.input.index()] = Fold::of_normalization(shift, scale);
    for &n in graph.forward.iter().filter(|n| needed[n.index()]) {
        rebuild.node(n);
    }
    assert!(
        rebuild.fold_of[graph.output.index()].is_identity(),
        "the checker never lets a dropout or the input be the output"
    );
    let output = rebuild.new_of[graph.output.index()].expect("the output is computed");
    Inference {
        graph: Graph {
            nodes: rebuild.nodes,
            params: graph.params.clone(),
            input,
            targets: None,
            output,
            loss: None,
            penalty: None,
            forward: rebuild.forward,
            backward: Vec::new(),
            grads: Vec::new(),
            update: Vec::new(),
            layers: graph.layers.clone(),
            optimizer: graph.optimizer,
            input_width: graph.input_width,
            output_width: graph.output_width,
        },
        params: rebuild.values,
    }
}

/// The inference graph under construction, node by node of the training graph's forward piece.
struct Rebuild<'g> {
    graph: &'g Graph,
    /// The trained values.
    params: &'g [Array2<f32>],
    /// The values with folds applied.
    values: Vec<Array2<f32>>,
    /// Which parameters a fold changed.
    folded: Vec<bool>,
    nodes: Arena<Node>,
    /// Each training node's counterpart (a dropout's is its input's).
    new_of: Vec<Option<NodeId>>,
    /// Each training node against its counterpart.
    fold_of: Vec<Fold>,
    forward: Vec<NodeId>,
}

impl Rebuild<'_> {
    /// Adds the counterpart of forward node `n`, or, for a dropout, folds it away.
    fn node(&mut self, n: NodeId) {
        let graph = self.graph;
        let node = &graph.nodes[n];
        // The node's value against its counterpart, and the input whose fold it absorbs.
        let mut fold = Fold::default();
        let mut absorbs = None;
        match node.op {
            // Read only by its product, which folds the mask's test-time value.
            Op::Dropout(DropoutOp::Mask { .. }) => return,
            Op::Arith(ArithOp::Mul { a, b }) if is_mask(graph, a) || is_mask(graph, b) => {
                let (x, mask) = if is_mask(graph, b) { (a, b) } else { (b, a) };
                let Op::Dropout(DropoutOp::Mask { rate, mode, .. }) = graph.nodes[mask].op else {
                    unreachable!("checked by is_mask")
                };
                self.new_of[n.index()] = self.new_of[x.index()];
                self.fold_of[n.index()] =
                    self.fold_of[x.index()].times(DropoutOp::test_scale(rate, mode), node.shape.cols());
                return;
            }
            Op::Linear(LinearOp::MatMul {
                a,
                b,
                transpose_a: false,
                transpose_b: false,
            }) if !self.fold_of[a.index()].is_identity() => {
                // a W = (a' diag(scale) + offset) W = a' (diag(scale) W) + offset W.
                absorbs = Some(a);
                let Fold { scale, offset } = self.fold_of[a.index()].clone();
                let w = &self.params[self.param_index(b)];
                fold.offset = offset.map(|offset| {
                    (0..w.ncols())
                        .map(|j| (0..w.nrows()).map(|i| offset[i] * w[[i, j]] as f64).sum())
                        .collect()
                });
                if let Some(scale) = scale {
                    self.fold_into(b, |w| {
                        for (mut row, &k) in w.rows_mut().into_iter().zip(&scale) {
                            row.mapv_inplace(|v| (v as f64 * k) as f32);
                        }
                    });
                }
            }
            Op::Linear(LinearOp::AddRow { x, row }) if self.fold_of[x.index()].scale.is_none() => {
                if let Some(offset) = self.fold_of[x.index()].offset.clone() {
                    absorbs = Some(x);
                    self.fold_into(row, |b| {
                        for (v, &o) in b.iter_mut().zip(&offset) {
                            *v = (*v as f64 + o) as f32;
                        }
                    });
                }
            }
            _ => {}
        }
        for i in node.op.inputs() {
            // The checker keeps dropouts and the input before dense and maxout layers, whose
            // product takes the scale; graph::build adds a bias row after each product.
            assert!(
                self.fold_of[i.index()].is_identity() || absorbs == Some(i),
                "only a product (scale and offset) or a bias row (offset) reads a folded value, not {:?}",
                node.op
            );
            if self.new_of[i.index()].is_none() {
                // Parameters join the graph where first read.
                assert!(
                    matches!(graph.nodes[i].op, Op::Param(_)),
                    "forward lists are in dependency order"
                );
                self.new_of[i.index()] = Some(self.nodes.append(graph.nodes[i].clone()));
            }
        }
        let new_of = &self.new_of;
        let op = node
            .op
            .map_inputs(|i| new_of[i.index()].expect("inputs were added just above"));
        let h = self.nodes.append(Node {
            op,
            shape: node.shape,
            layer: node.layer,
        });
        self.new_of[n.index()] = Some(h);
        self.fold_of[n.index()] = fold;
        self.forward.push(h);
    }

    fn param_index(&self, n: NodeId) -> usize {
        match self.graph.nodes[n].op {
            Op::Param(p) => p,
            ref other => unreachable!("graph::build adds bias rows and weights as parameters, not {other:?}"),
        }
    }

    /// Applies `f` to the value of parameter node `n`.
    fn fold_into(&mut self, n: NodeId, f: impl FnOnce(&mut Array2<f32>)) {
        let p = self.param_index(n);
        // graph::build gives every layer its own parameters, each read by one forward op.
        assert!(!self.folded[p], "a folded parameter is read by one product only");
        self.folded[p] = true;
        f(&mut self.values[p]);
    }
}

fn is_mask(graph: &Graph, n: NodeId) -> bool {
    matches!(graph.nodes[n].op, Op::Dropout(DropoutOp::Mask { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Limits;
    use crate::diag::source::SourceMap;
    use crate::rng::Rng;

    fn training_graph(body: &str) -> Graph {
        let text = format!("model m {{\n  {body}\n}}\ntrain {{\n  data \"x.csv\" validation 10%\n}}\n");
        let mut sources = SourceMap::new();
        let id = sources.add("m.net", text);
        let checked = crate::compile(&sources, id, &[], &Limits { memory_bytes: 1 << 30 })
            .checked
            .expect("the spec checks clean");
        crate::graph::build(&checked)
    }

    /// The output of a graph's forward piece in evaluation mode, by the ops' reference
    /// evaluation (what the interpreter runs; `tests/aot.rs` runs the interpreter itself).
    fn evaluate(graph: &Graph, params: &[Array2<f32>], x: &Array2<f32>) -> Array2<f32> {
        let mut values: Vec<Option<Array2<f32>>> = vec![None; graph.nodes.len()];
        values[graph.input.index()] = Some(x.clone());
        if let Some(t) = graph.targets {
            values[t.index()] = Some(Array2::zeros((x.nrows(), graph.output_width)));
        }
        for &node in &graph.forward {
            let cx = crate::ops::EvalCx {
                nodes: &graph.nodes,
                values: &values,
                params,
                node,
                training: false,
                step: 0,
                seed: 1,
            };
            values[node.index()] = Some(graph.nodes[node].op.eval(&cx));
        }
        values[graph.output.index()].take().expect("the output is computed")
    }

    /// The folded inference graph on raw rows against the training graph (evaluation mode) on
    /// normalized rows, for every layer kind, activation, dropout mode and loss.
    #[test]
    fn the_inference_graph_computes_what_the_training_graph_does() {
        let specs = [
            "input 5\n  dense 7 relu\n  dropout 0.3 scale_at_test\n  dense 3 softmax\n  loss cross_entropy",
            "input 3\n  dropout 0.2\n  maxout 12 pieces 3\n  dense 17 prelu(0.2)\n  dense 2 softmax\n  loss cross_entropy",
            "input 4\n  dropout 0.5 scale_at_test\n  dropout 0.2 scale_at_test\n  dense 6 tanh\n  dense 1 sigmoid\n  loss binary_cross_entropy",
            "input 4\n  maxout 9 pieces 3 fixed_zero\n  dropout 0.4 scale_at_test\n  maxout 6 pieces 2 fixed_zero\n  dense 3 linear\n  loss mse",
            "input 2\n  dense 3 softmax\n  dense 5 elu(0.5)\n  dense 4 leaky_relu(0.1)\n  loss mse",
        ];
        for (case, body) in specs.iter().enumerate() {
            let graph = training_graph(body);
            let mut rng = Rng::new(case as u64, 7);
            let params: Vec<Array2<f32>> = graph
                .params
                .iter()
                .map(|p| Array2::from_shape_fn((p.rows, p.cols), |_| (rng.normal() * 0.7) as f32))
                .collect();
            let width = graph.input_width;
            let shift: Vec<f32> = (0..width).map(|i| i as f32 * 0.3 - 0.5).collect();
            let scale: Vec<f32> = (0..width).map(|i| 0.5 + i as f32 * 0.25).collect();
            let raw = Array2::from_shape_fn((9, width), |_| (rng.normal() * 2.0) as f32);
            let normalized = Array2::from_shape_fn(raw.dim(), |(r, c)| (raw[[r, c]] - shift[c]) * scale[c]);

            let folded = inference(&graph, &params, &shift, &scale);
            let ops: Vec<&Op> = folded.graph.nodes.iter().map(|(_, n)| &n.op).collect();
            assert!(
                ops.iter()
                    .all(|op| !matches!(op, Op::Dropout(_) | Op::Arith(_) | Op::Loss(_) | Op::Targets)),
                "case {case}: {ops:?}"
            );
            assert!(folded.graph.backward.is_empty() && folded.graph.update.is_empty());
            assert_eq!(folded.graph.forward.last(), Some(&folded.graph.output));

            let want = evaluate(&graph, &params, &normalized);
            let got = evaluate(&folded.graph, &folded.params, &raw);
            assert_eq!(got.dim(), want.dim());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "case {case}: {g} vs {w}");
            }
        }
    }

    /// Without normalization or scale-at-test dropout, the parameters are kept bit for bit.
    #[test]
    fn nothing_to_fold_keeps_the_parameters() {
        let graph = training_graph("input 3\n  dense 4 relu\n  dropout 0.5\n  dense 2 softmax\n  loss cross_entropy");
        let params: Vec<Array2<f32>> = graph
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| Array2::from_elem((p.rows, p.cols), i as f32 + 0.5))
            .collect();
        let folded = inference(&graph, &params, &[0.0; 3], &[1.0; 3]);
        assert_eq!(folded.params, params);
        assert_eq!(folded.graph.params, graph.params);
    }
}
