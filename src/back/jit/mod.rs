//! Stage 5b: the JIT backend. Fuses the graph ([`fuse`]), compiles the elementwise and update
//! kernels with Cranelift ([`codegen`]), runs matrix products through the `gemm` crate (which
//! uses this CPU's AVX-512 units; Cranelift's vectors stop at 128 bits) and row kernels natively
//! ([`native`]). It is tested against the interpreter on random networks (`tests/jit.rs`).
//!
//! All unsafe code of netc lives in this module: calls into generated code and into `gemm`,
//! both on buffers this module owns.

pub mod native;
mod pair;
mod thin;

use crate::back::engine::Engine;
use crate::back::interp::Context;
use crate::error::UserError;
use crate::graph::{Graph, NodeId, Op, ParamKind};
use crate::ir::Dim;
use crate::ir::OptimizerKind;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};

use crate::back::kernels;
use crate::passes::fuse::{Plan, RowKernel, Step};
use ndarray::{Array2, ArrayView2};
use std::collections::HashMap;
use std::time::Instant;

/// Sets flush-to-zero and denormals-are-zero for the current thread while alive.
///
/// Optimizer state of weights whose gradient is zero decays geometrically into the subnormal
/// range (Adam's first moment after ~800 steps), where x86 arithmetic is about 100 times
/// slower. XLA and TensorFlow flush subnormals on CPU for the same reason; the values involved
/// are below 1e-38, far under the tolerance the JIT is held to against the interpreter.
struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl FlushDenormals {
    fn new() -> FlushDenormals {
        #[cfg(target_arch = "x86_64")]
        {
            #[allow(deprecated)]
            // SAFETY: reading and writing MXCSR only changes this thread's floating-point
            // modes; FTZ (bit 15) and DAZ (bit 6) are valid on every x86-64 CPU with SSE2.
            let saved = unsafe {
                let saved = std::arch::x86_64::_mm_getcsr();
                std::arch::x86_64::_mm_setcsr(saved | 0x8040);
                saved
            };
            FlushDenormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushDenormals {}
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        #[allow(deprecated)]
        // SAFETY: restores the modes saved in `new`.
        unsafe {
            std::arch::x86_64::_mm_setcsr(self.saved)
        };
    }
}

/// Multiply-adds above which a matrix product may use both cores.
const PARALLEL_MACS: usize = 1 << 19;

/// The arguments of one update kernel call.
#[derive(Clone, Copy)]
struct UpdateArgs {
    kernel: kernels::UpdateFn,
    w: *mut f32,
    g: *const f32,
    s0: *mut f32,
    s1: *mut f32,
    slots: usize,
    scalars: [f32; 3],
}

// SAFETY: the pointers refer to buffers owned by the `Jit` that builds these arguments and
// outlive the (joined) calls; concurrent calls cover disjoint element ranges.
unsafe impl Send for UpdateArgs {}
// SAFETY: as above; the struct itself is never mutated.
unsafe impl Sync for UpdateArgs {}

impl UpdateArgs {
    /// Updates elements `start..end`.
    ///
    /// # Safety
    /// `w`, `g` and the first `slots` state pointers must hold at least `end` floats, and no
    /// other call may touch `start..end` at the same time.
    unsafe fn run(&self, start: usize, end: usize) {
        // Floating-point modes: set by `Jit::run` on the calling thread, for good on the helper.
        let at = |p: *mut f32, used: bool| if used { p.wrapping_add(start) } else { p };
        // SAFETY: per this function's contract; the kernel only touches the state slots its
        // optimizer has, so an unused (empty) slot pointer is never dereferenced.
        unsafe {
            (self.kernel)(
                self.w.wrapping_add(start),
                self.g.wrapping_add(start),
                at(self.s0, self.slots > 0),
                at(self.s1, self.slots > 1),
                self.scalars.as_ptr(),
                (end - start) as i64,
            )
        };
    }
}

/// Elements from which a map kernel over at least [`PARALLEL_ROWS`] rows is split by rows.
const PARALLEL_MAP: usize = 1 << 13;

/// Where work over `m` rows (or columns) is split between the cores: whole 16-wide tiles of
/// the matrix-product micro-kernel first.
fn halfway(m: usize) -> usize {
    (m / 2).div_ceil(16) * 16
}

/// Runs `first` on this thread and `second` on the helper, or both here, in order, without a
/// helper.
fn both(pair: Option<&pair::Pair>, first: impl FnOnce(), second: &(dyn Fn() + Sync)) {
    match pair {
        Some(pair) => pair.join(first, second),
        None => {
            first();
            second();
        }
    }
}

/// Parameters above which an update is split across both cores.
const PARALLEL_UPDATE: usize = 1 << 16;

/// Rows (the batch) below which a matrix product, an elementwise kernel or a batch gather
/// stays on one core: small pieces cost more in thread hand-off than they save. Splitting at 64
/// rows pays with the helper thread's atomic hand-off (deep, batch 64: epochs of 1.31-1.37 s
/// alone, 1.02-1.07 s split; docs/results.md); fewer rows were not measured.
const PARALLEL_ROWS: usize = 64;

/// Multiply-adds from which a product with at most [`thin::MAX_ROWS`] rows is summed as two
/// halves of its inner dimension (one per core when there are two).
const PARALLEL_THIN_MACS: usize = 1 << 15;

/// The JIT engine.
pub struct Jit {
    graph: Graph,
    plan: Plan,
    // Keeps the generated code alive.
    _module: JITModule,
    map_fns: Vec<kernels::MapFn>,
    update_fns: Vec<kernels::UpdateFn>,
    buffers: Vec<Vec<f32>>,
    winners: HashMap<NodeId, Vec<u32>>,
    map_args: Vec<Vec<*mut f32>>,
    state: Vec<Vec<Vec<f32>>>,
    param_nodes: Vec<NodeId>,
    capacity: usize,
    rows: usize,
    updates: u64,
    seed: u64,
    loss: f64,
    threads: usize,
    /// The second core's helper thread (absent on one core).
    pair: Option<pair::Pair>,
    /// The second half of a thin product (see `thin`).
    scratch: Vec<f32>,
    /// Per map kernel: the second row half's buffer pointers, and its column sums.
    map_args_second: Vec<Vec<*mut f32>>,
    map_sums: Vec<Vec<f32>>,
    /// Milliseconds spent fusing and compiling.
    pub compile_ms: f64,
}

fn host_module() -> Result<JITModule, UserError> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v)
            .map_err(|e| UserError::new(format!("Cranelift rejected setting {k}: {e}")))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    let isa = cranelift_native::builder()
        .map_err(|e| {
            UserError::new(format!("this CPU is not supported by Cranelift: {e}")).hint("use --backend interp")
        })?
        .finish(settings::Flags::new(flags))
        .map_err(|e| UserError::new(format!("Cranelift cannot target this CPU: {e}")).hint("use --backend interp"))?;
    Ok(JITModule::new(JITBuilder::with_isa(
        isa,
        cranelift_module::default_libcall_names(),
    )))
}

impl Jit {
    /// Fuses and compiles a graph, with parameters initialized as the interpreter's.
    pub fn new(graph: Graph, seed: u64) -> Result<Jit, UserError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Jit::with_threads(graph, seed, threads)
    }

    /// Compiles `graph` to run on at most `threads` cores (one or two). Results are the same
    /// for every thread count: work is only ever split where the split does not change the
    /// order of any sum, or where it is summed in the same halves on one core.
    pub fn with_threads(graph: Graph, seed: u64, threads: usize) -> Result<Jit, UserError> {
        let started = Instant::now();
        let plan = crate::passes::fuse::plan(&graph);
        let mut module = host_module()?;
        let compile_error = |e: Box<cranelift_module::ModuleError>| {
            UserError::new(format!("the JIT failed to compile a kernel: {e}"))
                .hint("use --backend interp, and report this as a bug")
        };
        let mut map_ids = Vec::new();
        for (i, map) in plan.maps.iter().enumerate() {
            map_ids.push(kernels::define_map(&mut module, &format!("map{i}"), map).map_err(compile_error)?);
        }
        let mut update_ids = vec![None; graph.params.len()];
        for step in &plan.update {
            if let Step::Update { param, l1, l2, .. } = *step {
                update_ids[param] = Some(
                    kernels::define_update(&mut module, &format!("update{param}"), graph.optimizer, l1, l2)
                        .map_err(compile_error)?,
                );
            }
        }
        module.finalize_definitions().map_err(|e| compile_error(Box::new(e)))?;
        // SAFETY: each id was defined above with exactly the signature of the function type it
        // is cast to (`define_map` -> MapFn, `define_update` -> UpdateFn), and the module that
        // owns the code is kept alive in the returned struct for as long as the pointers exist.
        let map_fns = map_ids
            .iter()
            .map(|&id| unsafe { std::mem::transmute::<*const u8, kernels::MapFn>(module.get_finalized_function(id)) })
            .collect();
        let update_fns = update_ids
            .iter()
            .map(|id| {
                let id = id.expect("every parameter has an update step");
                // SAFETY: as above.
                unsafe { std::mem::transmute::<*const u8, kernels::UpdateFn>(module.get_finalized_function(id)) }
            })
            .collect();
        let param_nodes: Vec<NodeId> = {
            let mut v = vec![None; graph.params.len()];
            for (h, n) in graph.nodes.iter() {
                if let Op::Param(p) = n.op {
                    v[p] = Some(h);
                }
            }
            v.into_iter().map(|n| n.expect("every parameter has a node")).collect()
        };
        let slots = graph.optimizer.state_slots();
        let state = graph
            .params
            .iter()
            .map(|p| (0..slots).map(|_| vec![0.0; p.rows * p.cols]).collect())
            .collect();
        let mut jit = Jit {
            plan,
            _module: module,
            map_fns,
            update_fns,
            buffers: Vec::new(),
            winners: HashMap::new(),
            map_args: Vec::new(),
            state,
            param_nodes,
            capacity: 0,
            rows: 0,
            updates: 0,
            seed,
            loss: f64::NAN,
            threads: threads.clamp(1, 2),
            pair: None,
            scratch: Vec::new(),
            map_args_second: Vec::new(),
            map_sums: Vec::new(),
            compile_ms: 0.0,
            graph,
        };
        if jit.threads > 1 {
            // The helper only ever runs kernels: its floating-point modes are set once, for good.
            jit.pair = pair::Pair::new(|| std::mem::forget(FlushDenormals::new()));
        }
        jit.allocate(1);
        // Same initial parameters as the interpreter (the same counter-based streams).
        jit.set_params(&crate::graph::init::initial_params(&jit.graph, seed));
        jit.compile_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(jit)
    }

    fn len_of(&self, node: NodeId, rows: usize) -> usize {
        let s = self.graph.nodes[node].shape;
        s.rows_for(rows) * s.cols()
    }

    /// (Re)allocates every buffer for batches of up to `capacity` rows, keeping parameters.
    fn allocate(&mut self, capacity: usize) {
        let params: Vec<Vec<f32>> = self
            .param_nodes
            .iter()
            .map(|n| self.buffers.get(n.index()).cloned().unwrap_or_default())
            .collect();
        self.capacity = capacity;
        let mut buffers = vec![Vec::new(); self.graph.nodes.len()];
        for (h, _) in self.graph.nodes.iter() {
            if self.plan.stored.contains(&h) || self.param_nodes.contains(&h) {
                buffers[h.index()] = vec![0.0; self.len_of(h, capacity)];
            }
        }
        for (p, n) in self.param_nodes.iter().enumerate() {
            if params[p].len() == buffers[n.index()].len() {
                buffers[n.index()] = params[p].clone();
            }
        }
        self.buffers = buffers;
        self.winners.clear();
        for step in &self.plan.forward {
            if let Step::Row(RowKernel::Maxout { out, .. }) = step {
                self.winners.insert(*out, vec![0; self.len_of(*out, capacity)]);
            }
        }
        let mut args = Vec::new();
        for map in &self.plan.maps {
            let mut a: Vec<*mut f32> = Vec::new();
            for input in &map.inputs {
                let n = match *input {
                    crate::passes::fuse::Input::Full(n) | crate::passes::fuse::Input::Row(n) => n,
                };
                a.push(self.buffers[n.index()].as_mut_ptr());
            }
            for &(_, n) in &map.stores {
                a.push(self.buffers[n.index()].as_mut_ptr());
            }
            for &(_, n) in &map.column_sums {
                a.push(self.buffers[n.index()].as_mut_ptr());
            }
            args.push(a);
        }
        self.map_args_second = args.iter().map(|a| Vec::with_capacity(a.len())).collect();
        self.map_sums = self
            .plan
            .maps
            .iter()
            .map(|m| vec![0.0; m.column_sums.len() * m.shape.cols()])
            .collect();
        self.map_args = args;
    }

    fn slice(&self, node: NodeId) -> &[f32] {
        let len = self.len_of(node, self.rows);
        &self.buffers[node.index()][..len]
    }

    /// A mutable view of one buffer next to shared views of others (distinct nodes).
    fn split(&mut self, out: NodeId) -> (&mut [f32], &Vec<Vec<f32>>) {
        let len = self.len_of(out, self.rows);
        let ptr = self.buffers[out.index()].as_mut_ptr();
        // SAFETY: `out` is written by exactly one step and never read by that same step (the
        // fusion pass gives every output its own node), so the mutable slice does not alias any
        // slice the caller takes from the shared reference; the buffer has at least `len`
        // elements because it was allocated for `capacity >= rows` rows.
        let out_slice = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        (out_slice, &self.buffers)
    }

    fn run(&mut self, steps: &[Step], ctx: &Context) {
        let _modes = FlushDenormals::new();
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
                        kernel: self.update_fns[*param],
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
    fn map(&mut self, k: usize) {
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

    fn dims(&self, node: NodeId) -> (usize, usize) {
        let s = self.graph.nodes[node].shape;
        (s.rows_for(self.rows), s.cols())
    }

    fn gemm(&mut self, a: NodeId, b: NodeId, transpose_a: bool, transpose_b: bool, out: NodeId) {
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

    fn row(&mut self, kernel: &RowKernel, ctx: &Context) {
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
    fn step_layer(&self, step: &Step) -> Option<usize> {
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
            Step::Update { param, .. } => return Some(self.graph.params[*param].layer),
        };
        self.graph.nodes[node].layer
    }

    fn node_array(&self, node: NodeId) -> Array2<f32> {
        let (r, c) = self.dims(node);
        Array2::from_shape_vec((r, c), self.slice(node).to_vec()).expect("buffer length matches its shape")
    }
}

/// Copies a matrix into the front of a buffer, row-major.
fn copy_into(buffer: &mut [f32], src: ArrayView2<f32>) {
    match src.as_slice() {
        Some(src) => buffer[..src.len()].copy_from_slice(src),
        None => buffer.iter_mut().zip(src.iter()).for_each(|(d, &s)| *d = s),
    }
}

impl Engine for Jit {
    fn graph(&self) -> &Graph {
        &self.graph
    }
    fn name(&self) -> &'static str {
        "jit"
    }
    fn set_batch(&mut self, x: ArrayView2<f32>, targets: ArrayView2<f32>) {
        let rows = x.nrows();
        if rows > self.capacity {
            self.allocate(rows);
        }
        self.rows = rows;
        copy_into(&mut self.buffers[self.graph.input.index()], x);
        if let Some(t) = self.graph.targets {
            copy_into(&mut self.buffers[t.index()], targets);
        }
    }
    fn set_batch_rows(&mut self, features: ArrayView2<f32>, rows: &[usize], targets: ArrayView2<f32>) {
        if rows.len() > self.capacity {
            self.allocate(rows.len());
        }
        self.rows = rows.len();
        let cols = features.ncols();
        let gather = |dst: &mut [f32], rows: &[usize]| {
            for (dst, &r) in dst.chunks_exact_mut(cols).zip(rows) {
                let src = features.row(r);
                match src.as_slice() {
                    Some(src) => dst.copy_from_slice(src),
                    None => dst.iter_mut().zip(src.iter()).for_each(|(d, &s)| *d = s),
                }
            }
        };
        let input = &mut self.buffers[self.graph.input.index()][..rows.len() * cols];
        // The rows come from anywhere in the data set (memory, not cache): both cores fetch.
        match &self.pair {
            Some(pair) if rows.len() >= PARALLEL_ROWS => {
                let half = halfway(rows.len());
                let (first, second) = input.split_at_mut(half * cols);
                let (at, len) = (second.as_mut_ptr() as usize, second.len());
                // SAFETY: `at..at + len` is `second`, borrowed mutably for this call and
                // touched by the helper alone.
                let second = || {
                    gather(
                        unsafe { std::slice::from_raw_parts_mut(at as *mut f32, len) },
                        &rows[half..],
                    )
                };
                pair.join(|| gather(first, &rows[..half]), &second);
            }
            _ => gather(input, rows),
        }
        if let Some(t) = self.graph.targets {
            copy_into(&mut self.buffers[t.index()], targets);
        }
    }
    fn forward(&mut self, ctx: &Context) -> f64 {
        let steps = std::mem::take(&mut self.plan.forward);
        self.run(&steps, ctx);
        self.plan.forward = steps;
        self.loss
    }
    fn backward(&mut self, ctx: &Context) {
        let steps = std::mem::take(&mut self.plan.backward);
        self.run(&steps, ctx);
        self.plan.backward = steps;
    }
    fn update(&mut self, ctx: &Context) {
        self.updates += 1;
        let steps = std::mem::take(&mut self.plan.update);
        self.run(&steps, ctx);
        self.plan.update = steps;
    }
    fn output(&self) -> Array2<f32> {
        self.node_array(self.graph.output)
    }
    fn gradient(&self, p: usize) -> Array2<f32> {
        let step = self
            .plan
            .update
            .iter()
            .find(|s| matches!(s, Step::Update { param, .. } if *param == p));
        let Some(&Step::Update { grad, l1, l2, .. }) = step else {
            unreachable!("every parameter has an update step")
        };
        let mut g = self.node_array(grad);
        if l1 > 0.0 || l2 > 0.0 {
            let w = &self.buffers[self.param_nodes[p].index()];
            let (l1, l2) = (l1 as f32, l2 as f32);
            for (ge, &we) in g.iter_mut().zip(w) {
                let sign = if we > 0.0 {
                    1.0
                } else if we < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                *ge = *ge + l1 * sign + l2 * we;
            }
        }
        g
    }
    fn params(&self) -> Vec<Array2<f32>> {
        self.param_nodes.iter().map(|&n| self.node_array(n)).collect()
    }
    fn set_params(&mut self, params: &[Array2<f32>]) {
        for (p, &n) in params.iter().zip(&self.param_nodes) {
            let buf = &mut self.buffers[n.index()];
            for (d, &s) in buf.iter_mut().zip(p.iter()) {
                *d = s;
            }
        }
    }
    fn state(&self) -> Vec<Vec<Array2<f32>>> {
        self.graph
            .params
            .iter()
            .zip(&self.state)
            .map(|(p, slots)| {
                slots
                    .iter()
                    .map(|s| Array2::from_shape_vec((p.rows, p.cols), s.clone()).expect("state matches its parameter"))
                    .collect()
            })
            .collect()
    }
    fn set_state(&mut self, state: &[Vec<Array2<f32>>]) {
        for (mine, theirs) in self.state.iter_mut().zip(state) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                for (d, &s) in m.iter_mut().zip(t.iter()) {
                    *d = s;
                }
            }
        }
    }
    fn updates(&self) -> u64 {
        self.updates
    }
    fn set_updates(&mut self, updates: u64) {
        self.updates = updates;
    }
    fn reset(&mut self, seed: u64) {
        self.set_params(&crate::graph::init::initial_params(&self.graph, seed));
        for slots in &mut self.state {
            for slot in slots {
                slot.fill(0.0);
            }
        }
        self.updates = 0;
        self.seed = seed;
        self.loss = f64::NAN;
    }
    fn profile_step(&mut self, ctx: &Context) -> (Vec<f64>, Vec<f64>) {
        let layers = self.graph.layers.len();
        let last = layers.saturating_sub(1);
        let (mut forward, mut backward) = (vec![0.0; layers], vec![0.0; layers]);
        self.updates += 1;
        for (piece, into_forward) in [(0, true), (1, false), (2, false)] {
            let steps = match piece {
                0 => std::mem::take(&mut self.plan.forward),
                1 => std::mem::take(&mut self.plan.backward),
                _ => std::mem::take(&mut self.plan.update),
            };
            for step in &steps {
                let started = Instant::now();
                self.run(std::slice::from_ref(step), ctx);
                let layer = self.step_layer(step).unwrap_or(last);
                let bucket = if into_forward { &mut forward } else { &mut backward };
                bucket[layer] += started.elapsed().as_secs_f64();
            }
            match piece {
                0 => self.plan.forward = steps,
                1 => self.plan.backward = steps,
                _ => self.plan.update = steps,
            }
        }
        (forward, backward)
    }
    fn non_finite_layer(&self) -> Option<String> {
        for (p, &n) in self.graph.params.iter().zip(&self.param_nodes) {
            if self.buffers[n.index()].iter().any(|v| !v.is_finite()) {
                return Some(format!(
                    "layer `{}` (parameter `{}`)",
                    self.graph.layers[p.layer].name, p.name
                ));
            }
        }
        for &n in &self.graph.forward {
            if !self.plan.stored.contains(&n)
                || matches!(self.graph.nodes[n].shape.rows(), Dim::Fixed(_)) && self.graph.nodes[n].layer.is_none()
            {
                continue;
            }
            if self.slice(n).iter().any(|v| !v.is_finite()) {
                return Some(match self.graph.nodes[n].layer {
                    Some(l) => format!("layer `{}` (its outputs)", self.graph.layers[l].name),
                    None => "the loss".to_string(),
                });
            }
        }
        let _ = ParamKind::Weight;
        None
    }
}

/// A matrix product compiled by Cranelift for fixed `k` and `n`.
pub struct CompiledMatmul {
    _module: JITModule,
    function: kernels::MatmulFn,
    k: usize,
    n: usize,
}

impl CompiledMatmul {
    /// Compiles `c[m x n] = a[m x k] b[k x n]`.
    pub fn new(k: usize, n: usize) -> Result<CompiledMatmul, UserError> {
        let mut module = host_module()?;
        let error = |e: String| {
            UserError::new(format!("the JIT failed to compile a matrix product: {e}")).hint("report this as a bug")
        };
        let id = kernels::define_matmul(&mut module, "matmul", k, n).map_err(|e| error(e.to_string()))?;
        module.finalize_definitions().map_err(|e| error(e.to_string()))?;
        // SAFETY: `define_matmul` defines exactly the `MatmulFn` signature; the module that
        // owns the code lives as long as the pointer, in this struct.
        let function =
            unsafe { std::mem::transmute::<*const u8, kernels::MatmulFn>(module.get_finalized_function(id)) };
        Ok(CompiledMatmul {
            _module: module,
            function,
            k,
            n,
        })
    }

    /// Computes `c = a b` for `m = a.len() / k` rows.
    ///
    /// # Panics
    /// If the slice lengths do not match `m x k`, `k x n` and `m x n`.
    pub fn run(&self, a: &[f32], b: &[f32], c: &mut [f32]) {
        let m = a.len() / self.k.max(1);
        assert!(
            a.len() == m * self.k && b.len() == self.k * self.n && c.len() == m * self.n,
            "matmul operand sizes"
        );
        // SAFETY: the lengths were checked against the kernel's compiled k and n just above.
        unsafe { (self.function)(a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), m as i64) };
    }
}
