//! Reconnect pacing: exponential back-off with jitter, forever. Pure, so it is tested without
//! clocks; the driver sleeps for what it returns.

use std::time::Duration;

/// Delays between reconnect attempts: `base`, doubling up to `max`, each shortened by up to
/// a quarter at random so that many devices cut off together do not reconnect in lockstep.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            max,
            attempt: 0,
            // xorshift needs a non-zero state.
            seed: seed | 1,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = full.mul_f64((self.seed % 1000) as f64 / 4000.0);
        full - jitter
    }

    /// A connection worked: start from `base` again next time.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_bounded_jitter_and_reset() {
        let (base, max) = (Duration::from_millis(500), Duration::from_secs(30));
        let mut b = Backoff::new(base, max, 42);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let full = (base * (1 << i)).min(max);
            assert!(
                *d <= full && *d >= full.mul_f64(0.75),
                "attempt {i}: {d:?} vs {full:?}"
            );
        }
        assert!(delays[11] >= max.mul_f64(0.75));
        b.reset();
        assert!(b.next_delay() <= base);
    }
}
