//! The token bucket behind every rate limit.

use crate::seam::Millis;

/// A token bucket counted in thousandths of a token and refilled from the
/// clock reading the caller passes in. `charge` may take it below zero: a
/// reader that learns its cost only after a read then waits until the debt
/// is repaid, so the average rate holds whatever the size of each read.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    /// Tokens per second, which is thousandths of a token per millisecond.
    rate: u64,
    /// The most the bucket holds, in thousandths of a token.
    capacity_milli: i64,
    level_milli: i64,
    updated: Millis,
}

impl Bucket {
    /// A full bucket of `rate` tokens per second holding at most `burst`
    /// tokens (0: one second's worth). `None` when `rate` is 0: no limit.
    pub(crate) fn new(rate: u32, burst: u32, now: Millis) -> Option<Self> {
        if rate == 0 {
            return None;
        }
        let burst = if burst == 0 { rate } else { burst };
        let capacity_milli = i64::from(burst) * 1000;
        Some(Self { rate: u64::from(rate), capacity_milli, level_milli: capacity_milli, updated: now })
    }

    fn refill(&mut self, now: Millis) {
        let elapsed = now.saturating_sub(self.updated);
        self.updated = self.updated.max(now);
        let added = i64::try_from(elapsed.saturating_mul(self.rate)).unwrap_or(i64::MAX);
        self.level_milli = self.level_milli.saturating_add(added).min(self.capacity_milli);
    }

    /// Takes `tokens` if the bucket holds them.
    pub(crate) fn try_take(&mut self, tokens: u64, now: Millis) -> bool {
        self.refill(now);
        let cost = milli(tokens);
        if self.level_milli >= cost {
            self.level_milli -= cost;
            true
        } else {
            false
        }
    }

    /// Takes `tokens`, going into debt if the bucket does not hold them.
    pub(crate) fn charge(&mut self, tokens: u64, now: Millis) {
        self.refill(now);
        self.level_milli = self.level_milli.saturating_sub(milli(tokens));
    }

    /// When the debt will be repaid; `None` if the bucket is not in debt.
    pub(crate) fn repaid_at(&mut self, now: Millis) -> Option<Millis> {
        self.refill(now);
        (self.level_milli < 0).then(|| now.saturating_add(self.level_milli.unsigned_abs().div_ceil(self.rate)))
    }

    /// Whether the bucket is full: it then behaves as a new one, and can be forgotten.
    pub(crate) fn is_full(&mut self, now: Millis) -> bool {
        self.refill(now);
        self.level_milli >= self.capacity_milli
    }

    /// Milliseconds an empty bucket takes to fill.
    pub(crate) fn fill_ms(&self) -> Millis {
        self.capacity_milli.unsigned_abs().div_ceil(self.rate)
    }
}

fn milli(tokens: u64) -> i64 {
    i64::try_from(tokens.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::Bucket;

    fn bucket(rate: u32, burst: u32) -> Bucket {
        Bucket::new(rate, burst, 0).expect("a rate above 0 makes a bucket")
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        assert!(Bucket::new(0, 10, 0).is_none());
    }

    #[test]
    fn the_burst_is_granted_at_once_then_the_rate() {
        let mut b = bucket(10, 3);
        assert!((0..3).all(|_| b.try_take(1, 0)));
        assert!(!b.try_take(1, 0), "the burst is spent");
        assert!(!b.try_take(1, 99), "a tenth of a second has not refilled a token");
        assert!(b.try_take(1, 100));
        assert!(!b.try_take(1, 100));
    }

    #[test]
    fn a_burst_of_zero_means_one_seconds_worth() {
        let mut b = bucket(5, 0);
        assert_eq!((0..10).filter(|_| b.try_take(1, 0)).count(), 5);
    }

    #[test]
    fn refill_stops_at_the_burst() {
        let mut b = bucket(10, 2);
        assert!(b.try_take(2, 0));
        assert!(b.is_full(1_000_000));
        assert_eq!((0..5).filter(|_| b.try_take(1, 1_000_000)).count(), 2);
    }

    #[test]
    fn a_debt_is_repaid_at_the_rate() {
        let mut b = bucket(1000, 1000);
        assert_eq!(b.repaid_at(0), None);
        b.charge(3000, 0);
        // 2,000 tokens of debt at 1,000 per second: two seconds.
        assert_eq!(b.repaid_at(0), Some(2000));
        assert_eq!(b.repaid_at(1500), Some(2000));
        assert_eq!(b.repaid_at(2000), None);
    }

    #[test]
    fn a_bucket_fills_in_burst_over_rate() {
        assert_eq!(bucket(4, 10).fill_ms(), 2500);
    }

    #[test]
    fn a_clock_reading_from_the_past_does_not_refill() {
        let mut b = bucket(10, 1);
        assert!(b.try_take(1, 500));
        assert!(!b.try_take(1, 400));
    }
}
