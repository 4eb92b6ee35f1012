//! Cranelift code generation for fused kernels, written once against `cranelift_module::Module`
//! so that the JIT and an object-file backend differ only in the module they pass. Their
//! signatures as Rust function types live with the code that calls them (`back/jit`).
//!
//! Kernels work on f32x4 vectors (Cranelift's widest on x86-64) with a scalar tail. Cranelift
//! has no `exp`, so [`Emitter::exp`] builds one from range reduction and a polynomial (relative
//! error about 2e-7), used for sigmoid, tanh and elu.

use crate::ir::{Dim, OptimizerKind};
use crate::ops::Scalar;
use crate::passes::fuse::{Input, KOp, MapKernel};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    AbiParam, Endianness, Function, InstBuilder, MemFlagsData, Type, UserFuncName, Value, types,
};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module, ModuleError};

/// Memory flags for buffer accesses: never trapping, not necessarily aligned.
pub(crate) fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Memory flags for a product's operands, which no store of the kernel touches: pure loads
/// (read-only, never trapping, movable), so Cranelift places each right before its multiply-add
/// and folds it in as a memory operand. With `mem()`, the next step's load of `A` came between
/// a step's loads of `B` and their multiply-adds, which kept every `B` vector in a register and
/// spilled accumulators.
fn operand() -> MemFlagsData {
    MemFlagsData::new().with_notrap().with_readonly().with_can_move()
}

/// Lane-order flags for vector bitcasts.
fn lanes() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// Emits scalar or vector float code of one type.
struct Emitter<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    ty: Type,
}

impl Emitter<'_, '_> {
    fn vector(&self) -> bool {
        self.ty.is_vector()
    }

    fn konst(&mut self, v: f32) -> Value {
        let s = self.b.ins().f32const(v);
        if self.vector() {
            self.b.ins().splat(self.ty, s)
        } else {
            s
        }
    }

    fn int_type(&self) -> Type {
        if self.vector() { types::I32X4 } else { types::I32 }
    }

    /// `cond ? a : b` for a comparison result of this type.
    fn choose(&mut self, cond: Value, a: Value, b: Value) -> Value {
        if self.vector() {
            let mask = self.b.ins().bitcast(self.ty, lanes(), cond);
            self.b.ins().bitselect(mask, a, b)
        } else {
            self.b.ins().select(cond, a, b)
        }
    }

    fn gt_zero(&mut self, x: Value) -> Value {
        let zero = self.konst(0.0);
        self.b.ins().fcmp(FloatCC::GreaterThan, x, zero)
    }

    /// `e^x`: x = k ln2 + r with |r| <= ln2/2; e^r by a degree-6 polynomial; 2^k from bits.
    fn exp(&mut self, x: Value) -> Value {
        let hi = self.konst(88.0);
        let lo = self.konst(-87.0);
        let x = self.b.ins().fmin(x, hi);
        let x = self.b.ins().fmax(x, lo);
        let log2e = self.konst(std::f32::consts::LOG2_E);
        let t = self.b.ins().fmul(x, log2e);
        let k = self.b.ins().nearest(t);
        let ln2_hi = self.konst(0.693_359_4);
        let ln2_lo = self.konst(-2.121_944_4e-4);
        let a = self.b.ins().fmul(k, ln2_hi);
        let r = self.b.ins().fsub(x, a);
        let c = self.b.ins().fmul(k, ln2_lo);
        let r = self.b.ins().fsub(r, c);
        // Cephes expf coefficients.
        let coeffs = [
            1.987_569_1e-4,
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ];
        let mut p = self.konst(coeffs[0]);
        for &cf in &coeffs[1..] {
            p = self.b.ins().fmul(p, r);
            let cv = self.konst(cf);
            p = self.b.ins().fadd(p, cv);
        }
        let r2 = self.b.ins().fmul(r, r);
        p = self.b.ins().fmul(p, r2);
        p = self.b.ins().fadd(p, r);
        let one = self.konst(1.0);
        p = self.b.ins().fadd(p, one);
        let ity = self.int_type();
        let ki = self.b.ins().fcvt_to_sint_sat(ity, k);
        let bias = self.b.ins().iconst(types::I32, 127);
        let bias = if self.vector() {
            self.b.ins().splat(ity, bias)
        } else {
            bias
        };
        let e = self.b.ins().iadd(ki, bias);
        let e = self.b.ins().ishl_imm_u(e, 23);
        let pow2 = if self.vector() {
            self.b.ins().bitcast(self.ty, lanes(), e)
        } else {
            self.b.ins().bitcast(self.ty, MemFlagsData::new(), e)
        };
        self.b.ins().fmul(p, pow2)
    }

    fn sigmoid(&mut self, x: Value) -> Value {
        let nx = self.b.ins().fneg(x);
        let e = self.exp(nx);
        let one = self.konst(1.0);
        let d = self.b.ins().fadd(one, e);
        self.b.ins().fdiv(one, d)
    }

    /// `tanh x`: an odd polynomial for |x| < 0.25 (no cancellation), else from `e^(-2|x|)`.
    fn tanh(&mut self, x: Value) -> Value {
        let ax = self.b.ins().fabs(x);
        let m2 = self.konst(-2.0);
        let t = self.b.ins().fmul(ax, m2);
        let e = self.exp(t);
        let one = self.konst(1.0);
        let num = self.b.ins().fsub(one, e);
        let den = self.b.ins().fadd(one, e);
        let big = self.b.ins().fdiv(num, den);
        // `big` is >= 0; give it x's sign (fcopysign has no f32x4 lowering on x86-64).
        let neg_big = self.b.ins().fneg(big);
        let zero = self.konst(0.0);
        let negative = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
        let big = self.choose(negative, neg_big, big);
        // x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835
        let x2 = self.b.ins().fmul(x, x);
        let mut p = self.konst(62.0 / 2835.0);
        for cf in [-17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0, 1.0] {
            p = self.b.ins().fmul(p, x2);
            let c = self.konst(cf);
            p = self.b.ins().fadd(p, c);
        }
        let small = self.b.ins().fmul(p, x);
        let limit = self.konst(0.25);
        let is_small = self.b.ins().fcmp(FloatCC::LessThan, ax, limit);
        self.choose(is_small, small, big)
    }
}

/// Generated code for the ops' elementwise math ([`crate::ops::Family::scalar`]): `f32` or
/// `f32x4` values; `exp` by [`Emitter::exp`], sigmoid and tanh from it.
impl Scalar for Emitter<'_, '_> {
    type V = Value;
    fn constant(&mut self, c: f64) -> Value {
        self.konst(c as f32)
    }
    fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }
    fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }
    fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }
    fn abs(&mut self, a: Value) -> Value {
        self.b.ins().fabs(a)
    }
    fn exp(&mut self, a: Value) -> Value {
        Emitter::exp(self, a)
    }
    fn exp_m1(&mut self, a: Value) -> Value {
        let e = Emitter::exp(self, a);
        let one = self.konst(1.0);
        self.b.ins().fsub(e, one)
    }
    fn sigmoid(&mut self, a: Value) -> Value {
        Emitter::sigmoid(self, a)
    }
    fn tanh(&mut self, a: Value) -> Value {
        Emitter::tanh(self, a)
    }
    fn select_positive(&mut self, x: Value, if_positive: Value, otherwise: Value) -> Value {
        let positive = self.gt_zero(x);
        self.choose(positive, if_positive, otherwise)
    }
}

/// Emits `for (i = from; i + step <= to; i += step) body(i)` and returns the first `i` it did
/// not run (where a tail loop starts). `body` must leave the block it ends in open.
pub(crate) fn counted_loop(
    b: &mut FunctionBuilder,
    from: Value,
    to: Value,
    step: i64,
    body: impl FnOnce(&mut FunctionBuilder, Value),
) -> Value {
    let head = b.create_block();
    let inner = b.create_block();
    let exit = b.create_block();
    b.append_block_param(head, types::I64);
    b.append_block_param(exit, types::I64);
    b.ins().jump(head, &[from.into()]);
    b.switch_to_block(head);
    let i = b.block_params(head)[0];
    let next = b.ins().iadd_imm_s(i, step);
    let more = b.ins().icmp(IntCC::SignedLessThanOrEqual, next, to);
    b.ins().brif(more, inner, &[], exit, &[i.into()]);
    b.switch_to_block(inner);
    body(b, i);
    b.ins().jump(head, &[next.into()]);
    b.switch_to_block(exit);
    b.block_params(exit)[0]
}

/// Declares and defines a function from its parameter and return types; `body` emits the code,
/// given the builder (positioned in the entry block), the entry block's parameters and the
/// module (to reference other functions and data). One place for Cranelift's boilerplate.
pub fn define_function<M: Module>(
    module: &mut M,
    name: &str,
    linkage: Linkage,
    params: &[Type],
    returns: &[Type],
    body: impl FnOnce(&mut FunctionBuilder, &[Value], &mut M),
) -> Result<FuncId, Box<ModuleError>> {
    let mut sig = module.make_signature();
    sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
    sig.returns.extend(returns.iter().map(|&t| AbiParam::new(t)));
    let id = module.declare_function(name, linkage, &sig).map_err(Box::new)?;
    let mut ctx = module.make_context();
    ctx.func = Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig);
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let params = b.block_params(entry).to_vec();
        body(&mut b, &params, module);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    module.define_function(id, &mut ctx).map_err(Box::new)?;
    module.clear_context(&mut ctx);
    Ok(id)
}

/// Declares and defines a map kernel; returns its id.
pub fn define_map<M: Module>(module: &mut M, name: &str, kernel: &MapKernel) -> Result<FuncId, Box<ModuleError>> {
    let ptr = module.target_config().pointer_type();
    define_function(module, name, Linkage::Local, &[ptr, types::I64], &[], |b, params, _| {
        let (bufs, rows) = (params[0], params[1]);
        // Buffer pointers, in the order inputs, stores, column sums.
        let mut pointers = Vec::new();
        let count = kernel.inputs.len() + kernel.stores.len() + kernel.column_sums.len();
        for i in 0..count {
            pointers.push(b.ins().load(ptr, mem(), bufs, (i * ptr.bytes() as usize) as i32));
        }
        let cols = kernel.shape.cols() as i64;
        let vector_end = cols - cols % 4;
        let rows = match kernel.shape.rows() {
            Dim::Batch => rows,
            Dim::Fixed(n) => b.ins().iconst(types::I64, n as i64),
        };

        // One column body for a given type and column index.
        let body = |b: &mut FunctionBuilder, ty: Type, c: Value, row_offset: Value| {
            let col_offset = b.ins().imul_imm_s(c, 4);
            let full_offset = b.ins().iadd(row_offset, col_offset);
            let mut values: Vec<Value> = Vec::with_capacity(kernel.ops.len());
            let mut e = Emitter { b, ty };
            for op in &kernel.ops {
                let v = match op {
                    KOp::Load(i) => {
                        let offset = match kernel.inputs[*i] {
                            Input::Full(_) => full_offset,
                            Input::Row(_) => col_offset,
                        };
                        let addr = e.b.ins().iadd(pointers[*i], offset);
                        e.b.ins().load(ty, mem(), addr, 0)
                    }
                    KOp::Apply { op, args } => {
                        let args: Vec<Value> = args.iter().map(|&a| values[a]).collect();
                        op.scalar(&mut e, &args)
                    }
                };
                values.push(v);
            }
            let base = kernel.inputs.len();
            for (k, &(op, _)) in kernel.stores.iter().enumerate() {
                let addr = e.b.ins().iadd(pointers[base + k], full_offset);
                e.b.ins().store(mem(), values[op], addr, 0);
            }
            let base = base + kernel.stores.len();
            for (k, &(op, _)) in kernel.column_sums.iter().enumerate() {
                let addr = e.b.ins().iadd(pointers[base + k], col_offset);
                let acc = e.b.ins().load(ty, mem(), addr, 0);
                let sum = e.b.ins().fadd(acc, values[op]);
                e.b.ins().store(mem(), sum, addr, 0);
            }
        };

        let zero = b.ins().iconst(types::I64, 0);
        let vector_end = b.ins().iconst(types::I64, vector_end);
        let cols_end = b.ins().iconst(types::I64, cols);
        counted_loop(b, zero, rows, 1, |b, r| {
            let row_offset = b.ins().imul_imm_s(r, cols * 4);
            let c = counted_loop(b, zero, vector_end, 4, |b, c| body(b, types::F32X4, c, row_offset));
            counted_loop(b, c, cols_end, 1, |b, c| body(b, types::F32, c, row_offset));
        });
        b.ins().return_(&[]);
    })
}

/// Declares and defines the update kernel of one parameter tensor: the regularizer's gradient
/// and the optimizer step in one loop. Scalars: `[lr, 1 - beta1^t, 1 - beta2^t]`.
pub fn define_update<M: Module>(
    module: &mut M,
    name: &str,
    kind: OptimizerKind,
    l1: f64,
    l2: f64,
) -> Result<FuncId, Box<ModuleError>> {
    let ptr = module.target_config().pointer_type();
    define_function(
        module,
        name,
        Linkage::Local,
        &[ptr, ptr, ptr, ptr, ptr, types::I64],
        &[],
        |b, params, _| {
            let (w, g, s0, s1, scalars, n) = (params[0], params[1], params[2], params[3], params[4], params[5]);
            // The learning rate (Adam: divided by the first bias correction) and, for Adam,
            // one over the square root of the second.
            let lr = b.ins().load(types::F32, mem(), scalars, 0);
            let root2 = b.ins().load(types::F32, mem(), scalars, 4);
            let zero = b.ins().iconst(types::I64, 0);

            let body = |b: &mut FunctionBuilder, ty: Type, i: Value| {
                let off = b.ins().imul_imm_s(i, 4);
                let at = |b: &mut FunctionBuilder, base: Value| b.ins().iadd(base, off);
                let (wa, ga, s0a, s1a) = (at(b, w), at(b, g), at(b, s0), at(b, s1));
                let mut e = Emitter { b, ty };
                let splat = |e: &mut Emitter, v: Value| if e.vector() { e.b.ins().splat(e.ty, v) } else { v };
                let lr = splat(&mut e, lr);
                let wv = e.b.ins().load(ty, mem(), wa, 0);
                let mut gv = e.b.ins().load(ty, mem(), ga, 0);
                if l1 > 0.0 {
                    // l1 * sign(w), sign(0) = 0.
                    let (one, minus, zero) = (e.konst(1.0), e.konst(-1.0), e.konst(0.0));
                    let neg = e.b.ins().fcmp(FloatCC::LessThan, wv, zero);
                    let s = e.choose(neg, minus, zero);
                    let pos = e.gt_zero(wv);
                    let s = e.choose(pos, one, s);
                    let k = e.konst(l1 as f32);
                    let t = e.b.ins().fmul(k, s);
                    gv = e.b.ins().fadd(gv, t);
                }
                if l2 > 0.0 {
                    let k = e.konst(l2 as f32);
                    let t = e.b.ins().fmul(k, wv);
                    gv = e.b.ins().fadd(gv, t);
                }
                optimizer_step(&mut e, kind, [wa, s0a, s1a], wv, gv, lr, root2);
            };

            let i = counted_loop(b, zero, n, 4, |b, i| body(b, types::F32X4, i));
            counted_loop(b, i, n, 1, |b, i| body(b, types::F32, i));
            b.ins().return_(&[]);
        },
    )
}

/// The optimizer step of one element (or vector of elements): `gv` is the gradient with the
/// regularizer's added, `wv` the weight, `at` the addresses of the weight and the two state
/// slots. Same operation order as the interpreter ([`crate::ops::UpdateOp::apply`]).
fn optimizer_step(e: &mut Emitter, kind: OptimizerKind, at: [Value; 3], wv: Value, gv: Value, lr: Value, root2: Value) {
    let (ty, [wa, s0a, s1a]) = (e.ty, at);
    let splat = |e: &mut Emitter, v: Value| if e.vector() { e.b.ins().splat(e.ty, v) } else { v };
    let step = |e: &mut Emitter, g: Value| e.b.ins().fmul(lr, g);
    match kind {
        OptimizerKind::Sgd => {
            let d = step(e, gv);
            let nw = e.b.ins().fsub(wv, d);
            e.b.ins().store(mem(), nw, wa, 0);
        }
        OptimizerKind::Momentum { lambda } | OptimizerKind::Nesterov { lambda } => {
            let lam = e.konst(lambda as f32);
            let v = e.b.ins().load(ty, mem(), s0a, 0);
            let lv = e.b.ins().fmul(lam, v);
            let d = step(e, gv);
            let v = e.b.ins().fsub(lv, d);
            e.b.ins().store(mem(), v, s0a, 0);
            let nw = if matches!(kind, OptimizerKind::Nesterov { .. }) {
                let lv = e.b.ins().fmul(lam, v);
                let t = e.b.ins().fsub(lv, d);
                e.b.ins().fadd(wv, t)
            } else {
                e.b.ins().fadd(wv, v)
            };
            e.b.ins().store(mem(), nw, wa, 0);
        }
        OptimizerKind::Adagrad { eps } | OptimizerKind::Rmsprop { eps, .. } => {
            let s = e.b.ins().load(ty, mem(), s0a, 0);
            // Same operation order as the interpreter, so results agree bit for bit.
            let s = match kind {
                OptimizerKind::Rmsprop { alpha, .. } => {
                    let a = e.konst(alpha as f32);
                    let oma = e.konst(1.0 - alpha as f32);
                    let as_ = e.b.ins().fmul(a, s);
                    let t = e.b.ins().fmul(oma, gv);
                    let t = e.b.ins().fmul(t, gv);
                    e.b.ins().fadd(as_, t)
                }
                _ => {
                    let g2 = e.b.ins().fmul(gv, gv);
                    e.b.ins().fadd(s, g2)
                }
            };
            e.b.ins().store(mem(), s, s0a, 0);
            let d = step(e, gv);
            let root = e.b.ins().sqrt(s);
            let epsv = e.konst(eps as f32);
            let den = e.b.ins().fadd(root, epsv);
            let q = e.b.ins().fdiv(d, den);
            let nw = e.b.ins().fsub(wv, q);
            e.b.ins().store(mem(), nw, wa, 0);
        }
        OptimizerKind::Adam { beta1, beta2, eps } => {
            let (b1, omb1) = (e.konst(beta1 as f32), e.konst(1.0 - beta1 as f32));
            let (b2, omb2) = (e.konst(beta2 as f32), e.konst(1.0 - beta2 as f32));
            let m = e.b.ins().load(ty, mem(), s0a, 0);
            let v = e.b.ins().load(ty, mem(), s1a, 0);
            let bm = e.b.ins().fmul(b1, m);
            let t = e.b.ins().fmul(omb1, gv);
            let m = e.b.ins().fadd(bm, t);
            let bv = e.b.ins().fmul(b2, v);
            let g2 = e.b.ins().fmul(omb2, gv);
            let g2 = e.b.ins().fmul(g2, gv);
            let v = e.b.ins().fadd(bv, g2);
            e.b.ins().store(mem(), m, s0a, 0);
            e.b.ins().store(mem(), v, s1a, 0);
            // Same operation order as the interpreter.
            let root2 = splat(e, root2);
            let d = e.b.ins().fmul(lr, m);
            let root = e.b.ins().sqrt(v);
            let root = e.b.ins().fmul(root, root2);
            let epsv = e.konst(eps as f32);
            let den = e.b.ins().fadd(root, epsv);
            let q = e.b.ins().fdiv(d, den);
            let nw = e.b.ins().fsub(wv, q);
            e.b.ins().store(mem(), nw, wa, 0);
        }
    }
}

/// The geometry of a matrix product kernel ([`define_product`]): `C[i, j] = sum_l A[i, l]
/// B[l, j]` for the kernel's `m` rows and `n` columns, with `A` rows `k` floats apart, `B` rows
/// `b_stride` floats apart and `C` rows `c_stride` floats apart. A product over some of a
/// wider matrix's columns (one thread's half, or one output tile of a convolution) is a kernel
/// with `n` below the strides, called with `B` and `C` at its first column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Product {
    /// Inner dimension.
    pub k: usize,
    /// Columns computed.
    pub n: usize,
    /// Floats between rows of `B`.
    pub b_stride: usize,
    /// Floats between rows of `C`.
    pub c_stride: usize,
}

impl Product {
    /// The whole product of `[m, k]` and `[k, n]` row-major matrices.
    pub fn dense(k: usize, n: usize) -> Product {
        Product {
            k,
            n,
            b_stride: n,
            c_stride: n,
        }
    }
}

/// Declares and defines a matrix product for fixed `k` and `n` and any `m`: `(a, b, c, m)`,
/// [`Product::dense`].
pub fn define_matmul<M: Module>(module: &mut M, name: &str, k: usize, n: usize) -> Result<FuncId, Box<ModuleError>> {
    define_product(module, name, Product::dense(k, n))
}

/// Register tiles of a block of rows: (rows, f32x4 vectors per row, from the widest); columns
/// left over take scalar tiles. Cranelift allocates the 16 xmm registers of x86-64, and with
/// the k loop unrolled by two it keeps both steps' vectors live: 4 rows x 2 vectors (8
/// accumulators, 4 loads of B) fit. Measured on the lenet workload (batch-1 latency, 60,000-row
/// executable): 4 x 2 64-67 us, 6 x 2 85-98 us, 5 x 2 71-77 us, 4 x 3 and 3 x 3 spilled (twice
/// the time in throughput). A single row (batch 1) has nothing to reuse: 8 accumulators (32
/// columns) keep both multiply-add pipes busy over the 4-cycle latency (mlp at batch 1:
/// 10 -> 6.3 us with the loads below made pure).
fn tiles_of(rows: i64) -> &'static [i64] {
    match rows {
        1 => &[8, 4, 2, 1],
        2 => &[4, 2, 1],
        _ => &[2, 1],
    }
}

/// Declares and defines a matrix product of geometry `p` for any `m`: `(a, b, c, m)`. Rows go
/// in blocks of 4, then one block of 2 and a last single row; each block in the register
/// tiles of [`tiles_of`] across the columns, then scalar columns. Every output is one chain of
/// fused multiply-adds over `l = 0..k` in order, whatever its tile, so a row's results do not
/// depend on the rows around it or on how the columns were split.
pub fn define_product<M: Module>(module: &mut M, name: &str, p: Product) -> Result<FuncId, Box<ModuleError>> {
    let ptr = module.target_config().pointer_type();
    define_function(
        module,
        name,
        Linkage::Local,
        &[ptr, ptr, ptr, types::I64],
        &[],
        |b, params, _| {
            let (a, bm, c, m) = (params[0], params[1], params[2], params[3]);
            let n = p.n as i64;
            let emit_row_block = |b: &mut FunctionBuilder, rows: i64, i: Value| {
                let mut j = 0;
                for &vectors in tiles_of(rows) {
                    while j + 4 * vectors <= n {
                        emit_tile(b, &p, [a, bm, c], i, j, rows, Some(vectors));
                        j += 4 * vectors;
                    }
                }
                while j < n {
                    emit_tile(b, &p, [a, bm, c], i, j, rows, None);
                    j += 1;
                }
            };
            // Blocks of 4 rows; then 2 (at most one block is left) and a single row.
            let zero = b.ins().iconst(types::I64, 0);
            let i = counted_loop(b, zero, m, 4, |b, i| emit_row_block(b, 4, i));
            let i = counted_loop(b, i, m, 2, |b, i| emit_row_block(b, 2, i));
            counted_loop(b, i, m, 1, |b, i| emit_row_block(b, 1, i));
            b.ins().return_(&[]);
        },
    )
}

/// One register tile: `rows` x (`vectors` f32x4 columns, or one scalar column when `None`)
/// outputs at (`i`, `j`), accumulated over all of `k`.
fn emit_tile(
    b: &mut FunctionBuilder,
    p: &Product,
    [a, bm, c]: [Value; 3],
    i: Value,
    j: i64,
    rows: i64,
    vectors: Option<i64>,
) {
    let (k, b_stride, c_stride) = (p.k as i64, p.b_stride as i64, p.c_stride as i64);
    let (ty, vectors) = match vectors {
        Some(v) => (types::F32X4, v),
        None => (types::F32, 1),
    };
    let zero32 = b.ins().f32const(0.0);
    let zero = if ty.is_vector() {
        b.ins().splat(ty, zero32)
    } else {
        zero32
    };
    let head = b.create_block();
    let body = b.create_block();
    let done = b.create_block();
    let ptr_ty = types::I64;
    // Loop state: the current row of B, the current column of A, and the accumulators.
    b.append_block_param(head, ptr_ty);
    b.append_block_param(head, ptr_ty);
    let count = (rows * vectors) as usize;
    for _ in 0..count {
        b.append_block_param(head, ty);
    }
    let row_bytes = k * 4;
    let a_base = b.ins().imul_imm_s(i, row_bytes);
    let a_base = b.ins().iadd(a, a_base);
    // The k loop is unrolled by two; the second step's offsets are load immediates, so a step
    // costs only its loads and fused multiply-adds. An odd k ends with one more step.
    let unrolled = k - k % 2;
    let b_end = b.ins().iadd_imm_s(bm, unrolled * b_stride * 4);
    let mut args: Vec<cranelift_codegen::ir::BlockArg> = vec![bm.into(), a_base.into()];
    args.extend((0..count).map(|_| cranelift_codegen::ir::BlockArg::from(zero)));
    b.ins().jump(head, &args);

    b.switch_to_block(head);
    let params = b.block_params(head).to_vec();
    let (bp, ap) = (params[0], params[1]);
    let accs: Vec<Value> = params[2..].to_vec();
    let more = b.ins().icmp(IntCC::UnsignedLessThan, bp, b_end);
    let tail = b.create_block();
    b.ins().brif(more, body, &[], tail, &[]);

    // One k step reading B's row at `bp + b_off` and A's column at `ap + a_off`.
    let step = |b: &mut FunctionBuilder, b_off: i64, a_off: i64, accs: &[Value]| -> Vec<Value> {
        if rows == 1 {
            // Each load right before its multiply-add, which then takes it as a memory operand:
            // loading the row's vectors first kept them all live and spilled accumulators
            // (batch-1 object of the mlp workload: 23.3 -> 20.4-21.3 us).
            let av = b.ins().load(types::F32, operand(), ap, a_off as i32);
            let av = if ty.is_vector() { b.ins().splat(ty, av) } else { av };
            return (0..vectors)
                .map(|v| {
                    let bv = b.ins().load(ty, operand(), bp, (b_off + (j + 4 * v) * 4) as i32);
                    b.ins().fma(av, bv, accs[v as usize])
                })
                .collect();
        }
        let bv: Vec<Value> = (0..vectors)
            .map(|v| b.ins().load(ty, operand(), bp, (b_off + (j + 4 * v) * 4) as i32))
            .collect();
        let mut out = Vec::with_capacity(accs.len());
        for r in 0..rows {
            let av = b.ins().load(types::F32, operand(), ap, (a_off + r * row_bytes) as i32);
            let av = if ty.is_vector() { b.ins().splat(ty, av) } else { av };
            for v in 0..vectors {
                out.push(b.ins().fma(av, bv[v as usize], accs[(r * vectors + v) as usize]));
            }
        }
        out
    };

    b.switch_to_block(body);
    let once = step(b, 0, 0, &accs);
    let twice = step(b, b_stride * 4, 4, &once);
    let next_b = b.ins().iadd_imm_s(bp, 2 * b_stride * 4);
    let next_a = b.ins().iadd_imm_s(ap, 8);
    let mut next: Vec<cranelift_codegen::ir::BlockArg> = vec![next_b.into(), next_a.into()];
    next.extend(twice.iter().map(|&v| cranelift_codegen::ir::BlockArg::from(v)));
    b.ins().jump(head, &next);

    b.switch_to_block(tail);
    let accs: Vec<Value> = if k % 2 == 1 { step(b, 0, 0, &accs) } else { accs };
    b.ins().jump(done, &[]);

    b.switch_to_block(done);
    let c_row = b.ins().imul_imm_s(i, c_stride * 4);
    let c_row = b.ins().iadd(c, c_row);
    for r in 0..rows {
        for v in 0..vectors {
            let off = (r * c_stride + j + 4 * v) * 4;
            b.ins()
                .store(mem(), accs[(r * vectors + v) as usize], c_row, off as i32);
        }
    }
}

/// Declares and defines a row softmax over `n` columns: `(x, out, rows)`. `out` may be `x`
/// (each row is read whole before any of it is written).
pub fn define_softmax<M: Module>(module: &mut M, name: &str, n: usize) -> Result<FuncId, Box<ModuleError>> {
    let ptr = module.target_config().pointer_type();
    define_function(
        module,
        name,
        Linkage::Local,
        &[ptr, ptr, types::I64],
        &[],
        |b, params, _| {
            let (x, out, rows) = (params[0], params[1], params[2]);
            let n = n as i64;
            let zero = b.ins().iconst(types::I64, 0);
            counted_loop(b, zero, rows, 1, |b, r| {
                let off = b.ins().imul_imm_s(r, n * 4);
                let p = b.ins().iadd(x, off);
                let o = b.ins().iadd(out, off);
                // The row is at most a few thousand wide; straight-line code keeps it simple.
                let values: Vec<Value> = (0..n)
                    .map(|j| b.ins().load(types::F32, mem(), p, (j * 4) as i32))
                    .collect();
                let mut m = values[0];
                for &v in &values[1..] {
                    let gt = b.ins().fcmp(FloatCC::GreaterThan, v, m);
                    m = b.ins().select(gt, v, m);
                }
                let mut e = Emitter {
                    b: &mut *b,
                    ty: types::F32,
                };
                let mut exps = Vec::with_capacity(values.len());
                let mut sum = e.konst(0.0);
                for &v in &values {
                    let d = e.b.ins().fsub(v, m);
                    let ex = e.exp(d);
                    sum = e.b.ins().fadd(sum, ex);
                    exps.push(ex);
                }
                for (j, ex) in exps.into_iter().enumerate() {
                    let q = e.b.ins().fdiv(ex, sum);
                    e.b.ins().store(mem(), q, o, (j * 4) as i32);
                }
            });
            b.ins().return_(&[]);
        },
    )
}

/// Declares and defines maxout over `units` inputs in groups of `pieces`: `(x, out, rows)`.
/// `out` may be `x`: each output is written at or below the first input of its group, which
/// has been read, and every later read is above it.
pub fn define_maxout<M: Module>(
    module: &mut M,
    name: &str,
    units: usize,
    pieces: usize,
) -> Result<FuncId, Box<ModuleError>> {
    let ptr = module.target_config().pointer_type();
    define_function(
        module,
        name,
        Linkage::Local,
        &[ptr, ptr, types::I64],
        &[],
        |b, params, _| {
            let (x, out, rows) = (params[0], params[1], params[2]);
            let outs = (units / pieces) as i64;
            let zero = b.ins().iconst(types::I64, 0);
            counted_loop(b, zero, rows, 1, |b, r| {
                let xo = b.ins().imul_imm_s(r, units as i64 * 4);
                let xp = b.ins().iadd(x, xo);
                let oo = b.ins().imul_imm_s(r, outs * 4);
                let op = b.ins().iadd(out, oo);
                for j in 0..outs {
                    let base = j * pieces as i64;
                    let mut best = b.ins().load(types::F32, mem(), xp, (base * 4) as i32);
                    for k in 1..pieces as i64 {
                        let v = b.ins().load(types::F32, mem(), xp, ((base + k) * 4) as i32);
                        // `>` (first winner on ties), as the interpreter.
                        let gt = b.ins().fcmp(FloatCC::GreaterThan, v, best);
                        best = b.ins().select(gt, v, best);
                    }
                    b.ins().store(mem(), best, op, (j * 4) as i32);
                }
            });
            b.ins().return_(&[]);
        },
    )
}
