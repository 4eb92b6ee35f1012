//! Tensor shapes: a short list of dimensions whose first may be the symbolic batch.

use std::fmt;

/// One dimension of a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    /// As many as samples in the batch (known only when a batch is set).
    Batch,
    /// A fixed size.
    Fixed(usize),
}

/// The most dimensions a shape has: `[batch, channels, height, width]`.
pub const MAX_RANK: usize = 4;

/// A tensor shape of rank 1 to [`MAX_RANK`]. Only the first dimension may be [`Dim::Batch`].
///
/// Kernels see every tensor as a matrix: [`Shape::rows`] is the first dimension and
/// [`Shape::cols`] the product of the others (row-major, so `[batch, c, h, w]` is `[batch, c*h*w]`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    rank: u8,
    dims: [Dim; MAX_RANK],
}

impl Shape {
    /// A shape from its dimensions. Panics on a rank of 0 or above [`MAX_RANK`], or a batch
    /// dimension that is not the first: shapes are built by netc's own stages, never from input.
    pub fn new(dims: &[Dim]) -> Shape {
        assert!((1..=MAX_RANK).contains(&dims.len()), "shapes have rank 1 to {MAX_RANK}");
        assert!(
            dims.iter().skip(1).all(|d| matches!(d, Dim::Fixed(_))),
            "only the first dimension is the batch"
        );
        let mut all = [Dim::Fixed(1); MAX_RANK];
        all[..dims.len()].copy_from_slice(dims);
        Shape {
            rank: dims.len() as u8,
            dims: all,
        }
    }

    /// `[batch, features...]`: one sample of shape `sample` per batch row.
    pub fn per_sample(sample: &[usize]) -> Shape {
        let mut dims = vec![Dim::Batch];
        dims.extend(sample.iter().map(|&n| Dim::Fixed(n)));
        Shape::new(&dims)
    }

    /// `[batch, cols]`.
    pub fn batch(cols: usize) -> Shape {
        Shape::new(&[Dim::Batch, Dim::Fixed(cols)])
    }

    /// `[rows, cols]`.
    pub fn fixed(rows: usize, cols: usize) -> Shape {
        Shape::new(&[Dim::Fixed(rows), Dim::Fixed(cols)])
    }

    /// `[1, 1]`.
    pub fn scalar() -> Shape {
        Shape::fixed(1, 1)
    }

    /// The dimensions.
    pub fn dims(&self) -> &[Dim] {
        &self.dims[..self.rank as usize]
    }

    /// The sizes after the first dimension (one sample's shape, for a batched tensor).
    pub fn sample(&self) -> Vec<usize> {
        self.dims()
            .iter()
            .skip(1)
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Batch => unreachable!("only the first dimension is the batch"),
            })
            .collect()
    }

    /// The first dimension: the matrix view's rows.
    pub fn rows(&self) -> Dim {
        self.dims[0]
    }

    /// The product of the dimensions after the first: the matrix view's columns (1 for rank 1).
    pub fn cols(&self) -> usize {
        self.sample().iter().product()
    }

    /// Rows for a given batch size.
    pub fn rows_for(&self, batch: usize) -> usize {
        match self.rows() {
            Dim::Batch => batch,
            Dim::Fixed(n) => n,
        }
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self
            .dims()
            .iter()
            .map(|d| match d {
                Dim::Batch => "batch".to_string(),
                Dim::Fixed(n) => n.to_string(),
            })
            .collect();
        write!(f, "[{}]", dims.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_batches_are_matrices_of_samples() {
        let s = Shape::per_sample(&[1, 28, 28]);
        assert_eq!(s.rows(), Dim::Batch);
        assert_eq!(s.cols(), 784);
        assert_eq!(s.rows_for(64), 64);
        assert_eq!(format!("{s:?}"), "[batch, 1, 28, 28]");
        assert_eq!(Shape::fixed(3, 5).rows_for(64), 3);
        assert_eq!(Shape::batch(10).sample(), vec![10]);
    }

    #[test]
    #[should_panic(expected = "only the first dimension is the batch")]
    fn a_batch_inside_a_shape_is_a_bug() {
        Shape::new(&[Dim::Fixed(2), Dim::Batch]);
    }
}
