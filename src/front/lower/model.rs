//! The model section: statements, `repeat`, block calls and layers.

use super::*;

impl<'t> Lowerer<'t> {
    pub(super) fn model(&mut self, command: &'t Command, head_span: Span) -> Option<(Model, Spans)> {
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
        let output = layers.iter().next_back().map(|(h, _)| h);
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
                output,
                loss,
            },
            spans,
        ))
    }

    /// Lowers the lines of a model body (model, repeat or block).
    pub(super) fn lines(&mut self, lines: &'t [Line], path: &str) {
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

    pub(super) fn model_statement(&mut self, piece: &Piece<'t>) {
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

    pub(super) fn call_block(&mut self, name: &str, args: &'t [Value], piece: &Piece<'t>) {
        let recursive = self.call_stack.iter().any(|n| n == name);
        if recursive || self.call_stack.len() >= MAX_CALL_DEPTH {
            // The calls not expanded are calls all the same: no "never used" for their blocks.
            self.expansion_cut = true;
            let chain = |stack: &[String]| {
                stack
                    .iter()
                    .map(String::as_str)
                    .chain([name])
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" → ")
            };
            let d = if recursive {
                let from = self.call_stack.iter().position(|n| n == name).unwrap_or(0);
                Diagnostic::error(Code::Expansion, piece.head.span, format!("block `{name}` calls itself"))
                    .with_label("recursive call")
                    .with_note(format!("the calls: {}", chain(&self.call_stack[from..])))
                    .with_hint("a block cannot use itself; use `repeat N { ... }` to stack layers")
            } else {
                Diagnostic::error(
                    Code::Expansion,
                    piece.head.span,
                    format!("block calls are nested more than {MAX_CALL_DEPTH} deep"),
                )
                .with_label(format!("call number {}", self.call_stack.len() + 1))
                .with_note(format!("the calls: {}", chain(&self.call_stack)))
                .with_hint("call fewer blocks inside blocks: put the layers of the inner blocks in the outer one, or use `repeat N { ... }`")
            };
            self.error(d);
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

    pub(super) fn layer(&mut self, schema: &'static Schema, piece: &Piece<'t>) {
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
        // Every layer kind so far reads the layer written before it.
        let previous = self
            .layers
            .iter()
            .next_back()
            .map_or(Source::Input, |(h, _)| Source::Layer(h));
        self.layers.append(Layer {
            name,
            kind,
            regularization,
            inputs: vec![previous],
        });
        let _ = m.schema;
        self.layer_spans.push(m.spans);
    }
}
