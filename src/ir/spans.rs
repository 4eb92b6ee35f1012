//! Source spans of a [`super::Program`], kept beside it (never inside IR nodes).

use super::{Handle, Layer};
use crate::diag::source::Span;
use std::collections::HashMap;

/// Source spans of one statement's values, by slot name; the statement's span as fallback.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlotSpans {
    /// The whole statement (or the block call / repeat that produced it).
    pub statement: Span,
    /// Spans of the values that were written, by slot name.
    pub slots: HashMap<&'static str, Span>,
}

impl SlotSpans {
    /// The span of a slot's value, or of the statement when the value was a default.
    pub fn get(&self, slot: &str) -> Span {
        self.slots.get(slot).copied().unwrap_or(self.statement)
    }

    /// True when the slot was written (or set with `--set`).
    pub fn has(&self, slot: &str) -> bool {
        self.slots.contains_key(slot)
    }
}

/// Source spans for a [`Program`], kept beside it.
#[derive(Debug, Clone, Default)]
pub struct Spans {
    /// The `model` statement's name (or head).
    pub model: Span,
    /// The input statement.
    pub input: SlotSpans,
    /// One entry per layer, indexed like `Model::layers`.
    pub layers: Vec<SlotSpans>,
    /// The loss statement.
    pub loss: SlotSpans,
    /// The `train` statement's head.
    pub train: Span,
    /// Train statements by head word (`optimizer`, `data`, ...).
    pub settings: HashMap<&'static str, SlotSpans>,
}

impl Spans {
    /// The spans of one layer.
    pub fn layer(&self, handle: Handle<Layer>) -> &SlotSpans {
        &self.layers[handle.index()]
    }

    /// The spans of one train statement (the train head when it was not written).
    pub fn setting(&self, head: &str) -> SlotSpans {
        self.settings.get(head).cloned().unwrap_or(SlotSpans {
            statement: self.train,
            slots: HashMap::new(),
        })
    }
}
