//! Reverse-mode differentiation of the forward graph, and the update piece.
//!
//! Walks the forward nodes backwards and appends, for each op, the nodes that compute the
//! gradients of its inputs (the derivative rules of every op are here, one arm each). The loss
//! ops are fused with their output activation: cross-entropy's gradient w.r.t. the logits is
//! `softmax - target`, never formed through the softmax's Jacobian.

use crate::graph::{Builder, Graph, NodeId, Op, ParamKind};
use std::collections::HashMap;

/// Appends the backward and update pieces to `graph`, taking its nodes from `builder`.
/// `logits` is the pre-activation of a fused softmax/sigmoid output, if any.
pub fn differentiate(graph: &mut Graph, mut b: Builder, logits: Option<NodeId>) {
    let forward_end = b.nodes().len();
    // Which nodes depend on a parameter (only those need gradients).
    let mut needs = vec![false; forward_end];
    for (h, node) in b.nodes().iter() {
        needs[h.index()] = match node.op {
            Op::Param(_) => true,
            Op::DropoutMask { .. } => false,
            ref op => op.inputs().iter().any(|i| needs[i.index()]),
        };
    }

    let mut grads: HashMap<NodeId, NodeId> = HashMap::new();
    let accumulate = |b: &mut Builder, grads: &mut HashMap<NodeId, NodeId>, node: NodeId, g: NodeId| {
        if !needs[node.index()] {
            return;
        }
        let total = match grads.get(&node) {
            Some(&existing) => b.add(Op::Add { a: existing, b: g }),
            None => g,
        };
        grads.insert(node, total);
    };

    // Seed: the gradient of the (mean) loss w.r.t. what it reads.
    let loss_op = b.nodes()[graph.loss].op.clone();
    match loss_op {
        Op::SoftmaxCrossEntropy { logits: z, targets } => {
            debug_assert_eq!(Some(z), logits);
            let g = b.add(Op::SoftmaxCrossEntropyGrad { logits: z, targets });
            accumulate(&mut b, &mut grads, z, g);
        }
        Op::SigmoidCrossEntropy { logits: z, targets } => {
            let g = b.add(Op::SigmoidCrossEntropyGrad { logits: z, targets });
            accumulate(&mut b, &mut grads, z, g);
        }
        Op::MeanSquaredError { output, targets } => {
            let g = b.add(Op::MeanSquaredErrorGrad { output, targets });
            accumulate(&mut b, &mut grads, output, g);
        }
        ref other => unreachable!("the loss node is a loss op, found {other:?}"),
    }

    for &node in graph.forward.iter().rev() {
        let Some(&dy) = grads.get(&node) else { continue };
        let op = b.nodes()[node].op.clone();
        b.set_layer(b.nodes()[node].layer);
        match op {
            Op::MatMul {
                a,
                b: w,
                transpose_a: false,
                transpose_b: false,
            } => {
                if needs[a.index()] {
                    let da = b.add(Op::MatMul {
                        a: dy,
                        b: w,
                        transpose_a: false,
                        transpose_b: true,
                    });
                    accumulate(&mut b, &mut grads, a, da);
                }
                if needs[w.index()] {
                    let dw = b.add(Op::MatMul {
                        a,
                        b: dy,
                        transpose_a: true,
                        transpose_b: false,
                    });
                    accumulate(&mut b, &mut grads, w, dw);
                }
            }
            Op::AddRow { x, row } => {
                accumulate(&mut b, &mut grads, x, dy);
                let drow = b.add(Op::SumRows { x: dy });
                accumulate(&mut b, &mut grads, row, drow);
            }
            Op::Unary { func, x } => {
                let dx = b.add(Op::UnaryGrad { func, x, y: node, dy });
                accumulate(&mut b, &mut grads, x, dx);
            }
            Op::Prelu { x, slope } => {
                if needs[x.index()] {
                    let dx = b.add(Op::PreluGradInput { x, slope, dy });
                    accumulate(&mut b, &mut grads, x, dx);
                }
                let ds = b.add(Op::PreluGradSlope { x, dy });
                accumulate(&mut b, &mut grads, slope, ds);
            }
            Op::Maxout { x, pieces } => {
                let dx = b.add(Op::MaxoutGrad { x, pieces, dy });
                accumulate(&mut b, &mut grads, x, dx);
            }
            Op::Mul { a, b: m } => {
                if needs[a.index()] {
                    let da = b.add(Op::Mul { a: dy, b: m });
                    accumulate(&mut b, &mut grads, a, da);
                }
                if needs[m.index()] {
                    let dm = b.add(Op::Mul { a: dy, b: a });
                    accumulate(&mut b, &mut grads, m, dm);
                }
            }
            Op::Add { a, b: c } => {
                accumulate(&mut b, &mut grads, a, dy);
                accumulate(&mut b, &mut grads, c, dy);
            }
            Op::Softmax { x } => {
                let dx = b.add(Op::SoftmaxGrad { y: node, dy });
                accumulate(&mut b, &mut grads, x, dx);
            }
            Op::Param(_) => {}
            ref other => unreachable!("no forward graph holds {other:?} above its loss"),
        }
    }
    b.set_layer(None);

    // Final gradients (with the regularizer's) and one update per parameter.
    let param_nodes: Vec<(usize, NodeId)> = b
        .nodes()
        .iter()
        .filter_map(|(h, n)| match n.op {
            Op::Param(p) => Some((p, h)),
            _ => None,
        })
        .collect();
    let mut final_grads = vec![None; param_nodes.len()];
    let mut updates = Vec::new();
    let params = b.params().to_vec();
    for (p, node) in param_nodes {
        let g = *grads.get(&node).expect("every parameter reaches the loss");
        let info = &params[p];
        b.set_layer(Some(info.layer));
        let r = info.regularization;
        let g = if info.kind == ParamKind::Weight && (r.l1 > 0.0 || r.l2 > 0.0) {
            b.add(Op::PenaltyGrad {
                grad: g,
                param: p,
                l1: r.l1,
                l2: r.l2,
            })
        } else {
            g
        };
        final_grads[p] = Some(g);
        updates.push(b.add(Op::Update { param: p, grad: g }));
    }
    b.set_layer(None);

    let (nodes, params) = b.finish();
    graph.backward = nodes
        .iter()
        .skip(forward_end)
        .filter(|(_, n)| !matches!(n.op, Op::Update { .. }))
        .map(|(h, _)| h)
        .collect();
    graph.update = updates;
    graph.grads = final_grads
        .into_iter()
        .map(|g| g.expect("every parameter has a gradient"))
        .collect();
    graph.nodes = nodes;
    graph.params = params;
}
