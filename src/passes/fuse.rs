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

use crate::graph::{Graph, NodeId, Op, Rows, Shape, Unary};
use crate::ir::DropoutMode;
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KOp {
    /// Loads input `i`.
    Load(usize),
    /// `a + b`.
    Add(usize, usize),
    /// `a * b`.
    Mul(usize, usize),
    /// `f(x)`.
    Act(Unary, usize),
    /// `dy * f'(x)` from x, y = f(x) and dy.
    ActGrad(Unary, usize, usize, usize),
    /// PReLU forward `(x, slope)`.
    Prelu(usize, usize),
    /// PReLU backward to the input `(x, slope, dy)`.
    PreluDx(usize, usize, usize),
    /// The prelu slope-gradient term `(x, dy)`: `dy x` where `x <= 0`, else 0.
    PreluDslope(usize, usize),
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

fn is_elementwise(op: &Op) -> bool {
    matches!(
        op,
        Op::AddRow { .. }
            | Op::Unary { .. }
            | Op::Prelu { .. }
            | Op::Mul { .. }
            | Op::Add { .. }
            | Op::UnaryGrad { .. }
            | Op::PreluGradInput { .. }
    )
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
    // Nodes computed inside a fused row kernel (so skipped where they appear in a list).
    let mut fused_into_row: HashSet<NodeId> = HashSet::new();
    let find = |pred: &dyn Fn(&Op) -> bool| graph.nodes.iter().find(|(_, n)| pred(&n.op)).map(|(h, _)| h);

    let mut planner = Planner {
        graph,
        maps: Vec::new(),
        group_of: HashMap::new(),
    };
    let mut pieces: Vec<Vec<Step>> = Vec::new();
    for list in [&graph.forward, &graph.backward] {
        let mut steps: Vec<Step> = Vec::new();
        let mut prologue: Vec<Step> = Vec::new();
        let mut open: Option<Group> = None;
        for &n in list.iter() {
            if fused_into_row.contains(&n) {
                continue;
            }
            let node = &graph.nodes[n];
            match &node.op {
                op if is_elementwise(op) => {
                    if open.as_ref().is_some_and(|g| g.shape != node.shape) {
                        planner.close(open.take(), &mut steps);
                    }
                    open.get_or_insert_with(|| Group {
                        shape: node.shape,
                        members: Vec::new(),
                        reductions: Vec::new(),
                    })
                    .members
                    .push(n);
                }
                Op::SumRows { x } | Op::PreluGradSlope { x, .. } => {
                    let shape = graph.nodes[*x].shape;
                    if open.as_ref().is_some_and(|g| g.shape != shape) {
                        planner.close(open.take(), &mut steps);
                    }
                    open.get_or_insert_with(|| Group {
                        shape,
                        members: Vec::new(),
                        reductions: Vec::new(),
                    })
                    .reductions
                    .push(n);
                }
                Op::DropoutMask {
                    like,
                    rate,
                    mode,
                    layer,
                } => prologue.push(Step::Row(RowKernel::DropoutMask {
                    like: *like,
                    rate: *rate,
                    mode: *mode,
                    layer: *layer,
                    out: n,
                })),
                Op::PenaltyGrad { .. } => {} // folded into the update kernel
                op => {
                    planner.close(open.take(), &mut steps);
                    let step = match op {
                        Op::MatMul {
                            a,
                            b,
                            transpose_a,
                            transpose_b,
                        } => Step::Gemm {
                            a: *a,
                            b: *b,
                            transpose_a: *transpose_a,
                            transpose_b: *transpose_b,
                            out: n,
                        },
                        Op::SoftmaxCrossEntropy { logits, targets } => {
                            let probabilities = find(&|o| matches!(o, Op::Softmax { x } if x == logits));
                            let grad =
                                find(&|o| matches!(o, Op::SoftmaxCrossEntropyGrad { logits: l, .. } if l == logits));
                            fused_into_row.extend(probabilities);
                            fused_into_row.extend(grad);
                            Step::Row(RowKernel::SoftmaxCrossEntropy {
                                logits: *logits,
                                targets: *targets,
                                loss: n,
                                probabilities,
                                grad,
                            })
                        }
                        Op::SigmoidCrossEntropy { logits, targets } => {
                            let grad =
                                find(&|o| matches!(o, Op::SigmoidCrossEntropyGrad { logits: l, .. } if l == logits));
                            fused_into_row.extend(grad);
                            Step::Row(RowKernel::SigmoidCrossEntropy {
                                logits: *logits,
                                targets: *targets,
                                loss: n,
                                grad,
                            })
                        }
                        Op::MeanSquaredError { output, targets } => {
                            let grad =
                                find(&|o| matches!(o, Op::MeanSquaredErrorGrad { output: y, .. } if y == output));
                            fused_into_row.extend(grad);
                            Step::Row(RowKernel::MeanSquaredError {
                                output: *output,
                                targets: *targets,
                                loss: n,
                                grad,
                            })
                        }
                        Op::Softmax { x } => Step::Row(RowKernel::Softmax { x: *x, out: n }),
                        Op::SoftmaxGrad { y, dy } => Step::Row(RowKernel::SoftmaxGrad { y: *y, dy: *dy, out: n }),
                        Op::Maxout { x, pieces } => Step::Row(RowKernel::Maxout {
                            x: *x,
                            pieces: *pieces,
                            out: n,
                        }),
                        Op::MaxoutGrad { x, pieces, dy } => {
                            let forward = find(&|o| matches!(o, Op::Maxout { x: mx, .. } if mx == x))
                                .expect("a maxout gradient has its maxout");
                            Step::Row(RowKernel::MaxoutGrad {
                                forward,
                                pieces: *pieces,
                                dy: *dy,
                                out: n,
                            })
                        }
                        // Fused into their loss's forward kernel when it exists.
                        Op::SoftmaxCrossEntropyGrad { .. }
                        | Op::SigmoidCrossEntropyGrad { .. }
                        | Op::MeanSquaredErrorGrad { .. } => {
                            unreachable!("loss gradients are computed by their loss kernel")
                        }
                        other => unreachable!("no piece schedules {other:?} here"),
                    };
                    steps.push(step);
                }
            }
        }
        planner.close(open.take(), &mut steps);
        prologue.extend(steps);
        pieces.push(prologue);
    }
    let update: Vec<Step> = graph
        .update
        .iter()
        .map(|&u| {
            let Op::Update { param, grad } = graph.nodes[u].op else {
                unreachable!("update lists hold update nodes")
            };
            match graph.nodes[grad].op {
                Op::PenaltyGrad { grad: raw, l1, l2, .. } => Step::Update {
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
        })
        .collect();

    // Buffers: leaves, everything that steps write outside map kernels, and map members that
    // are read outside their kernel.
    let mut stored: HashSet<NodeId> = HashSet::new();
    for (h, node) in graph.nodes.iter() {
        let in_group = planner.group_of.get(&h);
        let needed = match in_group {
            None => {
                let internal = matches!(node.op, Op::PenaltyGrad { .. } | Op::Update { .. } | Op::Penalty { .. });
                let skipped = fused_into_row.contains(&h) && !is_written_by_row(&pieces, h);
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
    for (k, map) in maps.iter_mut().enumerate() {
        map.stores.retain(|(_, n)| stored.contains(n));
        debug_assert!(planner.group_of.values().any(|&g| g == k) || map.ops.is_empty() || !map.column_sums.is_empty());
    }
    let mut pieces = pieces.into_iter();
    Plan {
        forward: pieces.next().expect("forward piece"),
        backward: pieces.next().expect("backward piece"),
        update,
        maps,
        stored,
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
}

impl Planner<'_> {
    /// Turns an open group into a map kernel step.
    fn close(&mut self, group: Option<Group>, steps: &mut Vec<Step>) {
        let Some(group) = group else { return };
        let index = self.maps.len();
        let mut inputs: Vec<Input> = Vec::new();
        let mut ops: Vec<KOp> = Vec::new();
        let mut value_of: HashMap<NodeId, usize> = HashMap::new();
        let members: HashSet<NodeId> = group.members.iter().copied().collect();
        let graph = self.graph;
        let operand =
            |n: NodeId, ops: &mut Vec<KOp>, inputs: &mut Vec<Input>, value_of: &mut HashMap<NodeId, usize>| -> usize {
                if let Some(&v) = value_of.get(&n) {
                    return v;
                }
                debug_assert!(!members.contains(&n), "members are computed before use");
                let shape = graph.nodes[n].shape;
                let input = if shape.rows == Rows::Fixed(1) && group.shape.rows != Rows::Fixed(1) {
                    Input::Row(n)
                } else {
                    Input::Full(n)
                };
                let slot = inputs.iter().position(|i| *i == input).unwrap_or_else(|| {
                    inputs.push(input);
                    inputs.len() - 1
                });
                ops.push(KOp::Load(slot));
                value_of.insert(n, ops.len() - 1);
                ops.len() - 1
            };
        let mut stores = Vec::new();
        for &m in &group.members {
            let kop = match graph.nodes[m].op {
                Op::AddRow { x, row } => {
                    let (a, b) = (
                        operand(x, &mut ops, &mut inputs, &mut value_of),
                        operand(row, &mut ops, &mut inputs, &mut value_of),
                    );
                    KOp::Add(a, b)
                }
                Op::Add { a, b } => {
                    let (a, b) = (
                        operand(a, &mut ops, &mut inputs, &mut value_of),
                        operand(b, &mut ops, &mut inputs, &mut value_of),
                    );
                    KOp::Add(a, b)
                }
                Op::Mul { a, b } => {
                    let (a, b) = (
                        operand(a, &mut ops, &mut inputs, &mut value_of),
                        operand(b, &mut ops, &mut inputs, &mut value_of),
                    );
                    KOp::Mul(a, b)
                }
                Op::Unary { func, x } => KOp::Act(func, operand(x, &mut ops, &mut inputs, &mut value_of)),
                Op::UnaryGrad { func, x, y, dy } => {
                    let x = operand(x, &mut ops, &mut inputs, &mut value_of);
                    let y = operand(y, &mut ops, &mut inputs, &mut value_of);
                    let dy = operand(dy, &mut ops, &mut inputs, &mut value_of);
                    KOp::ActGrad(func, x, y, dy)
                }
                Op::Prelu { x, slope } => {
                    let x = operand(x, &mut ops, &mut inputs, &mut value_of);
                    let s = operand(slope, &mut ops, &mut inputs, &mut value_of);
                    KOp::Prelu(x, s)
                }
                Op::PreluGradInput { x, slope, dy } => {
                    let x = operand(x, &mut ops, &mut inputs, &mut value_of);
                    let s = operand(slope, &mut ops, &mut inputs, &mut value_of);
                    let dy = operand(dy, &mut ops, &mut inputs, &mut value_of);
                    KOp::PreluDx(x, s, dy)
                }
                ref other => unreachable!("{other:?} is not elementwise"),
            };
            ops.push(kop);
            value_of.insert(m, ops.len() - 1);
            stores.push((ops.len() - 1, m));
            self.group_of.insert(m, index);
        }
        let mut column_sums = Vec::new();
        for &r in &group.reductions {
            let v = match graph.nodes[r].op {
                Op::SumRows { x } => operand(x, &mut ops, &mut inputs, &mut value_of),
                Op::PreluGradSlope { x, dy } => {
                    let x = operand(x, &mut ops, &mut inputs, &mut value_of);
                    let dy = operand(dy, &mut ops, &mut inputs, &mut value_of);
                    ops.push(KOp::PreluDslope(x, dy));
                    ops.len() - 1
                }
                ref other => unreachable!("{other:?} is not a column reduction"),
            };
            column_sums.push((v, r));
        }
        self.maps.push(MapKernel {
            shape: group.shape,
            inputs,
            ops,
            stores,
            column_sums,
            members: group.members.iter().chain(&group.reductions).copied().collect(),
        });
        steps.push(Step::Map(index));
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
        let shape = |s: Shape| match s.rows {
            Rows::Batch => format!("[batch, {}]", s.cols),
            Rows::Fixed(r) => format!("[{r}, {}]", s.cols),
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
