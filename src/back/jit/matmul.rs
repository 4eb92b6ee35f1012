//! A standalone compiled matrix product (the kernel benchmark's and tests' view of
//! `kernels::define_matmul`).

use super::*;

/// A matrix product compiled by Cranelift for fixed `k` and `n`.
pub struct CompiledMatmul {
    _module: JITModule,
    function: MatmulFn,
    k: usize,
    n: usize,
}

impl CompiledMatmul {
    /// Compiles `c[m x n] = a[m x k] b[k x n]`.
    pub fn new(k: usize, n: usize) -> Result<CompiledMatmul, Box<Diagnostic>> {
        let mut module = host_module()?;
        let error = |e: String| {
            Diagnostic::internal(format!("the JIT failed to compile a matrix product: {e}"))
                .with_hint("report this as a bug")
        };
        let id = kernels::define_matmul(&mut module, "matmul", k, n).map_err(|e| error(e.to_string()))?;
        module.finalize_definitions().map_err(|e| error(e.to_string()))?;
        // SAFETY: `define_matmul` defines exactly the `MatmulFn` signature; the module that
        // owns the code lives as long as the pointer, in this struct.
        let function = unsafe { std::mem::transmute::<*const u8, MatmulFn>(module.get_finalized_function(id)) };
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
