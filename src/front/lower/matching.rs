//! Statement matching: a statement's values against its schema, typed and range-checked.

use super::*;

/// A statement's arguments as written, sorted into slots, flags and the label.
struct Written {
    raw: Vec<(&'static Slot, Value)>,
    flags: HashSet<&'static str>,
    label: Option<Ident>,
    spans: SlotSpans,
}

impl<'t> Lowerer<'t> {
    /// Splits a command into the statements it holds: a word that is a head keyword of the
    /// section (and not an option of the statement being read) starts a new statement.
    pub(super) fn split<'c>(&self, command: &'c Command, section: Section, span: Span) -> Vec<Piece<'c>> {
        let mut pieces = Vec::new();
        let mut head = &command.head;
        let mut schema = head.as_word().and_then(|w| schema::find(section, w));
        let mut start = 0;
        for (i, arg) in command.args.iter().enumerate() {
            let Arg::Value(v) = arg else { continue };
            let word = match &v.kind {
                ValueKind::Word(w) => w.as_str(),
                ValueKind::Call(name, _) => name.name.as_str(),
                _ => continue,
            };
            let is_option = schema.is_some_and(|s| s.option(word).is_some() || s.flags.contains(&word));
            // A word right after an option keyword is that option's value, not a new statement.
            let after_option = i > 0
                && matches!(&command.args[i - 1], Arg::Value(p) if p.as_word().is_some_and(|pw| schema.is_some_and(|s| s.option(pw).is_some())));
            let new_head = schema::find(section, word).filter(|_| v.as_word().is_some());
            // A block call starts a statement of its own too: `dense 64 relu  hidden(32)`.
            let block_call = section == Section::Model && self.blocks.contains_key(word) && !is_choice_word(word);
            if !is_option
                && !after_option
                && (new_head.is_some() || block_call)
                && self.lookup_const_name(word).is_none()
            {
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

    pub(super) fn lookup_const_name(&self, name: &str) -> Option<()> {
        self.scopes.iter().rev().find(|s| s.contains_key(name)).map(|_| ())
    }

    /// Matches a statement's arguments against its schema, applies overrides under `path`
    /// (computed once the label is known) and types every value.
    pub(super) fn matched(
        &mut self,
        schema: &'static Schema,
        piece: &Piece,
        path: impl FnOnce(&mut Self, Option<&Ident>) -> Option<String>,
    ) -> Matched {
        let Written {
            raw,
            mut flags,
            label,
            mut spans,
        } = self.written(schema, piece);
        let prefix = path(self, label.as_ref());
        let mut values = HashMap::new();
        let all_slots = schema.positional.iter().chain(schema.options.iter());
        for (index, slot) in all_slots.enumerate() {
            let overridden = prefix.as_ref().and_then(|p| {
                let full = format!("{p}.{}", slot.name);
                if index == 0 && !schema.positional.is_empty() {
                    self.take_either_override(&full, p)
                } else {
                    self.take_override(&full)
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
            self.override_flags(schema, p, &mut flags);
        }
        Matched {
            schema,
            values,
            flags,
            label,
            spans,
        }
    }

    /// The values, flags and label as written in the statement, before overrides and types.
    fn written(&mut self, schema: &'static Schema, piece: &Piece) -> Written {
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

        Written {
            raw,
            flags,
            label,
            spans,
        }
    }

    /// Applies `--set PATH.FLAG=true|false` overrides to a statement's flags.
    fn override_flags(&mut self, schema: &'static Schema, p: &str, flags: &mut HashSet<&'static str>) {
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

    pub(super) fn extra_value(&mut self, schema: &'static Schema, v: &Value) {
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
                d = match did_you_mean(word, names.iter().copied()) {
                    Some(s) => d.with_suggestion(v.span, s, format!("did you mean `{s}`?")),
                    None => d.with_hint(listing),
                };
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
    pub(super) fn typed(&mut self, schema: &'static Schema, slot: &'static Slot, r: &Resolved) -> Option<Typed> {
        let what = format!("`{}`'s {}", schema.head, slot.name);
        self.typed_as(&what, schema, slot.name, slot.ty, r)
    }

    pub(super) fn typed_as(
        &mut self,
        what: &str,
        schema: &'static Schema,
        slot: &str,
        ty: &'static Ty,
        r: &Resolved,
    ) -> Option<Typed> {
        let v = &r.value;
        let from = |d: Diagnostic| with_origin(d, r);
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
            d = match did_you_mean(word, names.iter().map(String::as_str)) {
                Some(s) => d.with_suggestion(v.span, s, format!("did you mean the constant `{s}`?")),
                None => d.with_hint(format!("write a number, or define it first with `let {word} = ...`")),
            };
            self.error(from(d));
            return None;
        }
        match ty {
            Ty::Int { .. } | Ty::Float { .. } => self.typed_number(what, schema, slot, ty, r),
            Ty::Choice { what: kind, choices } | Ty::ChoiceOrStr { what: kind, choices } => {
                self.typed_choice(what, schema, ty, kind, choices, r)
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
            Ty::Split => self.typed_split(what, ty, r),
            Ty::Padding => match &v.kind {
                ValueKind::Word(w) if w == "valid" => Some(Typed::Padding(Padding::Valid)),
                ValueKind::Word(w) if w == "same" => Some(Typed::Padding(Padding::Same)),
                ValueKind::Number(n) if n.integer && n.value >= 0.0 && n.value <= 4096.0 => {
                    Some(Typed::Padding(Padding::Explicit(n.value as usize)))
                }
                ValueKind::Number(n) if n.integer && n.value > 4096.0 => {
                    self.error(from(
                        Diagnostic::error(Code::OutOfRange, v.span, format!("{what} must be at most 4096"))
                            .with_label("too much padding")
                            .with_hint("pad with fewer rows and columns, or `pad same`"),
                    ));
                    None
                }
                _ => {
                    self.error(from(
                        wrong_type(what, ty, v, r.at).with_hint("write `pad valid` (none), `pad same` or `pad 1`"),
                    ));
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

    /// A number for an `Int` or `Float` slot: whole where required, in range.
    fn typed_number(
        &mut self,
        what: &str,
        schema: &'static Schema,
        slot: &str,
        ty: &'static Ty,
        r: &Resolved,
    ) -> Option<Typed> {
        let v = &r.value;
        let from = |d: Diagnostic| with_origin(d, r);
        let ValueKind::Number(n) = &v.kind else {
            self.error(from(wrong_type(what, ty, v, r.at)));
            return None;
        };
        if n.value == f64::INFINITY {
            self.error(from(too_large(what, schema, slot, ty, n, r.at)));
            return None;
        }
        if let Ty::Int { min, max } = *ty {
            // Whole numbers written as digits are read exactly (not through f64, which rounds
            // above 2^53): a seed of 9007199254740993 stays that seed.
            let exact = if n.integer {
                match n.text.parse::<i128>() {
                    Ok(v) => Some(v),
                    Err(_) if n.value > 0.0 => {
                        self.error(from(too_large(what, schema, slot, ty, n, r.at)));
                        return None;
                    }
                    Err(_) => Some(i128::MIN),
                }
            } else if !n.percent && n.value.fract() == 0.0 && n.value.is_finite() {
                Some(n.value as i128)
            } else {
                None
            };
            let Some(exact) = exact else {
                self.error(from(
                    Diagnostic::error(
                        Code::WrongType,
                        r.at,
                        format!("{what} must be a whole number, found `{}`", n.text),
                    )
                    .with_label("not a whole number")
                    .with_hint(format!(
                        "write a whole number, e.g. `{}`",
                        fmt_number(n.value.abs().round().clamp(1.0, max as f64))
                    )),
                ));
                return None;
            };
            if exact > i128::from(max) {
                self.error(from(too_large(what, schema, slot, ty, n, r.at)));
                return None;
            }
            if exact < i128::from(min) {
                self.error(from(out_of_range(what, schema, slot, ty, n, r.at)));
                return None;
            }
            return Some(Typed::Int(exact as i64));
        }
        if !ty.in_range(n.value) {
            self.error(from(out_of_range(what, schema, slot, ty, n, r.at)));
            return None;
        }
        Some(Typed::Float(n.value))
    }

    /// A named choice (`relu`, `leaky_relu(0.1)`) for a `Choice` slot, with its arguments typed
    /// in turn; a string where a `ChoiceOrStr` slot takes a path.
    fn typed_choice(
        &mut self,
        what: &str,
        schema: &'static Schema,
        ty: &'static Ty,
        kind: &str,
        choices: &'static [schema::Choice],
        r: &Resolved,
    ) -> Option<Typed> {
        let v = &r.value;
        let from = |d: Diagnostic| with_origin(d, r);
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
            // The misspelt word itself: where a constant's value is written, not its use.
            let misspelt = if let ValueKind::Call(ident, _) = &v.kind {
                ident.span
            } else {
                v.span
            };
            d = match did_you_mean(name, names.iter().copied()) {
                Some(s) => d.with_suggestion(misspelt, s, format!("did you mean `{s}`?")),
                None => d.with_hint(format!("the {kind}s are {}", join_or(&names))),
            };
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

    /// A validation split: a path, a row count or a fraction.
    fn typed_split(&mut self, what: &str, ty: &'static Ty, r: &Resolved) -> Option<Typed> {
        let v = &r.value;
        let from = |d: Diagnostic| with_origin(d, r);
        match &v.kind {
            ValueKind::Str(s) => Some(Typed::Split(Validation::Files(FileSet {
                features: s.clone(),
                labels: None,
                label_column: LabelColumn::Last,
                header: false,
            }))),
            ValueKind::Number(n) if n.integer && n.value >= 0.0 => match n.text.trim_start_matches('+').parse() {
                Ok(count) => Some(Typed::Split(Validation::Count(count))),
                Err(_) => {
                    self.error(from(
                        Diagnostic::error(
                            Code::OutOfRange,
                            r.at,
                            format!(
                                "a validation row count is too large (at most {}), found `{}`",
                                usize::MAX,
                                n.text
                            ),
                        )
                        .with_label("too large")
                        .with_hint("write a count of rows (`10000`), a fraction (`0.1`) or a percentage (`10%`)"),
                    ));
                    None
                }
            },
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
        }
    }
}

/// A number outside its slot's range ("must be at least 1, found `0`").
fn out_of_range(what: &str, schema: &Schema, slot: &str, ty: &Ty, n: &syntax::Number, at: Span) -> Diagnostic {
    let mut d = Diagnostic::error(
        Code::OutOfRange,
        at,
        format!("{what} must be {}, found `{}`", ty.range_text(), n.text),
    )
    .with_label("out of range");
    d.hint = Some(range_hint(schema.head, slot).unwrap_or_else(|| format!("use a value {}", ty.range_text())));
    d
}

/// A number above its slot's largest value, or too large for a number at all (`1e999`, a
/// thousand digits): said as such, never as "must be at least 1".
fn too_large(what: &str, schema: &Schema, slot: &str, ty: &Ty, n: &syntax::Number, at: Span) -> Diagnostic {
    let message = match ty {
        Ty::Int { max, .. } => format!("{what} is too large (at most {max}), found `{}`", n.text),
        _ if n.value.is_infinite() => format!(
            "{what} is infinite: `{}` is beyond the largest number (about 1.8e308)",
            n.text
        ),
        _ => format!("{what} is too large ({}), found `{}`", ty.range_text(), n.text),
    };
    let hint = match ty {
        Ty::Int { max, .. } => format!("use a whole number of at most {max}"),
        _ => range_hint(schema.head, slot).unwrap_or_else(|| format!("write a finite number {}", ty.range_text())),
    };
    Diagnostic::error(Code::OutOfRange, at, message)
        .with_label("too large")
        .with_hint(hint)
}

/// Adds where a constant's value came from to a diagnostic about a value that used it.
fn with_origin(d: Diagnostic, r: &Resolved) -> Diagnostic {
    match &r.origin {
        Some((name, defined)) => d.with_secondary(*defined, format!("`{name}` is defined here")),
        None => d,
    }
}
