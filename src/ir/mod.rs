//! The typed program every stage after the front end reads.
//!
//! [`crate::front::lower`] produces a [`Program`]: constants substituted, `repeat` and block
//! calls expanded, every value type- and range-checked, defaults filled in. Layers live in an
//! [`Arena`] and name the layers they read ([`Source`]); the source spans of their fields live
//! beside them in [`Spans`], so the IR itself stays plain data that backends can copy.
//! [`Shape`] is the tensor shape every later stage uses (rank up to 4, a symbolic batch).

pub mod arena;
mod model;
pub mod shape;
mod spans;
mod train;
pub mod window;

pub use arena::{Arena, Handle};
pub use model::*;
pub use shape::{Dim, MAX_RANK, Shape};
pub use spans::{SlotSpans, Spans};
pub use train::*;
pub use window::{Padding, Window};

/// A whole spec: the model and how to train it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Program {
    /// The network.
    pub model: Model,
    /// How it is trained.
    pub train: TrainConfig,
}
