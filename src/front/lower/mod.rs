//! Syntax tree to [`Program`]: constants, `repeat`, blocks, schemas, defaults and `--set`.
//!
//! One [`Lowerer`] walks the tree; its methods live in one file per concern: [`overrides`],
//! [`constants`], [`file`] (sections and block definitions), [`matching`] (a statement against its
//! schema), [`model`] and [`train`].

mod constants;
mod file;
mod matching;
mod model;
mod overrides;
mod train;

use super::schema::{self, Schema, Section, Slot, Ty};
use crate::diag::source::Span;
use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::front::syntax::{
    self, Arg, Block, Command, Ident, Line, SourceFile, StatementKind, Value, ValueKind, join_or,
};
use crate::ir::*;
use std::collections::{HashMap, HashSet};

/// Most layers one model may expand to (through `repeat` and blocks).
pub const MAX_LAYERS: usize = 10_000;

/// Most diagnostics lowering keeps for one file; the renderer shows fewer still.
const MAX_STORED: usize = 1000;

/// How deeply block calls may nest.
const MAX_CALL_DEPTH: usize = 16;

/// A `--set KEY=VALUE` override: `value` replaces whatever the spec says at `path`.
#[derive(Debug, Clone)]
pub struct Override {
    /// Dotted path: `train.optimizer.lr`, `model.h1.width`, `model.depth` (a model constant),
    /// `depth` (a top-level constant).
    pub path: String,
    /// The value, parsed from its own small source file.
    pub value: Value,
}

/// Lowers a parsed file. Returns the program when there were no errors, and every diagnostic
/// found (errors and the lowering-stage warnings) either way.
pub fn lower(tree: &SourceFile, overrides: &[Override]) -> (Option<(Program, Spans)>, Vec<Diagnostic>) {
    let mut lowerer = Lowerer::new(overrides);
    lowerer.report_duplicate_overrides();
    let program = lowerer.file(tree);
    lowerer.report_unused_overrides();
    let mut diagnostics = lowerer.diagnostics;
    dedup(&mut diagnostics);
    if lowerer.not_stored > 0
        && let Some(last) = diagnostics.last_mut()
    {
        last.notes.push(format!(
            "{} more problems in this file are not reported",
            lowerer.not_stored
        ));
    }
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    (if failed { None } else { program }, diagnostics)
}

/// Removes repeats (a block body with an error, expanded three times, reports it once).
fn dedup(diagnostics: &mut Vec<Diagnostic>) {
    let mut seen = HashSet::new();
    diagnostics.retain(|d| seen.insert((d.code, d.span, d.message.clone())));
}

/// A value after constant substitution, with where it was used and where it came from.
#[derive(Debug, Clone)]
struct Resolved {
    value: Value,
    /// Where the value was written in the statement (or in `--set`).
    at: Span,
    /// Where the constant it came from was defined, if it came from one.
    origin: Option<(String, Span)>,
}

/// A value converted to its slot's type.
#[derive(Debug, Clone)]
enum Typed {
    Int(i64),
    Float(f64),
    Choice(&'static str, Vec<f64>),
    Str(String),
    Name(String),
    Split(Validation),
    Column(LabelColumn),
    Padding(Padding),
}

struct Constant {
    value: Value,
    defined: Span,
    used: bool,
    /// Block parameters are not reported when unused.
    report_unused: bool,
}

struct BlockDef<'t> {
    params: Vec<Ident>,
    body: &'t Block,
    defined: Span,
    used: bool,
}

/// The values of one matched statement.
struct Matched {
    schema: &'static Schema,
    values: HashMap<&'static str, Typed>,
    flags: HashSet<&'static str>,
    label: Option<Ident>,
    spans: SlotSpans,
}

impl Matched {
    fn int(&self, slot: &str) -> Option<i64> {
        match self.values.get(slot) {
            Some(Typed::Int(v)) => Some(*v),
            _ => None,
        }
    }
    fn float(&self, slot: &str) -> Option<f64> {
        match self.values.get(slot) {
            Some(Typed::Float(v)) => Some(*v),
            Some(Typed::Int(v)) => Some(*v as f64),
            _ => None,
        }
    }
    fn choice(&self, slot: &str) -> Option<(&'static str, &[f64])> {
        match self.values.get(slot) {
            Some(Typed::Choice(name, args)) => Some((name, args)),
            _ => None,
        }
    }
    fn padding(&self, slot: &str) -> Option<Padding> {
        match self.values.get(slot) {
            Some(Typed::Padding(p)) => Some(*p),
            _ => None,
        }
    }
    fn string(&self, slot: &str) -> Option<String> {
        match self.values.get(slot) {
            Some(Typed::Str(s)) | Some(Typed::Name(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

/// One statement of a line, after splitting lines such as `batch 128 epochs 30 seed 42`.
struct Piece<'t> {
    head: &'t Value,
    args: &'t [Arg],
    block: Option<&'t Block>,
    span: Span,
}

struct Lowerer<'t> {
    diagnostics: Vec<Diagnostic>,
    overrides: &'t [Override],
    used_overrides: Vec<bool>,
    /// Every path an override could have named, for "did you mean".
    known_paths: HashSet<String>,
    scopes: Vec<HashMap<String, Constant>>,
    blocks: HashMap<String, BlockDef<'t>>,
    // Model being built.
    layers: Arena<Layer>,
    layer_spans: Vec<SlotSpans>,
    layer_names: HashMap<String, Span>,
    kind_counts: HashMap<&'static str, usize>,
    label_suffix: Vec<usize>,
    call_stack: Vec<String>,
    /// A block call was not expanded (recursion, nesting too deep): the blocks it would have
    /// called are not reported as unused.
    expansion_cut: bool,
    /// The input statement, once seen; its width is `None` when the value was invalid.
    input: Option<(Option<Vec<usize>>, SlotSpans)>,
    /// The loss statement, once seen; `None` inside when the value was invalid.
    loss: Option<(Option<Loss>, SlotSpans)>,
    too_many_layers: bool,
    /// Every diagnostic recorded, for [`Lowerer::error`]'s deduplication.
    seen: HashSet<(Code, Option<Span>, String)>,
    /// Diagnostics past [`MAX_STORED`], counted.
    not_stored: usize,
}

impl<'t> Lowerer<'t> {
    fn new(overrides: &'t [Override]) -> Self {
        Lowerer {
            diagnostics: Vec::new(),
            overrides,
            used_overrides: vec![false; overrides.len()],
            known_paths: HashSet::new(),
            scopes: vec![HashMap::new()],
            blocks: HashMap::new(),
            layers: Arena::new(),
            layer_spans: Vec::new(),
            layer_names: HashMap::new(),
            kind_counts: HashMap::new(),
            label_suffix: Vec::new(),
            call_stack: Vec::new(),
            expansion_cut: false,
            input: None,
            loss: None,
            too_many_layers: false,
            seen: HashSet::new(),
            not_stored: 0,
        }
    }

    /// Records a diagnostic once (a block body expanded three times reports its error once),
    /// and at most [`MAX_STORED`] of them: a hostile file's millions of errors cost no memory.
    fn error(&mut self, d: Diagnostic) {
        if !self.seen.insert((d.code, d.span, d.message.clone())) {
            return;
        }
        if self.diagnostics.len() < MAX_STORED {
            self.diagnostics.push(d);
        } else {
            self.not_stored += 1;
        }
    }
}

fn activation_from(name: &str, args: &[f64]) -> Activation {
    match name {
        "linear" => Activation::Linear,
        "sigmoid" => Activation::Sigmoid,
        "tanh" => Activation::Tanh,
        "relu" => Activation::Relu,
        "leaky_relu" => Activation::LeakyRelu { alpha: args[0] },
        "prelu" => Activation::Prelu { initial: args[0] },
        "elu" => Activation::Elu { alpha: args[0] },
        "softmax" => Activation::Softmax,
        _ => unreachable!("the activation choice list matches this match"),
    }
}

fn is_choice_word(word: &str) -> bool {
    schema::SCHEMAS.iter().any(|s| {
        s.positional.iter().any(|slot| slot.ty.choice_names().contains(&word))
            || s.options
                .iter()
                .any(|slot| slot.ty.choice_names().contains(&word) || slot.name == word)
            || s.flags.contains(&word)
    })
}

fn arg_span(arg: &Arg) -> Span {
    match arg {
        Arg::Label(i) => i.span,
        Arg::Value(v) => v.span,
    }
}

fn statement_hint(section: Section) -> String {
    let heads: Vec<&str> = schema::heads(section).collect();
    match section {
        Section::Top => {
            "a spec holds `model NAME { ... }`, `train { ... }`, `let NAME = VALUE` and `block NAME(...) { ... }`"
                .to_string()
        }
        _ => format!("statements here are {}", join_or(&heads)),
    }
}

fn wrong_type(what: &str, ty: &Ty, v: &Value, at: Span) -> Diagnostic {
    Diagnostic::error(
        Code::WrongType,
        at,
        format!("{what} must be {}, found {}", ty.describe(), v.describe()),
    )
    .with_label(format!("expected {}", ty.describe()))
    .with_hint(format!("write {} here", ty.describe()))
}

fn range_hint(head: &str, slot: &str) -> Option<String> {
    Some(
        match (head, slot) {
            ("dropout", "rate") => {
                "a dropout rate is the probability of dropping a unit: use a value in [0, 1), typically 0.2 to 0.5"
            }
            ("optimizer", "lr") => "a learning rate must be positive: typical values are 1e-4 to 0.1",
            ("dense", "width") | ("input", "width") | ("maxout", "units") => "a layer needs at least one unit",
            ("batch", "size") => "a batch holds at least one sample",
            ("epochs", "count") => "train for at least one epoch",
            ("optimizer", "beta1") | ("optimizer", "beta2") => {
                "Adam's decay rates lie in [0, 1): the usual values are 0.9 and 0.999"
            }
            ("optimizer", "lambda") => "the momentum coefficient lies in [0, 1): 0.9 is usual",
            ("optimizer", "alpha") => "RMSProp's decay lies in [0, 1): 0.99 is usual",
            (_, "l1") | (_, "l2") => "a regularization strength is >= 0: typical values are 1e-5 to 1e-3",
            _ => return None,
        }
        .to_string(),
    )
}

/// Formats a number the way a user would write it.
pub fn fmt_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Parses `KEY=VALUE` (as given to `--set`) into an override whose value lives in `file`.
/// `text` must be the part after `=`; strings may be given without quotes.
pub fn parse_override(path: &str, file: crate::diag::source::FileId, text: &str) -> Result<Override, Box<Diagnostic>> {
    let value = match syntax::parse_value(file, text) {
        Ok(v) => v,
        // A bare path is accepted where a quoted one is meant: `--set train.data=train.csv`.
        Err(_) if !text.is_empty() && !text.contains(|c: char| c.is_whitespace() || "(){},;=#\"".contains(c)) => {
            Value {
                kind: ValueKind::Str(text.to_string()),
                span: Span::new(file, 0, text.len()),
            }
        }
        Err(e) => return Err(e),
    };
    Ok(Override {
        path: path.to_string(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowered(model: &str) -> Program {
        let text = format!("model m {{\n{model}\n}}\ntrain {{\n  data \"x.csv\"\n}}\n");
        let (tree, errors) = syntax::parse(0, &text);
        assert!(errors.is_empty(), "{errors:?}");
        let (program, diagnostics) = lower(&tree, &[]);
        assert!(!diagnostics.iter().any(Diagnostic::is_error), "{diagnostics:?}");
        program.expect("lowers").0
    }

    #[test]
    fn layers_form_a_chain_with_an_explicit_output() {
        let p = lowered("  input 4\n  dense h: 8 relu\n  dropout 0.5\n  dense 3 softmax\n  loss cross_entropy");
        let layers: Vec<(Handle<Layer>, &Layer)> = p.model.layers.iter().collect();
        assert_eq!(layers.len(), 3);
        assert_eq!(layers[0].1.inputs, vec![Source::Input]);
        assert_eq!(layers[1].1.inputs, vec![Source::Layer(layers[0].0)]);
        assert_eq!(layers[2].1.inputs, vec![Source::Layer(layers[1].0)]);
        assert_eq!(p.model.output, Some(layers[2].0));
        // Unlabelled layers are named by kind and position among their kind; defaults are filled in.
        let names: Vec<&str> = layers.iter().map(|(_, l)| l.name.as_str()).collect();
        assert_eq!(names, ["h", "dropout1", "dense2"]);
        assert!(matches!(
            layers[1].1.kind,
            LayerKind::Dropout {
                mode: DropoutMode::Inverted,
                ..
            }
        ));
        assert!(matches!(layers[0].1.kind, LayerKind::Dense { init: Init::He, .. }));
    }

    #[test]
    fn repeat_and_blocks_expand_in_order() {
        let p = lowered("  input 4\n  repeat 3 { dense 5 tanh }\n  dense 1 sigmoid\n  loss binary_cross_entropy");
        assert_eq!(p.model.layers.len(), 4);
        assert!(
            p.model
                .layers
                .values()
                .take(3)
                .all(|l| l.activation() == Some(Activation::Tanh))
        );
        assert_eq!(p.model.loss, Loss::BinaryCrossEntropy);
    }

    #[test]
    fn block_calls_on_one_line_are_statements_of_their_own() {
        let text = "block b(w) { dense w relu }\nmodel m {\n  input 4\n  b(8) b(16)  dense 5 tanh  b(3)\n  dense 2 softmax\n  loss cross_entropy\n}\ntrain {\n  data \"x.csv\"\n}\n";
        let (tree, errors) = syntax::parse(0, text);
        assert!(errors.is_empty(), "{errors:?}");
        let (program, diagnostics) = lower(&tree, &[]);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let widths: Vec<usize> = program
            .expect("lowers")
            .0
            .model
            .layers
            .values()
            .map(|l| match l.kind {
                LayerKind::Dense { width, .. } => width,
                _ => 0,
            })
            .collect();
        assert_eq!(widths, [8, 16, 5, 3, 2]);
    }

    #[test]
    fn overrides_replace_spec_values() {
        let text = "model m {\n  input 4\n  dense h: 8 relu\n  dense 2 softmax\n  loss cross_entropy\n}\ntrain {\n  data \"x.csv\"\n  optimizer sgd lr 0.1\n}\n";
        let (tree, _) = syntax::parse(0, text);
        let overrides = [
            parse_override("train.optimizer.lr", 1, "0.5").expect("parses"),
            parse_override("model.h.width", 2, "16").expect("parses"),
        ];
        let (program, diagnostics) = lower(&tree, &overrides);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let program = program.expect("lowers").0;
        assert_eq!(program.train.optimizer.lr, 0.5);
        let first = program.model.layers.values().next().expect("a layer");
        assert!(matches!(first.kind, LayerKind::Dense { width: 16, .. }));
    }
}
