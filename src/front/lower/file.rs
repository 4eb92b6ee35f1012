//! The file: its sections, unknown statements and block definitions.

use super::*;

impl<'t> Lowerer<'t> {
    pub(super) fn file(&mut self, tree: &'t SourceFile) -> Option<(Program, Spans)> {
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
            .filter(|(_, b)| !b.used && !self.expansion_cut)
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

    pub(super) fn unknown_statement(&mut self, head: &Value, section: Section) {
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
        d = match did_you_mean(&word, candidates.iter().copied()) {
            Some(s) => d.with_suggestion(head.span, s, format!("did you mean `{s}`?")),
            None => d.with_hint(statement_hint(section)),
        };
        self.error(d);
    }

    pub(super) fn define_block(&mut self, command: &'t Command, statement: Span) {
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
}
