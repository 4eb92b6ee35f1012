//! The object file: an inference graph's fusion plan compiled with the JIT's kernel library
//! into a `cranelift_object::ObjectModule`, and `NAME_predict` calling those kernels chunk by
//! chunk with every value in its [`memory`](super::memory) place.

use super::memory::{self, Memory, Place};
use super::{CHUNK_ROWS, ERROR_NULL, ERROR_ROWS, OK, STACK_BUDGET, Target, window};
use crate::back::kernels;
use crate::diag::{Code, Diagnostic};
use crate::graph::{Graph, NodeId, Op, ParamKind};
use crate::ir::image;
use crate::ops::{ChannelOp, ConvOp, PoolOp};
use crate::passes::fuse::{self, Plan, RowKernel, Step};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{GlobalValue, InstBuilder, StackSlotData, StackSlotKind, Value, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};
use ndarray::Array2;
use std::collections::{BTreeSet, HashMap};

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
    /// The memory of a value.
    Value(NodeId),
    /// The scratch memory of the step with this index.
    Scratch(usize),
}

/// One kernel call of `predict`, per chunk.
enum Call {
    /// `f(pointers..., rows)`: products, row and window kernels.
    Direct(FuncId, Vec<Arg>),
    /// `f(&[pointers...], rows)`: map kernels (inputs, then stores).
    Indirect(FuncId, Vec<NodeId>),
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

/// Compiles an inference graph ([`crate::passes::inference`]) with its parameter values into
/// object-file bytes exporting `NAME_predict`, `NAME_model_name` and `NAME_spec_hash`.
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
        let bytes = params[p].iter().flat_map(|v| v.to_le_bytes()).collect();
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
    let calls = define_kernels(&mut module, graph, &plan, &memory, symbol)?;

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
    let predict = Predict {
        calls: &calls,
        memory: &memory,
        data: &data,
        input_width: graph.input_width,
        output_width: graph.output_width,
        batch_max: target.batch_max,
        chunk_rows: rows,
    };
    predict.define(&mut module, &format!("{symbol}_predict"))?;
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

/// The memory of each of `nodes`, as kernel arguments.
fn values(nodes: &[NodeId]) -> Vec<Arg> {
    nodes.iter().map(|&n| Arg::Value(n)).collect()
}

/// Defines the kernel of each step of the plan's forward piece; returns how `predict` calls them.
fn define_kernels(
    module: &mut ObjectModule,
    graph: &Graph,
    plan: &Plan,
    memory: &Memory,
    symbol: &str,
) -> Result<Vec<Call>, Box<Diagnostic>> {
    let mut calls = Vec::new();
    let mut products: HashMap<(usize, usize), FuncId> = HashMap::new();
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
                let f = kernels::define_matmul(module, &name("matmul"), cols(a), cols(out)).map_err(internal)?;
                Call::Direct(f, values(&[a, b, out]))
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
                Call::Direct(f, values(&[x, out]))
            }
            Step::Row(RowKernel::Maxout { x, pieces, out }) => {
                let f = kernels::define_maxout(module, &name("maxout"), cols(x), pieces).map_err(internal)?;
                Call::Direct(f, values(&[x, out]))
            }
            Step::Node(n) => match graph.nodes[n].op {
                Op::Conv(ConvOp::Conv { x, w, ref g }) => {
                    let filters = graph.nodes[w].shape.rows_for(1);
                    // Convolutions of one shape (a ResNet's stages) share their product kernel.
                    let (k, n_cols) = (g.channels * g.taps(), g.positions());
                    let product = match products.get(&(k, n_cols)) {
                        Some(&f) => f,
                        None => {
                            let f =
                                kernels::define_matmul(module, &name("conv_matmul"), k, n_cols).map_err(internal)?;
                            products.insert((k, n_cols), f);
                            f
                        }
                    };
                    let f = window::define_conv(module, &name("conv"), g, filters, product).map_err(internal)?;
                    let mut args = values(&[x, w, n]);
                    args.push(Arg::Scratch(i));
                    Call::Direct(f, args)
                }
                Op::Pool(PoolOp::MaxPool { x, ref g }) => {
                    let f = window::define_pool(module, &name("maxpool"), g, true).map_err(internal)?;
                    Call::Direct(f, values(&[x, n]))
                }
                Op::Pool(PoolOp::AvgPool { x, ref g }) => {
                    let f = window::define_pool(module, &name("avgpool"), g, false).map_err(internal)?;
                    Call::Direct(f, values(&[x, n]))
                }
                Op::Channel(ChannelOp::Concat { ref parts, .. }) => {
                    let widths: Vec<usize> = parts.iter().map(|&p| cols(p)).collect();
                    let f = window::define_concat(module, &name("concat"), &widths).map_err(internal)?;
                    let mut args = values(parts);
                    args.push(Arg::Value(n));
                    Call::Direct(f, args)
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
}

impl Predict<'_> {
    /// Defines `int NAME_predict(const float *inputs, size_t rows, float *outputs)`: checks
    /// the arguments, then makes every call on each chunk of at most `chunk_rows` rows.
    fn define(&self, module: &mut ObjectModule, name: &str) -> Result<FuncId, Box<Diagnostic>> {
        let ptr = module.target_config().pointer_type();
        let pointer_count = self
            .calls
            .iter()
            .map(|c| match c {
                Call::Indirect(_, p) => p.len(),
                Call::Direct(..) => 0,
            })
            .max()
            .unwrap_or(0);
        kernels::define_function(
            module,
            name,
            Linkage::Export,
            &[ptr, types::I64, ptr],
            &[types::I32],
            |b, arguments, module| {
                let (inputs, rows, outputs) = (arguments[0], arguments[1], arguments[2]);
                let fail_null = b.create_block();
                let fail_rows = b.create_block();
                let checked = b.create_block();
                let chunk_head = b.create_block();
                let chunk_body = b.create_block();
                let done = b.create_block();
                b.append_block_param(chunk_head, types::I64);
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
                let start = b.ins().iconst(types::I64, 0);
                b.ins().brif(too_many, fail_rows, &[], chunk_head, &[start.into()]);
                b.switch_to_block(fail_rows);
                let code_rows = b.ins().iconst(types::I32, ERROR_ROWS as i64);
                b.ins().return_(&[code_rows]);

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
                let mut globals: HashMap<usize, GlobalValue> = HashMap::new();
                let mut address = |b: &mut FunctionBuilder, module: &mut ObjectModule, arg: Arg| -> Value {
                    let n = match arg {
                        Arg::Value(n) => n,
                        Arg::Scratch(step) => {
                            // A kernel that needs none gets the buffer's start, which it never reads.
                            let offset = self.memory.scratch.get(&step).copied().unwrap_or(0);
                            return b.ins().stack_addr(ptr, scratch, (offset * 4) as i32);
                        }
                    };
                    match self.memory.places[&n] {
                        Place::Input => in_ptr,
                        Place::Output => out_ptr,
                        Place::Param(p) => {
                            let gv = *globals
                                .entry(p)
                                .or_insert_with(|| module.declare_data_in_func(self.data[&p], b.func));
                            b.ins().symbol_value(ptr, gv)
                        }
                        Place::Stack(offset) => b.ins().stack_addr(ptr, scratch, (offset * 4) as i32),
                    }
                };
                for call in self.calls {
                    let (f, mut args) = match call {
                        Call::Direct(f, nodes) => (*f, nodes.iter().map(|&n| address(b, module, n)).collect()),
                        Call::Indirect(f, nodes) => {
                            for (i, &n) in nodes.iter().enumerate() {
                                let p = address(b, module, Arg::Value(n));
                                b.ins().stack_store(ptr, p, args_slot, (i as u32 * ptr.bytes()) as i32);
                            }
                            (*f, vec![b.ins().stack_addr(ptr, args_slot, 0)])
                        }
                    };
                    args.push(m);
                    let fref = module.declare_func_in_func(f, b.func);
                    b.ins().call(fref, &args);
                }
                let next = b.ins().iadd(c, m);
                b.ins().jump(chunk_head, &[next.into()]);
                b.switch_to_block(done);
                let ok = b.ins().iconst(types::I32, OK as i64);
                b.ins().return_(&[ok]);
            },
        )
        .map_err(|e| Box::new(internal(e)))
    }
}
