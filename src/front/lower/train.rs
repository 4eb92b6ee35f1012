//! The train section: its settings, the optimizer and the data statement.

use super::*;

impl<'t> Lowerer<'t> {
    pub(super) fn train(
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

    pub(super) fn train_config(
        &mut self,
        settings: &HashMap<&'static str, Matched>,
        body: Span,
    ) -> Option<TrainConfig> {
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
        let augment = settings.get("augment").map(|m| Augment {
            shift: m.int("shift").unwrap_or(0) as usize,
            flip: m.flags.contains("flip"),
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
            augment,
        })
    }

    pub(super) fn optimizer(&mut self, m: &Matched) -> Option<(Optimizer, Schedule)> {
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

    pub(super) fn data_config(&mut self, m: &Matched) -> Option<DataConfig> {
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
