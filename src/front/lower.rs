//! Syntax tree to [`Program`]: constants, `repeat`, blocks, schemas, defaults and `--set`.

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
    let program = lowerer.file(tree);
    lowerer.report_unused_overrides();
    let mut diagnostics = lowerer.diagnostics;
    dedup(&mut diagnostics);
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
    /// The input statement, once seen; its width is `None` when the value was invalid.
    input: Option<(Option<usize>, SlotSpans)>,
    /// The loss statement, once seen; `None` inside when the value was invalid.
    loss: Option<(Option<Loss>, SlotSpans)>,
    too_many_layers: bool,
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
            input: None,
            loss: None,
            too_many_layers: false,
        }
    }

    fn error(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    // ----- overrides -------------------------------------------------------------------------

    fn take_override(&mut self, path: &str) -> Option<Value> {
        self.known_paths.insert(path.to_string());
        let index = self.overrides.iter().rposition(|o| o.path == path)?;
        self.used_overrides[index] = true;
        Some(self.overrides[index].value.clone())
    }

    fn report_unused_overrides(&mut self) {
        let mut known: Vec<&str> = self.known_paths.iter().map(String::as_str).collect();
        known.sort_unstable();
        let mut new = Vec::new();
        for (o, used) in self.overrides.iter().zip(&self.used_overrides) {
            if *used {
                continue;
            }
            let mut d = Diagnostic::error(
                Code::BadOverride,
                o.value.span,
                format!("`--set {}` names nothing in this spec", o.path),
            )
            .with_label("no setting has this path");
            d.hint = Some(match did_you_mean(&o.path, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "paths look like `train.optimizer.lr`, `train.batch`, `model.h1.width` or `model.CONSTANT`"
                    .to_string(),
            });
            new.push(d);
        }
        self.diagnostics.extend(new);
    }

    // ----- constants -------------------------------------------------------------------------

    fn lookup(&mut self, name: &str) -> Option<(Value, Span)> {
        for scope in self.scopes.iter_mut().rev() {
            if let Some(c) = scope.get_mut(name) {
                c.used = true;
                return Some((c.value.clone(), c.defined));
            }
        }
        None
    }

    fn constant_names(&self) -> Vec<String> {
        self.scopes.iter().flat_map(|s| s.keys().cloned()).collect()
    }

    /// Substitutes constants in a value (and in a call's arguments).
    fn resolve(&mut self, value: &Value) -> Resolved {
        match &value.kind {
            ValueKind::Word(w) => match self.lookup(w) {
                Some((v, defined)) => Resolved {
                    value: v,
                    at: value.span,
                    origin: Some((w.clone(), defined)),
                },
                None => Resolved {
                    value: value.clone(),
                    at: value.span,
                    origin: None,
                },
            },
            ValueKind::Call(name, args) => {
                let args = args.iter().map(|a| self.resolve(a).value).collect();
                Resolved {
                    value: Value {
                        kind: ValueKind::Call(name.clone(), args),
                        span: value.span,
                    },
                    at: value.span,
                    origin: None,
                }
            }
            _ => Resolved {
                value: value.clone(),
                at: value.span,
                origin: None,
            },
        }
    }

    fn define(&mut self, name: &Ident, value: &Value, path: Option<String>) {
        if schema::find_anywhere(&name.name).is_some() || is_choice_word(&name.name) {
            self.error(
                Diagnostic::error(
                    Code::Duplicate,
                    name.span,
                    format!(
                        "`{}` is a keyword of the language and cannot name a constant",
                        name.name
                    ),
                )
                .with_label("reserved word")
                .with_hint(format!("pick another name, e.g. `{}_value`", name.name)),
            );
            return;
        }
        let overridden = path.and_then(|p| self.take_override(&p));
        let resolved = self.resolve(overridden.as_ref().unwrap_or(value)).value;
        let scope = self.scopes.last_mut().expect("there is always a scope");
        if let Some(previous) = scope.get(&name.name) {
            let previous = previous.defined;
            self.error(
                Diagnostic::error(Code::Duplicate, name.span, format!("`{}` is defined twice", name.name))
                    .with_label("second definition")
                    .with_secondary(previous, "first defined here")
                    .with_hint("remove one definition, or give this one another name"),
            );
            return;
        }
        scope.insert(
            name.name.clone(),
            Constant {
                value: resolved,
                defined: name.span,
                used: false,
                report_unused: true,
            },
        );
    }

    fn push_scope(&mut self) {
        self.scopes.push(HashMap::new());
    }

    fn pop_scope(&mut self) {
        let scope = self.scopes.pop().expect("push_scope and pop_scope are paired");
        self.report_unused_constants(scope);
    }

    fn report_unused_constants(&mut self, scope: HashMap<String, Constant>) {
        let mut unused: Vec<_> = scope.into_iter().filter(|(_, c)| !c.used && c.report_unused).collect();
        unused.sort_by_key(|(_, c)| c.defined.start);
        for (name, c) in unused {
            self.error(
                Diagnostic::warning(Code::Unused, c.defined, format!("constant `{name}` is never used"))
                    .with_label("defined here")
                    .with_hint("remove it, or use it where its value is meant"),
            );
        }
    }

    // ----- the file ----------------------------------------------------------------------------

    fn file(&mut self, tree: &'t SourceFile) -> Option<(Program, Spans)> {
        let mut model: Option<(&'t Command, Span)> = None;
        let mut train: Option<(&'t Command, Span)> = None;
        let mut file_span = Span::default();
        for line in &tree.lines {
            let Line::Statement(statement) = line else { continue };
            file_span = statement.span;
            match &statement.kind {
                StatementKind::Let(binding) => {
                    let path = binding.name.name.clone();
                    self.define(&binding.name, &binding.value, Some(path));
                }
                StatementKind::Command(command) => {
                    let Some(head) = command.head.as_word() else {
                        self.unknown_statement(&command.head, Section::Top);
                        continue;
                    };
                    match head {
                        "model" | "train" => {
                            let slot = if head == "model" { &mut model } else { &mut train };
                            if let Some((_, first)) = slot {
                                let first = *first;
                                self.error(
                                    Diagnostic::error(
                                        Code::Duplicate,
                                        command.head.span,
                                        format!("a spec has one `{head}` section; this is the second"),
                                    )
                                    .with_label("second section")
                                    .with_secondary(first, "first one here")
                                    .with_hint(format!("merge the two `{head}` sections into one")),
                                );
                            } else {
                                *slot = Some((command, command.head.span));
                            }
                        }
                        "block" => self.define_block(command, statement.span),
                        _ => self.unknown_statement(&command.head, Section::Top),
                    }
                }
            }
        }

        let spans_model;
        let model_ir = match model {
            Some((command, span)) => {
                spans_model = span;
                self.model(command, span)
            }
            None => {
                let at = Span::new(file_span.file, 0, 0);
                spans_model = at;
                self.error(
                    Diagnostic::error(Code::MissingSection, at, "this spec has no `model` section")
                        .with_label("expected `model NAME { ... }`")
                        .with_hint(
                            "add a model, e.g. `model digits { input 64  dense 10 softmax  loss cross_entropy }`",
                        ),
                );
                None
            }
        };
        let (train_ir, settings, train_span) = match train {
            Some((command, span)) => {
                let (t, s) = self.train(command, span);
                (t, s, span)
            }
            None => {
                let at = Span::new(file_span.file, 0, 0);
                self.error(
                    Diagnostic::error(Code::MissingSection, at, "this spec has no `train` section")
                        .with_label("expected `train { ... }`")
                        .with_hint(
                            "add one, e.g. `train { data digits  optimizer adam lr 1e-3  batch 32  epochs 10 }`",
                        ),
                );
                (None, HashMap::new(), at)
            }
        };

        let scope = std::mem::take(&mut self.scopes[0]);
        self.report_unused_constants(scope);
        let mut unused: Vec<_> = self
            .blocks
            .iter()
            .filter(|(_, b)| !b.used)
            .map(|(n, b)| (n.clone(), b.defined))
            .collect();
        unused.sort_by_key(|(_, s)| s.start);
        for (name, defined) in unused {
            self.error(
                Diagnostic::warning(Code::Unused, defined, format!("block `{name}` is never used"))
                    .with_label("defined here")
                    .with_hint(format!("call it in the model as `{name}(...)`, or remove it")),
            );
        }

        let (model_ir, model_spans) = model_ir?;
        let train_ir = train_ir?;
        let mut spans = model_spans;
        spans.model = spans_model;
        spans.train = train_span;
        spans.settings = settings;
        Some((
            Program {
                model: model_ir,
                train: train_ir,
            },
            spans,
        ))
    }

    fn unknown_statement(&mut self, head: &Value, section: Section) {
        let word = match &head.kind {
            ValueKind::Word(w) => w.clone(),
            ValueKind::Call(name, _) => name.name.clone(),
            _ => {
                self.error(
                    Diagnostic::error(
                        Code::UnknownStatement,
                        head.span,
                        format!("a statement cannot start with {}", head.describe()),
                    )
                    .with_label("expected a keyword")
                    .with_hint(statement_hint(section)),
                );
                return;
            }
        };
        if let Some(other) = schema::find_anywhere(&word) {
            let place = match other.section {
                Section::Top => "at the top level, outside `model` and `train`".to_string(),
                Section::Model => "inside `model { ... }`".to_string(),
                Section::Train => "inside `train { ... }`".to_string(),
            };
            self.error(
                Diagnostic::error(
                    Code::Misplaced,
                    head.span,
                    format!("`{word}` is not allowed {}", section.describe()),
                )
                .with_label("misplaced")
                .with_hint(format!("move it {place}, e.g. `{}`", other.example)),
            );
            return;
        }
        let mut candidates: Vec<&str> = schema::heads(section).collect();
        let block_names: Vec<String> = if section == Section::Model {
            self.blocks.keys().cloned().collect()
        } else {
            Vec::new()
        };
        candidates.extend(block_names.iter().map(String::as_str));
        if section == Section::Top {
            candidates.push("let");
        }
        let mut d = Diagnostic::error(
            Code::UnknownStatement,
            head.span,
            format!("unknown statement `{word}` {}", section.describe()),
        )
        .with_label("not a keyword");
        d.hint = Some(match did_you_mean(&word, candidates.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => statement_hint(section),
        });
        self.error(d);
    }

    fn define_block(&mut self, command: &'t Command, statement: Span) {
        let (name, params) = match command.args.first() {
            Some(Arg::Value(Value {
                kind: ValueKind::Call(name, params),
                ..
            })) => (name.clone(), params.clone()),
            Some(Arg::Value(Value {
                kind: ValueKind::Word(w),
                span,
            })) => (
                Ident {
                    name: w.clone(),
                    span: *span,
                },
                Vec::new(),
            ),
            _ => {
                self.error(
                    Diagnostic::error(
                        Code::MissingValue,
                        command.head.span,
                        "a block needs a name and its parameters",
                    )
                    .with_label("expected `block NAME(PARAMS) { ... }`")
                    .with_hint("e.g. `block hidden(width, act) { dense width act  dropout 0.5 }`"),
                );
                return;
            }
        };
        if command.args.len() > 1 {
            let extra = arg_span(&command.args[1]);
            self.error(
                Diagnostic::error(
                    Code::UnknownOption,
                    extra,
                    "a block takes only its name and parameters before `{`",
                )
                .with_label("unexpected")
                .with_hint("list parameters in the parentheses: `block hidden(width, act) { ... }`"),
            );
        }
        let Some(body) = &command.block else {
            self.error(
                Diagnostic::error(
                    Code::MissingValue,
                    name.span,
                    format!("block `{}` has no body", name.name),
                )
                .with_label("expected `{ ... }` after this")
                .with_hint("write the block's layers in braces: `block hidden(w) { dense w relu }`"),
            );
            return;
        };
        let mut param_names = Vec::new();
        let mut seen = HashSet::new();
        for p in &params {
            match p.as_word() {
                Some(w) if seen.insert(w.to_string()) => param_names.push(Ident {
                    name: w.to_string(),
                    span: p.span,
                }),
                Some(w) => self.error(
                    Diagnostic::error(Code::Duplicate, p.span, format!("parameter `{w}` is listed twice"))
                        .with_label("repeated")
                        .with_hint("give each parameter its own name"),
                ),
                None => self.error(
                    Diagnostic::error(
                        Code::WrongType,
                        p.span,
                        format!("a block parameter must be a name, found {}", p.describe()),
                    )
                    .with_label("expected a name")
                    .with_hint(
                        "parameters are names that the body uses: `block hidden(width, act) { dense width act }`",
                    ),
                ),
            }
        }
        if schema::find_anywhere(&name.name).is_some() || is_choice_word(&name.name) {
            self.error(
                Diagnostic::error(
                    Code::Duplicate,
                    name.span,
                    format!("`{}` is a keyword and cannot name a block", name.name),
                )
                .with_label("reserved word")
                .with_hint(format!("pick another name, e.g. `{}_block`", name.name)),
            );
            return;
        }
        if let Some(previous) = self.blocks.get(&name.name) {
            let previous = previous.defined;
            self.error(
                Diagnostic::error(
                    Code::Duplicate,
                    name.span,
                    format!("block `{}` is defined twice", name.name),
                )
                .with_label("second definition")
                .with_secondary(previous, "first defined here")
                .with_hint("rename one of the blocks"),
            );
            return;
        }
        let _ = statement;
        self.blocks.insert(
            name.name.clone(),
            BlockDef {
                params: param_names,
                body,
                defined: name.span,
                used: false,
            },
        );
    }

    // ----- statement matching -----------------------------------------------------------------

    /// Splits a command into the statements it holds: a word that is a head keyword of the
    /// section (and not an option of the statement being read) starts a new statement.
    fn split<'c>(&self, command: &'c Command, section: Section, span: Span) -> Vec<Piece<'c>> {
        let mut pieces = Vec::new();
        let mut head = &command.head;
        let mut schema = head.as_word().and_then(|w| schema::find(section, w));
        let mut start = 0;
        for (i, arg) in command.args.iter().enumerate() {
            let Arg::Value(v) = arg else { continue };
            let Some(word) = v.as_word() else { continue };
            let is_option = schema.is_some_and(|s| s.option(word).is_some() || s.flags.contains(&word));
            // A word right after an option keyword is that option's value, not a new statement.
            let after_option = i > 0
                && matches!(&command.args[i - 1], Arg::Value(p) if p.as_word().is_some_and(|pw| schema.is_some_and(|s| s.option(pw).is_some())));
            let new_head = schema::find(section, word);
            if !is_option && !after_option && new_head.is_some() && self.lookup_const_name(word).is_none() {
                pieces.push(Piece {
                    head,
                    args: &command.args[start..i],
                    block: None,
                    span: head.span.to(arg_span(&command.args[i.saturating_sub(1).max(start)])),
                });
                head = v;
                schema = new_head;
                start = i + 1;
            }
        }
        let end = command
            .block
            .as_ref()
            .map(|b| b.span)
            .or_else(|| command.args.last().map(arg_span))
            .unwrap_or(head.span);
        pieces.push(Piece {
            head,
            args: &command.args[start..],
            block: command.block.as_ref(),
            span: if pieces.is_empty() { span } else { head.span.to(end) },
        });
        pieces
    }

    fn lookup_const_name(&self, name: &str) -> Option<()> {
        self.scopes.iter().rev().find(|s| s.contains_key(name)).map(|_| ())
    }

    /// Matches a statement's arguments against its schema, applies overrides under `path`
    /// (computed once the label is known) and types every value.
    fn matched(
        &mut self,
        schema: &'static Schema,
        piece: &Piece,
        path: impl FnOnce(&mut Self, Option<&Ident>) -> Option<String>,
    ) -> Matched {
        let mut raw: Vec<(&'static Slot, Value)> = Vec::new();
        let mut flags = HashSet::new();
        let mut label: Option<Ident> = None;
        let mut spans = SlotSpans {
            statement: piece.span,
            slots: HashMap::new(),
        };
        let mut positional = 0;
        let mut i = 0;
        while i < piece.args.len() {
            match &piece.args[i] {
                Arg::Label(ident) => {
                    if !schema.label {
                        self.error(
                            Diagnostic::error(
                                Code::Misplaced,
                                ident.span,
                                format!("`{}` does not take a name", schema.head),
                            )
                            .with_label("names are for layers")
                            .with_hint(format!("remove `{}:`", ident.name)),
                        );
                    } else if let Some(first) = &label {
                        let first = first.span;
                        self.error(
                            Diagnostic::error(Code::Duplicate, ident.span, "a layer has one name; this is the second")
                                .with_label("second name")
                                .with_secondary(first, "first name")
                                .with_hint(format!(
                                    "keep one of the names, e.g. `{} {}: ...`",
                                    schema.head, ident.name
                                )),
                        );
                    } else if positional > 0 || !raw.is_empty() {
                        self.error(
                            Diagnostic::error(
                                Code::Misplaced,
                                ident.span,
                                "a layer's name comes right after its keyword",
                            )
                            .with_label("name too late")
                            .with_hint(format!("write `{} {}: ...`", schema.head, ident.name)),
                        );
                    } else {
                        label = Some(ident.clone());
                    }
                    i += 1;
                }
                Arg::Value(v) => {
                    if let Some(word) = v.as_word() {
                        if let Some(slot) = schema.option(word) {
                            match piece.args.get(i + 1) {
                                Some(Arg::Value(value))
                                    if value.as_word().is_none_or(|w| schema.option(w).is_none()) =>
                                {
                                    if let Some((_, previous)) = raw.iter().find(|(s, _)| s.name == slot.name) {
                                        let previous = previous.span;
                                        self.error(
                                            Diagnostic::error(
                                                Code::Duplicate,
                                                v.span,
                                                format!("`{word}` is given twice"),
                                            )
                                            .with_label("second time")
                                            .with_secondary(previous, "first value")
                                            .with_hint("keep one of the two values"),
                                        );
                                    } else {
                                        raw.push((slot, value.clone()));
                                    }
                                    i += 2;
                                }
                                _ => {
                                    self.error(
                                        Diagnostic::error(
                                            Code::MissingValue,
                                            v.span,
                                            format!("`{word}` needs a value after it"),
                                        )
                                        .with_label("no value follows")
                                        .with_hint(format!("write {} after `{word}`", slot.ty.describe())),
                                    );
                                    i += 1;
                                }
                            }
                            continue;
                        }
                        if let Some(flag) = schema.flags.iter().find(|f| **f == word) {
                            flags.insert(*flag);
                            spans.slots.insert(flag, v.span);
                            i += 1;
                            continue;
                        }
                    }
                    if positional < schema.positional.len() {
                        raw.push((&schema.positional[positional], v.clone()));
                        positional += 1;
                    } else {
                        self.extra_value(schema, v);
                        // An unknown option's value is not reported a second time.
                        if v.as_word().is_some()
                            && let Some(Arg::Value(next)) = piece.args.get(i + 1)
                            && next
                                .as_word()
                                .is_none_or(|w| schema.option(w).is_none() && !schema.flags.contains(&w))
                        {
                            i += 1;
                        }
                    }
                    i += 1;
                }
            }
        }

        let prefix = path(self, label.as_ref());
        let mut values = HashMap::new();
        let all_slots = schema.positional.iter().chain(schema.options.iter());
        for (index, slot) in all_slots.enumerate() {
            let overridden = prefix.as_ref().and_then(|p| {
                let full = format!("{p}.{}", slot.name);
                let by_name = self.take_override(&full);
                if index == 0 && !schema.positional.is_empty() {
                    by_name.or_else(|| self.take_override(p))
                } else {
                    by_name
                }
            });
            let written = raw.iter().find(|(s, _)| s.name == slot.name).map(|(_, v)| v.clone());
            let Some(value) = overridden.or(written) else {
                if slot.required && schema.positional.iter().any(|p| p.name == slot.name) {
                    self.error(
                        Diagnostic::error(
                            Code::MissingValue,
                            piece.head.span,
                            format!("`{}` needs its {}", schema.head, slot.name),
                        )
                        .with_label(format!("expected {} after this", slot.ty.describe()))
                        .with_hint(format!("for example `{}`", schema.example)),
                    );
                }
                continue;
            };
            spans.slots.insert(slot.name, value.span);
            let resolved = self.resolve(&value);
            if let Some(typed) = self.typed(schema, slot, &resolved) {
                values.insert(slot.name, typed);
            }
        }
        if let Some(p) = &prefix {
            for flag in schema.flags {
                if let Some(v) = self.take_override(&format!("{p}.{flag}")) {
                    match v.as_word() {
                        Some("true") | Some("on") | Some("yes") => {
                            flags.insert(flag);
                        }
                        Some("false") | Some("off") | Some("no") => {
                            flags.remove(flag);
                        }
                        _ => self.error(
                            Diagnostic::error(
                                Code::BadOverride,
                                v.span,
                                format!("`{flag}` is switched with `true` or `false`"),
                            )
                            .with_label("expected true or false")
                            .with_hint(format!("--set {p}.{flag}=true")),
                        ),
                    }
                }
            }
        }
        Matched {
            schema,
            values,
            flags,
            label,
            spans,
        }
    }

    fn extra_value(&mut self, schema: &'static Schema, v: &Value) {
        let mut names: Vec<&str> = schema.options.iter().map(|s| s.name).collect();
        names.extend(schema.flags.iter().copied());
        let listing = if names.is_empty() {
            format!("`{}` takes no options", schema.head)
        } else {
            format!(
                "`{}` takes {}",
                schema.head,
                join_or(
                    &names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                )
            )
        };
        match v.as_word() {
            Some(word) => {
                let mut d = Diagnostic::error(
                    Code::UnknownOption,
                    v.span,
                    format!("`{}` has no option `{word}`", schema.head),
                )
                .with_label("unknown option");
                d.hint = Some(match did_you_mean(word, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => listing,
                });
                self.error(d);
            }
            None => self.error(
                Diagnostic::error(
                    Code::UnknownOption,
                    v.span,
                    format!("`{}` takes no more values, found {}", schema.head, v.describe()),
                )
                .with_label("one value too many")
                .with_hint(format!("{listing}; for example `{}`", schema.example)),
            ),
        }
    }

    /// Converts a resolved value to a slot's type, reporting type and range errors.
    fn typed(&mut self, schema: &'static Schema, slot: &'static Slot, r: &Resolved) -> Option<Typed> {
        let what = format!("`{}`'s {}", schema.head, slot.name);
        self.typed_as(&what, schema, slot.name, slot.ty, r)
    }

    fn typed_as(
        &mut self,
        what: &str,
        schema: &'static Schema,
        slot: &str,
        ty: &'static Ty,
        r: &Resolved,
    ) -> Option<Typed> {
        let v = &r.value;
        let from = |d: Diagnostic| match &r.origin {
            Some((name, defined)) => d.with_secondary(*defined, format!("`{name}` is defined here")),
            None => d,
        };
        // A word that belongs to a later slot: the value before it was left out.
        if let Some(word) = v.as_word()
            && matches!(ty, Ty::Int { .. } | Ty::Float { .. })
            && let Some(later) = schema
                .positional
                .iter()
                .skip_while(|p| p.name != slot)
                .skip(1)
                .find(|p| p.ty.choice_names().contains(&word))
        {
            self.error(from(
                Diagnostic::error(
                    Code::MissingValue,
                    r.at,
                    format!(
                        "`{}` is missing its {slot}: `{word}` is its {}",
                        schema.head, later.name
                    ),
                )
                .with_label(format!("expected {} before this", ty.describe()))
                .with_hint(format!("values go in order, e.g. `{}`", schema.example)),
            ));
            return None;
        }
        // Words that are not constants where a number is expected: an unknown constant.
        if let (Some(word), true) = (v.as_word(), matches!(ty, Ty::Int { .. } | Ty::Float { .. })) {
            let names = self.constant_names();
            let mut d = Diagnostic::error(
                Code::UnknownName,
                r.at,
                format!("{what} must be {}, but `{word}` is not a constant", ty.describe()),
            )
            .with_label("unknown name");
            d.hint = Some(match did_you_mean(word, names.iter().map(String::as_str)) {
                Some(s) => format!("did you mean the constant `{s}`?"),
                None => format!("write a number, or define it first with `let {word} = ...`"),
            });
            self.error(from(d));
            return None;
        }
        match ty {
            Ty::Int { .. } | Ty::Float { .. } => {
                let ValueKind::Number(n) = &v.kind else {
                    self.error(from(wrong_type(what, ty, v, r.at)));
                    return None;
                };
                if let Ty::Int { .. } = ty
                    && (n.percent || n.value.fract() != 0.0 || !n.value.is_finite())
                {
                    self.error(from(
                        Diagnostic::error(
                            Code::WrongType,
                            r.at,
                            format!("{what} must be a whole number, found `{}`", n.text),
                        )
                        .with_label("not a whole number")
                        .with_hint(format!(
                            "write a whole number, e.g. `{}`",
                            n.value.abs().round().max(1.0)
                        )),
                    ));
                    return None;
                }
                if !ty.in_range(n.value) {
                    let mut d = Diagnostic::error(
                        Code::OutOfRange,
                        r.at,
                        format!("{what} must be {}, found `{}`", ty.range_text(), n.text),
                    )
                    .with_label("out of range");
                    d.hint = Some(
                        range_hint(schema.head, slot).unwrap_or_else(|| format!("use a value {}", ty.range_text())),
                    );
                    self.error(from(d));
                    return None;
                }
                Some(match ty {
                    Ty::Int { .. } => Typed::Int(n.value as i64),
                    _ => Typed::Float(n.value),
                })
            }
            Ty::Choice { what: kind, choices } | Ty::ChoiceOrStr { what: kind, choices } => {
                let (name, args, name_span) = match &v.kind {
                    ValueKind::Word(w) => (w.as_str(), &[][..], r.at),
                    ValueKind::Call(ident, args) => (ident.name.as_str(), args.as_slice(), ident.span),
                    ValueKind::Str(s) if matches!(ty, Ty::ChoiceOrStr { .. }) => return Some(Typed::Str(s.clone())),
                    _ => {
                        self.error(from(wrong_type(what, ty, v, r.at)));
                        return None;
                    }
                };
                let Some(choice) = choices.iter().find(|c| c.name == name) else {
                    let names: Vec<&str> = choices.iter().map(|c| c.name).collect();
                    let mut d = Diagnostic::error(Code::UnknownChoice, name_span, format!("unknown {kind} `{name}`"))
                        .with_label(format!("not {} {kind}", schema::article(kind)));
                    d.hint = Some(match did_you_mean(name, names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("the {kind}s are {}", join_or(&names)),
                    });
                    if matches!(ty, Ty::ChoiceOrStr { .. }) {
                        d.hint = d
                            .hint
                            .map(|h| format!("{h} (a file path goes in quotes: \"train.csv\")"));
                    }
                    self.error(from(d));
                    return None;
                };
                if args.len() > choice.params.len() {
                    let expected = match choice.params.len() {
                        0 => format!("`{name}` takes no arguments"),
                        n => format!(
                            "`{name}` takes at most {n} argument{} ({})",
                            if n == 1 { "" } else { "s" },
                            choice.params.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    self.error(from(
                        Diagnostic::error(Code::Arity, r.at, format!("{expected}, found {}", args.len()))
                            .with_label("too many arguments")
                            .with_hint(if choice.params.is_empty() {
                                format!("write `{name}` alone")
                            } else {
                                format!(
                                    "e.g. `{name}({})`",
                                    choice
                                        .params
                                        .iter()
                                        .map(|p| fmt_number(p.default))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )
                            }),
                    ));
                    return None;
                }
                let mut values = Vec::new();
                for (i, param) in choice.params.iter().enumerate() {
                    match args.get(i) {
                        Some(arg) => {
                            let arg_r = Resolved {
                                value: arg.clone(),
                                at: arg.span,
                                origin: None,
                            };
                            let arg_what = format!("`{name}`'s {}", param.name);
                            match self.typed_as(&arg_what, schema, param.name, param.ty, &arg_r)? {
                                Typed::Int(x) => values.push(x as f64),
                                Typed::Float(x) => values.push(x),
                                _ => unreachable!("choice parameters are numeric"),
                            }
                        }
                        None => values.push(param.default),
                    }
                }
                Some(Typed::Choice(choice.name, values))
            }
            Ty::Str => match &v.kind {
                ValueKind::Str(s) => Some(Typed::Str(s.clone())),
                _ => {
                    self.error(from(
                        wrong_type(what, ty, v, r.at).with_hint("file paths go in double quotes: \"data/train.csv\""),
                    ));
                    None
                }
            },
            Ty::Name => match v.as_word() {
                Some(w) => Some(Typed::Name(w.to_string())),
                None => {
                    self.error(from(wrong_type(what, ty, v, r.at)));
                    None
                }
            },
            Ty::Split => match &v.kind {
                ValueKind::Str(s) => Some(Typed::Split(Validation::Files(FileSet {
                    features: s.clone(),
                    labels: None,
                    label_column: LabelColumn::Last,
                    header: false,
                }))),
                ValueKind::Number(n) if n.integer && n.value >= 0.0 && n.value.is_finite() => {
                    Some(Typed::Split(Validation::Count(n.value as usize)))
                }
                ValueKind::Number(n) if n.value >= 0.0 && n.value < 1.0 => {
                    Some(Typed::Split(Validation::Fraction(n.value)))
                }
                ValueKind::Number(n) => {
                    self.error(from(
                        Diagnostic::error(
                            Code::OutOfRange,
                            r.at,
                            format!(
                                "a validation split is a row count or a fraction below 1, found `{}`",
                                n.text
                            ),
                        )
                        .with_label("neither a count nor a fraction")
                        .with_hint("write a count of rows (`10000`), a fraction (`0.1`) or a percentage (`10%`)"),
                    ));
                    None
                }
                _ => {
                    self.error(from(wrong_type(what, ty, v, r.at)));
                    None
                }
            },
            Ty::Column => match &v.kind {
                ValueKind::Word(w) if w == "first" => Some(Typed::Column(LabelColumn::First)),
                ValueKind::Word(w) if w == "last" => Some(Typed::Column(LabelColumn::Last)),
                ValueKind::Number(n) if n.integer && n.value >= 0.0 && n.value < 1e9 => {
                    Some(Typed::Column(LabelColumn::Index(n.value as usize)))
                }
                _ => {
                    self.error(from(wrong_type(what, ty, v, r.at)));
                    None
                }
            },
        }
    }

    // ----- model -------------------------------------------------------------------------------

    fn model(&mut self, command: &'t Command, head_span: Span) -> Option<(Model, Spans)> {
        let piece = Piece {
            head: &command.head,
            args: &command.args,
            block: command.block.as_ref(),
            span: head_span,
        };
        let schema = schema::find(Section::Top, "model").expect("model has a schema");
        let m = self.matched(schema, &piece, |_, _| None);
        let name = m.string("name").unwrap_or_else(|| "model".to_string());
        let Some(body) = &command.block else {
            self.error(
                Diagnostic::error(Code::MissingValue, head_span, "`model` needs a body in braces")
                    .with_label("expected `{` after this")
                    .with_hint("write the layers in braces: `model m { input 64 ... }`"),
            );
            return None;
        };
        self.push_scope();
        self.lines(&body.lines, "model");
        self.pop_scope();

        let expanded = !self.too_many_layers;
        let (input_width, input_spans) = match self.input.take() {
            Some(i) => i,
            None if !expanded => return None,
            None => {
                self.error(
                    Diagnostic::error(Code::MissingInput, body.span, "the model has no `input` statement")
                        .with_label("expected `input WIDTH` first in this block")
                        .with_hint("start the model with its input width, e.g. `input 784`"),
                );
                return None;
            }
        };
        let (loss, loss_spans) = match self.loss.take() {
            Some(l) => l,
            None if !expanded => return None,
            None => {
                self.error(
                    Diagnostic::error(Code::MissingLoss, body.span, "the model has no `loss` statement")
                        .with_label("expected `loss ...` last in this block")
                        .with_hint("end the model with its loss, e.g. `loss cross_entropy`"),
                );
                return None;
            }
        };
        let (Some(input_width), Some(loss)) = (input_width, loss) else {
            return None;
        };
        let layers = std::mem::take(&mut self.layers);
        let spans = Spans {
            input: input_spans,
            layers: std::mem::take(&mut self.layer_spans),
            loss: loss_spans,
            ..Spans::default()
        };
        Some((
            Model {
                name,
                input_width,
                layers,
                loss,
            },
            spans,
        ))
    }

    /// Lowers the lines of a model body (model, repeat or block).
    fn lines(&mut self, lines: &'t [Line], path: &str) {
        for line in lines {
            let Line::Statement(statement) = line else { continue };
            match &statement.kind {
                StatementKind::Let(binding) => {
                    let p = if self.call_stack.is_empty() && self.label_suffix.is_empty() {
                        Some(format!("{path}.{}", binding.name.name))
                    } else {
                        None
                    };
                    self.define(&binding.name, &binding.value, p);
                }
                StatementKind::Command(command) => {
                    for piece in self.split(command, Section::Model, statement.span) {
                        if self.too_many_layers {
                            return;
                        }
                        self.model_statement(&piece);
                    }
                }
            }
        }
    }

    fn model_statement(&mut self, piece: &Piece<'t>) {
        let (word, call_args) = match &piece.head.kind {
            ValueKind::Word(w) => (w.as_str(), None),
            ValueKind::Call(name, args) => (name.name.as_str(), Some(args.as_slice())),
            _ => {
                self.unknown_statement(piece.head, Section::Model);
                return;
            }
        };
        if self.blocks.contains_key(word) {
            self.call_block(word, call_args.unwrap_or(&[]), piece);
            return;
        }
        let Some(schema) = schema::find(Section::Model, word).filter(|_| call_args.is_none()) else {
            self.unknown_statement(piece.head, Section::Model);
            return;
        };
        if let Some(loss) = &self.loss
            && word != "loss"
        {
            let loss_at = loss.1.statement;
            self.error(
                Diagnostic::error(Code::MissingLoss, piece.head.span, "layers must come before the loss")
                    .with_label("after the loss")
                    .with_secondary(loss_at, "the loss is here")
                    .with_hint("move `loss ...` to the end of the model"),
            );
            return;
        }
        if piece.block.is_some() && !schema.block {
            let block_span = piece.block.map(|b| b.span).unwrap_or(piece.span);
            self.error(
                Diagnostic::error(Code::Misplaced, block_span, format!("`{word}` does not take a block"))
                    .with_label("unexpected block")
                    .with_hint("only `repeat N { ... }` holds a block inside a model"),
            );
        }
        match word {
            "input" => {
                let m = self.matched(schema, piece, |_, _| Some("model.input".to_string()));
                if let Some((_, first)) = &self.input {
                    let first = first.statement;
                    self.error(
                        Diagnostic::error(
                            Code::MissingInput,
                            piece.head.span,
                            "the model has two `input` statements",
                        )
                        .with_label("second input")
                        .with_secondary(first, "first input")
                        .with_hint("keep one `input` line, at the start of the model"),
                    );
                } else {
                    if !self.layers.is_empty() || !self.label_suffix.is_empty() || !self.call_stack.is_empty() {
                        self.error(
                            Diagnostic::error(
                                Code::MissingInput,
                                piece.head.span,
                                "`input` must be the first statement of the model",
                            )
                            .with_label("after other layers")
                            .with_hint("move `input ...` to the top of the model"),
                        );
                    }
                    self.input = Some((m.int("width").map(|w| w as usize), m.spans));
                }
            }
            "loss" => {
                let m = self.matched(schema, piece, |_, _| Some("model.loss".to_string()));
                if let Some((_, first)) = &self.loss {
                    let first = first.statement;
                    self.error(
                        Diagnostic::error(
                            Code::MissingLoss,
                            piece.head.span,
                            "the model has two `loss` statements",
                        )
                        .with_label("second loss")
                        .with_secondary(first, "first loss")
                        .with_hint("keep one `loss` line, at the end of the model"),
                    );
                    return;
                }
                let loss = match m.choice("kind") {
                    Some(("cross_entropy", _)) => Some(Loss::CrossEntropy),
                    Some(("binary_cross_entropy", _)) => Some(Loss::BinaryCrossEntropy),
                    Some(("mse", _)) => Some(Loss::Mse),
                    _ => None,
                };
                self.loss = Some((loss, m.spans));
            }
            "repeat" => {
                let m = self.matched(schema, piece, |_, _| None);
                let Some(block) = piece.block else {
                    self.error(
                        Diagnostic::error(Code::MissingValue, piece.span, "`repeat` needs a block of layers")
                            .with_label("expected `{ ... }`")
                            .with_hint("e.g. `repeat 10 { dense 128 sigmoid }`"),
                    );
                    return;
                };
                let Some(count) = m.int("count") else { return };
                for i in 1..=count as usize {
                    self.label_suffix.push(i);
                    self.push_scope();
                    self.lines(&block.lines, "model");
                    let scope = self.scopes.pop().expect("pushed above");
                    if i == 1 {
                        self.report_unused_constants(scope);
                    }
                    self.label_suffix.pop();
                    if self.too_many_layers {
                        return;
                    }
                }
            }
            "dense" | "maxout" | "dropout" => self.layer(schema, piece),
            _ => unreachable!("every model schema head is handled"),
        }
    }

    fn call_block(&mut self, name: &str, args: &'t [Value], piece: &Piece<'t>) {
        if self.call_stack.iter().any(|n| n == name) || self.call_stack.len() >= MAX_CALL_DEPTH {
            self.error(
                Diagnostic::error(Code::Expansion, piece.head.span, format!("block `{name}` calls itself"))
                    .with_label("recursive call")
                    .with_hint("a block cannot use itself; use `repeat N { ... }` to stack layers"),
            );
            return;
        }
        if let Some(extra) = piece.args.first() {
            self.error(
                Diagnostic::error(
                    Code::UnknownOption,
                    arg_span(extra),
                    format!("block `{name}` takes its arguments in parentheses"),
                )
                .with_label("unexpected")
                .with_hint(format!(
                    "write `{name}(...)` with every argument inside the parentheses"
                )),
            );
        }
        let block = self.blocks.get_mut(name).expect("caller checked the block exists");
        block.used = true;
        let params = block.params.clone();
        let body = block.body;
        let defined = block.defined;
        if params.len() != args.len() {
            self.error(
                Diagnostic::error(
                    Code::Arity,
                    piece.head.span,
                    format!(
                        "block `{name}` takes {} argument{}, found {}",
                        params.len(),
                        if params.len() == 1 { "" } else { "s" },
                        args.len()
                    ),
                )
                .with_label("wrong number of arguments")
                .with_secondary(defined, "defined here")
                .with_hint(format!(
                    "call it as `{name}({})`",
                    params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
                )),
            );
            return;
        }
        let mut scope = HashMap::new();
        for (param, arg) in params.iter().zip(args) {
            let value = self.resolve(arg).value;
            scope.insert(
                param.name.clone(),
                Constant {
                    value: Value {
                        kind: value.kind,
                        span: arg.span,
                    },
                    defined: arg.span,
                    used: false,
                    report_unused: false,
                },
            );
        }
        self.call_stack.push(name.to_string());
        // Block bodies see only their parameters and the top-level constants.
        let saved: Vec<_> = self.scopes.drain(1..).collect();
        self.scopes.push(scope);
        self.lines(&body.lines, "model");
        self.scopes.pop();
        self.scopes.extend(saved);
        self.call_stack.pop();
    }

    fn layer(&mut self, schema: &'static Schema, piece: &Piece<'t>) {
        if self.layers.len() >= MAX_LAYERS {
            self.too_many_layers = true;
            self.error(
                Diagnostic::error(
                    Code::Expansion,
                    piece.span,
                    format!("the model expands to more than {MAX_LAYERS} layers"),
                )
                .with_label("expansion stopped here")
                .with_hint("lower the `repeat` counts"),
            );
            return;
        }
        let kind_name = schema.head;
        let count = self.kind_counts.entry(kind_name).or_insert(0);
        *count += 1;
        let auto_name = format!("{kind_name}{count}");
        let suffix: String = self.label_suffix.iter().map(|i| format!("_{i}")).collect();
        let mut name = auto_name.clone();
        let m = self.matched(schema, piece, |_, label| {
            if let Some(label) = label {
                name = format!("{}{suffix}", label.name);
            }
            Some(format!("model.{name}"))
        });
        let mut m = m;
        if let Some(label) = &m.label {
            m.spans.slots.insert("name", label.span);
        }
        let name = match &m.label {
            Some(label) => format!(
                "{}{}",
                label.name,
                self.label_suffix.iter().map(|i| format!("_{i}")).collect::<String>()
            ),
            None => auto_name,
        };
        let name_span = m.label.as_ref().map_or(piece.head.span, |l| l.span);
        if let Some(first) = self.layer_names.get(&name) {
            let first = *first;
            self.error(
                Diagnostic::error(
                    Code::DuplicateLayer,
                    name_span,
                    format!("two layers are named `{name}`"),
                )
                .with_label("second layer with this name")
                .with_secondary(first, "first one")
                .with_hint("layer names must be unique: rename one of them"),
            );
            return;
        }
        let regularization = LayerRegularization {
            l1: m.float("l1"),
            l2: m.float("l2"),
        };
        let init = |m: &Matched, activation: Option<Activation>| match m.choice("init") {
            Some(("he", _)) => Init::He,
            Some(("xavier", _)) => Init::Xavier,
            Some(("normal", args)) => Init::Normal { std: args[0] },
            Some(("uniform", args)) => Init::Uniform { limit: args[0] },
            _ => match activation {
                Some(a) if !a.is_rectifier() => Init::Xavier,
                _ => Init::He,
            },
        };
        let kind = match kind_name {
            "dense" => {
                let Some(width) = m.int("width") else { return };
                let activation = match m.choice("activation") {
                    None => Activation::Linear,
                    Some((name, args)) => activation_from(name, args),
                };
                LayerKind::Dense {
                    width: width as usize,
                    activation,
                    init: init(&m, Some(activation)),
                    bias: m.float("bias").unwrap_or(0.0),
                }
            }
            "maxout" => {
                let Some(units) = m.int("units") else { return };
                LayerKind::Maxout {
                    units: units as usize,
                    pieces: m.int("pieces").unwrap_or(2) as usize,
                    init: init(&m, None),
                    bias: m.float("bias").unwrap_or(0.0),
                    fixed_zero: m.flags.contains("fixed_zero"),
                }
            }
            "dropout" => {
                let Some(rate) = m.float("rate") else { return };
                LayerKind::Dropout {
                    rate,
                    mode: match m.choice("mode") {
                        Some(("scale_at_test", _)) => DropoutMode::ScaleAtTest,
                        _ => DropoutMode::Inverted,
                    },
                }
            }
            _ => unreachable!("layer() is only called for layer heads"),
        };
        self.layer_names.insert(name.clone(), name_span);
        self.layers.append(Layer {
            name,
            kind,
            regularization,
        });
        let _ = m.schema;
        self.layer_spans.push(m.spans);
    }

    // ----- train -------------------------------------------------------------------------------

    fn train(
        &mut self,
        command: &'t Command,
        head_span: Span,
    ) -> (Option<TrainConfig>, HashMap<&'static str, SlotSpans>) {
        let mut settings: HashMap<&'static str, Matched> = HashMap::new();
        if let Some(extra) = command.args.first() {
            self.error(
                Diagnostic::error(
                    Code::UnknownOption,
                    arg_span(extra),
                    "`train` takes no values before its block",
                )
                .with_label("unexpected")
                .with_hint("write `train { ... }`"),
            );
        }
        let Some(body) = &command.block else {
            self.error(
                Diagnostic::error(Code::MissingValue, head_span, "`train` needs a body in braces")
                    .with_label("expected `{` after this")
                    .with_hint("e.g. `train { data digits  optimizer adam lr 1e-3 }`"),
            );
            return (None, HashMap::new());
        };
        self.push_scope();
        for line in &body.lines {
            let Line::Statement(statement) = line else { continue };
            match &statement.kind {
                StatementKind::Let(binding) => {
                    let path = format!("train.{}", binding.name.name);
                    self.define(&binding.name, &binding.value, Some(path));
                }
                StatementKind::Command(command) => {
                    for piece in self.split(command, Section::Train, statement.span) {
                        let Some(schema) = piece.head.as_word().and_then(|w| schema::find(Section::Train, w)) else {
                            self.unknown_statement(piece.head, Section::Train);
                            continue;
                        };
                        if let Some(block) = piece.block {
                            self.error(
                                Diagnostic::error(
                                    Code::Misplaced,
                                    block.span,
                                    format!("`{}` does not take a block", schema.head),
                                )
                                .with_label("unexpected block")
                                .with_hint("train settings are written on one line"),
                            );
                        }
                        let m = self.matched(schema, &piece, |_, _| Some(format!("train.{}", schema.head)));
                        if let Some(first) = settings.get(schema.head) {
                            let first = first.spans.statement;
                            self.error(
                                Diagnostic::error(
                                    Code::Duplicate,
                                    piece.head.span,
                                    format!("`{}` is set twice", schema.head),
                                )
                                .with_label("second setting")
                                .with_secondary(first, "first setting")
                                .with_hint("keep one of the two lines"),
                            );
                            continue;
                        }
                        settings.insert(schema.head, m);
                    }
                }
            }
        }
        // Settings the spec did not write can still be given with --set.
        for schema in schema::SCHEMAS.iter().filter(|s| s.section == Section::Train) {
            if settings.contains_key(schema.head) {
                continue;
            }
            let prefix = format!("train.{}", schema.head);
            let wanted = self
                .overrides
                .iter()
                .any(|o| o.path == prefix || o.path.starts_with(&format!("{prefix}.")));
            if wanted {
                let empty = Piece {
                    head: &command.head,
                    args: &[],
                    block: None,
                    span: head_span,
                };
                let m = self.matched(schema, &empty, |_, _| Some(prefix.clone()));
                settings.insert(schema.head, m);
            } else {
                // Record the paths so that a misspelt --set can be corrected.
                for slot in schema.positional.iter().chain(schema.options) {
                    self.known_paths.insert(format!("{prefix}.{}", slot.name));
                }
                self.known_paths.insert(prefix);
            }
        }
        self.pop_scope();

        let config = self.train_config(&settings, body.span);
        let spans = settings.into_iter().map(|(k, m)| (k, m.spans)).collect();
        (config, spans)
    }

    fn train_config(&mut self, settings: &HashMap<&'static str, Matched>, body: Span) -> Option<TrainConfig> {
        let data = match settings.get("data") {
            Some(m) => self.data_config(m)?,
            None => {
                self.error(
                    Diagnostic::error(Code::MissingSection, body, "the train section has no `data` statement")
                        .with_label("expected `data ...` in this block")
                        .with_hint("name the data to train on, e.g. `data digits validation 20%` or `data mnist validation 10000`"),
                );
                return None;
            }
        };
        let optimizer = match settings.get("optimizer") {
            Some(m) => self.optimizer(m)?,
            None => (
                Optimizer {
                    kind: OptimizerKind::Sgd,
                    lr: 0.01,
                },
                Schedule::Constant,
            ),
        };
        let regularization = settings
            .get("regularize")
            .map_or(Regularization::default(), |m| Regularization {
                l1: m.float("l1").unwrap_or(0.0),
                l2: m.float("l2").unwrap_or(0.0),
            });
        let int =
            |head: &str, slot: &str, default: i64| settings.get(head).and_then(|m| m.int(slot)).unwrap_or(default);
        let early_stop = settings.get("early_stop").map(|m| EarlyStop {
            metric: match m.choice("metric") {
                Some(("val_accuracy", _)) => Metric::ValAccuracy,
                _ => Metric::ValLoss,
            },
            patience: m.int("patience").unwrap_or(5) as usize,
            min_delta: m.float("min_delta").unwrap_or(0.0),
            restore_best: m.flags.contains("restore_best"),
        });
        Some(TrainConfig {
            data,
            optimizer: optimizer.0,
            schedule: optimizer.1,
            regularization,
            batch: int("batch", "size", 32) as usize,
            epochs: int("epochs", "count", 10) as usize,
            seed: int("seed", "value", 0) as u64,
            early_stop,
        })
    }

    fn optimizer(&mut self, m: &Matched) -> Option<(Optimizer, Schedule)> {
        let (name, _) = m.choice("kind")?;
        let allowed = schema::OPTIMIZER_OPTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, o)| *o)
            .expect("every optimizer has an options row");
        for slot in ["lambda", "alpha", "beta1", "beta2", "eps"] {
            if m.values.contains_key(slot) && !allowed.contains(&slot) {
                let owners: Vec<&str> = schema::OPTIMIZER_OPTIONS
                    .iter()
                    .filter(|(_, o)| o.contains(&slot))
                    .map(|(n, _)| *n)
                    .collect();
                let takes = if allowed.is_empty() {
                    format!("{name} takes only `lr` and `schedule`")
                } else {
                    format!(
                        "{name} takes `lr`, `schedule`, {}",
                        allowed.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                    )
                };
                self.error(
                    Diagnostic::error(
                        Code::UnknownOption,
                        m.spans.get(slot),
                        format!("`{slot}` is not a setting of {name}"),
                    )
                    .with_label(format!("{} uses this", join_or(&owners)))
                    .with_hint(format!("{takes}; remove `{slot}` or switch to {}", join_or(&owners))),
                );
            }
        }
        let f = |slot: &str, default: f64| m.float(slot).unwrap_or(default);
        let kind = match name {
            "sgd" => OptimizerKind::Sgd,
            "momentum" => OptimizerKind::Momentum {
                lambda: f("lambda", 0.9),
            },
            "nesterov" => OptimizerKind::Nesterov {
                lambda: f("lambda", 0.9),
            },
            "adagrad" => OptimizerKind::Adagrad { eps: f("eps", 1e-8) },
            "rmsprop" => OptimizerKind::Rmsprop {
                alpha: f("alpha", 0.99),
                eps: f("eps", 1e-8),
            },
            "adam" => OptimizerKind::Adam {
                beta1: f("beta1", 0.9),
                beta2: f("beta2", 0.999),
                eps: f("eps", 1e-8),
            },
            _ => unreachable!("the optimizer choice list matches this match"),
        };
        let default_lr = match kind {
            OptimizerKind::Rmsprop { .. } | OptimizerKind::Adam { .. } => 1e-3,
            _ => 1e-2,
        };
        let schedule = match m.choice("schedule") {
            Some(("step", args)) => Schedule::Step {
                every: args[0] as usize,
                gamma: args[1],
            },
            Some(("exponential", args)) => Schedule::Exponential { gamma: args[0] },
            _ => Schedule::Constant,
        };
        Some((
            Optimizer {
                kind,
                lr: f("lr", default_lr),
            },
            schedule,
        ))
    }

    fn data_config(&mut self, m: &Matched) -> Option<DataConfig> {
        let source_value = m.values.get("source")?;
        let column = match m.values.get("label") {
            Some(Typed::Column(c)) => *c,
            _ => LabelColumn::Last,
        };
        let header = m.flags.contains("header");
        let file_set = |features: String, labels: Option<String>| FileSet {
            features,
            labels,
            label_column: column,
            header,
        };
        let source = match source_value {
            Typed::Choice("digits", _) => DataSource::Named(NamedData::Digits),
            Typed::Choice("mnist", _) => DataSource::Named(NamedData::Mnist),
            Typed::Str(path) => DataSource::Files(file_set(path.clone(), m.string("labels"))),
            _ => return None,
        };
        let named = matches!(source, DataSource::Named(_));
        if named {
            for slot in ["test", "labels", "test_labels", "label", "header"] {
                if m.spans.has(slot) {
                    self.error(
                        Diagnostic::error(
                            Code::DataSplit,
                            m.spans.get(slot),
                            format!("`{slot}` applies to data files, not to a named data set"),
                        )
                        .with_label("not used by named data sets")
                        .with_hint("named data sets bring their own labels and test set: remove this option"),
                    );
                }
            }
        }
        let validation = match m.values.get("validation") {
            Some(Typed::Split(Validation::Files(f))) => {
                Validation::Files(file_set(f.features.clone(), m.string("validation_labels")))
            }
            Some(Typed::Split(v)) => v.clone(),
            _ => Validation::None,
        };
        let test = match m.string("test") {
            Some(path) if !named => Some(file_set(path, m.string("test_labels"))),
            _ => None,
        };
        // IDX and NPY features need a labels file; CSV files hold their labels in a column.
        let mut sets: Vec<(&str, &FileSet)> = Vec::new();
        if let DataSource::Files(f) = &source {
            sets.push(("source", f));
        }
        if let Validation::Files(f) = &validation {
            sets.push(("validation", f));
        }
        if let Some(f) = &test {
            sets.push(("test", f));
        }
        let mut problems = Vec::new();
        for (slot, set) in sets {
            let labels_slot = match slot {
                "source" => "labels",
                "validation" => "validation_labels",
                _ => "test_labels",
            };
            match file_format(&set.features) {
                Some(FileFormat::Csv) if set.labels.is_some() => problems.push(
                    Diagnostic::error(
                        Code::DataSplit,
                        m.spans.get(labels_slot),
                        format!("`{labels_slot}` is for IDX and NPY files; a CSV file holds its labels in a column"),
                    )
                    .with_label("not used with CSV")
                    .with_hint(
                        "remove it and say which column holds the label: `label last` (the default) or `label first`",
                    ),
                ),
                Some(FileFormat::Idx | FileFormat::Npy) if set.labels.is_none() => problems.push(
                    Diagnostic::error(
                        Code::DataSplit,
                        m.spans.get(slot),
                        format!(
                            "\"{}\" holds only features; its labels need a file of their own",
                            set.features
                        ),
                    )
                    .with_label("no labels for these features")
                    .with_hint(format!("add `{labels_slot} \"...\"` naming the labels file")),
                ),
                None => problems.push(
                    Diagnostic::error(
                        Code::DataSplit,
                        m.spans.get(slot),
                        format!("cannot tell the format of \"{}\" from its name", set.features),
                    )
                    .with_label("unknown file type")
                    .with_hint("use a file ending in .csv, .npy or .idx (or -ubyte), optionally .gz"),
                ),
                _ => {}
            }
        }
        let failed = !problems.is_empty();
        self.diagnostics.extend(problems);
        if failed {
            return None;
        }
        let normalize = match m.choice("normalize") {
            Some(("none", _)) => Normalize::None,
            Some(("standard", _)) => Normalize::Standard,
            _ => Normalize::Scale,
        };
        Some(DataConfig {
            source,
            validation,
            test,
            normalize,
        })
    }
}

/// The file formats netc reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values, labels in a column.
    Csv,
    /// LeCun's IDX (MNIST's format).
    Idx,
    /// NumPy's `.npy`.
    Npy,
}

/// The format of a data file, from its name (a `.gz` ending is looked through).
pub fn file_format(path: &str) -> Option<FileFormat> {
    let lower = path.to_ascii_lowercase();
    let name = lower.strip_suffix(".gz").unwrap_or(&lower);
    if name.ends_with(".csv") {
        Some(FileFormat::Csv)
    } else if name.ends_with(".npy") {
        Some(FileFormat::Npy)
    } else if name.ends_with(".idx") || name.ends_with("-ubyte") || name.contains(".idx") {
        Some(FileFormat::Idx)
    } else {
        None
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
