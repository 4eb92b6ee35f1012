//! Kernels over whole samples of NCHW images, for the object file: convolutions (im2col into a
//! scratch region, then the matrix-product kernel of `back/kernels.rs`), max and average
//! pooling, and concatenation along channels. Every geometry is known when the model is
//! compiled, so which window taps fall on padding is decided here, not in the generated code:
//! im2col writes zeros for them, and pooling leaves them out.

use crate::back::kernels::{self, counted_loop, mem};
use crate::ir::Window;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{FuncId, Linkage, Module, ModuleError};

/// Copies and fills of at most this many stores are unrolled; longer ones loop.
const UNROLL: i64 = 16;

/// Windows of at most this many taps, all inside the image, are unrolled.
const UNROLLED_TAPS: usize = 16;

/// True for a convolution whose im2col matrix is its input: a 1x1 window, stride 1, no
/// padding (`[channels, height * width]` is the sample itself).
fn reads_its_input(g: &Window) -> bool {
    (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) == (1, 1, 1, 1) && !padded(g)
}

fn padded(g: &Window) -> bool {
    g.pad_top + g.pad_left + g.pad_bottom + g.pad_right > 0
}

/// The floats of scratch memory [`define_conv`]'s kernel needs: one sample's im2col matrix,
/// `[channels * kernel_h * kernel_w, out_h * out_w]` (none when it reads its input directly).
pub fn conv_scratch(g: &Window) -> usize {
    if reads_its_input(g) {
        0
    } else {
        g.channels * g.taps() * g.positions()
    }
}

/// The outputs `lo..hi` along one axis whose window tap is inside the image (`inside`), a
/// contiguous range (empty as `(0, 0)`).
fn inside_range(outputs: usize, inside: impl Fn(usize) -> bool) -> (i64, i64) {
    let lo = (0..outputs).find(|&o| inside(o));
    let hi = (0..outputs).rev().find(|&o| inside(o));
    match (lo, hi) {
        (Some(lo), Some(hi)) => (lo as i64, hi as i64 + 1),
        _ => (0, 0),
    }
}

/// Copies `count` floats from `src + src_offset` (bytes), `stride` floats apart, to `dst +
/// dst_offset`, contiguous.
#[allow(clippy::too_many_arguments)]
fn copy_floats(
    b: &mut FunctionBuilder,
    src: Value,
    src_offset: i64,
    stride: i64,
    dst: Value,
    dst_offset: i64,
    count: i64,
) {
    let lanes = if stride == 1 { 4 } else { 1 };
    let wide = if lanes == 4 { types::F32X4 } else { types::F32 };
    let unit = |b: &mut FunctionBuilder, s: Value, d: Value, i: i64, ty: Type| {
        let v = b.ins().load(ty, mem(), s, (src_offset + i * stride * 4) as i32);
        b.ins().store(mem(), v, d, (dst_offset + i * 4) as i32);
    };
    let whole = count - count % lanes;
    if whole / lanes <= UNROLL {
        for i in (0..whole).step_by(lanes as usize) {
            unit(b, src, dst, i, wide);
        }
    } else {
        let zero = b.ins().iconst(types::I64, 0);
        let end = b.ins().iconst(types::I64, whole);
        counted_loop(b, zero, end, lanes, |b, i| {
            let so = b.ins().imul_imm_s(i, stride * 4);
            let s = b.ins().iadd(src, so);
            let d_off = b.ins().imul_imm_s(i, 4);
            let d = b.ins().iadd(dst, d_off);
            unit(b, s, d, 0, wide);
        });
    }
    for i in whole..count {
        unit(b, src, dst, i, types::F32);
    }
}

/// Stores `count` zeros at `dst + offset` (bytes).
fn fill_zeros(b: &mut FunctionBuilder, dst: Value, offset: i64, count: i64) {
    if count <= 0 {
        return;
    }
    let zero = b.ins().f32const(0.0);
    let zeros = b.ins().splat(types::F32X4, zero);
    let whole = count - count % 4;
    if whole / 4 <= UNROLL {
        for i in (0..whole).step_by(4) {
            b.ins().store(mem(), zeros, dst, (offset + i * 4) as i32);
        }
    } else {
        let start = b.ins().iconst(types::I64, 0);
        let end = b.ins().iconst(types::I64, whole);
        counted_loop(b, start, end, 4, |b, i| {
            let o = b.ins().imul_imm_s(i, 4);
            let d = b.ins().iadd(dst, o);
            b.ins().store(mem(), zeros, d, offset as i32);
        });
    }
    for i in whole..count {
        b.ins().store(mem(), zero, dst, (offset + i * 4) as i32);
    }
}

/// Writes the im2col matrix of one sample's output rows `y0..y1`: row `(c, ky, kx)` holds, for
/// each of those rows' output positions, the input value under that tap, or zero where the tap
/// falls on padding (`[channels * taps, (y1 - y0) * out_w]`).
fn emit_im2col(b: &mut FunctionBuilder, g: &Window, (y0, y1): (usize, usize), x: Value, col: Value) {
    let (h, w) = (g.height as i64, g.width as i64);
    let ow = g.out_w as i64;
    let (sh, sw) = (g.stride_h as i64, g.stride_w as i64);
    let (pt, pl) = (g.pad_top as i64, g.pad_left as i64);
    let (y0, y1) = (y0 as i64, y1 as i64);
    let positions = (y1 - y0) * ow;
    let taps = g.taps() as i64;
    let zero = b.ins().iconst(types::I64, 0);
    let channels = b.ins().iconst(types::I64, g.channels as i64);
    for ky in 0..g.kernel_h {
        let (oy_lo, oy_hi) = inside_range(g.out_h, |oy| g.input_y(oy, ky).is_some());
        // The rows of this part whose tap is inside the image, counted from y0.
        let (lo, hi) = (oy_lo.clamp(y0, y1) - y0, oy_hi.clamp(y0, y1) - y0);
        for kx in 0..g.kernel_w {
            let (ox_lo, ox_hi) = inside_range(g.out_w, |ox| g.input_x(ox, kx).is_some());
            let tap = (ky * g.kernel_w + kx) as i64;
            counted_loop(b, zero, channels, 1, |b, c| {
                let so = b.ins().imul_imm_s(c, h * w * 4);
                let src = b.ins().iadd(x, so);
                let d_off = b.ins().imul_imm_s(c, taps * positions * 4);
                let dst = b.ins().iadd(col, d_off);
                let row = tap * positions * 4;
                if lo >= hi || ox_lo >= ox_hi {
                    fill_zeros(b, dst, row, positions);
                    return;
                }
                fill_zeros(b, dst, row, lo * ow);
                let from = b.ins().iconst(types::I64, lo);
                let to = b.ins().iconst(types::I64, hi);
                counted_loop(b, from, to, 1, |b, oy| {
                    // Input row iy = (y0 + oy) sh + ky - pt, column ix = ox sw + kx - pl.
                    let s_off = b.ins().imul_imm_s(oy, sh * w * 4);
                    let s = b.ins().iadd(src, s_off);
                    let d_off = b.ins().imul_imm_s(oy, ow * 4);
                    let d = b.ins().iadd(dst, d_off);
                    fill_zeros(b, d, row, ox_lo);
                    let first = ((y0 * sh + ky as i64 - pt) * w + ox_lo * sw + kx as i64 - pl) * 4;
                    copy_floats(b, s, first, sw, d, row + ox_lo * 4, ox_hi - ox_lo);
                    fill_zeros(b, d, row + ox_hi * 4, ow - ox_hi);
                });
                fill_zeros(b, dst, row + hi * ow * 4, (y1 - y0 - hi) * ow);
            });
        }
    }
}

/// The product a convolution's output rows `y0..y1` take ([`define_conv`]): `k = channels *
/// taps` and the rows' positions, from the part's own im2col matrix (or from the input, for a
/// convolution that reads it directly), into rows of the whole output's positions.
pub fn conv_product(g: &Window, (y0, y1): (usize, usize)) -> kernels::Product {
    let n = (y1 - y0) * g.out_w;
    kernels::Product {
        k: g.channels * g.taps(),
        n,
        b_stride: if reads_its_input(g) { g.positions() } else { n },
        c_stride: g.positions(),
    }
}

/// Declares and defines the output rows `rows.0..rows.1` of a convolution of `filters` filters
/// over geometry `g` (no bias: the bias row is an elementwise kernel after it): `(x, w, out,
/// scratch, rows)`, with filters `[filters, channels * kernel_h * kernel_w]` and the im2col
/// matrix of those output rows in `scratch` ([`conv_scratch`] floats for all of them). Each
/// sample's part is its im2col matrix `X` (`[channels * taps, part positions]`), and its output
/// the product `w X` into the part's columns of `[filters, positions]` (NCHW), by `matmul`, a
/// [`kernels::define_product`] kernel of [`conv_product`]. Two parts of one convolution write
/// different outputs and may run at the same time.
pub fn define_conv<M: Module>(
    module: &mut M,
    name: &str,
    g: &Window,
    filters: usize,
    part: (usize, usize),
    matmul: FuncId,
) -> Result<FuncId, Box<ModuleError>> {
    let positions = g.positions();
    let ptr = module.target_config().pointer_type();
    let g = *g;
    let first = (part.0 * g.out_w * 4) as i64;
    kernels::define_function(
        module,
        name,
        Linkage::Local,
        &[ptr, ptr, ptr, ptr, types::I64],
        &[],
        |b, params, module| {
            let (x, w, out, scratch, rows) = (params[0], params[1], params[2], params[3], params[4]);
            let product = module.declare_func_in_func(matmul, b.func);
            let zero = b.ins().iconst(types::I64, 0);
            let m = b.ins().iconst(types::I64, filters as i64);
            counted_loop(b, zero, rows, 1, |b, r| {
                let xo = b.ins().imul_imm_s(r, (g.input_len() * 4) as i64);
                let xb = b.ins().iadd(x, xo);
                let oo = b.ins().imul_imm_s(r, (filters * positions * 4) as i64);
                let ob = b.ins().iadd(out, oo);
                let ob = b.ins().iadd_imm_s(ob, first);
                let columns = if reads_its_input(&g) {
                    b.ins().iadd_imm_s(xb, first)
                } else {
                    emit_im2col(b, &g, part, xb, scratch);
                    scratch
                };
                b.ins().call(product, &[w, columns, ob, m]);
            });
            b.ins().return_(&[]);
        },
    )
}

/// Declares and defines max or average pooling over geometry `g`: `(x, out, rows)`. Windows
/// cover their taps inside the image only (padding never wins and is never counted); taps are
/// visited in the interpreter's order (row, then column), so averages agree with it bit for bit.
pub fn define_pool<M: Module>(module: &mut M, name: &str, g: &Window, max: bool) -> Result<FuncId, Box<ModuleError>> {
    let ptr = module.target_config().pointer_type();
    let g = *g;
    kernels::define_function(
        module,
        name,
        Linkage::Local,
        &[ptr, ptr, types::I64],
        &[],
        |b, params, _| {
            let (x, out, rows) = (params[0], params[1], params[2]);
            let zero = b.ins().iconst(types::I64, 0);
            // Channels are contiguous planes: pool rows * channels planes one after another.
            let planes = b.ins().imul_imm_s(rows, g.channels as i64);
            let (oh, ow) = (
                b.ins().iconst(types::I64, g.out_h as i64),
                b.ins().iconst(types::I64, g.out_w as i64),
            );
            counted_loop(b, zero, planes, 1, |b, q| {
                let xo = b.ins().imul_imm_s(q, (g.height * g.width * 4) as i64);
                let plane = b.ins().iadd(x, xo);
                let oo = b.ins().imul_imm_s(q, (g.positions() * 4) as i64);
                let pooled = b.ins().iadd(out, oo);
                counted_loop(b, zero, oh, 1, |b, oy| {
                    if vectorized(&g) {
                        // Four outputs at a time; a last group of four ending at the row's end
                        // (overlapping the one before it) when the width is not a multiple.
                        let whole = (g.out_w - g.out_w % 4) as i64;
                        let end = b.ins().iconst(types::I64, whole);
                        counted_loop(b, zero, end, 4, |b, ox| {
                            vector_window(b, &g, plane, pooled, oy, ox, max)
                        });
                        if whole < g.out_w as i64 {
                            let ox = b.ins().iconst(types::I64, g.out_w as i64 - 4);
                            vector_window(b, &g, plane, pooled, oy, ox, max);
                        }
                        return;
                    }
                    counted_loop(b, zero, ow, 1, |b, ox| {
                        let v = if !padded(&g) && g.taps() <= UNROLLED_TAPS {
                            unrolled_window(b, &g, plane, oy, ox, max)
                        } else {
                            clipped_window(b, &g, plane, oy, ox, max)
                        };
                        let at = b.ins().imul_imm_s(oy, (g.out_w * 4) as i64);
                        let o = b.ins().imul_imm_s(ox, 4);
                        let at = b.ins().iadd(at, o);
                        let at = b.ins().iadd(pooled, at);
                        b.ins().store(mem(), v, at, 0);
                    });
                });
            });
            b.ins().return_(&[]);
        },
    )
}

/// True for pooling whose windows are computed four outputs at a time ([`vector_window`]):
/// windows inside the image (no padding), at most [`UNROLLED_TAPS`] taps, at least four outputs
/// per row, and a column stride of 1 (the taps of four outputs are one vector) or 2 (two
/// vectors' even lanes). Measured on the lenet workload: its scalar 2x2 max pooling took 12% of
/// the 60,000-row executable's time.
fn vectorized(g: &Window) -> bool {
    !padded(g) && g.taps() <= UNROLLED_TAPS && g.out_w >= 4 && matches!(g.stride_w, 1 | 2)
}

/// Outputs `ox..ox + 4` of output row `oy` of one plane: each lane folds its window's taps in
/// the order of [`unrolled_window`] (row, then column), with the same comparisons and sums, so
/// the results are those of the scalar windows bit for bit.
fn vector_window(b: &mut FunctionBuilder, g: &Window, plane: Value, pooled: Value, oy: Value, ox: Value, max: bool) {
    let w = g.width as i64;
    let row = b.ins().imul_imm_s(oy, g.stride_h as i64 * w * 4);
    let column = b.ins().imul_imm_s(ox, g.stride_w as i64 * 4);
    let corner = b.ins().iadd(row, column);
    let corner = b.ins().iadd(plane, corner);
    let mut acc: Option<Value> = None;
    for ky in 0..g.kernel_h as i64 {
        for kx in 0..g.kernel_w as i64 {
            let at = ((ky * w + kx) * 4) as i32;
            let v = if g.stride_w == 1 {
                b.ins().load(types::F32X4, mem(), corner, at)
            } else {
                // Columns c, c + 2, c + 4, c + 6: lanes 0 and 2 of [c, c + 4) and lanes 1 and 3
                // of [c + 3, c + 7), which ends at the last column needed (no load past it).
                let first = b.ins().load(types::F32X4, mem(), corner, at);
                let second = b.ins().load(types::F32X4, mem(), corner, at + 12);
                let bytes = |v: Value, b: &mut FunctionBuilder| b.ins().bitcast(types::I8X16, lanes(), v);
                let (x, y) = (bytes(first, b), bytes(second, b));
                let pick: Vec<u8> = [0u8, 2, 5, 7]
                    .iter()
                    .flat_map(|&lane| (0..4).map(move |k| lane * 4 + k))
                    .collect();
                let mask = b.func.dfg.immediates.push(pick.into());
                let picked = b.ins().shuffle(x, y, mask);
                b.ins().bitcast(types::F32X4, lanes(), picked)
            };
            acc = Some(match acc {
                None => v,
                Some(acc) if max => {
                    let greater = b.ins().fcmp(FloatCC::GreaterThan, v, acc);
                    let mask = b.ins().bitcast(types::F32X4, lanes(), greater);
                    b.ins().bitselect(mask, v, acc)
                }
                Some(acc) => b.ins().fadd(acc, v),
            });
        }
    }
    let mut acc = acc.expect("a window has taps");
    if !max {
        let count = b.ins().f32const(g.taps() as f32);
        let count = b.ins().splat(types::F32X4, count);
        acc = b.ins().fdiv(acc, count);
    }
    let at = b.ins().imul_imm_s(oy, (g.out_w * 4) as i64);
    let o = b.ins().imul_imm_s(ox, 4);
    let at = b.ins().iadd(at, o);
    let at = b.ins().iadd(pooled, at);
    b.ins().store(mem(), acc, at, 0);
}

/// Lane-order flags for vector bitcasts.
fn lanes() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// Folds one window's taps: the largest (`>`, the first of equal values) or the sum.
fn fold_tap(b: &mut FunctionBuilder, acc: Value, v: Value, max: bool) -> Value {
    if max {
        let greater = b.ins().fcmp(FloatCC::GreaterThan, v, acc);
        b.ins().select(greater, v, acc)
    } else {
        b.ins().fadd(acc, v)
    }
}

/// A window with every tap inside the image (no padding), its taps unrolled.
fn unrolled_window(b: &mut FunctionBuilder, g: &Window, plane: Value, oy: Value, ox: Value, max: bool) -> Value {
    let w = g.width as i64;
    let row = b.ins().imul_imm_s(oy, g.stride_h as i64 * w * 4);
    let column = b.ins().imul_imm_s(ox, g.stride_w as i64 * 4);
    let corner = b.ins().iadd(row, column);
    let corner = b.ins().iadd(plane, corner);
    let mut acc = None;
    for ky in 0..g.kernel_h as i64 {
        for kx in 0..g.kernel_w as i64 {
            let v = b.ins().load(types::F32, mem(), corner, ((ky * w + kx) * 4) as i32);
            acc = Some(match acc {
                None => v,
                Some(acc) => fold_tap(b, acc, v, max),
            });
        }
    }
    let acc = acc.expect("a window has taps");
    if max {
        acc
    } else {
        let count = b.ins().f32const(g.taps() as f32);
        b.ins().fdiv(acc, count)
    }
}

/// A window clipped to the image at run time: rows `ky_lo..ky_hi` and columns `kx_lo..kx_hi`
/// of the window are inside it.
fn clipped_window(b: &mut FunctionBuilder, g: &Window, plane: Value, oy: Value, ox: Value, max: bool) -> Value {
    // The window's first row and column in the image (negative on padding).
    let y0 = b.ins().imul_imm_s(oy, g.stride_h as i64);
    let y0 = b.ins().iadd_imm_s(y0, -(g.pad_top as i64));
    let x0 = b.ins().imul_imm_s(ox, g.stride_w as i64);
    let x0 = b.ins().iadd_imm_s(x0, -(g.pad_left as i64));
    let clip = |b: &mut FunctionBuilder, start: Value, kernel: usize, size: usize| {
        let zero = b.ins().iconst(types::I64, 0);
        let minus = b.ins().ineg(start);
        let lo = b.ins().smax(zero, minus);
        let kernel = b.ins().iconst(types::I64, kernel as i64);
        let size = b.ins().iconst(types::I64, size as i64);
        let left = b.ins().isub(size, start);
        let hi = b.ins().smin(kernel, left);
        (lo, hi)
    };
    let (ky_lo, ky_hi) = clip(b, y0, g.kernel_h, g.height);
    let (kx_lo, kx_hi) = clip(b, x0, g.kernel_w, g.width);
    let acc = b.declare_var(types::F32);
    let start = b.ins().f32const(if max { f32::NEG_INFINITY } else { 0.0 });
    b.def_var(acc, start);
    let w = g.width as i64;
    counted_loop(b, ky_lo, ky_hi, 1, |b, ky| {
        let iy = b.ins().iadd(y0, ky);
        let row = b.ins().imul_imm_s(iy, w * 4);
        let row = b.ins().iadd(plane, row);
        counted_loop(b, kx_lo, kx_hi, 1, |b, kx| {
            let ix = b.ins().iadd(x0, kx);
            let at = b.ins().imul_imm_s(ix, 4);
            let at = b.ins().iadd(row, at);
            let v = b.ins().load(types::F32, mem(), at, 0);
            let old = b.use_var(acc);
            let new = fold_tap(b, old, v, max);
            b.def_var(acc, new);
        });
    });
    let acc = b.use_var(acc);
    if max {
        acc
    } else {
        let rows = b.ins().isub(ky_hi, ky_lo);
        let columns = b.ins().isub(kx_hi, kx_lo);
        let count = b.ins().imul(rows, columns);
        let count = b.ins().fcvt_from_sint(types::F32, count);
        b.ins().fdiv(acc, count)
    }
}

/// Declares and defines the concatenation of parts of `parts[i]` values per row:
/// `(part_0, ..., part_n, out, rows)`, each output row the parts' rows in order.
pub fn define_concat<M: Module>(module: &mut M, name: &str, parts: &[usize]) -> Result<FuncId, Box<ModuleError>> {
    let ptr = module.target_config().pointer_type();
    let mut signature = vec![ptr; parts.len() + 1];
    signature.push(types::I64);
    let total: usize = parts.iter().sum();
    kernels::define_function(module, name, Linkage::Local, &signature, &[], |b, params, _| {
        let (out, rows) = (params[parts.len()], params[parts.len() + 1]);
        let zero = b.ins().iconst(types::I64, 0);
        counted_loop(b, zero, rows, 1, |b, r| {
            let oo = b.ins().imul_imm_s(r, (total * 4) as i64);
            let dst = b.ins().iadd(out, oo);
            let mut offset = 0;
            for (k, &cols) in parts.iter().enumerate() {
                let so = b.ins().imul_imm_s(r, (cols * 4) as i64);
                let src = b.ins().iadd(params[k], so);
                copy_floats(b, src, 0, 1, dst, offset * 4, cols as i64);
                offset += cols as i64;
            }
        });
        b.ins().return_(&[]);
    })
}
