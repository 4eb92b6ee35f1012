//! Weights and checkpoints as safetensors files.
//!
//! A weights file holds, for each layer, `NAME.weight` in PyTorch's `nn.Linear` layout
//! `[outputs, inputs]`, `NAME.bias` `[outputs]` and, for prelu, `NAME.slope` `[outputs]`; plus
//! the input normalization `input.shift` and `input.scale` (`x' = (x - shift) * scale`). All
//! tensors are f32. Loading checks every name and shape against the spec.

use crate::data::Normalization;
use crate::diag::{Code, Diagnostic};
use crate::graph::{Graph, ParamKind};
use ndarray::Array2;
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::Path;

/// A named f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Its name in the file.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values in row-major order.
    pub data: Vec<f32>,
}

/// Tensors of a file by name.
pub type Tensors = BTreeMap<String, NamedTensor>;

/// Serializes tensors and string metadata to safetensors bytes.
///
/// Written here rather than by the safetensors crate because the crate keeps metadata in a
/// `HashMap`, whose order varies from run to run; netc's files must be byte-for-byte
/// reproducible. The layout is the standard one: an 8-byte little-endian header length, the
/// JSON header (tensors sorted by name, `__metadata__` first) padded with spaces to a multiple
/// of 8, then the tensors' bytes in header order. The crate reads and validates it.
pub fn encode(tensors: &[NamedTensor], metadata: BTreeMap<String, String>) -> Vec<u8> {
    let mut sorted: Vec<&NamedTensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert(
            "__metadata__".to_string(),
            serde_json::to_value(&metadata).expect("strings serialize"),
        );
    }
    let mut offset = 0usize;
    for t in &sorted {
        let end = offset + t.data.len() * 4;
        header.insert(
            t.name.clone(),
            serde_json::json!({"dtype": "F32", "shape": t.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    // serde_json's Map keeps insertion order only with a feature; build the text by hand instead.
    let mut text = String::from("{");
    let mut first = true;
    let mut push = |key: &str, value: &serde_json::Value| {
        if !first {
            text.push(',');
        }
        first = false;
        text.push_str(&serde_json::to_string(key).expect("strings serialize"));
        text.push(':');
        text.push_str(&value.to_string());
    };
    if let Some(m) = header.get("__metadata__") {
        push("__metadata__", m);
    }
    for t in &sorted {
        push(&t.name, &header[&t.name]);
    }
    text.push('}');
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend((text.len() as u64).to_le_bytes());
    out.extend(text.as_bytes());
    for t in sorted {
        for v in &t.data {
            out.extend(v.to_le_bytes());
        }
    }
    out
}

/// Parses safetensors bytes into f32 tensors and metadata.
pub fn decode(bytes: &[u8], path: &Path) -> Result<(Tensors, BTreeMap<String, String>), Box<Diagnostic>> {
    let bad = |e: String| {
        Diagnostic::general(
            Code::BadWeights,
            format!("`{}` is not a valid safetensors file: {e}", path.display()),
        )
        .in_file(path)
        .with_hint("give the weights.safetensors written by `netc train`")
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let metadata: BTreeMap<String, String> = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    let file = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Diagnostic::general(
                Code::BadWeights,
                format!("tensor `{name}` in `{}` is {:?}, not F32", path.display(), view.dtype()),
            )
            .in_file(path)
            .with_hint("netc stores and reads f32 weights")
            .into());
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        out.insert(
            name.clone(),
            NamedTensor {
                name,
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((out, metadata))
}

/// The tensor of a parameter in file layout (weights transposed to `[outputs, inputs]`).
pub fn param_tensor(name: &str, kind: ParamKind, value: &Array2<f32>) -> NamedTensor {
    match kind {
        ParamKind::Weight => NamedTensor {
            name: name.to_string(),
            shape: vec![value.ncols(), value.nrows()],
            data: value.t().iter().copied().collect(),
        },
        ParamKind::Bias | ParamKind::Slope => NamedTensor {
            name: name.to_string(),
            shape: vec![value.len()],
            data: value.iter().copied().collect(),
        },
    }
}

/// The tensors of a trained model.
pub fn model_tensors(graph: &Graph, params: &[Array2<f32>], normalization: &Normalization) -> Vec<NamedTensor> {
    let mut out: Vec<NamedTensor> = graph
        .params
        .iter()
        .zip(params)
        .map(|(p, v)| param_tensor(&p.name, p.kind, v))
        .collect();
    out.push(NamedTensor {
        name: "input.shift".to_string(),
        shape: vec![normalization.shift.len()],
        data: normalization.shift.clone(),
    });
    out.push(NamedTensor {
        name: "input.scale".to_string(),
        shape: vec![normalization.scale.len()],
        data: normalization.scale.clone(),
    });
    out
}

/// Reads a parameter back from file layout into the interpreter's layout, checking its shape.
pub fn param_from(
    tensors: &Tensors,
    name: &str,
    kind: ParamKind,
    rows: usize,
    cols: usize,
    path: &Path,
) -> Result<Array2<f32>, Box<Diagnostic>> {
    let t = tensors.get(name).ok_or_else(|| {
        Diagnostic::general(
            Code::BadWeights,
            format!("`{}` has no tensor `{name}`, which the spec needs", path.display()),
        )
        .in_file(path)
        .with_hint("use the weights trained from this spec (layer names and kinds must match)")
    })?;
    let expected = match kind {
        ParamKind::Weight => vec![cols, rows],
        ParamKind::Bias | ParamKind::Slope => vec![cols],
    };
    if t.shape != expected {
        return Err(Diagnostic::general(
            Code::BadWeights,
            format!(
                "tensor `{name}` in `{}` has shape {:?}, but the spec needs {:?}",
                path.display(),
                t.shape,
                expected
            ),
        )
        .in_file(path)
        .with_hint("the layer widths of the spec differ from the ones these weights were trained with")
        .into());
    }
    if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
        return Err(Diagnostic::general(
            Code::BadWeights,
            format!(
                "tensor `{name}` in `{}` holds a non-finite value at element {i}",
                path.display()
            ),
        )
        .in_file(path)
        .with_hint("these weights come from a diverged run; retrain with a lower learning rate")
        .into());
    }
    Ok(match kind {
        ParamKind::Weight => Array2::from_shape_vec((cols, rows), t.data.clone())
            .expect("shape checked")
            .reversed_axes()
            .as_standard_layout()
            .to_owned(),
        ParamKind::Bias | ParamKind::Slope => Array2::from_shape_vec((1, cols), t.data.clone()).expect("shape checked"),
    })
}

/// Loads a weights file for a graph: every parameter and the normalization, checked by name and
/// shape; tensors the spec does not know are refused.
pub fn load_model(graph: &Graph, path: &Path) -> Result<(Vec<Array2<f32>>, Normalization), Box<Diagnostic>> {
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostic::general(
            Code::FileUnreadable,
            format!("cannot read weights `{}`: {e}", path.display()),
        )
        .in_file(path)
        .with_hint("check the --weights path")
    })?;
    let (tensors, _) = decode(&bytes, path)?;
    let mut params = Vec::new();
    let mut known: Vec<&str> = vec!["input.shift", "input.scale"];
    for p in &graph.params {
        params.push(param_from(&tensors, &p.name, p.kind, p.rows, p.cols, path)?);
        known.push(&p.name);
    }
    if let Some(extra) = tensors.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Diagnostic::general(
            Code::BadWeights,
            format!(
                "`{}` has a tensor `{extra}` that the spec has no place for",
                path.display()
            ),
        )
        .in_file(path)
        .with_hint("use the weights trained from this spec (layer names and kinds must match)")
        .into());
    }
    let vector = |name: &str| -> Result<Vec<f32>, Box<Diagnostic>> {
        let t = tensors.get(name).ok_or_else(|| {
            Diagnostic::general(Code::BadWeights, format!("`{}` has no tensor `{name}`", path.display()))
                .in_file(path)
                .with_hint("use a weights file written by `netc train`")
        })?;
        if t.shape != [graph.input_width] {
            return Err(Diagnostic::general(
                Code::BadWeights,
                format!(
                    "tensor `{name}` in `{}` has shape {:?}, but the input is {} wide",
                    path.display(),
                    t.shape,
                    graph.input_width
                ),
            )
            .in_file(path)
            .with_hint("the spec's input width differs from the one these weights were trained with")
            .into());
        }
        Ok(t.data.clone())
    };
    let normalization = Normalization {
        shift: vector("input.shift")?,
        scale: vector("input.scale")?,
    };
    Ok((params, normalization))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_deterministic_and_readable_by_the_safetensors_crate() {
        let tensors = vec![
            NamedTensor {
                name: "b".into(),
                shape: vec![2],
                data: vec![1.0, 2.0],
            },
            NamedTensor {
                name: "a".into(),
                shape: vec![1, 3],
                data: vec![3.0, 4.0, 5.0],
            },
        ];
        let meta: BTreeMap<String, String> = [("z", "1"), ("format", "pt"), ("m", "x")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let bytes = encode(&tensors, meta.clone());
        assert_eq!(bytes, encode(&tensors, meta.clone()));
        let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        assert_eq!(header_len % 8, 0);
        let (decoded, decoded_meta) = decode(&bytes, Path::new("t.safetensors")).expect("valid");
        assert_eq!(decoded_meta, meta);
        assert_eq!(decoded["a"].data, vec![3.0, 4.0, 5.0]);
        assert_eq!(decoded["b"].shape, vec![2]);
    }
}
