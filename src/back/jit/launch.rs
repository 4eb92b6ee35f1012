//! Running a piece's steps: map and update kernels, matrix products (`gemm` or thin products),
//! native row kernels and kernels of their own (`nodes`), each split across the cores where
//! that pays.

use super::*;

impl Jit {
    pub(super) fn run(&mut self, steps: &[Step], ctx: &Context) {
        let _modes = FlushDenormals::new();
        // Sums shared by the gradients of one normalization are only valid within one piece.
        self.norm_sums.clear();
        for step in steps {
            match step {
                Step::Map(k) => self.map(*k),
                Step::Gemm {
                    a,
                    b,
                    transpose_a,
                    transpose_b,
                    out,
                } => self.gemm(*a, *b, *transpose_a, *transpose_b, *out),
                Step::Row(kernel) => self.row(kernel, ctx),
                Step::Node(n) => self.node(*n, ctx),
                Step::Average { param, value, momentum } => self.average(*param, *value, *momentum),
                Step::Update { param, grad, .. } => {
                    let t = self.updates;
                    // Adam's bias corrections folded into the step and the root, as the
                    // interpreter does (`UpdateOp::apply`).
                    let scalars = match self.graph.optimizer {
                        OptimizerKind::Adam { beta1, beta2, .. } => [
                            (ctx.lr / (1.0 - beta1.powi(t as i32))) as f32,
                            (1.0 / (1.0 - beta2.powi(t as i32)).sqrt()) as f32,
                            0.0,
                        ],
                        _ => [ctx.lr as f32, 0.0, 0.0],
                    };
                    let node = self.param_nodes[*param];
                    let n = self.buffers[node.index()].len();
                    let g = self.buffers[grad.index()].as_ptr();
                    let w = self.buffers[node.index()].as_mut_ptr();
                    let mut dummy = [0.0f32; 0];
                    let (s0, s1) = match self.state[*param].as_mut_slice() {
                        [] => (dummy.as_mut_ptr(), dummy.as_mut_ptr()),
                        [s0] => (s0.as_mut_ptr(), dummy.as_mut_ptr()),
                        [s0, s1, ..] => (s0.as_mut_ptr(), s1.as_mut_ptr()),
                    };
                    let args = UpdateArgs {
                        kernel: self.update_fns[*param].expect("a trained parameter has an update kernel"),
                        w,
                        g,
                        s0,
                        s1,
                        slots: self.state[*param].len(),
                        scalars,
                    };
                    // Elements are independent, so a large tensor is updated in two halves at
                    // once; the results are identical to one pass.
                    if let Some(pair) = self.pair.as_ref().filter(|_| n >= PARALLEL_UPDATE) {
                        let half = (n / 2) & !3;
                        // SAFETY: the two ranges split 0..n without overlap.
                        both(Some(pair), || unsafe { args.run(0, half) }, &|| unsafe {
                            args.run(half, n)
                        });
                    } else {
                        // SAFETY: 0..n is the parameter's whole range.
                        unsafe { args.run(0, n) };
                    }
                }
            }
        }
    }

    /// Runs map kernel `k`. Over enough rows, its two row halves run at once; column sums are
    /// then summed per half and the halves added, on one core or two alike, so results do not
    /// depend on the thread count.
    pub(super) fn map(&mut self, k: usize) {
        let map = &self.plan.maps[k];
        for &(_, n) in &map.column_sums {
            self.buffers[n.index()].fill(0.0);
        }
        let (rows, cols) = (self.rows, map.shape.cols());
        let kernel = self.map_fns[k];
        if !matches!(map.shape.rows(), Dim::Batch) || rows < PARALLEL_ROWS || rows * cols < PARALLEL_MAP {
            // SAFETY: the kernel reads and writes exactly the buffers whose pointers `allocate`
            // put in `map_args[k]`, each sized for `capacity >= rows` rows of the kernel's column
            // count, which was compiled into it.
            unsafe { kernel(self.map_args[k].as_ptr(), rows as i64) };
            return;
        }
        let half = halfway(rows);
        // The second half's pointers: tensors of the kernel's shape start `half` rows on, rows
        // broadcast over the kernel stay, column sums go to a zeroed scratch row each.
        let sums = &mut self.map_sums[k];
        sums.fill(0.0);
        let second = &mut self.map_args_second[k];
        second.clear();
        second.extend(map.inputs.iter().zip(&self.map_args[k]).map(|(input, &p)| match input {
            crate::passes::fuse::Input::Full(_) => p.wrapping_add(half * cols),
            crate::passes::fuse::Input::Row(_) => p,
        }));
        let stores = &self.map_args[k][map.inputs.len()..map.inputs.len() + map.stores.len()];
        second.extend(stores.iter().map(|&p| p.wrapping_add(half * cols)));
        second.extend((0..map.column_sums.len()).map(|j| sums[j * cols..].as_mut_ptr()));
        let (first_args, second_args) = (self.map_args[k].as_ptr() as usize, second.as_ptr() as usize);
        // SAFETY: as above for rows `0..half`; the second call's pointers address rows
        // `half..rows` of the same buffers (the first `rows - half` rows after the offset) and
        // its own scratch column sums, so the two calls write disjoint memory.
        both(
            self.pair.as_ref(),
            || unsafe { kernel(first_args as *const *mut f32, half as i64) },
            &|| unsafe { kernel(second_args as *const *mut f32, (rows - half) as i64) },
        );
        for (j, &(_, n)) in map.column_sums.iter().enumerate() {
            let sum = &mut self.buffers[n.index()][..cols];
            sum.iter_mut()
                .zip(&sums[j * cols..(j + 1) * cols])
                .for_each(|(s, h)| *s += h);
        }
    }

    pub(super) fn dims(&self, node: NodeId) -> (usize, usize) {
        let s = self.graph.nodes[node].shape;
        (s.rows_for(self.rows), s.cols())
    }

    pub(super) fn gemm(&mut self, a: NodeId, b: NodeId, transpose_a: bool, transpose_b: bool, out: NodeId) {
        let (ra, ca) = self.dims(a);
        let (rb, cb) = self.dims(b);
        let (m, k, lhs_rs, lhs_cs) = if transpose_a {
            (ca, ra, 1, ca as isize)
        } else {
            (ra, ca, ca as isize, 1)
        };
        let (n, rhs_rs, rhs_cs) = if transpose_b {
            (rb, 1, cb as isize)
        } else {
            (cb, cb as isize, 1)
        };
        let lhs = self.buffers[a.index()].as_ptr() as usize;
        let rhs = self.buffers[b.index()].as_ptr() as usize;
        let dst = self.buffers[out.index()].as_mut_ptr() as usize;
        debug_assert!(self.buffers[out.index()].len() >= m * n);
        // One single-threaded product for output rows `r0..r0 + rows` and columns
        // `c0..c0 + cols`.
        let product = |r0: usize, rows: usize, c0: usize, cols: usize| {
            // SAFETY: `lhs` holds `ra x ca`, `rhs` holds `rb x cb` and `dst` holds `m x n`
            // row-major floats (buffers sized for `capacity >= rows`); the strides above address
            // only those elements, here output rows `r0..r0 + rows <= m` and the matching rows of
            // the left operand, and columns `c0..c0 + cols <= n` of the output with the matching
            // columns of the right operand; `dst` is a different node's buffer than `lhs` and `rhs`.
            unsafe {
                gemm::gemm(
                    rows,
                    cols,
                    k,
                    (dst as *mut f32).add(r0 * n + c0),
                    1,
                    n as isize,
                    false,
                    (lhs as *const f32).offset(r0 as isize * lhs_rs),
                    lhs_cs,
                    lhs_rs,
                    (rhs as *const f32).offset(c0 as isize * rhs_cs),
                    rhs_cs,
                    rhs_rs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        };
        match &self.pair {
            Some(pair) if m * n * k >= PARALLEL_MACS && m >= PARALLEL_ROWS && n >= 32 => {
                // Each core computes half of the output columns, every element summed in the
                // same order as on one core. Each packs only its half of the right operand
                // (usually the weights). Against halves of the rows, which pack all of it on both
                // cores (steps of the two interleaved in one process): 7% less time per mlp
                // step, 4% per wide step, 1.5% per deep step.
                let half = halfway(n);
                both(Some(pair), || product(0, m, 0, half), &|| product(0, m, half, n - half));
            }
            _ if m <= thin::MAX_ROWS && rhs_cs == 1 => {
                // A few rows against a large matrix (batch-1 inference): read the weights in
                // place instead of packing them. A large product is summed as two halves of the
                // inner dimension (see `thin`), one per core when there are two, so each core
                // reads a contiguous half of the weights, which then stays in its cache.
                let product = thin::Product {
                    m,
                    n,
                    a: lhs as *const f32,
                    a_rs: lhs_rs,
                    a_cs: lhs_cs,
                    b: rhs as *const f32,
                    b_rs: rhs_rs as usize,
                };
                if m * n * k >= PARALLEL_THIN_MACS && k >= 2 {
                    let h = k / 2;
                    if self.scratch.len() < m * n {
                        self.scratch.resize(m * n, 0.0);
                    }
                    let scratch = self.scratch.as_mut_ptr() as usize;
                    // SAFETY: as for `product` above: `lhs` addresses rows `< m` and columns
                    // `< k`, `rhs` is `k x n` with row stride `rhs_rs`; `dst` and `scratch` each
                    // hold `m x n` floats, are distinct from the operands and from each other.
                    let first = || unsafe { product.partial(0, h, dst as *mut f32) };
                    let second = || unsafe { product.partial(h, k, scratch as *mut f32) };
                    both(self.pair.as_ref(), first, &second);
                    // SAFETY: both hold `m x n` floats (above) and do not overlap.
                    let (d, s) = unsafe {
                        (
                            std::slice::from_raw_parts_mut(dst as *mut f32, m * n),
                            std::slice::from_raw_parts(scratch as *const f32, m * n),
                        )
                    };
                    d.iter_mut().zip(s).for_each(|(d, s)| *d += s);
                } else {
                    // SAFETY: as above, for the whole inner dimension into `dst`.
                    unsafe { product.partial(0, k, dst as *mut f32) };
                }
            }
            _ => product(0, m, 0, n),
        }
    }

    pub(super) fn row(&mut self, kernel: &RowKernel, ctx: &Context) {
        let rows = self.rows;
        match kernel {
            RowKernel::SoftmaxCrossEntropy {
                logits,
                targets,
                probabilities,
                grad,
                ..
            } => {
                let cols = self.graph.nodes[*logits].shape.cols();
                // The outputs are taken out of `buffers` while the inputs are read in place.
                let mut p = probabilities.map(|n| std::mem::take(&mut self.buffers[n.index()]));
                let mut g = grad.map(|n| std::mem::take(&mut self.buffers[n.index()]));
                let (z, t) = (self.slice(*logits), self.slice(*targets));
                self.loss = native::softmax_cross_entropy(z, t, rows, cols, p.as_deref_mut(), g.as_deref_mut());
                if let (Some(n), Some(b)) = (probabilities, p) {
                    self.buffers[n.index()] = b;
                }
                if let (Some(n), Some(b)) = (grad, g) {
                    self.buffers[n.index()] = b;
                }
            }
            RowKernel::SigmoidCrossEntropy {
                logits, targets, grad, ..
            } => {
                let len = self.len_of(*logits, rows);
                let mut g = grad.map(|n| std::mem::take(&mut self.buffers[n.index()]));
                self.loss = native::sigmoid_cross_entropy(
                    self.slice(*logits),
                    self.slice(*targets),
                    g.as_deref_mut().map(|b| &mut b[..len]),
                );
                if let (Some(n), Some(b)) = (grad, g) {
                    self.buffers[n.index()] = b;
                }
            }
            RowKernel::MeanSquaredError {
                output, targets, grad, ..
            } => {
                let len = self.len_of(*output, rows);
                let mut g = grad.map(|n| std::mem::take(&mut self.buffers[n.index()]));
                self.loss = native::mean_squared_error(
                    self.slice(*output),
                    self.slice(*targets),
                    g.as_deref_mut().map(|b| &mut b[..len]),
                );
                if let (Some(n), Some(b)) = (grad, g) {
                    self.buffers[n.index()] = b;
                }
            }
            RowKernel::Softmax { x, out } => {
                let cols = self.graph.nodes[*x].shape.cols();
                let (o, bufs) = self.split(*out);
                native::softmax(&bufs[x.index()], o, rows, cols);
            }
            RowKernel::SoftmaxGrad { y, dy, out } => {
                let cols = self.graph.nodes[*y].shape.cols();
                let (o, bufs) = self.split(*out);
                native::softmax_grad(&bufs[y.index()], &bufs[dy.index()], o, rows, cols);
            }
            RowKernel::Maxout { x, pieces, out } => {
                let units = self.graph.nodes[*x].shape.cols();
                let mut winners = self.winners.remove(out).expect("maxout winners are allocated");
                let (o, bufs) = self.split(*out);
                native::maxout(&bufs[x.index()], o, &mut winners, rows, units, *pieces);
                self.winners.insert(*out, winners);
            }
            RowKernel::MaxoutGrad {
                forward,
                pieces,
                dy,
                out,
            } => {
                let units = self.graph.nodes[*out].shape.cols();
                let winners = self.winners.remove(forward).expect("maxout winners are allocated");
                let (o, bufs) = self.split(*out);
                native::maxout_grad(&winners, &bufs[dy.index()], o, rows, units, *pieces);
                self.winners.insert(*forward, winners);
            }
            RowKernel::DropoutMask {
                rate, mode, layer, out, ..
            } => {
                let cols = self.graph.nodes[*out].shape.cols();
                let seed = self.seed;
                let (o, _) = self.split(*out);
                native::dropout_mask(o, rows, cols, *rate, *mode, *layer, seed, ctx.step, ctx.training);
            }
        }
    }

    /// The model layer a step computes, for per-layer timings.
    pub(super) fn step_layer(&self, step: &Step) -> Option<usize> {
        let node = match step {
            Step::Map(k) => {
                let map = &self.plan.maps[*k];
                map.stores.first().or(map.column_sums.first()).map(|&(_, n)| n)?
            }
            Step::Gemm { out, .. } => *out,
            Step::Row(RowKernel::SoftmaxCrossEntropy { loss, .. })
            | Step::Row(RowKernel::SigmoidCrossEntropy { loss, .. })
            | Step::Row(RowKernel::MeanSquaredError { loss, .. }) => *loss,
            Step::Row(RowKernel::Softmax { out, .. })
            | Step::Row(RowKernel::SoftmaxGrad { out, .. })
            | Step::Row(RowKernel::Maxout { out, .. })
            | Step::Row(RowKernel::MaxoutGrad { out, .. })
            | Step::Row(RowKernel::DropoutMask { out, .. }) => *out,
            Step::Node(n) => *n,
            Step::Update { param, .. } | Step::Average { param, .. } => return Some(self.graph.params[*param].layer),
        };
        self.graph.nodes[node].layer
    }
}
