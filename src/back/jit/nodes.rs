//! Ops that are kernels of their own ([`Step::Node`]): convolutions ([`conv`]), pooling
//! ([`window`]), batch normalization ([`norm`]) and the channel ops ([`channels`]), on the
//! engine's buffers; and the running averages of the update piece ([`Step::Average`]).
//!
//! Each kernel writes its node's buffer, taken out of `buffers` while the inputs are read in
//! place (the fusion pass never lets a step read the node it writes), so this is safe code but
//! for the matrix products. Work is split across the cores only where the split is a function of
//! the sizes alone and each part is computed the same way on one core or two (`split::halves`).

use super::*;

/// What a kernel reads: the graph, the buffers of its inputs, the batch and the helper.
pub(super) struct Cx<'a> {
    pub(super) graph: &'a Graph,
    pub(super) buffers: &'a [Vec<f32>],
    pub(super) rows: usize,
    pub(super) pair: Option<&'a pair::Pair>,
}

impl Cx<'_> {
    /// The rows of node `n` in this batch.
    pub(super) fn rows_of(&self, n: NodeId) -> usize {
        self.graph.nodes[n].shape.rows_for(self.rows)
    }

    /// The current value of node `n` (an input of the running kernel), row-major.
    pub(super) fn value(&self, n: NodeId) -> &[f32] {
        let len = self.rows_of(n) * self.graph.nodes[n].shape.cols();
        &self.buffers[n.index()][..len]
    }
}

impl Jit {
    /// Runs the kernel of node `n`.
    pub(super) fn node(&mut self, n: NodeId, ctx: &Context) {
        let len = self.len_of(n, self.rows);
        let mut out = std::mem::take(&mut self.buffers[n.index()]);
        let cx = Cx {
            graph: &self.graph,
            buffers: &self.buffers,
            rows: self.rows,
            pair: self.pair.as_ref(),
        };
        let o = &mut out[..len];
        match &self.graph.nodes[n].op {
            Op::Conv(op) => conv::run(&cx, op, o, &mut self.conv_scratch),
            Op::Pool(op) => window::pool(&cx, op, o),
            Op::Norm(op) => norm::run(&cx, op, o, ctx.training, &mut self.norm_sums),
            Op::Channel(op) => channels::run(&cx, op, o),
            other => unreachable!("{} is not a kernel of its own", other.name()),
        }
        self.buffers[n.index()] = out;
    }

    /// A running statistic's step, `p = (1 - momentum) p + momentum value`, as
    /// `UpdateOp::average` computes it.
    pub(super) fn average(&mut self, param: usize, value: NodeId, momentum: f64) {
        let node = self.param_nodes[param];
        let mut p = std::mem::take(&mut self.buffers[node.index()]);
        let (keep, take) = ((1.0 - momentum) as f32, momentum as f32);
        for (p, &v) in p.iter_mut().zip(self.slice(value)) {
            *p = keep * *p + take * v;
        }
        self.buffers[node.index()] = p;
    }
}

/// Runs `work(rows, part of out)` over the rows of `out` (`rows` of equal length), in two halves
/// at once when there is enough of it. Rows are independent here, so where they are split
/// changes nothing.
pub(super) fn by_rows(
    pair: Option<&pair::Pair>,
    rows: usize,
    out: &mut [f32],
    work_per_row: usize,
    work: &(dyn Fn(std::ops::Range<usize>, &mut [f32]) + Sync),
) {
    if pair.is_none() || rows < 2 || rows * work_per_row < PARALLEL_MAP {
        work(0..rows, out);
        return;
    }
    let half = rows / 2;
    let (first, second) = out.split_at_mut(half * (out.len() / rows));
    halves(pair, (0..half, first), (half..rows, second), &|(range, part)| {
        work(range, part)
    });
}
