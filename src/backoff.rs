//! Doubling delays between attempts to reach a server, capped: a source
//! reconnecting to its primary, a shipper waiting for a primary that is not
//! up yet. Jitter keeps many shippers from retrying in step.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    jitter: bool,
    next: Duration,
    /// Attempts that waited since the last reset.
    pub attempt: u32,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            jitter: false,
            next: first,
            attempt: 0,
        }
    }

    /// A source reconnecting to its primary: 100 ms doubling to 10 s, with
    /// jitter.
    pub fn reconnect() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).with_jitter()
    }

    /// Adds up to half of each delay at random.
    pub fn with_jitter(mut self) -> Backoff {
        self.jitter = true;
        self
    }

    /// The delay before the next attempt; the one after is twice as long, up
    /// to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.attempt += 1;
        self.next = (self.next * 2).min(self.max);
        if self.jitter {
            base + Duration::from_millis(rand::random_range(0..=base.as_millis() as u64 / 2))
        } else {
            base
        }
    }

    /// After a success: the next failure waits the first delay again.
    pub fn reset(&mut self) {
        self.next = self.first;
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(b.attempt, 9);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn jitter_adds_at_most_half() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).with_jitter();
        for base in [100u64, 200, 400, 800] {
            let d = b.next_delay().as_millis() as u64;
            assert!((base..=base + base / 2).contains(&d), "{d} for {base}");
        }
    }
}
