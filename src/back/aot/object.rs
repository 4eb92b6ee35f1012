//! The object file: an inference graph's fusion plan compiled with the JIT's kernel library
//! into a `cranelift_object::ObjectModule`, and `NAME_predict` calling those kernels chunk by
//! chunk with every value in its [`memory`](super::memory) place.

use super::memory::{self, Memory, Place};
use super::{CHUNK_ROWS, ERROR_NULL, ERROR_ROWS, OK, STACK_BUDGET, Target, window};
use crate::back::kernels::{self, mem};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Graph, NodeId, Op, ParamKind};
use crate::ir::image;
use crate::ops::{ChannelOp, ConvOp, PoolOp};
use crate::passes::fuse::{self, Plan, RowKernel, Step};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{AbiParam, GlobalValue, InstBuilder, StackSlotData, StackSlotKind, Value, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};
use ndarray::Array2;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A compiled model.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The object file's bytes.
    pub bytes: Vec<u8>,
    /// Bytes of `predict`'s stack buffer.
    pub stack_bytes: usize,
    /// Features per input row.
    pub input_width: usize,
    /// The image each input row is, `(channels, height, width)`, for image models.
    pub input_image: Option<(usize, usize, usize)>,
    /// Rows `predict` computes together.
    pub chunk_rows: usize,
    /// Values per output row.
    pub output_width: usize,
}

/// A pointer argument of a kernel call.
#[derive(Debug, Clone, Copy)]
enum Arg {
    /// The memory of a value, from this many floats on.
    Value(NodeId, usize),
    /// The scratch memory of the step with this index, from this many floats on.
    Scratch(usize, usize),
    /// A parameter's read-only data, from this many floats on (a block of a split product's
    /// weights).
    Param(NodeId, usize),
}

/// A kernel and its pointer arguments; the chunk's row count is appended when it is called.
struct Kernel {
    f: FuncId,
    args: Vec<Arg>,
}

/// One step of `predict`, per chunk.
enum Call {
    /// `f(pointers..., rows)`: products, row and window kernels.
    Direct(Kernel),
    /// `f(&[pointers...], rows)`: map kernels (inputs, then stores).
    Indirect(FuncId, Vec<NodeId>),
    /// Two kernels of one step writing different outputs (the two halves of a product's
    /// columns, or of a convolution's output rows): one after the other, or one per core.
    Halves([Kernel; 2]),
}

/// Multiply-adds per row from which a product or convolution is split between two cores at
/// small batches. A hand-off costs about 0.3 us (two cache lines crossing cores, spin-waits)
/// against about 8 multiply-adds per cycle on one core, so a split saves time from roughly
/// 2 x 0.3 us x 3.7 GHz x 8 = 18k multiply-adds; measured on the workloads (mlp's 256 x 256
/// product, 65k, gains; its 256 x 10 product, 2.6k, would lose).
const SPLIT_MACS: usize = 32_768;

/// A batch is split by rows between two cores from this many multiply-adds on (and at least
/// two chunks): below it, the hand-off costs more than the half it saves.
const ROW_SPLIT_MACS: usize = 262_144;

/// The first column of a product's second half, when it is worth splitting between cores: half
/// of the columns, rounded up to whole tiles of 8.
fn column_split(k: usize, n: usize) -> Option<usize> {
    let first = (n / 2).div_ceil(8) * 8;
    (n >= 16 && k * n >= SPLIT_MACS && first < n).then_some(first)
}

/// The first output row of a convolution's second half, when it is worth splitting.
fn row_split(g: &crate::ir::Window, filters: usize) -> Option<usize> {
    let macs = filters * g.channels * g.taps() * g.positions();
    (g.out_h >= 2 && macs >= SPLIT_MACS).then_some(g.out_h.div_ceil(2))
}

fn internal(what: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::internal(format!("code generation failed: {what}")).with_hint("report this as a bug")
}

fn object_module(name: &str) -> Result<ObjectModule, Box<Diagnostic>> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v)
            .map_err(|e| Box::new(Diagnostic::internal(format!("Cranelift rejected setting {k}: {e}"))))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", "true")?;
    // Stack probes inline, so the object needs no runtime symbol for them.
    set(&mut flags, "enable_probestack", "true")?;
    set(&mut flags, "probestack_strategy", "inline")?;
    let isa = cranelift_native::builder()
        .map_err(|e| {
            Diagnostic::general(
                Code::Unsupported,
                format!("this CPU is not supported by Cranelift: {e}"),
            )
            .with_hint("build on an x86-64 or aarch64 machine")
        })?
        .finish(settings::Flags::new(flags))
        .map_err(|e| {
            Diagnostic::general(Code::Unsupported, format!("Cranelift cannot target this CPU: {e}"))
                .with_hint("build on an x86-64 or aarch64 machine")
        })?;
    let builder =
        ObjectBuilder::new(isa, name.to_string(), cranelift_module::default_libcall_names()).map_err(|e| {
            Diagnostic::internal(format!("cannot create an object file: {e}")).with_hint("report this as a bug")
        })?;
    Ok(ObjectModule::new(builder))
}

fn define_data(module: &mut ObjectModule, name: &str, bytes: Box<[u8]>, align: u64) -> Result<DataId, Box<Diagnostic>> {
    let id = module
        .declare_data(name, Linkage::Local, false, false)
        .map_err(internal)?;
    let mut d = DataDescription::new();
    d.define(bytes);
    d.set_align(align);
    module.define_data(id, &d).map_err(internal)?;
    Ok(id)
}

fn text(s: &str) -> Box<[u8]> {
    s.bytes().chain([0]).collect()
}

/// A parameter's bytes in the object: row-major, or, for the weights of a product split at
/// column `first`, its columns `..first` (row-major, `first` wide) and then the rest, so that
/// each core reads one contiguous block. (Every other half row of a 1 KB row maps onto half of
/// the L2 cache's sets: the JIT measured such a column split 40% over the bandwidth bound.)
fn param_bytes(value: &Array2<f32>, split: Option<usize>) -> Box<[u8]> {
    let cols = value.ncols();
    // Each block as (first column, end).
    let blocks = match split {
        Some(first) => vec![(0, first), (first, cols)],
        None => vec![(0, cols)],
    };
    let mut bytes = Vec::with_capacity(value.len() * 4);
    for (start, end) in blocks {
        for row in value.rows() {
            for v in row.slice(ndarray::s![start..end]) {
                bytes.extend(v.to_le_bytes());
            }
        }
    }
    bytes.into_boxed_slice()
}

/// Compiles an inference graph ([`crate::passes::inference`]) with its parameter values into
/// object-file bytes exporting `NAME_predict`, `NAME_model_name` and `NAME_spec_hash`, and
/// calling `NAME_netc_pair` of the runtime (`runtime.c`, merged in by
/// [`super::link_object`]).
pub fn compile_object(graph: &Graph, params: &[Array2<f32>], target: &Target) -> Result<Object, Box<Diagnostic>> {
    let plan = fuse::plan(graph);
    if !plan.backward.is_empty() || !plan.update.is_empty() {
        return Err(Box::new(internal(
            "an object file computes an inference graph, not a training graph",
        )));
    }
    // The most rows at a time (up to CHUNK_ROWS) whose values fit the stack budget.
    let mut rows = CHUNK_ROWS;
    let memory = loop {
        let memory = memory::place(graph, &plan, &plan.forward, rows).map_err(internal)?;
        if rows == 1 || memory.floats * 4 <= STACK_BUDGET {
            break memory;
        }
        rows /= 2;
    };
    let symbol = target.symbol;
    let mut module = object_module(symbol)?;
    let layout = Layout::of(graph, &plan, &memory)?;

    // Parameters as read-only data, in index order (the bytes must not depend on hashing).
    let used: BTreeSet<usize> = memory
        .places
        .values()
        .filter_map(|p| match *p {
            Place::Param(p) => Some(p),
            _ => None,
        })
        .collect();
    let mut data = HashMap::new();
    for p in used {
        let bytes = param_bytes(&params[p], layout.weight_split.get(&p).copied());
        let align = if graph.params[p].kind == ParamKind::Weight {
            64
        } else {
            16
        };
        data.insert(
            p,
            define_data(&mut module, &format!("{symbol}_param{p}"), bytes, align)?,
        );
    }
    let calls = define_kernels(&mut module, graph, &plan, &memory, &layout, symbol)?;

    // const char *NAME_model_name(void), NAME_spec_hash(void)
    let name_data = define_data(&mut module, &format!("{symbol}_name_text"), text(target.model_name), 1)?;
    let hash_data = define_data(&mut module, &format!("{symbol}_hash_text"), text(target.spec_hash), 1)?;
    let ptr = module.target_config().pointer_type();
    for (suffix, text) in [("model_name", name_data), ("spec_hash", hash_data)] {
        kernels::define_function(
            &mut module,
            &format!("{symbol}_{suffix}"),
            Linkage::Export,
            &[],
            &[ptr],
            |b, _, module| {
                let gv = module.declare_data_in_func(text, b.func);
                let addr = b.ins().symbol_value(ptr, gv);
                b.ins().return_(&[addr]);
            },
        )
        .map_err(internal)?;
    }
    let macs = layout.macs_per_row.max(1);
    let predict = Predict {
        calls: &calls,
        memory: &memory,
        data: &data,
        input_width: graph.input_width,
        output_width: graph.output_width,
        batch_max: target.batch_max,
        chunk_rows: rows,
        row_split: (2 * rows).max(ROW_SPLIT_MACS.div_ceil(macs)),
        symbol,
    };
    predict.define(&mut module)?;
    let bytes = module.finish().emit().map_err(|e| {
        Diagnostic::internal(format!("cannot write the object file: {e}")).with_hint("report this as a bug")
    })?;
    Ok(Object {
        bytes,
        stack_bytes: memory.floats * 4,
        input_width: graph.input_width,
        input_image: image(graph.nodes[graph.input].shape),
        chunk_rows: rows,
        output_width: graph.output_width,
    })
}

/// How the steps are shared between the two cores, decided once for the parameters' layout and
/// the kernels.
struct Layout {
    /// The first column of the second half of each split product (by step index).
    product_split: HashMap<usize, usize>,
    /// The same, by the parameter holding the product's weights.
    weight_split: HashMap<usize, usize>,
    /// The first output row of the second half of each split convolution (by step index).
    conv_split: HashMap<usize, usize>,
    /// Multiply-adds of products and convolutions per row.
    macs_per_row: usize,
}

impl Layout {
    fn of(graph: &Graph, plan: &Plan, memory: &Memory) -> Result<Layout, Box<Diagnostic>> {
        let mut reads: HashMap<NodeId, usize> = HashMap::new();
        for step in &plan.forward {
            for n in memory::access(graph, plan, step).map_err(internal)?.reads {
                *reads.entry(n).or_default() += 1;
            }
        }
        let mut layout = Layout {
            product_split: HashMap::new(),
            weight_split: HashMap::new(),
            conv_split: HashMap::new(),
            macs_per_row: 0,
        };
        let cols = |n: NodeId| graph.nodes[n].shape.cols();
        for (i, step) in plan.forward.iter().enumerate() {
            match *step {
                Step::Gemm { a, b, out, .. } => {
                    let (k, n) = (cols(a), cols(out));
                    layout.macs_per_row += k * n;
                    // Weights read by this product only take its blocked layout.
                    if let (Place::Param(p), Some(first)) = (memory.places[&b], column_split(k, n))
                        && reads[&b] == 1
                    {
                        layout.product_split.insert(i, first);
                        layout.weight_split.insert(p, first);
                    }
                }
                Step::Node(n) => {
                    if let Op::Conv(ConvOp::Conv { w, ref g, .. }) = graph.nodes[n].op {
                        let filters = graph.nodes[w].shape.rows_for(1);
                        layout.macs_per_row += filters * g.channels * g.taps() * g.positions();
                        if let Some(first) = row_split(g, filters) {
                            layout.conv_split.insert(i, first);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(layout)
    }
}

/// The memory of each of `nodes`, as kernel arguments.
fn values(nodes: &[NodeId]) -> Vec<Arg> {
    nodes.iter().map(|&n| Arg::Value(n, 0)).collect()
}

/// Defines the kernel of each step of the plan's forward piece; returns how `predict` calls them.
fn define_kernels(
    module: &mut ObjectModule,
    graph: &Graph,
    plan: &Plan,
    memory: &Memory,
    layout: &Layout,
    symbol: &str,
) -> Result<Vec<Call>, Box<Diagnostic>> {
    let mut calls = Vec::new();
    // Products of one geometry (a ResNet's stages, the halves of a convolution) share a kernel.
    let mut products: HashMap<kernels::Product, FuncId> = HashMap::new();
    let mut product = |module: &mut ObjectModule, p: kernels::Product| -> Result<FuncId, Box<Diagnostic>> {
        if let Some(&f) = products.get(&p) {
            return Ok(f);
        }
        let f = kernels::define_product(module, &format!("{symbol}_product{}", products.len()), p).map_err(internal)?;
        products.insert(p, f);
        Ok(f)
    };
    for (i, step) in plan.forward.iter().enumerate() {
        let name = |kind: &str| format!("{symbol}_{kind}{i}");
        let cols = |n: NodeId| graph.nodes[n].shape.cols();
        calls.push(match *step {
            Step::Gemm {
                a,
                b,
                transpose_a: false,
                transpose_b: false,
                out,
            } if matches!(memory.places[&b], Place::Param(_)) => {
                let (k, n) = (cols(a), cols(out));
                match layout.product_split.get(&i) {
                    None => Call::Direct(Kernel {
                        f: product(module, kernels::Product::dense(k, n))?,
                        args: values(&[a, b, out]),
                    }),
                    Some(&first) => {
                        let half = |width: usize| kernels::Product {
                            k,
                            n: width,
                            b_stride: width,
                            c_stride: n,
                        };
                        Call::Halves([
                            Kernel {
                                f: product(module, half(first))?,
                                args: vec![Arg::Value(a, 0), Arg::Param(b, 0), Arg::Value(out, 0)],
                            },
                            Kernel {
                                f: product(module, half(n - first))?,
                                args: vec![Arg::Value(a, 0), Arg::Param(b, k * first), Arg::Value(out, first)],
                            },
                        ])
                    }
                }
            }
            Step::Map(k) => {
                let map = &plan.maps[k];
                if !map.column_sums.is_empty() {
                    return Err(Box::new(internal("an inference map kernel has column sums")));
                }
                let f = kernels::define_map(module, &name("map"), map).map_err(internal)?;
                // The kernel's buffers: its inputs, then its stores.
                let access = memory::access(graph, plan, step).map_err(internal)?;
                Call::Indirect(f, access.reads.into_iter().chain(access.writes).collect())
            }
            Step::Row(RowKernel::Softmax { x, out }) => {
                let f = kernels::define_softmax(module, &name("softmax"), cols(x)).map_err(internal)?;
                Call::Direct(Kernel {
                    f,
                    args: values(&[x, out]),
                })
            }
            Step::Row(RowKernel::Maxout { x, pieces, out }) => {
                let f = kernels::define_maxout(module, &name("maxout"), cols(x), pieces).map_err(internal)?;
                Call::Direct(Kernel {
                    f,
                    args: values(&[x, out]),
                })
            }
            Step::Node(n) => match graph.nodes[n].op {
                Op::Conv(ConvOp::Conv { x, w, ref g }) => {
                    let filters = graph.nodes[w].shape.rows_for(1);
                    let mut part = |(y0, y1): (usize, usize), which: &str| -> Result<Kernel, Box<Diagnostic>> {
                        let matmul = product(module, window::conv_product(g, (y0, y1)))?;
                        let f = window::define_conv(module, &name(which), g, filters, (y0, y1), matmul)
                            .map_err(internal)?;
                        // Each part's im2col matrix after the parts before it.
                        let before = window::conv_scratch(g) / g.out_h * y0;
                        let mut args = values(&[x, w, n]);
                        args.push(Arg::Scratch(i, before));
                        Ok(Kernel { f, args })
                    };
                    match layout.conv_split.get(&i) {
                        None => Call::Direct(part((0, g.out_h), "conv")?),
                        Some(&first) => {
                            Call::Halves([part((0, first), "conv_top")?, part((first, g.out_h), "conv_bottom")?])
                        }
                    }
                }
                Op::Pool(PoolOp::MaxPool { x, ref g }) => {
                    let f = window::define_pool(module, &name("maxpool"), g, true).map_err(internal)?;
                    Call::Direct(Kernel {
                        f,
                        args: values(&[x, n]),
                    })
                }
                Op::Pool(PoolOp::AvgPool { x, ref g }) => {
                    let f = window::define_pool(module, &name("avgpool"), g, false).map_err(internal)?;
                    Call::Direct(Kernel {
                        f,
                        args: values(&[x, n]),
                    })
                }
                Op::Channel(ChannelOp::Concat { ref parts, .. }) => {
                    let widths: Vec<usize> = parts.iter().map(|&p| cols(p)).collect();
                    let f = window::define_concat(module, &name("concat"), &widths).map_err(internal)?;
                    let mut args = values(parts);
                    args.push(Arg::Value(n, 0));
                    Call::Direct(Kernel { f, args })
                }
                ref other => {
                    return Err(Box::new(internal(format!(
                        "an object file has no kernel for {}",
                        other.name()
                    ))));
                }
            },
            ref other => {
                return Err(Box::new(internal(format!(
                    "an object file has no kernel for {other:?}"
                ))));
            }
        });
    }
    Ok(calls)
}

/// What `NAME_predict` is made of.
struct Predict<'a> {
    calls: &'a [Call],
    memory: &'a Memory,
    /// The read-only data of each parameter.
    data: &'a HashMap<usize, DataId>,
    input_width: usize,
    output_width: usize,
    batch_max: usize,
    chunk_rows: usize,
    /// Calls of at least this many rows are split by rows between the two cores.
    row_split: usize,
    symbol: &'a str,
}

/// How a chunk loop runs the halves of a split step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Halves {
    /// One after the other, on this thread.
    Here,
    /// One per core, through the runtime's `NAME_netc_pair`.
    Paired,
}

impl Predict<'_> {
    /// Defines the functions of `predict`:
    /// - `NAME_chunks` and `NAME_chunks_paired` `(inputs, rows, outputs)`: every call on each
    ///   chunk of at most `chunk_rows` rows, with the values in a stack buffer of their own
    ///   frame; the first runs split steps' halves one after the other, the second on both
    ///   cores (small batches);
    /// - `NAME_rows_job(ctx, part)`: `NAME_chunks` on the first (part 0) or second half of the
    ///   rows `ctx` holds (large batches);
    /// - `NAME_jobN(ctx, part)`: calls the kernel of `N` arguments `ctx` holds for `part`;
    /// - `int NAME_predict(const float *inputs, size_t rows, float *outputs)`: checks the
    ///   arguments, then splits the rows or runs `NAME_chunks_paired`.
    fn define(&self, module: &mut ObjectModule) -> Result<FuncId, Box<Diagnostic>> {
        let ptr = module.target_config().pointer_type();
        let symbol = self.symbol;
        let mut pair_sig = module.make_signature();
        pair_sig.params.extend([AbiParam::new(ptr), AbiParam::new(ptr)]);
        let pair = module
            .declare_function(&format!("{symbol}_netc_pair"), Linkage::Import, &pair_sig)
            .map_err(internal)?;
        // One job function per kernel arity of the split steps.
        let mut jobs: BTreeMap<usize, FuncId> = BTreeMap::new();
        for call in self.calls {
            if let Call::Halves(halves) = call {
                let arity = halves[0].args.len() + 1;
                if let std::collections::btree_map::Entry::Vacant(e) = jobs.entry(arity) {
                    e.insert(define_job(module, &format!("{symbol}_job{arity}"), arity)?);
                }
            }
        }
        let serial = self.define_chunks(module, &format!("{symbol}_chunks"), Halves::Here, pair, &jobs)?;
        let paired = if jobs.is_empty() {
            serial
        } else {
            self.define_chunks(module, &format!("{symbol}_chunks_paired"), Halves::Paired, pair, &jobs)?
        };
        let rows_job = self.define_rows_job(module, serial)?;
        kernels::define_function(
            module,
            &format!("{symbol}_predict"),
            Linkage::Export,
            &[ptr, types::I64, ptr],
            &[types::I32],
            |b, arguments, module| {
                let (inputs, rows, outputs) = (arguments[0], arguments[1], arguments[2]);
                let fail_null = b.create_block();
                let fail_rows = b.create_block();
                let checked = b.create_block();
                let split = b.create_block();
                let chunks = b.create_block();
                let done = b.create_block();
                let null_in = b.ins().icmp_imm_s(IntCC::Equal, inputs, 0);
                let null_out = b.ins().icmp_imm_s(IntCC::Equal, outputs, 0);
                let null = b.ins().bor(null_in, null_out);
                b.ins().brif(null, fail_null, &[], checked, &[]);
                b.switch_to_block(fail_null);
                let code_null = b.ins().iconst(types::I32, ERROR_NULL as i64);
                b.ins().return_(&[code_null]);
                b.switch_to_block(checked);
                let too_many = b
                    .ins()
                    .icmp_imm_s(IntCC::UnsignedGreaterThan, rows, self.batch_max as i64);
                let test_split = b.create_block();
                b.ins().brif(too_many, fail_rows, &[], test_split, &[]);
                b.switch_to_block(fail_rows);
                let code_rows = b.ins().iconst(types::I32, ERROR_ROWS as i64);
                b.ins().return_(&[code_rows]);

                b.switch_to_block(test_split);
                let large = b
                    .ins()
                    .icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, rows, self.row_split as i64);
                b.ins().brif(large, split, &[], chunks, &[]);

                // Large batches: half the rows per core.
                b.switch_to_block(split);
                let ctx =
                    b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 3 * ptr.bytes(), 3));
                for (k, v) in [inputs, rows, outputs].into_iter().enumerate() {
                    b.ins().stack_store(ptr, v, ctx, (k as u32 * ptr.bytes()) as i32);
                }
                let ctx_addr = b.ins().stack_addr(ptr, ctx, 0);
                let job = module.declare_func_in_func(rows_job, b.func);
                let job_addr = b.ins().func_addr(ptr, job);
                let pair_ref = module.declare_func_in_func(pair, b.func);
                b.ins().call(pair_ref, &[job_addr, ctx_addr]);
                b.ins().jump(done, &[]);

                b.switch_to_block(chunks);
                let f = module.declare_func_in_func(paired, b.func);
                b.ins().call(f, &[inputs, rows, outputs]);
                b.ins().jump(done, &[]);

                b.switch_to_block(done);
                let ok = b.ins().iconst(types::I32, OK as i64);
                b.ins().return_(&[ok]);
            },
        )
        .map_err(|e| Box::new(internal(e)))
    }

    /// `NAME_rows_job(ctx, part)`: `ctx` holds `(inputs, rows, outputs)`; part 0 computes the
    /// first `rows - rows / 2` rows, part 1 the rest, each by `chunks`.
    fn define_rows_job(&self, module: &mut ObjectModule, chunks: FuncId) -> Result<FuncId, Box<Diagnostic>> {
        let ptr = module.target_config().pointer_type();
        let (input_bytes, output_bytes) = ((self.input_width * 4) as i64, (self.output_width * 4) as i64);
        kernels::define_function(
            module,
            &format!("{}_rows_job", self.symbol),
            Linkage::Local,
            &[ptr, types::I64],
            &[],
            |b, params, module| {
                let (ctx, part) = (params[0], params[1]);
                let inputs = b.ins().load(ptr, mem(), ctx, 0);
                let rows = b.ins().load(types::I64, mem(), ctx, ptr.bytes() as i32);
                let outputs = b.ins().load(ptr, mem(), ctx, 2 * ptr.bytes() as i32);
                let second = b.ins().ushr_imm_u(rows, 1);
                let first = b.ins().isub(rows, second);
                // Part 0: rows 0..first; part 1: first..rows.
                let is_second = b.ins().icmp_imm_s(IntCC::NotEqual, part, 0);
                let zero = b.ins().iconst(types::I64, 0);
                let start = b.ins().select(is_second, first, zero);
                let count = b.ins().select(is_second, second, first);
                let in_off = b.ins().imul_imm_s(start, input_bytes);
                let in_ptr = b.ins().iadd(inputs, in_off);
                let out_off = b.ins().imul_imm_s(start, output_bytes);
                let out_ptr = b.ins().iadd(outputs, out_off);
                let f = module.declare_func_in_func(chunks, b.func);
                b.ins().call(f, &[in_ptr, count, out_ptr]);
                b.ins().return_(&[]);
            },
        )
        .map_err(|e| Box::new(internal(e)))
    }

    /// A chunk loop over `(inputs, rows, outputs)`: every call on each chunk of at most
    /// `chunk_rows` rows; split steps as `halves` says.
    fn define_chunks(
        &self,
        module: &mut ObjectModule,
        name: &str,
        halves: Halves,
        pair: FuncId,
        jobs: &BTreeMap<usize, FuncId>,
    ) -> Result<FuncId, Box<Diagnostic>> {
        let ptr = module.target_config().pointer_type();
        let pointer_count = self
            .calls
            .iter()
            .map(|c| match c {
                Call::Indirect(_, p) => p.len(),
                // Both kernels and their arguments, the rows included.
                Call::Halves(h) => 2 * (h[0].args.len() + 2),
                Call::Direct(..) => 0,
            })
            .max()
            .unwrap_or(0);
        kernels::define_function(
            module,
            name,
            Linkage::Local,
            &[ptr, types::I64, ptr],
            &[],
            |b, arguments, module| {
                let (inputs, rows, outputs) = (arguments[0], arguments[1], arguments[2]);
                let chunk_head = b.create_block();
                let chunk_body = b.create_block();
                let done = b.create_block();
                b.append_block_param(chunk_head, types::I64);
                let scratch = b.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    (self.memory.floats.max(1) * 4) as u32,
                    6,
                ));
                let args_slot = b.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    pointer_count.max(1) as u32 * ptr.bytes(),
                    3,
                ));
                let start = b.ins().iconst(types::I64, 0);
                b.ins().jump(chunk_head, &[start.into()]);

                b.switch_to_block(chunk_head);
                let c = b.block_params(chunk_head)[0];
                let more = b.ins().icmp(IntCC::UnsignedLessThan, c, rows);
                b.ins().brif(more, chunk_body, &[], done, &[]);

                b.switch_to_block(chunk_body);
                let left = b.ins().isub(rows, c);
                let chunk = b.ins().iconst(types::I64, self.chunk_rows as i64);
                let is_small = b.ins().icmp(IntCC::UnsignedLessThan, left, chunk);
                let m = b.ins().select(is_small, left, chunk);
                let in_off = b.ins().imul_imm_s(c, (self.input_width * 4) as i64);
                let in_ptr = b.ins().iadd(inputs, in_off);
                let out_off = b.ins().imul_imm_s(c, (self.output_width * 4) as i64);
                let out_ptr = b.ins().iadd(outputs, out_off);
                // Every parameter's data, declared once (BTreeMap: the same order every build).
                let globals: BTreeMap<usize, GlobalValue> = self
                    .data
                    .iter()
                    .map(|(&p, &d)| (p, d))
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .map(|(p, d)| (p, module.declare_data_in_func(d, b.func)))
                    .collect();
                let address = |b: &mut FunctionBuilder, arg: Arg| -> Value {
                    let (n, floats) = match arg {
                        Arg::Scratch(step, floats) => {
                            // A kernel that needs none gets the buffer's start, which it never reads.
                            let offset = self.memory.scratch.get(&step).copied().unwrap_or(0);
                            return b.ins().stack_addr(ptr, scratch, ((offset + floats) * 4) as i32);
                        }
                        Arg::Value(n, floats) | Arg::Param(n, floats) => (n, floats),
                    };
                    let bytes = (floats * 4) as i64;
                    match self.memory.places[&n] {
                        Place::Input => b.ins().iadd_imm_s(in_ptr, bytes),
                        Place::Output => b.ins().iadd_imm_s(out_ptr, bytes),
                        Place::Param(p) => {
                            let base = b.ins().symbol_value(ptr, globals[&p]);
                            b.ins().iadd_imm_s(base, bytes)
                        }
                        Place::Stack(offset) => b.ins().stack_addr(ptr, scratch, ((offset + floats) * 4) as i32),
                    }
                };
                let direct = |b: &mut FunctionBuilder, k: &Kernel| {
                    let mut args: Vec<Value> = k.args.iter().map(|&a| address(b, a)).collect();
                    args.push(m);
                    (k.f, args)
                };
                for call in self.calls {
                    match call {
                        Call::Direct(k) => {
                            let (f, args) = direct(b, k);
                            let fref = module.declare_func_in_func(f, b.func);
                            b.ins().call(fref, &args);
                        }
                        Call::Indirect(f, nodes) => {
                            for (i, &n) in nodes.iter().enumerate() {
                                let p = address(b, Arg::Value(n, 0));
                                b.ins().stack_store(ptr, p, args_slot, (i as u32 * ptr.bytes()) as i32);
                            }
                            let table = b.ins().stack_addr(ptr, args_slot, 0);
                            let fref = module.declare_func_in_func(*f, b.func);
                            b.ins().call(fref, &[table, m]);
                        }
                        Call::Halves(parts) if halves == Halves::Here => {
                            for k in parts {
                                let (f, args) = direct(b, k);
                                let fref = module.declare_func_in_func(f, b.func);
                                b.ins().call(fref, &args);
                            }
                        }
                        Call::Halves(parts) => {
                            // ctx: part 0's kernel and arguments, then part 1's ([`define_job`]).
                            let arity = parts[0].args.len() + 1;
                            let mut slot = 0;
                            for k in parts {
                                let (f, args) = direct(b, k);
                                let fref = module.declare_func_in_func(f, b.func);
                                let addr = b.ins().func_addr(ptr, fref);
                                for v in std::iter::once(addr).chain(args) {
                                    b.ins().stack_store(ptr, v, args_slot, (slot * ptr.bytes()) as i32);
                                    slot += 1;
                                }
                            }
                            let ctx = b.ins().stack_addr(ptr, args_slot, 0);
                            let job = module.declare_func_in_func(jobs[&arity], b.func);
                            let job_addr = b.ins().func_addr(ptr, job);
                            let pair_ref = module.declare_func_in_func(pair, b.func);
                            b.ins().call(pair_ref, &[job_addr, ctx]);
                        }
                    }
                }
                let next = b.ins().iadd(c, m);
                b.ins().jump(chunk_head, &[next.into()]);
                b.switch_to_block(done);
                b.ins().return_(&[]);
            },
        )
        .map_err(|e| Box::new(internal(e)))
    }
}

/// `NAME_jobN(ctx, part)`: `ctx` holds, per part, a kernel's address and its `arity` arguments
/// (pointers, then rows); calls part `part`'s.
fn define_job(module: &mut ObjectModule, name: &str, arity: usize) -> Result<FuncId, Box<Diagnostic>> {
    let ptr = module.target_config().pointer_type();
    let mut kernel_sig = module.make_signature();
    kernel_sig.params.extend((0..arity - 1).map(|_| AbiParam::new(ptr)));
    kernel_sig.params.push(AbiParam::new(types::I64));
    kernels::define_function(module, name, Linkage::Local, &[ptr, types::I64], &[], |b, params, _| {
        let (ctx, part) = (params[0], params[1]);
        let per_part = ((arity + 1) * ptr.bytes() as usize) as i64;
        let offset = b.ins().imul_imm_s(part, per_part);
        let base = b.ins().iadd(ctx, offset);
        let f = b.ins().load(ptr, mem(), base, 0);
        let args: Vec<Value> = (0..arity)
            .map(|i| {
                let ty = if i + 1 == arity { types::I64 } else { ptr };
                b.ins().load(ty, mem(), base, ((i + 1) * ptr.bytes() as usize) as i32)
            })
            .collect();
        let sig = b.import_signature(kernel_sig);
        b.ins().call_indirect(sig, f, &args);
        b.ins().return_(&[]);
    })
    .map_err(|e| Box::new(internal(e)))
}
