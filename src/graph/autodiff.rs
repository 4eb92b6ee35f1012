//! Reverse-mode differentiation of the forward graph, and the update piece.
//!
//! Walks the forward nodes backwards and asks each op for the gradients of its inputs (the
//! derivative rules live with the ops, in [`crate::ops`]); sums the gradients of values read
//! twice; adds each regularized weight's penalty gradient; appends one update per parameter.

use super::{Builder, Graph, NodeId, Op};
use crate::ops::ArithOp;
use crate::ops::{GradCx, PenaltyOp, UpdateOp};
use std::collections::HashMap;

/// Autodiff's state: the builder, which nodes need gradients, and the gradients so far.
struct Gradients {
    builder: Builder,
    needs: Vec<bool>,
    grads: HashMap<NodeId, NodeId>,
}

impl GradCx for Gradients {
    fn needs(&self, n: NodeId) -> bool {
        self.needs.get(n.index()).copied().unwrap_or(false)
    }

    fn add(&mut self, op: Op) -> NodeId {
        self.builder.add(op)
    }

    fn accumulate(&mut self, n: NodeId, g: NodeId) {
        if !self.needs(n) {
            return;
        }
        let total = match self.grads.get(&n) {
            Some(&existing) => self.builder.add(Op::Arith(ArithOp::Add { a: existing, b: g })),
            None => g,
        };
        self.grads.insert(n, total);
    }
}

/// Appends the backward and update pieces to `graph`, taking its nodes from `builder`.
pub fn differentiate(graph: &mut Graph, builder: Builder) {
    let forward_end = builder.nodes().len();
    // Which nodes depend on a parameter (only those need gradients).
    let mut needs = vec![false; forward_end];
    for (h, node) in builder.nodes().iter() {
        needs[h.index()] = match node.op {
            Op::Param(_) => true,
            ref op if op.is_constant() => false,
            ref op => op.inputs().iter().any(|i| needs[i.index()]),
        };
    }
    let mut cx = Gradients {
        builder,
        needs,
        grads: HashMap::new(),
    };

    // The loss is the root: its op seeds the gradient of what it reads.
    let loss = graph.loss.expect("training graphs have a loss");
    let loss_op = cx.builder.nodes()[loss].op.clone();
    loss_op.differentiate(loss, None, &mut cx);
    for &node in graph.forward.iter().rev() {
        if node == loss {
            continue;
        }
        let Some(&dy) = cx.grads.get(&node) else { continue };
        let op = cx.builder.nodes()[node].op.clone();
        let layer = cx.builder.nodes()[node].layer;
        cx.builder.set_layer(layer);
        op.differentiate(node, Some(dy), &mut cx);
    }
    cx.builder.set_layer(None);

    // Final gradients (with the regularizer's) and one update per parameter.
    let param_nodes: Vec<(usize, NodeId)> = cx
        .builder
        .nodes()
        .iter()
        .filter_map(|(h, n)| match n.op {
            Op::Param(p) => Some((p, h)),
            _ => None,
        })
        .collect();
    let mut final_grads = vec![None; param_nodes.len()];
    let mut updates = Vec::new();
    let params = cx.builder.params().to_vec();
    let Gradients {
        builder: mut b, grads, ..
    } = cx;
    for (p, node) in param_nodes {
        let info = &params[p];
        if let Some((value, momentum)) = info.follows {
            // Running statistics follow the batches: no gradient, an average as the update.
            b.set_layer(Some(info.layer));
            final_grads[p] = Some(value);
            updates.push(b.add(Op::Update(UpdateOp::Average {
                param: p,
                value,
                momentum,
            })));
            continue;
        }
        let g = *grads.get(&node).expect("every parameter reaches the loss");
        b.set_layer(Some(info.layer));
        let r = info.regularization;
        let g = if info.kind.is_regularized() && (r.l1 > 0.0 || r.l2 > 0.0) {
            b.add(Op::Penalty(PenaltyOp::PenaltyGrad {
                grad: g,
                param: p,
                l1: r.l1,
                l2: r.l2,
            }))
        } else {
            g
        };
        final_grads[p] = Some(g);
        updates.push(b.add(Op::Update(UpdateOp::Update { param: p, grad: g })));
    }
    b.set_layer(None);

    let (nodes, params) = b.finish();
    graph.backward = nodes
        .iter()
        .skip(forward_end)
        .filter(|(_, n)| !matches!(n.op, Op::Update(_)))
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
