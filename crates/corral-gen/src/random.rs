//! The random choices: splitmix64 streams keyed by (seed, stream, index), so
//! that every record draws on its own, whatever comes before it, and the
//! skewed draws built on them (integer weights and Zipf ranks, the
//! heavy-tailed activity that picks who performs an event, days denser
//! towards the end of a span). Every draw is integer arithmetic or exactly
//! rounded IEEE operations, so a seed makes the same choices on every
//! platform and in every version.

use crate::tables::GROWTH;

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever.
pub(crate) struct Rng(u64);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of (seed, stream, index): the root of every independent draw.
fn key(seed: u64, stream: u64, index: u64) -> u64 {
    mix(mix(seed ^ stream.wrapping_mul(GOLDEN)).wrapping_add(index.wrapping_mul(GOLDEN)) ^ stream)
}

impl Rng {
    pub(crate) fn new(seed: u64, stream: u64, index: u64) -> Self {
        Self(key(seed, stream, index))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (multiply-shift; the bias, n / 2^64, is immaterial).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `per_10000` / 10,000.
    pub(crate) fn chance(&mut self, per_10000: u64) -> bool {
        self.below(10_000) < per_10000
    }

    /// Uniform in [0, 1), 53 bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

pub(crate) const STREAM_SUBSCRIBER: u64 = 1;
pub(crate) const STREAM_DOMAIN: u64 = 2;
pub(crate) const STREAM_UNSUBSCRIBE: u64 = 3;
pub(crate) const STREAM_EVENTS: u64 = 4;
const STREAM_PERMUTATION: u64 = 5;

/// A discrete distribution over `0..n` from integer weights.
pub(crate) struct Weighted(Vec<u64>);

impl Weighted {
    pub(crate) fn new(weights: impl IntoIterator<Item = u64>) -> Self {
        let mut total = 0;
        Self(
            weights
                .into_iter()
                .map(|w| {
                    total += w;
                    total
                })
                .collect(),
        )
    }

    /// Zipf with exponent 1 over `n` ranks: weight ∝ 1/rank.
    pub(crate) fn zipf(n: usize) -> Self {
        Self::new((1..=n as u64).map(|rank| 1_000_000_000 / rank))
    }

    pub(crate) fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.below(*self.0.last().expect("a distribution has weights"));
        self.0.partition_point(|&c| c <= u)
    }
}

/// The activity model: which subscriber performs an event. The activity rank
/// x ∈ [0, 1] has density ∝ (x + X0)^-1.5, sampled by inverting its CDF,
/// which needs only `sqrt` and arithmetic (exactly rounded, so the same on
/// every platform); ranks map to subscriber indexes by an affine permutation.
pub(crate) struct Activity {
    n: u64,
    multiplier: u64,
    offset: u64,
    head: f64,
    span: f64,
}

const X0: f64 = 0.02;

impl Activity {
    pub(crate) fn new(n: u64, seed: u64) -> Self {
        let head = 1.0 / X0.sqrt();
        let tail = 1.0 / (1.0 + X0).sqrt();
        let n = n.max(1);
        let mut multiplier = (GOLDEN % n) | 1;
        while gcd(multiplier, n) != 1 {
            multiplier += 1;
        }
        Self {
            n,
            multiplier,
            offset: key(seed, STREAM_PERMUTATION, 0) % n,
            head,
            span: head - tail,
        }
    }

    pub(crate) fn sample(&self, rng: &mut Rng) -> u64 {
        let t = self.head - rng.unit() * self.span;
        let x = 1.0 / (t * t) - X0;
        let rank = ((x.max(0.0) * self.n as f64) as u64).min(self.n - 1);
        ((u128::from(rank) * u128::from(self.multiplier) + u128::from(self.offset))
            % u128::from(self.n)) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Days back from the end of a span of `days`: uniform, or (GROWTH% of the
/// time) the nearer of two draws, so recent days are denser.
pub(crate) fn skewed_recent(rng: &mut Rng, days: u64) -> u64 {
    let back = rng.below(days);
    if rng.below(100) < GROWTH {
        back.min(rng.below(days))
    } else {
        back
    }
}
