//! Deterministic random numbers, independent of any crate's version.
//!
//! Everything random in training (initial weights, shuffling, dropout masks) is a pure function
//! of the seed and a position: `hash(seed, stream, index)`. A run can therefore be resumed at any
//! step, and any backend can reproduce the interpreter's dropout masks exactly.

/// SplitMix64's finalizer: a bijective mix of 64 bits.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit hash of a seed, a stream id and an index.
pub fn hash(seed: u64, stream: u64, index: u64) -> u64 {
    mix(mix(mix(seed) ^ stream) ^ index)
}

/// A uniform number in [0, 1) from a hash (24 bits, exactly representable in f32).
pub fn unit_f32(h: u64) -> f32 {
    (h >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// A uniform number in [0, 1) from a hash (53 bits).
pub fn unit_f64(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A sequential generator over one stream.
#[derive(Debug, Clone)]
pub struct Rng {
    seed: u64,
    stream: u64,
    counter: u64,
}

impl Rng {
    /// The generator for `stream` under `seed`.
    pub fn new(seed: u64, stream: u64) -> Rng {
        Rng {
            seed,
            stream,
            counter: 0,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let h = hash(self.seed, self.stream, self.counter);
        self.counter += 1;
        h
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        unit_f64(self.next_u64())
    }

    /// Standard normal (Box-Muller; one draw per call, so the stream stays position-addressed).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Uniform integer in `0..n` (n > 0), without modulo bias worth measuring for n < 2^32.
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Shuffles a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// Stream ids, so that different uses of one seed never share random numbers.
pub mod streams {
    /// Initial weights: `INIT + parameter index`.
    pub const INIT: u64 = 1 << 32;
    /// Epoch shuffles: `SHUFFLE + epoch`.
    pub const SHUFFLE: u64 = 2 << 32;
    /// Dropout masks: `DROPOUT + layer index`, indexed by global step and element.
    pub const DROPOUT: u64 = 3 << 32;
    /// Augmentation of training images: `AUGMENT + epoch`, indexed by the sample's row.
    pub const AUGMENT: u64 = 4 << 32;
}

/// Whether dropout keeps element `index` of a layer's output at `step`: a pure function, so
/// every backend draws the same mask.
pub fn dropout_keep(seed: u64, layer: usize, step: u64, index: u64, rate: f32) -> bool {
    let h = hash(
        seed ^ step.wrapping_mul(0xD6E8_FEB8_6659_FD93),
        streams::DROPOUT + layer as u64,
        index,
    );
    unit_f32(h) >= rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_and_normal_have_the_right_moments() {
        let mut rng = Rng::new(7, 0);
        let n = 200_000;
        let (mut sum, mut sum_sq) = (0.0, 0.0);
        for _ in 0..n {
            let x = rng.normal();
            sum += x;
            sum_sq += x * x;
        }
        let mean = sum / n as f64;
        let var = sum_sq / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        let u: f64 = (0..n).map(|_| rng.uniform()).sum::<f64>() / n as f64;
        assert!((u - 0.5).abs() < 0.005);
    }

    #[test]
    fn dropout_keeps_about_one_minus_rate() {
        let kept = (0..100_000u64).filter(|&i| dropout_keep(1, 2, 3, i, 0.3)).count();
        assert!((kept as f64 / 100_000.0 - 0.7).abs() < 0.01);
    }

    #[test]
    fn shuffle_is_a_permutation_and_seeded() {
        let mut a: Vec<usize> = (0..100).collect();
        let mut b = a.clone();
        Rng::new(1, 2).shuffle(&mut a);
        Rng::new(1, 2).shuffle(&mut b);
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(a, (0..100).collect::<Vec<_>>());
    }
}
