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
        let (input, input_spans) = match self.input.take() {
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
        let (Some(input), Some(loss)) = (input, loss) else {
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
                input,
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
                    let dims = [m.int("size"), m.int("height"), m.int("width")];
                    let written = ["size", "height", "width"].map(|slot| m.spans.has(slot));
                    let input = match (dims, written) {
                        ([Some(n), None, None], [_, false, false]) => Some(vec![n as usize]),
                        ([Some(c), Some(h), Some(w)], _) => Some(vec![c as usize, h as usize, w as usize]),
                        (_, [_, true, false]) => {
                            self.error(
                                Diagnostic::error(
                                    Code::MissingValue,
                                    m.spans.get("height"),
                                    "`input` takes one size (features) or three (channels, height, width)",
                                )
                                .with_label("two sizes")
                                .with_hint(
                                    "write `input 1 28 28` for an image (channels first), or `input 784` for features",
                                ),
                            );
                            None
                        }
                        _ => None,
                    };
                    let input = match input {
                        Some(dims) if sample_values(&dims).is_none() => {
                            self.error(
                                Diagnostic::error(
                                    Code::OutOfRange,
                                    piece.span,
                                    "the input holds more than 2^40 values per sample",
                                )
                                .with_label("too large")
                                .with_hint("check the sizes: channels, height and width multiply"),
                            );
                            None
                        }
                        other => other,
                    };
                    self.input = Some((input, m.spans));
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
            "residual" => {
                let Some(block) = piece.block else {
                    self.error(
                        Diagnostic::error(Code::MissingValue, piece.span, "`residual` needs a block of layers")
                            .with_label("expected `{ ... }`")
                            .with_hint(format!("e.g. `{}`", schema.example)),
                    );
                    return;
                };
                let before = self.layers.len();
                let block_input = self.previous();
                self.lines(&block.lines, "model");
                if self.too_many_layers {
                    return;
                }
                if self.layers.len() == before {
                    self.error(
                        Diagnostic::error(Code::MissingValue, block.span, "this residual block has no layers")
                            .with_label("empty block")
                            .with_hint(format!(
                                "put the layers its shortcut skips inside, e.g. `{}`",
                                schema.example
                            )),
                    );
                    return;
                }
                self.layer(schema, piece, Some(block_input));
            }
            "conv" | "maxpool" | "avgpool" | "global_avgpool" | "batchnorm" | "flatten" | "activation" | "add"
            | "concat" | "dense" | "maxout" | "dropout" => self.layer(schema, piece, None),
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

    /// What the next layer reads by default: the layer written last, or the input.
    fn previous(&self) -> Source {
        self.layers
            .iter()
            .next_back()
            .map_or(Source::Input, |(h, _)| Source::Layer(h))
    }

    /// The layer a label names, seen from here: inside `repeat` the copy of the current
    /// round first (`c1` inside round 2 is `c1_2`), then the rounds around it, then the label
    /// as written.
    fn named_layer(&mut self, name: &str, span: Span) -> Option<Source> {
        for keep in (0..=self.label_suffix.len()).rev() {
            let suffix: String = self.label_suffix[..keep].iter().map(|i| format!("_{i}")).collect();
            let full = format!("{name}{suffix}");
            if let Some((h, _)) = self.layers.iter().find(|(_, l)| l.name == full) {
                return Some(Source::Layer(h));
            }
        }
        let names: Vec<String> = self.layers.values().map(|l| l.name.clone()).collect();
        let mut d = Diagnostic::error(
            Code::UnknownName,
            span,
            format!("no layer named `{name}` comes before this"),
        )
        .with_label("unknown layer")
        .with_note("`add` and `concat` read layers written earlier in the model, by their label");
        d = match did_you_mean(name, names.iter().map(String::as_str)) {
            Some(s) => d.with_suggestion(span, s, format!("did you mean `{s}`?")),
            None if names.is_empty() => {
                d.with_hint("label the layer to read, e.g. `conv c1: 16 kernel 3`, and write `add c1`")
            }
            None => d.with_hint(format!(
                "label the layer to read (`conv c1: ...`); the layers so far are {}",
                names
                    .iter()
                    .take(8)
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        self.error(d);
        None
    }

    pub(super) fn layer(&mut self, schema: &'static Schema, piece: &Piece<'t>, block_input: Option<Source>) {
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
        // A block's errors point at its keyword, not at the whole block.
        if schema.block {
            m.spans.slots.insert("keyword", piece.head.span);
        }
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
            "conv" => {
                let Some(filters) = m.int("filters") else { return };
                let activation = match m.choice("activation") {
                    None => Activation::Linear,
                    Some((name, args)) => activation_from(name, args),
                };
                // He for everything but the saturating activations: a conv before batchnorm
                // and relu is linear itself.
                let init = match m.choice("init") {
                    Some(_) => init(&m, None),
                    None if activation.saturates() => Init::Xavier,
                    None => Init::He,
                };
                LayerKind::Conv {
                    filters: filters as usize,
                    kernel: m.int("kernel").unwrap_or(3) as usize,
                    stride: m.int("stride").unwrap_or(1) as usize,
                    padding: m.padding("pad").unwrap_or(Padding::Valid),
                    bias: (!m.flags.contains("no_bias")).then(|| m.float("bias").unwrap_or(0.0)),
                    activation,
                    init,
                }
            }
            "maxpool" | "avgpool" => {
                let Some(window) = m.int("window") else { return };
                LayerKind::Pool {
                    op: if kind_name == "maxpool" {
                        PoolKind::Max
                    } else {
                        PoolKind::Avg
                    },
                    window: window as usize,
                    stride: m.int("stride").unwrap_or(window) as usize,
                    padding: m.padding("pad").unwrap_or(Padding::Valid),
                }
            }
            "global_avgpool" => LayerKind::GlobalPool,
            "flatten" => LayerKind::Flatten,
            "batchnorm" => LayerKind::BatchNorm {
                momentum: m.float("momentum").unwrap_or(0.1),
                eps: m.float("eps").unwrap_or(1e-5),
                activation: optional_activation(&m, "activation"),
            },
            "activation" => {
                let Some((name, args)) = m.choice("function") else {
                    return;
                };
                LayerKind::Activation {
                    activation: activation_from(name, args),
                }
            }
            "add" => LayerKind::Add {
                activation: optional_activation(&m, "activation"),
            },
            "concat" => LayerKind::Concat,
            "residual" => LayerKind::Residual {
                shortcut: match m.choice("shortcut") {
                    Some(("project", _)) => Shortcut::Project,
                    _ => Shortcut::Identity,
                },
                activation: optional_activation(&m, "activation"),
            },
            _ => unreachable!("layer() is only called for layer heads"),
        };
        // Every layer reads the layer written before it; a residual join also its block's
        // input, `add` and `concat` the layers they name.
        let mut inputs = vec![self.previous()];
        inputs.extend(block_input);
        for slot in ["from", "from2", "from3"] {
            if let Some(label) = m.string(slot)
                && schema.slot(slot).is_some()
            {
                let span = m.spans.get(slot);
                match self.named_layer(&label, span) {
                    Some(source) => inputs.push(source),
                    None => return,
                }
            }
        }
        self.layer_names.insert(name.clone(), name_span);
        self.layers.append(Layer {
            name,
            kind,
            regularization,
            inputs,
        });
        let _ = m.schema;
        self.layer_spans.push(m.spans);
    }
}

/// The activation in `slot`, `linear` when none is written.
fn optional_activation(m: &Matched, slot: &str) -> Activation {
    match m.choice(slot) {
        None => Activation::Linear,
        Some((name, args)) => activation_from(name, args),
    }
}
