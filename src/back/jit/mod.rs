//! The JIT backend. Fuses the graph ([`crate::passes::fuse`]), compiles the elementwise and update
//! kernels with Cranelift ([`crate::back::kernels`]), runs matrix products through the `gemm` crate (which
//! uses this CPU's AVX-512 units; Cranelift's vectors stop at 128 bits), row kernels natively
//! ([`native`]), and the ops that are kernels of their own natively too (`nodes`: convolutions as
//! im2col products, pooling, batch normalization, channel ops). It is tested against the
//! interpreter on random networks (`tests/jit.rs`).
//!
//! All unsafe code of netc lives in this module: calls into generated code and into `gemm`,
//! both on buffers this module owns.

mod channels;
mod conv;
mod launch;
mod matmul;
mod modes;
pub mod native;
mod nodes;
mod norm;
mod pair;
mod split;
mod thin;
mod window;

pub use matmul::CompiledMatmul;
use modes::FlushDenormals;
use split::*;

use crate::back::engine::Engine;
use crate::back::interp::Context;
use crate::diag::{Code, Diagnostic};
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

/// A compiled map kernel's entry (`kernels::define_map`): `(buffers, rows)`.
pub type MapFn = unsafe extern "C" fn(*const *mut f32, i64);

/// A compiled update kernel (`kernels::define_update`): `(w, g, state0, state1, scalars, n)`.
pub type UpdateFn = unsafe extern "C" fn(*mut f32, *const f32, *mut f32, *mut f32, *const f32, i64);

/// A compiled matrix product (`kernels::define_matmul`) `(a, b, c, m)`:
/// `c[m x n] = a[m x k] b[k x n]`, row-major.
pub type MatmulFn = unsafe extern "C" fn(*const f32, *const f32, *mut f32, i64);

/// The JIT engine.
pub struct Jit {
    graph: Graph,
    plan: Plan,
    // Keeps the generated code alive.
    _module: JITModule,
    map_fns: Vec<MapFn>,
    /// Per parameter its optimizer's kernel (none for a running statistic).
    update_fns: Vec<Option<UpdateFn>>,
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
    /// Per core, the im2col scratch of convolutions (sized for the largest, with the batch).
    conv_scratch: [Vec<f32>; 2],
    /// Batch normalization's gradient sums, shared by its three gradients within one piece.
    norm_sums: norm::GradientSums,
    /// Milliseconds spent fusing and compiling.
    pub compile_ms: f64,
}

fn host_module() -> Result<JITModule, Box<Diagnostic>> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v)
            .map_err(|e| Box::new(Diagnostic::internal(format!("Cranelift rejected setting {k}: {e}"))))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    let isa = cranelift_native::builder()
        .map_err(|e| {
            Diagnostic::general(
                Code::Unsupported,
                format!("this CPU is not supported by Cranelift: {e}"),
            )
            .with_hint("use --backend interp")
        })?
        .finish(settings::Flags::new(flags))
        .map_err(|e| {
            Diagnostic::general(Code::Unsupported, format!("Cranelift cannot target this CPU: {e}"))
                .with_hint("use --backend interp")
        })?;
    Ok(JITModule::new(JITBuilder::with_isa(
        isa,
        cranelift_module::default_libcall_names(),
    )))
}

impl Jit {
    /// Fuses and compiles a graph, with parameters initialized as the interpreter's.
    pub fn new(graph: Graph, seed: u64) -> Result<Jit, Box<Diagnostic>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Jit::with_threads(graph, seed, threads)
    }

    /// Compiles `graph` to run on at most `threads` cores (one or two). Results are the same
    /// for every thread count: work is only ever split where the split does not change the
    /// order of any sum, or where it is summed in the same halves on one core.
    pub fn with_threads(graph: Graph, seed: u64, threads: usize) -> Result<Jit, Box<Diagnostic>> {
        let started = Instant::now();
        let plan = crate::passes::fuse::plan(&graph);
        let mut module = host_module()?;
        let compile_error = |e: Box<cranelift_module::ModuleError>| {
            Diagnostic::internal(format!("the JIT failed to compile a kernel: {e}"))
                .with_hint("use --backend interp, and report this as a bug")
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
            .map(|&id| unsafe { std::mem::transmute::<*const u8, MapFn>(module.get_finalized_function(id)) })
            .collect();
        let update_fns = update_ids
            .iter()
            .map(|id| {
                // SAFETY: as above.
                id.map(|id| unsafe { std::mem::transmute::<*const u8, UpdateFn>(module.get_finalized_function(id)) })
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
            conv_scratch: [Vec::new(), Vec::new()],
            norm_sums: norm::GradientSums::new(),
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
        let conv_scratch = (self.plan.forward.iter().chain(&self.plan.backward))
            .filter_map(|step| match step {
                Step::Node(n) => Some(conv::scratch_len(&self.graph, *n, capacity)),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        self.conv_scratch = [vec![0.0; conv_scratch], vec![0.0; conv_scratch]];
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
            .find(|s| matches!(s, Step::Update { param, .. } | Step::Average { param, .. } if *param == p));
        let (grad, l1, l2) = match step {
            Some(&Step::Update { grad, l1, l2, .. }) => (grad, l1, l2),
            // A running statistic: what it moves towards stands for its gradient (as in the
            // interpreter's `graph.grads`).
            Some(&Step::Average { value, .. }) => return self.node_array(value),
            _ => unreachable!("every parameter has an update step"),
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
