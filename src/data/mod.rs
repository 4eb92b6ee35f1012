//! Data: the built-in digits set, MNIST, and CSV, IDX and NPY files; splits and normalization.
//!
//! Every malformed file gets an error that names the file and the row or byte offset at fault.

pub mod augment;
mod binary;
mod csv;
mod files;
mod idx;
mod npy;

pub use csv::{parse_csv_matrix, parse_csv_matrix_bytes, read_csv_bytes};

use crate::diag::{Code, Diagnostic};
use crate::ir::{DataConfig, DataSource, FileSet, LabelColumn, NamedData, Normalize, Validation};
use crate::ir::{FileFormat, file_format};
use files::{gunzip, read_file};
use ndarray::{Array2, Axis};
use std::path::{Path, PathBuf};

/// The digits set, compressed, as shipped in `data/digits.csv.gz`.
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// Rows of the digits set used as its test set (the last ones).
pub const DIGITS_TEST_ROWS: usize = 360;

/// Samples with labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `[samples, features]`.
    pub features: Array2<f32>,
    /// Class index of each sample.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        Dataset {
            features: self.features.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    fn split_tail(self, count: usize) -> (Dataset, Dataset) {
        let keep = self.len() - count;
        let head: Vec<usize> = (0..keep).collect();
        let tail: Vec<usize> = (keep..self.len()).collect();
        (self.select(&head), self.select(&tail))
    }
}

/// Per-feature affine normalization `x' = (x - shift) * scale`, fitted on the training set.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Subtracted from each feature.
    pub shift: Vec<f32>,
    /// Then multiplied into each feature.
    pub scale: Vec<f32>,
}

impl Normalization {
    /// The identity for `width` features.
    pub fn identity(width: usize) -> Normalization {
        Normalization {
            shift: vec![0.0; width],
            scale: vec![1.0; width],
        }
    }

    /// Fits the normalization to training features.
    pub fn fit(kind: Normalize, features: &Array2<f32>) -> Normalization {
        let width = features.ncols();
        match kind {
            Normalize::None => Normalization::identity(width),
            Normalize::Scale => {
                let max = features.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
                let scale = if max > 0.0 { 1.0 / max } else { 1.0 };
                Normalization {
                    shift: vec![0.0; width],
                    scale: vec![scale; width],
                }
            }
            Normalize::Standard => {
                let n = features.nrows().max(1) as f64;
                let mut shift = Vec::with_capacity(width);
                let mut scale = Vec::with_capacity(width);
                for column in features.columns() {
                    let mean = column.iter().map(|&x| x as f64).sum::<f64>() / n;
                    let var = column.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
                    shift.push(mean as f32);
                    scale.push(if var > 1e-12 { (1.0 / var.sqrt()) as f32 } else { 1.0 });
                }
                Normalization { shift, scale }
            }
        }
    }

    /// Applies the normalization in place.
    pub fn apply(&self, features: &mut Array2<f32>) {
        for mut row in features.rows_mut() {
            for ((x, &s), &k) in row.iter_mut().zip(&self.shift).zip(&self.scale) {
                *x = (*x - s) * k;
            }
        }
    }
}

/// The splits of a data configuration, normalized.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training data.
    pub train: Dataset,
    /// Validation data, if configured.
    pub validation: Option<Dataset>,
    /// Test data, if the source has one.
    pub test: Option<Dataset>,
    /// The normalization fitted on the training data.
    pub normalization: Normalization,
    /// Number of classes.
    pub classes: usize,
}

/// Where named data sets that are not built in (MNIST) are looked for.
#[derive(Debug, Clone, Default)]
pub struct DataDirs {
    /// `--data-dir`.
    pub flag: Option<PathBuf>,
}

impl DataDirs {
    /// The directories searched, in order: `--data-dir`, `$NETC_DATA_DIR`, the user cache.
    pub fn candidates(&self) -> Vec<PathBuf> {
        if let Some(dir) = &self.flag {
            return vec![dir.clone()];
        }
        let mut dirs = Vec::new();
        if let Some(dir) = std::env::var_os("NETC_DATA_DIR").filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(dir));
        }
        if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(cache).join("netc"));
        } else if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(home).join(".cache").join("netc"));
        }
        dirs
    }
}

/// Loads and splits the data a spec names, normalized with a fit on the training split. `base`
/// is the spec's directory (relative paths in a spec are relative to it).
pub fn load(config: &DataConfig, dirs: &DataDirs, base: &Path) -> Result<Splits, Box<Diagnostic>> {
    load_with(config, dirs, base, None)
}

/// Like [`load`], but with a given normalization (the one stored with trained weights).
pub fn load_with(
    config: &DataConfig,
    dirs: &DataDirs,
    base: &Path,
    normalization: Option<&Normalization>,
) -> Result<Splits, Box<Diagnostic>> {
    let (train, test) = match &config.source {
        DataSource::Named(NamedData::Digits) => {
            let (train, test) = digits()?.split_tail(DIGITS_TEST_ROWS);
            (train, Some(test))
        }
        DataSource::Named(NamedData::Mnist) => {
            let (train, test) = load_mnist(dirs)?;
            (train, Some(test))
        }
        DataSource::Files(set) => {
            let train = read_set(set, base)?;
            let test = match &config.test {
                Some(t) => Some(read_set(t, base)?),
                None => None,
            };
            (train, test)
        }
    };
    let (train, validation) = split_validation(train, &config.validation, base)?;
    if train.is_empty() {
        return Err(Diagnostic::general(Code::BadData, "the training data has no rows")
            .with_hint("check the data file")
            .into());
    }
    for (name, split) in [("validation", &validation), ("test", &test)] {
        if split.as_ref().is_some_and(Dataset::is_empty) {
            return Err(
                Diagnostic::general(Code::BadData, format!("the {name} data has no rows"))
                    .with_hint(format!("check the {name} data file, or leave the {name} split out"))
                    .into(),
            );
        }
    }
    let width = train.features.ncols();
    for (name, split) in [("validation", &validation), ("test", &test)] {
        if let Some(s) = split
            && s.features.ncols() != width
        {
            return Err(Diagnostic::general(
                Code::BadData,
                format!(
                    "the {name} data has {} features per row, but the training data has {width}",
                    s.features.ncols()
                ),
            )
            .with_hint("use files with the same columns for every split")
            .into());
        }
    }
    let classes = [Some(&train), validation.as_ref(), test.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|d| d.labels.iter().copied())
        .max()
        .map_or(0, |m| m + 1);
    let classes = match config.source {
        DataSource::Named(n) => n.classes(),
        DataSource::Files(_) => classes,
    };
    let normalization = match normalization {
        Some(n) if n.shift.len() == train.features.ncols() => n.clone(),
        Some(n) => {
            return Err(Diagnostic::general(
                Code::DataMismatch,
                format!(
                    "the weights were trained on {} features, but this data has {}",
                    n.shift.len(),
                    train.features.ncols()
                ),
            )
            .with_hint("evaluate with the data the weights were trained on")
            .into());
        }
        None => Normalization::fit(config.normalize, &train.features),
    };
    let mut splits = Splits {
        train,
        validation,
        test,
        normalization,
        classes,
    };
    splits.normalization.apply(&mut splits.train.features);
    if let Some(v) = &mut splits.validation {
        splits.normalization.apply(&mut v.features);
    }
    if let Some(t) = &mut splits.test {
        splits.normalization.apply(&mut t.features);
    }
    Ok(splits)
}

/// Takes the validation rows off the end of the training data (or reads them from their own
/// file).
fn split_validation(
    train: Dataset,
    validation: &Validation,
    base: &Path,
) -> Result<(Dataset, Option<Dataset>), Box<Diagnostic>> {
    Ok(match validation {
        Validation::None => (train, None),
        Validation::Count(0) => (train, None),
        Validation::Fraction(f) if *f == 0.0 => (train, None),
        Validation::Count(n) => {
            if *n >= train.len() {
                return Err(Diagnostic::general(
                    Code::BadData,
                    format!(
                        "the validation split asks for {n} rows, but the training data has only {}",
                        train.len()
                    ),
                )
                .with_hint(format!(
                    "use fewer validation rows (at most {}), or a fraction like `validation 10%`",
                    train.len().saturating_sub(1)
                ))
                .into());
            }
            let (t, v) = train.split_tail(*n);
            (t, Some(v))
        }
        Validation::Fraction(f) => {
            let n = (train.len() as f64 * f).round() as usize;
            if n == 0 {
                let least = (0.5 / train.len().max(1) as f64 * 1e4).ceil() / 100.0;
                return Err(Diagnostic::general(
                    Code::BadData,
                    format!(
                        "the validation split of {}% of the {} training rows rounds to 0 rows",
                        f * 100.0,
                        train.len()
                    ),
                )
                .with_hint(format!(
                    "ask for at least one row: `validation 1`, or a fraction of at least {least:.2}%"
                ))
                .into());
            } else if n >= train.len() {
                return Err(
                    Diagnostic::general(Code::BadData, "the validation fraction leaves no training rows")
                        .with_hint("use a fraction below 1, e.g. `validation 10%`")
                        .into(),
                );
            } else {
                let (t, v) = train.split_tail(n);
                (t, Some(v))
            }
        }
        Validation::Files(set) => (train, Some(read_set(set, base)?)),
    })
}

/// The built-in digits set, its rows in a fixed shuffled order. The file is grouped by writer,
/// so a positional split would test on writers never seen in training; the fixed permutation
/// (the same for every seed and every version) mixes them.
pub fn digits() -> Result<Dataset, Box<Diagnostic>> {
    let all = read_csv_bytes(
        &gunzip(DIGITS_CSV_GZ, Path::new("<built-in digits>"))?,
        "<built-in digits>",
        LabelColumn::Last,
        false,
    )?;
    let mut order: Vec<usize> = (0..all.len()).collect();
    crate::rng::Rng::new(DIGITS_ORDER_SEED, 0).shuffle(&mut order);
    Ok(all.select(&order))
}

/// The seed of the digits set's fixed row order.
const DIGITS_ORDER_SEED: u64 = 1797;

/// The file names of MNIST, as distributed.
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

fn load_mnist(dirs: &DataDirs) -> Result<(Dataset, Dataset), Box<Diagnostic>> {
    let candidates = dirs.candidates();
    let find = |dir: &Path, name: &str| -> Option<PathBuf> {
        [
            dir.join("mnist").join(name),
            dir.join("mnist").join(format!("{name}.gz")),
        ]
        .into_iter()
        .find(|p| p.is_file())
    };
    for dir in &candidates {
        let found: Vec<Option<PathBuf>> = MNIST_FILES.iter().map(|n| find(dir, n)).collect();
        if found.iter().all(Option::is_some) {
            let paths: Vec<PathBuf> = found.into_iter().flatten().collect();
            let train = read_idx_pair(&paths[0], &paths[1])?;
            let test = read_idx_pair(&paths[2], &paths[3])?;
            return Ok((train, test));
        }
        if found.iter().any(Option::is_some) {
            let missing: Vec<&str> = MNIST_FILES
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.is_none())
                .map(|(n, _)| *n)
                .collect();
            let mnist = dir.join("mnist");
            return Err(Diagnostic::general(
                Code::BadData,
                format!(
                    "`{}` holds only some of the MNIST files: {} missing",
                    mnist.display(),
                    missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
                ),
            )
            .in_file(&mnist)
            .with_hint(format!(
                "add {} (gzip as `.gz` or raw) to that directory; the four files are {}",
                missing.join(", "),
                MNIST_FILES.join(", ")
            ))
            .into());
        }
    }
    let looked: Vec<String> = candidates
        .iter()
        .map(|d| format!("  {}", d.join("mnist").display()))
        .collect();
    Err(Diagnostic::general(Code::BadData, format!(
        "the MNIST files were not found; netc looked in:\n{}",
        if looked.is_empty() { "  (no directory: set --data-dir or $NETC_DATA_DIR)".to_string() } else { looked.join("\n") }
    ))
    .with_hint(format!(
        "put the four MNIST IDX files ({}; gzip or raw) in DIR/mnist/ and pass `--data-dir DIR` or set NETC_DATA_DIR=DIR",
        MNIST_FILES.join(", ")
    )).into())
}

/// Reads one file set (features and, for IDX/NPY, labels).
pub fn read_set(set: &FileSet, base: &Path) -> Result<Dataset, Box<Diagnostic>> {
    let path = base.join(&set.features);
    match file_format(&set.features) {
        Some(FileFormat::Csv) => {
            let bytes = read_file(&path)?;
            read_csv_bytes(&bytes, &path.display().to_string(), set.label_column, set.header)
        }
        Some(FileFormat::Idx) | Some(FileFormat::Npy) => {
            let labels = set.labels.as_ref().ok_or_else(|| {
                Diagnostic::general(Code::BadData, format!("`{}` needs a labels file", set.features))
                    .with_hint("add `labels \"...\"` to the data statement")
            })?;
            let labels_path = base.join(labels);
            let features = read_matrix(&path)?;
            let labels_matrix = read_matrix(&labels_path)?;
            combine(features, &path, labels_matrix, &labels_path)
        }
        None => Err(
            Diagnostic::general(Code::BadData, format!("cannot tell the format of `{}`", set.features))
                .with_hint("use .csv, .npy or .idx files")
                .into(),
        ),
    }
}

fn read_idx_pair(images: &Path, labels: &Path) -> Result<Dataset, Box<Diagnostic>> {
    let features = read_matrix(images)?;
    let labels_matrix = read_matrix(labels)?;
    combine(features, images, labels_matrix, labels)
}

fn combine(features: Array2<f32>, fpath: &Path, labels: Array2<f32>, lpath: &Path) -> Result<Dataset, Box<Diagnostic>> {
    if labels.ncols() != 1 {
        return Err(Diagnostic::general(
            Code::BadData,
            format!(
                "the labels file `{}` has {} values per row; labels are one class number per row",
                lpath.display(),
                labels.ncols()
            ),
        )
        .with_hint("give a 1-D labels file")
        .into());
    }
    if labels.nrows() != features.nrows() {
        return Err(Diagnostic::general(
            Code::BadData,
            format!(
                "`{}` has {} rows but its labels file `{}` has {}",
                fpath.display(),
                features.nrows(),
                lpath.display(),
                labels.nrows()
            ),
        )
        .with_hint("pair each features file with the labels file of the same samples")
        .into());
    }
    let mut out = Vec::with_capacity(labels.nrows());
    for (row, &l) in labels.column(0).iter().enumerate() {
        out.push(label_of(l as f64, || format!("`{}`, label {row}", lpath.display()))?);
    }
    Ok(Dataset { features, labels: out })
}

pub(crate) fn label_of(value: f64, place: impl Fn() -> String) -> Result<usize, Box<Diagnostic>> {
    if value.fract() != 0.0 || !(0.0..=1e6).contains(&value) {
        return Err(
            Diagnostic::general(Code::BadData, format!("{}: `{value}` is not a class number", place()))
                .with_hint("labels are whole numbers 0, 1, 2, ... (one per class)")
                .into(),
        );
    }
    Ok(value as usize)
}

/// Reads a matrix (features; or labels as one column) from an IDX, NPY or CSV file (IDX when
/// the name says nothing). IDX and NPY headers are checked before their bodies are read.
pub fn read_matrix(path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    match file_format(&path.to_string_lossy()) {
        Some(FileFormat::Npy) => binary::read(path, npy::read_header, npy::decode_body),
        Some(FileFormat::Csv) => parse_csv_matrix_bytes(&read_file(path)?, &path.display().to_string()),
        _ => binary::read(path, idx::read_header, idx::decode_body),
    }
}

/// Parses a whole matrix file held in memory, as [`read_matrix`] reads it from disk (for
/// standard input and for tests: the same checks, the same errors).
pub fn parse_matrix_bytes(bytes: &[u8], path: &Path) -> Result<Array2<f32>, Box<Diagnostic>> {
    match file_format(&path.to_string_lossy()) {
        Some(FileFormat::Npy) => npy::parse_npy(bytes, path),
        Some(FileFormat::Csv) => parse_csv_matrix_bytes(bytes, &path.display().to_string()),
        _ => idx::parse_idx(bytes, path),
    }
}

/// Targets for a batch: one-hot rows, or the 0/1 label for a single output.
pub fn targets(labels: &[usize], width: usize) -> Array2<f32> {
    let mut t = Array2::zeros((labels.len(), width));
    for (r, &l) in labels.iter().enumerate() {
        if width == 1 {
            t[[r, 0]] = l as f32;
        } else if l < width {
            t[[r, l]] = 1.0;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_built_in_with_the_documented_split() {
        let config = DataConfig {
            source: DataSource::Named(NamedData::Digits),
            validation: Validation::Count(100),
            test: None,
            normalize: Normalize::Scale,
        };
        let s = load(&config, &DataDirs::default(), Path::new(".")).expect("digits load");
        assert_eq!(s.train.len(), 1797 - DIGITS_TEST_ROWS - 100);
        assert_eq!(s.validation.as_ref().map(Dataset::len), Some(100));
        assert_eq!(s.test.as_ref().map(Dataset::len), Some(DIGITS_TEST_ROWS));
        assert_eq!(s.train.features.ncols(), 64);
        assert_eq!(s.classes, 10);
        let max = s.train.features.iter().fold(0.0f32, |m, &x| m.max(x));
        assert!((max - 1.0).abs() < 1e-6);
    }
}
