//! Fusion: a pass over the graph's op set that groups nodes into kernels.
//!
//! Each piece (forward, backward, update) becomes a list of [`Step`]s:
//! - consecutive elementwise ops of one shape become one [`MapKernel`] (one pass over memory):
//!   bias + activation + dropout mask forward; dropout mask x activation derivative x upstream
//!   gradient backward;
//! - a column sum (bias gradient, prelu slope gradient) of a value computed in the open kernel
//!   joins it as a reduction output, so the bias gradient costs no extra pass;
//! - softmax + cross-entropy (forward value, probabilities and the gradient w.r.t. the logits)
//!   is one row kernel, as are sigmoid + cross-entropy and mse with their gradients;
//! - maxout's forward records its winners in the same pass, and its backward reads them;
//! - each parameter's regularizer gradient and optimizer step are one update kernel;
//! - matrix products are [`Step::Gemm`].
//!
//! A node's value is stored in a buffer only when something outside its kernel reads it.

use crate::graph::{Graph, NodeId, Op};
use crate::ir::{Dim, DropoutMode, Shape};
use crate::ops::{DropoutOp, Fusion, LossOp, MaxoutOp, PenaltyOp, SoftmaxOp, UpdateOp};
use std::collections::{HashMap, HashSet};

/// An input of a map kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A tensor of the kernel's shape.
    Full(NodeId),
    /// A `[1, cols]` row broadcast over the kernel's rows.
    Row(NodeId),
}

/// One scalar instruction of a map kernel; operands are earlier instruction indices.
#[derive(Debug, Clone, PartialEq)]
pub enum KOp {
    /// Loads input `i`.
    Load(usize),
    /// An elementwise op's math ([`Op::scalar`]) on earlier instructions, in the order of the
    /// op's inputs. The op's own node handles are not read.
    Apply {
        /// The op.
        op: Op,
        /// Its operands.
        args: Vec<usize>,
    },
}

/// A fused elementwise kernel over a `[rows, cols]` iteration space.
#[derive(Debug, Clone, PartialEq)]
pub struct MapKernel {
    /// The iteration space.
    pub shape: Shape,
    /// Buffers read.
    pub inputs: Vec<Input>,
    /// Instructions in order.
    pub ops: Vec<KOp>,
    /// (instruction, node) pairs stored to the node's buffer.
    pub stores: Vec<(usize, NodeId)>,
    /// (instruction, node) pairs summed over rows into the node's `[1, cols]` buffer.
    pub column_sums: Vec<(usize, NodeId)>,
    /// The graph nodes the kernel computes, in order (for reports and plan snapshots).
    pub members: Vec<NodeId>,
}

/// Row-wise kernels run natively.
#[derive(Debug, Clone, PartialEq)]
pub enum RowKernel {
    /// Softmax cross-entropy: loss, probabilities (if wanted) and gradient w.r.t. the logits.
    SoftmaxCrossEntropy {
        /// Logits.
        logits: NodeId,
        /// Targets.
        targets: NodeId,
        /// The loss node.
        loss: NodeId,
        /// The softmax output node, if the graph has one over these logits.
        probabilities: Option<NodeId>,
        /// The gradient node, if the graph has one.
        grad: Option<NodeId>,
    },
    /// Sigmoid cross-entropy loss and gradient.
    SigmoidCrossEntropy {
        /// Logits.
        logits: NodeId,
        /// Targets.
        targets: NodeId,
        /// The loss node.
        loss: NodeId,
        /// The gradient node, if any.
        grad: Option<NodeId>,
    },
    /// Mean squared error and gradient.
    MeanSquaredError {
        /// Outputs.
        output: NodeId,
        /// Targets.
        targets: NodeId,
        /// The loss node.
        loss: NodeId,
        /// The gradient node, if any.
        grad: Option<NodeId>,
    },
    /// Row softmax.
    Softmax {
        /// Input.
        x: NodeId,
        /// Output.
        out: NodeId,
    },
    /// Softmax backward.
    SoftmaxGrad {
        /// Softmax output.
        y: NodeId,
        /// Upstream.
        dy: NodeId,
        /// Output.
        out: NodeId,
    },
    /// Maxout forward, recording each group's winner.
    Maxout {
        /// Input.
        x: NodeId,
        /// Group size.
        pieces: usize,
        /// Output.
        out: NodeId,
    },
    /// Maxout backward, from the recorded winners of `forward`.
    MaxoutGrad {
        /// The maxout node whose winners are used.
        forward: NodeId,
        /// Group size.
        pieces: usize,
        /// Upstream.
        dy: NodeId,
        /// Output.
        out: NodeId,
    },
    /// Dropout multipliers for a tensor shaped like `like`.
    DropoutMask {
        /// Shape source.
        like: NodeId,
        /// Drop probability.
        rate: f64,
        /// Mode.
        mode: DropoutMode,
        /// Layer index (random stream).
        layer: usize,
        /// Output.
        out: NodeId,
    },
}

/// One step of a piece.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A fused elementwise kernel (index into [`Plan::maps`]).
    Map(usize),
    /// `out = op(a) op(b)`.
    Gemm {
        /// Left operand.
        a: NodeId,
        /// Right operand.
        b: NodeId,
        /// Transpose the left operand.
        transpose_a: bool,
        /// Transpose the right operand.
        transpose_b: bool,
        /// Output.
        out: NodeId,
    },
    /// A native row kernel.
    Row(RowKernel),
    /// One op computed by a kernel of its own ([`Fusion::Kernel`]: convolutions, pooling,
    /// batch normalization, channel ops), which the backend implements for that op.
    Node(NodeId),
    /// A running statistic's step: `p = (1 - momentum) p + momentum value`.
    Average {
        /// Parameter index.
        param: usize,
        /// The batch statistic it moves towards.
        value: NodeId,
        /// The weight of the batch.
        momentum: f64,
    },
    /// The regularizer gradient and optimizer step of one parameter.
    Update {
        /// Parameter index.
        param: usize,
        /// Its data-loss gradient node.
        grad: NodeId,
        /// L1 strength (0 when none).
        l1: f64,
        /// L2 strength.
        l2: f64,
    },
}

/// The fused program.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Forward steps.
    pub forward: Vec<Step>,
    /// Backward steps.
    pub backward: Vec<Step>,
    /// Update steps.
    pub update: Vec<Step>,
    /// The map kernels.
    pub maps: Vec<MapKernel>,
    /// Nodes that need a buffer.
    pub stored: HashSet<NodeId>,
}

struct Group {
    shape: Shape,
    members: Vec<NodeId>,
    reductions: Vec<NodeId>,
}

/// Plans a graph.
pub fn plan(graph: &Graph) -> Plan {
    let mut consumers: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for (h, node) in graph.nodes.iter() {
        for i in node.op.inputs() {
            consumers.entry(i).or_default().push(h);
        }
    }
    // The softmax of a cross-entropy's logits is computed by the loss's kernel, which comes
    // after it in the forward list: mark it before planning, so it is not computed twice.
    let fused_softmax = graph.nodes.iter().filter_map(|(h, n)| match n.op {
        Op::Softmax(SoftmaxOp::Softmax { x }) => graph
            .nodes
            .iter()
            .any(|(_, m)| matches!(m.op, Op::Loss(LossOp::SoftmaxCrossEntropy { logits, .. }) if logits == x))
            .then_some(h),
        _ => None,
    });
    let mut planner = Planner {
        graph,
        maps: Vec::new(),
        group_of: HashMap::new(),
        fused_into_row: fused_softmax.collect(),
    };
    let pieces = [&graph.forward, &graph.backward].map(|list| planner.piece(list));
    let update: Vec<Step> = graph.update.iter().map(|&u| update_step(graph, u)).collect();

    // Buffers: leaves, everything that steps write outside map kernels, and map members that
    // are read outside their kernel.
    let mut stored: HashSet<NodeId> = HashSet::new();
    for (h, node) in graph.nodes.iter() {
        let needed = match planner.group_of.get(&h) {
            None => {
                let internal = matches!(node.op.fusion(), Fusion::IntoUpdate | Fusion::Update | Fusion::Report);
                let skipped = planner.fused_into_row.contains(&h) && !is_written_by_row(&pieces, h);
                !internal && !skipped
            }
            Some(g) => {
                h == graph.output
                    || consumers
                        .get(&h)
                        .is_some_and(|cs| cs.iter().any(|c| planner.group_of.get(c) != Some(g)))
            }
        };
        if needed {
            stored.insert(h);
        }
    }
    let mut maps = planner.maps;
    for map in maps.iter_mut() {
        map.stores.retain(|(_, n)| stored.contains(n));
    }
    let [forward, backward] = pieces;
    Plan {
        forward,
        backward,
        update,
        maps,
        stored,
    }
}

/// The update step of one update node: its regularizer gradient folded in.
fn update_step(graph: &Graph, node: NodeId) -> Step {
    let (param, grad) = match graph.nodes[node].op {
        Op::Update(UpdateOp::Update { param, grad }) => (param, grad),
        Op::Update(UpdateOp::Average { param, value, momentum }) => {
            return Step::Average { param, value, momentum };
        }
        _ => unreachable!("update lists hold update nodes"),
    };
    match graph.nodes[grad].op {
        Op::Penalty(PenaltyOp::PenaltyGrad { grad: raw, l1, l2, .. }) => Step::Update {
            param,
            grad: raw,
            l1,
            l2,
        },
        _ => Step::Update {
            param,
            grad,
            l1: 0.0,
            l2: 0.0,
        },
    }
}

fn is_written_by_row(pieces: &[Vec<Step>], node: NodeId) -> bool {
    pieces.iter().flatten().any(|s| match s {
        Step::Row(RowKernel::SoftmaxCrossEntropy {
            probabilities, grad, ..
        }) => *probabilities == Some(node) || *grad == Some(node),
        Step::Row(RowKernel::SigmoidCrossEntropy { grad, .. })
        | Step::Row(RowKernel::MeanSquaredError { grad, .. }) => *grad == Some(node),
        _ => false,
    })
}

struct Planner<'g> {
    graph: &'g Graph,
    maps: Vec<MapKernel>,
    group_of: HashMap<NodeId, usize>,
    /// Nodes computed inside a fused row kernel (so skipped where they appear in a list).
    fused_into_row: HashSet<NodeId>,
}

impl Planner<'_> {
    /// The steps of one piece: its prologue (dropout masks), then its kernels in order.
    fn piece(&mut self, list: &[NodeId]) -> Vec<Step> {
        let graph = self.graph;
        let mut steps: Vec<Step> = Vec::new();
        let mut prologue: Vec<Step> = Vec::new();
        let mut open: Option<Group> = None;
        for &n in list {
            if self.fused_into_row.contains(&n) {
                continue;
            }
            let node = &graph.nodes[n];
            let (shape, reduction) = match node.op.fusion() {
                Fusion::Elementwise => (node.shape, false),
                Fusion::ColumnSum { over } => (graph.nodes[over].shape, true),
                Fusion::Prologue => {
                    prologue.push(Step::Row(self.row_kernel(n)));
                    continue;
                }
                Fusion::IntoUpdate | Fusion::Report | Fusion::Update | Fusion::Leaf => continue,
                Fusion::Kernel => {
                    self.close(open.take(), &mut steps);
                    steps.push(Step::Node(n));
                    continue;
                }
                Fusion::MatMul | Fusion::Row => {
                    self.close(open.take(), &mut steps);
                    steps.push(match &node.op {
                        Op::Linear(crate::ops::LinearOp::MatMul {
                            a,
                            b,
                            transpose_a,
                            transpose_b,
                        }) => Step::Gemm {
                            a: *a,
                            b: *b,
                            transpose_a: *transpose_a,
                            transpose_b: *transpose_b,
                            out: n,
                        },
                        _ => Step::Row(self.row_kernel(n)),
                    });
                    continue;
                }
            };
            if open.as_ref().is_some_and(|g| g.shape != shape) {
                self.close(open.take(), &mut steps);
            }
            let group = open.get_or_insert_with(|| Group {
                shape,
                members: Vec::new(),
                reductions: Vec::new(),
            });
            if reduction {
                group.reductions.push(n);
            } else {
                group.members.push(n);
            }
        }
        self.close(open.take(), &mut steps);
        prologue.extend(steps);
        prologue
    }

    /// The row kernel that computes node `n` (and, for a loss, its gradient and probabilities).
    fn row_kernel(&mut self, n: NodeId) -> RowKernel {
        let graph = self.graph;
        let find = |pred: &dyn Fn(&Op) -> bool| graph.nodes.iter().find(|(_, m)| pred(&m.op)).map(|(h, _)| h);
        match graph.nodes[n].op {
            Op::Dropout(DropoutOp::Mask {
                like,
                rate,
                mode,
                layer,
            }) => RowKernel::DropoutMask {
                like,
                rate,
                mode,
                layer,
                out: n,
            },
            Op::Loss(LossOp::SoftmaxCrossEntropy { logits, targets }) => {
                let probabilities = find(&|o| matches!(o, Op::Softmax(SoftmaxOp::Softmax { x }) if *x == logits));
                let grad =
                    find(&|o| matches!(o, Op::Loss(LossOp::SoftmaxCrossEntropyGrad { logits: l, .. }) if *l == logits));
                self.fused_into_row.extend(probabilities);
                self.fused_into_row.extend(grad);
                RowKernel::SoftmaxCrossEntropy {
                    logits,
                    targets,
                    loss: n,
                    probabilities,
                    grad,
                }
            }
            Op::Loss(LossOp::SigmoidCrossEntropy { logits, targets }) => {
                let grad =
                    find(&|o| matches!(o, Op::Loss(LossOp::SigmoidCrossEntropyGrad { logits: l, .. }) if *l == logits));
                self.fused_into_row.extend(grad);
                RowKernel::SigmoidCrossEntropy {
                    logits,
                    targets,
                    loss: n,
                    grad,
                }
            }
            Op::Loss(LossOp::MeanSquaredError { output, targets }) => {
                let grad =
                    find(&|o| matches!(o, Op::Loss(LossOp::MeanSquaredErrorGrad { output: y, .. }) if *y == output));
                self.fused_into_row.extend(grad);
                RowKernel::MeanSquaredError {
                    output,
                    targets,
                    loss: n,
                    grad,
                }
            }
            Op::Softmax(SoftmaxOp::Softmax { x }) => RowKernel::Softmax { x, out: n },
            Op::Softmax(SoftmaxOp::SoftmaxGrad { y, dy }) => RowKernel::SoftmaxGrad { y, dy, out: n },
            Op::Maxout(MaxoutOp::Maxout { x, pieces }) => RowKernel::Maxout { x, pieces, out: n },
            Op::Maxout(MaxoutOp::MaxoutGrad { x, pieces, dy }) => {
                let forward = find(&|o| matches!(o, Op::Maxout(MaxoutOp::Maxout { x: mx, .. }) if *mx == x))
                    .expect("a maxout gradient has its maxout");
                RowKernel::MaxoutGrad {
                    forward,
                    pieces,
                    dy,
                    out: n,
                }
            }
            // Fused into their loss's kernel, which comes first in the forward piece.
            Op::Loss(_) => unreachable!("loss gradients are computed by their loss kernel"),
            ref other => unreachable!("{other:?} has no row kernel"),
        }
    }

    /// Turns an open group into a map kernel step.
    fn close(&mut self, group: Option<Group>, steps: &mut Vec<Step>) {
        let Some(group) = group else { return };
        let index = self.maps.len();
        let graph = self.graph;
        let mut kernel = KernelBuilder {
            graph,
            rows: group.shape.rows(),
            inputs: Vec::new(),
            ops: Vec::new(),
            value_of: HashMap::new(),
        };
        let mut stores = Vec::new();
        let mut column_sums = Vec::new();
        for &m in &group.members {
            let v = kernel.apply(m);
            kernel.value_of.insert(m, v);
            stores.push((v, m));
            self.group_of.insert(m, index);
        }
        for &r in &group.reductions {
            column_sums.push((kernel.apply(r), r));
        }
        self.maps.push(MapKernel {
            shape: group.shape,
            inputs: kernel.inputs,
            ops: kernel.ops,
            stores,
            column_sums,
            members: group.members.iter().chain(&group.reductions).copied().collect(),
        });
        steps.push(Step::Map(index));
    }
}

/// The instructions of one map kernel under construction.
struct KernelBuilder<'g> {
    graph: &'g Graph,
    /// The rows of the kernel's iteration space.
    rows: Dim,
    inputs: Vec<Input>,
    ops: Vec<KOp>,
    /// The instruction that holds each node's value inside the kernel.
    value_of: HashMap<NodeId, usize>,
}

impl KernelBuilder<'_> {
    /// The instruction holding `n`: computed earlier in the kernel, or loaded from its buffer
    /// (as a broadcast row when it is `[1, cols]` in a kernel of more rows).
    fn operand(&mut self, n: NodeId) -> usize {
        if let Some(&v) = self.value_of.get(&n) {
            return v;
        }
        let input = if self.graph.nodes[n].shape.rows() == Dim::Fixed(1) && self.rows != Dim::Fixed(1) {
            Input::Row(n)
        } else {
            Input::Full(n)
        };
        let slot = self.inputs.iter().position(|i| *i == input).unwrap_or_else(|| {
            self.inputs.push(input);
            self.inputs.len() - 1
        });
        self.ops.push(KOp::Load(slot));
        self.value_of.insert(n, self.ops.len() - 1);
        self.ops.len() - 1
    }

    /// Appends node `m`'s math on its operands; returns the instruction.
    fn apply(&mut self, m: NodeId) -> usize {
        let op = &self.graph.nodes[m].op;
        let args: Vec<usize> = op.inputs().into_iter().map(|i| self.operand(i)).collect();
        self.ops.push(KOp::Apply { op: op.clone(), args });
        self.ops.len() - 1
    }
}

impl Plan {
    /// The plan as text, one kernel per line: what each piece launches and which graph nodes
    /// each fused kernel computes. Plan snapshots (`tests/fusion.rs`) pin this, so a fusion that
    /// is lost shows up as a changed line.
    pub fn describe(&self, graph: &Graph) -> String {
        let node = |n: NodeId| {
            if let Op::Param(p) = graph.nodes[n].op {
                return graph.params[p].name.clone();
            }
            let layer = graph.nodes[n]
                .layer
                .map_or(String::new(), |l| format!("{}.", graph.layers[l].name));
            format!("{layer}{}#{}", graph.nodes[n].op.name(), n.index())
        };
        let shape = |s: Shape| match s.rows() {
            Dim::Batch => format!("[batch, {}]", s.cols()),
            Dim::Fixed(r) => format!("[{r}, {}]", s.cols()),
        };
        let mut out = String::new();
        for (name, steps) in [
            ("forward", &self.forward),
            ("backward", &self.backward),
            ("update", &self.update),
        ] {
            out.push_str(&format!("{name}: {} kernels\n", steps.len()));
            for step in steps {
                let line = match step {
                    Step::Map(k) => {
                        let map = &self.maps[*k];
                        let members: Vec<String> = map.members.iter().map(|&n| node(n)).collect();
                        let stores: Vec<String> = map
                            .stores
                            .iter()
                            .chain(&map.column_sums)
                            .map(|&(_, n)| node(n))
                            .collect();
                        format!(
                            "map {}: {} -> {}",
                            shape(map.shape),
                            members.join(" + "),
                            if stores.is_empty() {
                                "-".to_string()
                            } else {
                                stores.join(", ")
                            }
                        )
                    }
                    Step::Gemm {
                        a,
                        b,
                        transpose_a,
                        transpose_b,
                        out,
                    } => format!(
                        "gemm {}{} x {}{} -> {}",
                        node(*a),
                        if *transpose_a { "^T" } else { "" },
                        node(*b),
                        if *transpose_b { "^T" } else { "" },
                        node(*out)
                    ),
                    Step::Row(row) => {
                        let (kind, outs): (&str, Vec<Option<NodeId>>) = match row {
                            RowKernel::SoftmaxCrossEntropy {
                                loss,
                                probabilities,
                                grad,
                                ..
                            } => ("softmax_cross_entropy", vec![Some(*loss), *probabilities, *grad]),
                            RowKernel::SigmoidCrossEntropy { loss, grad, .. } => {
                                ("sigmoid_cross_entropy", vec![Some(*loss), *grad])
                            }
                            RowKernel::MeanSquaredError { loss, grad, .. } => {
                                ("mean_squared_error", vec![Some(*loss), *grad])
                            }
                            RowKernel::Softmax { out, .. } => ("softmax", vec![Some(*out)]),
                            RowKernel::SoftmaxGrad { out, .. } => ("softmax_grad", vec![Some(*out)]),
                            RowKernel::Maxout { out, .. } => ("maxout", vec![Some(*out)]),
                            RowKernel::MaxoutGrad { out, .. } => ("maxout_grad", vec![Some(*out)]),
                            RowKernel::DropoutMask { out, .. } => ("dropout_mask", vec![Some(*out)]),
                        };
                        let outs: Vec<String> = outs.into_iter().flatten().map(node).collect();
                        format!("row {kind} -> {}", outs.join(", "))
                    }
                    Step::Node(n) => format!("kernel {} -> {}", graph.nodes[*n].op.name(), node(*n)),
                    Step::Average { param, value, momentum } => {
                        format!(
                            "average {} towards {} ({momentum})",
                            graph.params[*param].name,
                            node(*value)
                        )
                    }
                    Step::Update { param, grad, l1, l2 } => format!(
                        "update {} from {}{}",
                        graph.params[*param].name,
                        node(*grad),
                        if *l1 > 0.0 || *l2 > 0.0 { " + penalty" } else { "" }
                    ),
                };
                out.push_str("  ");
                out.push_str(&line);
                out.push('\n');
            }
        }
        let mut stored: Vec<NodeId> = self.stored.iter().copied().collect();
        stored.sort_by_key(|n| n.index());
        out.push_str(&format!("buffers: {}\n", stored.len()));
        out
    }
}
