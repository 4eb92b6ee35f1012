//! Backends: everything that executes a graph.
//!
//! [`engine`] is the trait every backend implements; [`interp`] is the reference (ndarray);
//! [`kernels`] is the Cranelift code generator shared by [`jit`] (in-process) and [`aot`] (an
//! object file and an executable).

pub mod aot;
pub mod engine;
pub mod interp;
pub mod jit;
pub mod kernels;
