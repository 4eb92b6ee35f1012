//! The statement schemas: every keyword, option, value type, range and default of the language.
//!
//! This table is the single source of truth that lowering matches statements against. Adding an
//! option means adding a row here and reading it in `lower.rs`; `docs/language.md` documents it.

/// Where a statement may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Outside any section.
    Top,
    /// Inside `model { }` (and inside `repeat` and `block` bodies).
    Model,
    /// Inside `train { }`.
    Train,
}

impl Section {
    /// A name for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Section::Top => "at the top level",
            Section::Model => "in a model",
            Section::Train => "in the train section",
        }
    }
}

/// A parameter of a choice written as a call, e.g. `alpha` in `leaky_relu(0.1)`.
#[derive(Debug)]
pub struct Param {
    /// Its name (for messages and docs).
    pub name: &'static str,
    /// Its type.
    pub ty: &'static Ty,
    /// Its value when the choice is written bare.
    pub default: f64,
}

/// One of the named choices of a [`Ty::Choice`], with the parameters its call form takes.
#[derive(Debug)]
pub struct Choice {
    /// The word.
    pub name: &'static str,
    /// Parameters of `name(...)`, all optional.
    pub params: &'static [Param],
}

/// Value types.
#[derive(Debug)]
pub enum Ty {
    /// A whole number in `min..=max`.
    Int {
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// A finite number; bounds are exclusive where the flags say so.
    Float {
        /// Lower bound.
        min: f64,
        /// Whether the lower bound is allowed.
        min_inclusive: bool,
        /// Upper bound.
        max: f64,
        /// Whether the upper bound is allowed.
        max_inclusive: bool,
    },
    /// One of the named choices, bare or as a call with parameters.
    Choice {
        /// What the choice is (activation, initializer, ...), for messages.
        what: &'static str,
        /// The choices.
        choices: &'static [Choice],
    },
    /// A quoted string (a path).
    Str,
    /// A name (model name).
    Name,
    /// Either a choice (named data set) or a string (a path).
    ChoiceOrStr {
        /// What the choice is, for messages.
        what: &'static str,
        /// The named choices.
        choices: &'static [Choice],
    },
    /// A count (whole number >= 0), a fraction in [0, 1) (or percentage), or a path.
    Split,
    /// `first`, `last` or a 0-based column number.
    Column,
    /// `valid`, `same` or a whole number of rows and columns on each side.
    Padding,
}

/// One slot of a statement: a positional value or a named option.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// The slot's name: the option keyword, and the last part of `--set` paths.
    pub name: &'static str,
    /// The value's type.
    pub ty: &'static Ty,
    /// Whether the statement needs it.
    pub required: bool,
}

/// A statement's shape.
#[derive(Debug)]
pub struct Schema {
    /// The head keyword.
    pub head: &'static str,
    /// Where it may appear.
    pub section: Section,
    /// Positional values, in order.
    pub positional: &'static [Slot],
    /// `keyword value` options, in any order.
    pub options: &'static [Slot],
    /// Bare keywords.
    pub flags: &'static [&'static str],
    /// Whether it may take a layer label (`h1:`).
    pub label: bool,
    /// Whether it takes a `{ }` block (required if so).
    pub block: bool,
    /// A one-line example, used in hints.
    pub example: &'static str,
}

const POSITIVE_INT: Ty = Ty::Int { min: 1, max: 1 << 40 };
const NON_NEGATIVE_INT: Ty = Ty::Int { min: 0, max: 1 << 40 };
const SEED: Ty = Ty::Int { min: 0, max: i64::MAX };
const REPEAT_COUNT: Ty = Ty::Int { min: 0, max: 10_000 };
const PIECES: Ty = Ty::Int { min: 1, max: 1024 };
const POSITIVE: Ty = Ty::Float {
    min: 0.0,
    min_inclusive: false,
    max: f64::INFINITY,
    max_inclusive: false,
};
const NON_NEGATIVE: Ty = Ty::Float {
    min: 0.0,
    min_inclusive: true,
    max: f64::INFINITY,
    max_inclusive: false,
};
const ANY_NUMBER: Ty = Ty::Float {
    min: f64::NEG_INFINITY,
    min_inclusive: false,
    max: f64::INFINITY,
    max_inclusive: false,
};
const UNIT_OPEN: Ty = Ty::Float {
    min: 0.0,
    min_inclusive: true,
    max: 1.0,
    max_inclusive: false,
};
const DECAY: Ty = Ty::Float {
    min: 0.0,
    min_inclusive: false,
    max: 1.0,
    max_inclusive: true,
};

/// Activations. `prelu(0.25)` is the initial slope; the slope is then learned per unit.
pub const ACTIVATION: Ty = Ty::Choice {
    what: "activation",
    choices: &[
        Choice {
            name: "linear",
            params: &[],
        },
        Choice {
            name: "sigmoid",
            params: &[],
        },
        Choice {
            name: "tanh",
            params: &[],
        },
        Choice {
            name: "relu",
            params: &[],
        },
        Choice {
            name: "leaky_relu",
            params: &[Param {
                name: "alpha",
                ty: &NON_NEGATIVE,
                default: 0.01,
            }],
        },
        Choice {
            name: "prelu",
            params: &[Param {
                name: "initial slope",
                ty: &ANY_NUMBER,
                default: 0.25,
            }],
        },
        Choice {
            name: "elu",
            params: &[Param {
                name: "alpha",
                ty: &NON_NEGATIVE,
                default: 1.0,
            }],
        },
        Choice {
            name: "softmax",
            params: &[],
        },
    ],
};

/// Weight initializers.
pub const INIT: Ty = Ty::Choice {
    what: "initializer",
    choices: &[
        Choice {
            name: "he",
            params: &[],
        },
        Choice {
            name: "xavier",
            params: &[],
        },
        Choice {
            name: "normal",
            params: &[Param {
                name: "std",
                ty: &POSITIVE,
                default: 0.01,
            }],
        },
        Choice {
            name: "uniform",
            params: &[Param {
                name: "limit",
                ty: &POSITIVE,
                default: 0.05,
            }],
        },
    ],
};

const DROPOUT_MODE: Ty = Ty::Choice {
    what: "dropout mode",
    choices: &[
        Choice {
            name: "inverted",
            params: &[],
        },
        Choice {
            name: "scale_at_test",
            params: &[],
        },
    ],
};

const LOSS: Ty = Ty::Choice {
    what: "loss",
    choices: &[
        Choice {
            name: "cross_entropy",
            params: &[],
        },
        Choice {
            name: "binary_cross_entropy",
            params: &[],
        },
        Choice {
            name: "mse",
            params: &[],
        },
    ],
};

const OPTIMIZER: Ty = Ty::Choice {
    what: "optimizer",
    choices: &[
        Choice {
            name: "sgd",
            params: &[],
        },
        Choice {
            name: "momentum",
            params: &[],
        },
        Choice {
            name: "nesterov",
            params: &[],
        },
        Choice {
            name: "adagrad",
            params: &[],
        },
        Choice {
            name: "rmsprop",
            params: &[],
        },
        Choice {
            name: "adam",
            params: &[],
        },
    ],
};

const STEP_EVERY: Ty = Ty::Int { min: 1, max: 1 << 40 };

const SCHEDULE: Ty = Ty::Choice {
    what: "schedule",
    choices: &[
        Choice {
            name: "constant",
            params: &[],
        },
        Choice {
            name: "step",
            params: &[
                Param {
                    name: "every",
                    ty: &STEP_EVERY,
                    default: 10.0,
                },
                Param {
                    name: "gamma",
                    ty: &DECAY,
                    default: 0.5,
                },
            ],
        },
        Choice {
            name: "exponential",
            params: &[Param {
                name: "gamma",
                ty: &DECAY,
                default: 0.95,
            }],
        },
    ],
};

const DATASET: Ty = Ty::ChoiceOrStr {
    what: "data set",
    choices: &[
        Choice {
            name: "digits",
            params: &[],
        },
        Choice {
            name: "mnist",
            params: &[],
        },
    ],
};

const NORMALIZE: Ty = Ty::Choice {
    what: "normalization",
    choices: &[
        Choice {
            name: "none",
            params: &[],
        },
        Choice {
            name: "scale",
            params: &[],
        },
        Choice {
            name: "standard",
            params: &[],
        },
    ],
};

const METRIC: Ty = Ty::Choice {
    what: "metric",
    choices: &[
        Choice {
            name: "val_loss",
            params: &[],
        },
        Choice {
            name: "val_accuracy",
            params: &[],
        },
    ],
};

const WINDOW_SIDE: Ty = Ty::Int { min: 1, max: 4096 };

const SHORTCUT: Ty = Ty::Choice {
    what: "shortcut",
    choices: &[
        Choice {
            name: "identity",
            params: &[],
        },
        Choice {
            name: "project",
            params: &[],
        },
    ],
};

const fn req(name: &'static str, ty: &'static Ty) -> Slot {
    Slot {
        name,
        ty,
        required: true,
    }
}

const fn opt(name: &'static str, ty: &'static Ty) -> Slot {
    Slot {
        name,
        ty,
        required: false,
    }
}

const REGULARIZATION_OPTIONS: [Slot; 2] = [opt("l1", &NON_NEGATIVE), opt("l2", &NON_NEGATIVE)];

/// Every statement of the language.
pub const SCHEMAS: &[Schema] = &[
    Schema {
        head: "model",
        section: Section::Top,
        positional: &[opt("name", &Ty::Name)],
        options: &[],
        flags: &[],
        label: false,
        block: true,
        example: "model mnist_mlp { ... }",
    },
    Schema {
        head: "train",
        section: Section::Top,
        positional: &[],
        options: &[],
        flags: &[],
        label: false,
        block: true,
        example: "train { ... }",
    },
    Schema {
        head: "block",
        section: Section::Top,
        positional: &[],
        options: &[],
        flags: &[],
        label: false,
        block: true,
        example: "block hidden(width, act) { dense width act }",
    },
    Schema {
        head: "input",
        section: Section::Model,
        positional: &[
            req("size", &POSITIVE_INT),
            opt("height", &POSITIVE_INT),
            opt("width", &POSITIVE_INT),
        ],
        options: &[],
        flags: &[],
        label: false,
        block: false,
        example: "input 784` or `input 1 28 28",
    },
    Schema {
        head: "dense",
        section: Section::Model,
        positional: &[req("width", &POSITIVE_INT), opt("activation", &ACTIVATION)],
        options: &[
            opt("init", &INIT),
            opt("bias", &ANY_NUMBER),
            REGULARIZATION_OPTIONS[0],
            REGULARIZATION_OPTIONS[1],
        ],
        flags: &[],
        label: true,
        block: false,
        example: "dense h1: 256 relu",
    },
    Schema {
        head: "maxout",
        section: Section::Model,
        positional: &[req("units", &POSITIVE_INT)],
        options: &[
            opt("pieces", &PIECES),
            opt("init", &INIT),
            opt("bias", &ANY_NUMBER),
            REGULARIZATION_OPTIONS[0],
            REGULARIZATION_OPTIONS[1],
        ],
        flags: &["fixed_zero"],
        label: true,
        block: false,
        example: "maxout m1: 512 pieces 2",
    },
    Schema {
        head: "dropout",
        section: Section::Model,
        positional: &[req("rate", &UNIT_OPEN), opt("mode", &DROPOUT_MODE)],
        options: &[],
        flags: &[],
        label: true,
        block: false,
        example: "dropout 0.5",
    },
    Schema {
        head: "conv",
        section: Section::Model,
        positional: &[req("filters", &POSITIVE_INT), opt("activation", &ACTIVATION)],
        options: &[
            opt("kernel", &WINDOW_SIDE),
            opt("stride", &WINDOW_SIDE),
            opt("pad", &Ty::Padding),
            opt("init", &INIT),
            opt("bias", &ANY_NUMBER),
            REGULARIZATION_OPTIONS[0],
            REGULARIZATION_OPTIONS[1],
        ],
        flags: &["no_bias"],
        label: true,
        block: false,
        example: "conv c1: 32 relu kernel 3 pad same",
    },
    Schema {
        head: "maxpool",
        section: Section::Model,
        positional: &[req("window", &WINDOW_SIDE)],
        options: &[opt("stride", &WINDOW_SIDE), opt("pad", &Ty::Padding)],
        flags: &[],
        label: true,
        block: false,
        example: "maxpool 2",
    },
    Schema {
        head: "avgpool",
        section: Section::Model,
        positional: &[req("window", &WINDOW_SIDE)],
        options: &[opt("stride", &WINDOW_SIDE), opt("pad", &Ty::Padding)],
        flags: &[],
        label: true,
        block: false,
        example: "avgpool 2",
    },
    Schema {
        head: "global_avgpool",
        section: Section::Model,
        positional: &[],
        options: &[],
        flags: &[],
        label: true,
        block: false,
        example: "global_avgpool",
    },
    Schema {
        head: "batchnorm",
        section: Section::Model,
        positional: &[opt("activation", &ACTIVATION)],
        options: &[opt("momentum", &DECAY), opt("eps", &POSITIVE)],
        flags: &[],
        label: true,
        block: false,
        example: "batchnorm relu",
    },
    Schema {
        head: "flatten",
        section: Section::Model,
        positional: &[],
        options: &[],
        flags: &[],
        label: true,
        block: false,
        example: "flatten",
    },
    Schema {
        head: "activation",
        section: Section::Model,
        positional: &[req("function", &ACTIVATION)],
        options: &[],
        flags: &[],
        label: true,
        block: false,
        example: "activation relu",
    },
    Schema {
        head: "add",
        section: Section::Model,
        positional: &[req("from", &Ty::Name), opt("activation", &ACTIVATION)],
        options: &[],
        flags: &[],
        label: true,
        block: false,
        example: "add c1 relu",
    },
    Schema {
        head: "concat",
        section: Section::Model,
        positional: &[req("from", &Ty::Name), opt("from2", &Ty::Name), opt("from3", &Ty::Name)],
        options: &[],
        flags: &[],
        label: true,
        block: false,
        example: "concat branch",
    },
    Schema {
        head: "residual",
        section: Section::Model,
        positional: &[opt("activation", &ACTIVATION)],
        options: &[opt("shortcut", &SHORTCUT)],
        flags: &[],
        label: true,
        block: true,
        example: "residual relu { conv 16 pad same; batchnorm relu; conv 16 pad same; batchnorm }",
    },
    Schema {
        head: "loss",
        section: Section::Model,
        positional: &[req("kind", &LOSS)],
        options: &[],
        flags: &[],
        label: false,
        block: false,
        example: "loss cross_entropy",
    },
    Schema {
        head: "repeat",
        section: Section::Model,
        positional: &[req("count", &REPEAT_COUNT)],
        options: &[],
        flags: &[],
        label: false,
        block: true,
        example: "repeat 10 { dense 128 sigmoid }",
    },
    Schema {
        head: "data",
        section: Section::Train,
        positional: &[req("source", &DATASET)],
        options: &[
            opt("validation", &Ty::Split),
            opt("test", &Ty::Str),
            opt("labels", &Ty::Str),
            opt("test_labels", &Ty::Str),
            opt("validation_labels", &Ty::Str),
            opt("label", &Ty::Column),
            opt("normalize", &NORMALIZE),
        ],
        flags: &["header"],
        label: false,
        block: false,
        example: "data mnist validation 10000",
    },
    Schema {
        head: "optimizer",
        section: Section::Train,
        positional: &[req("kind", &OPTIMIZER)],
        options: &[
            opt("lr", &POSITIVE),
            opt("lambda", &UNIT_OPEN),
            opt("alpha", &UNIT_OPEN),
            opt("beta1", &UNIT_OPEN),
            opt("beta2", &UNIT_OPEN),
            opt("eps", &POSITIVE),
            opt("schedule", &SCHEDULE),
        ],
        flags: &[],
        label: false,
        block: false,
        example: "optimizer adam lr 1e-3",
    },
    Schema {
        head: "regularize",
        section: Section::Train,
        positional: &[],
        options: &REGULARIZATION_OPTIONS,
        flags: &[],
        label: false,
        block: false,
        example: "regularize l2 1e-4",
    },
    Schema {
        head: "batch",
        section: Section::Train,
        positional: &[req("size", &POSITIVE_INT)],
        options: &[],
        flags: &[],
        label: false,
        block: false,
        example: "batch 128",
    },
    Schema {
        head: "epochs",
        section: Section::Train,
        positional: &[req("count", &POSITIVE_INT)],
        options: &[],
        flags: &[],
        label: false,
        block: false,
        example: "epochs 30",
    },
    Schema {
        head: "seed",
        section: Section::Train,
        positional: &[req("value", &SEED)],
        options: &[],
        flags: &[],
        label: false,
        block: false,
        example: "seed 42",
    },
    Schema {
        head: "early_stop",
        section: Section::Train,
        positional: &[opt("metric", &METRIC)],
        options: &[opt("patience", &NON_NEGATIVE_INT), opt("min_delta", &NON_NEGATIVE)],
        flags: &["restore_best"],
        label: false,
        block: false,
        example: "early_stop val_loss patience 3 restore_best",
    },
    Schema {
        head: "augment",
        section: Section::Train,
        positional: &[],
        options: &[opt("shift", &NON_NEGATIVE_INT)],
        flags: &["flip"],
        label: false,
        block: false,
        example: "augment shift 2",
    },
];

/// Which optimizers take which options (`lr` and `schedule` apply to all).
pub const OPTIMIZER_OPTIONS: &[(&str, &[&str])] = &[
    ("sgd", &[]),
    ("momentum", &["lambda"]),
    ("nesterov", &["lambda"]),
    ("adagrad", &["eps"]),
    ("rmsprop", &["alpha", "eps"]),
    ("adam", &["beta1", "beta2", "eps"]),
];

/// The schema of a head keyword in a section.
pub fn find(section: Section, head: &str) -> Option<&'static Schema> {
    SCHEMAS.iter().find(|s| s.section == section && s.head == head)
}

/// The schema of a head keyword in any section.
pub fn find_anywhere(head: &str) -> Option<&'static Schema> {
    SCHEMAS.iter().find(|s| s.head == head)
}

/// Head keywords allowed in a section.
pub fn heads(section: Section) -> impl Iterator<Item = &'static str> {
    SCHEMAS.iter().filter(move |s| s.section == section).map(|s| s.head)
}

impl Schema {
    /// The slot (positional or option) with this name.
    pub fn slot(&self, name: &str) -> Option<&'static Slot> {
        let all: &'static [Slot] = self.positional;
        all.iter().chain(self.options.iter()).find(|s| s.name == name)
    }

    /// The option with this keyword.
    pub fn option(&self, name: &str) -> Option<&'static Slot> {
        self.options.iter().find(|s| s.name == name)
    }
}

impl Ty {
    /// The named choices of a choice type.
    pub fn choice_names(&self) -> Vec<&'static str> {
        match self {
            Ty::Choice { choices, .. } | Ty::ChoiceOrStr { choices, .. } => choices.iter().map(|c| c.name).collect(),
            _ => Vec::new(),
        }
    }

    /// What a value of this type looks like, for messages.
    pub fn describe(&self) -> String {
        match self {
            Ty::Int { min, .. } if *min >= 1 => "a whole number of at least 1".to_string(),
            Ty::Int { .. } => "a whole number".to_string(),
            Ty::Float { .. } => "a number".to_string(),
            Ty::Choice { what, .. } => format!("{} {what}", article(what)),
            Ty::Str => "a quoted path".to_string(),
            Ty::Name => "a name".to_string(),
            Ty::ChoiceOrStr { .. } => "a data set name (digits, mnist) or a quoted path".to_string(),
            Ty::Split => "a count of rows, a fraction like 0.1 or 10%, or a quoted path".to_string(),
            Ty::Column => "`first`, `last` or a column number".to_string(),
            Ty::Padding => "`valid`, `same` or a whole number".to_string(),
        }
    }

    /// The allowed range of a numeric type, in words.
    pub fn range_text(&self) -> String {
        match self {
            Ty::Int { min, max } if *max >= 1 << 40 => format!("at least {min}"),
            Ty::Int { min, max } => format!("from {min} to {max}"),
            Ty::Float {
                min,
                min_inclusive,
                max,
                max_inclusive,
            } => {
                let lo = if *min_inclusive {
                    format!("at least {min}")
                } else {
                    format!("greater than {min}")
                };
                let hi = if *max_inclusive {
                    format!("at most {max}")
                } else {
                    format!("less than {max}")
                };
                match (min.is_finite(), max.is_finite()) {
                    (true, true) => format!("{lo} and {hi}"),
                    (true, false) => lo,
                    (false, true) => hi,
                    (false, false) => "finite".to_string(),
                }
            }
            _ => String::new(),
        }
    }

    /// Whether a number lies in this numeric type's range.
    pub fn in_range(&self, value: f64) -> bool {
        match self {
            Ty::Int { min, max } => value >= *min as f64 && value <= *max as f64,
            Ty::Float {
                min,
                min_inclusive,
                max,
                max_inclusive,
            } => {
                value.is_finite()
                    && (if *min_inclusive { value >= *min } else { value > *min })
                    && (if *max_inclusive { value <= *max } else { value < *max })
            }
            _ => true,
        }
    }
}

/// "a" or "an" for a word.
pub fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}
