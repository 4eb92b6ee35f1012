//! A graph built by hand for the ops' unit tests: leaves with values, ops appended through their
//! shape rules, the reference evaluation, a small reverse-mode walk over the ops' own derivative
//! rules (what `graph::autodiff` does, without the graph builder), and central differences of a
//! random scalar loss `L = sum(R ⊙ y)` against the gradients that walk produced.

use super::{EvalCx, GradCx, Node, NodeId, Op};
use crate::ir::{Arena, Dim, Shape};
use crate::rng::Rng;
use ndarray::Array2;
use std::collections::HashMap;

/// Step of the central differences.
const H: f64 = 1e-6;

/// Largest accepted `|analytic - numeric| / max(1, |analytic|, |numeric|)`.
const TOLERANCE: f64 = 1e-6;

/// A hand-built graph in `f64`.
pub struct TestGraph {
    /// The nodes, leaves first.
    pub nodes: Arena<Node>,
    /// Values of the parameter leaves (the ones differences perturb), by parameter index.
    pub params: Vec<Array2<f64>>,
    /// Values of the constant leaves (`Op::Input`), by node index.
    constants: HashMap<usize, Array2<f64>>,
    /// Training or evaluation mode for every evaluation.
    pub training: bool,
    /// Random numbers for leaf values.
    pub rng: Rng,
}

/// Autodiff's bookkeeping over a [`TestGraph`].
struct Walk<'a> {
    graph: &'a mut TestGraph,
    needs: Vec<bool>,
    grads: HashMap<NodeId, NodeId>,
}

impl GradCx for Walk<'_> {
    fn needs(&self, n: NodeId) -> bool {
        self.needs.get(n.index()).copied().unwrap_or(false)
    }

    fn add(&mut self, op: Op) -> NodeId {
        self.graph.add(op)
    }

    fn accumulate(&mut self, n: NodeId, g: NodeId) {
        if !self.needs(n) {
            return;
        }
        let total = match self.grads.get(&n) {
            Some(&existing) => self.graph.add(Op::Arith(super::ArithOp::Add { a: existing, b: g })),
            None => g,
        };
        self.grads.insert(n, total);
    }
}

impl TestGraph {
    /// An empty graph in training mode.
    pub fn new(seed: u64) -> TestGraph {
        TestGraph {
            nodes: Arena::new(),
            params: Vec::new(),
            constants: HashMap::new(),
            training: true,
            rng: Rng::new(seed, 0),
        }
    }

    /// A `[rows, cols]` array of standard normal values.
    pub fn random(&mut self, rows: usize, cols: usize) -> Array2<f64> {
        Array2::from_shape_fn((rows, cols), |_| self.rng.normal())
    }

    /// A parameter leaf (gradients flow to it, differences perturb it) of shape `shape`.
    pub fn param(&mut self, shape: Shape, value: Array2<f64>) -> NodeId {
        assert_eq!(value.ncols(), shape.cols(), "a leaf's value has its shape's columns");
        self.params.push(value);
        self.nodes.append(Node {
            op: Op::Param(self.params.len() - 1),
            shape,
            layer: None,
        })
    }

    /// A constant leaf (no gradient) of shape `shape`.
    pub fn constant(&mut self, shape: Shape, value: Array2<f64>) -> NodeId {
        assert_eq!(value.ncols(), shape.cols(), "a leaf's value has its shape's columns");
        let n = self.nodes.append(Node {
            op: Op::Input,
            shape,
            layer: None,
        });
        self.constants.insert(n.index(), value);
        n
    }

    /// Appends an op, its shape from its shape rule (`graph`'s `ShapeCx` for an arena).
    pub fn add(&mut self, op: Op) -> NodeId {
        let shape = op.shape(&self.nodes);
        self.nodes.append(Node { op, shape, layer: None })
    }

    /// The value of every node (parameters read from [`TestGraph::params`]), evaluating the
    /// first `end` nodes.
    fn eval_prefix(&self, end: usize) -> Vec<Option<Array2<f64>>> {
        let mut values: Vec<Option<Array2<f64>>> = vec![None; self.nodes.len()];
        for (h, node) in self.nodes.iter().take(end) {
            values[h.index()] = match node.op {
                Op::Param(_) => None,
                Op::Input => Some(self.constants[&h.index()].clone()),
                ref op => Some(op.eval(&EvalCx {
                    nodes: &self.nodes,
                    values: &values,
                    params: &self.params,
                    node: h,
                    training: self.training,
                    step: 0,
                    seed: 0,
                })),
            };
        }
        values
    }

    /// The value of `n` (after evaluating everything before it).
    pub fn value(&self, n: NodeId) -> Array2<f64> {
        match self.nodes[n].op {
            Op::Param(p) => self.params[p].clone(),
            _ => self.eval_prefix(n.index() + 1)[n.index()]
                .clone()
                .expect("an evaluated node has a value"),
        }
    }

    /// Appends the backward nodes of `y` given its gradient `dy` (a constant leaf), as autodiff
    /// does; returns each node's gradient node.
    pub fn differentiate(&mut self, y: NodeId, dy: NodeId) -> HashMap<NodeId, NodeId> {
        let forward: Vec<NodeId> = self.nodes.iter().map(|(h, _)| h).collect();
        let mut needs = vec![false; forward.len()];
        for (h, node) in self.nodes.iter() {
            needs[h.index()] = match node.op {
                Op::Param(_) => true,
                ref op if op.is_constant() => false,
                ref op => op.inputs().iter().any(|i| needs[i.index()]),
            };
        }
        let mut walk = Walk {
            graph: self,
            needs,
            grads: HashMap::from([(y, dy)]),
        };
        for &node in forward.iter().rev() {
            let Some(&g) = walk.grads.get(&node) else { continue };
            let op = walk.graph.nodes[node].op.clone();
            op.differentiate(node, Some(g), &mut walk);
        }
        walk.grads
    }

    /// Checks the gradient of `L = sum(R ⊙ y)` (R random) with respect to each leaf in `wrt`
    /// against central differences, element by element. Returns the number of elements checked.
    pub fn check_gradients(&mut self, y: NodeId, wrt: &[NodeId]) -> usize {
        let forward_end = self.nodes.len();
        let shape = self.nodes[y].shape;
        let rows = self.value(y).nrows();
        let weights = self.random(rows, shape.cols());
        let r = self.constant(shape, weights.clone());
        let grads = self.differentiate(y, r);
        let values = self.eval_prefix(self.nodes.len());
        let loss = |graph: &TestGraph| -> f64 {
            let values = graph.eval_prefix(forward_end);
            let out = values[y.index()].as_ref().expect("y ran");
            (out * &weights).sum()
        };
        let mut checked = 0;
        for &leaf in wrt {
            let Op::Param(p) = self.nodes[leaf].op else {
                panic!("gradients are checked for parameter leaves")
            };
            let g = *grads.get(&leaf).unwrap_or_else(|| panic!("{leaf:?} has no gradient"));
            let analytic = values[g.index()].clone().expect("gradients ran");
            assert_eq!(analytic.dim(), self.params[p].dim(), "a gradient has its leaf's shape");
            for at in ndarray::indices(self.params[p].dim()) {
                let original = self.params[p][at];
                self.params[p][at] = original + H;
                let plus = loss(self);
                self.params[p][at] = original - H;
                let minus = loss(self);
                self.params[p][at] = original;
                let numeric = (plus - minus) / (2.0 * H);
                let a = analytic[at];
                let error = (a - numeric).abs() / 1f64.max(a.abs()).max(numeric.abs());
                assert!(
                    error < TOLERANCE,
                    "d L / d {leaf:?}{at:?}: analytic {a}, numeric {numeric} (error {error:e})"
                );
                checked += 1;
            }
        }
        checked
    }
}

/// `[batch, c, h, w]`.
pub fn image(c: usize, h: usize, w: usize) -> Shape {
    Shape::per_sample(&[c, h, w])
}

/// `[rows, cols]` with fixed rows.
pub fn fixed(rows: usize, cols: usize) -> Shape {
    Shape::fixed(rows, cols)
}

/// `[batch, cols]`.
pub fn batch(cols: usize) -> Shape {
    Shape::new(&[Dim::Batch, Dim::Fixed(cols)])
}

/// The largest `|a - b|`.
pub fn max_difference(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}
