//! `--rate N/s`: a token bucket over page jobs. Bursts up to one second's worth, then paces.

use tokio::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `per_second` > 0; the bucket starts full.
    pub fn new(per_second: f64) -> Self {
        let capacity = per_second.max(1.0);
        RateLimiter {
            per_second,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// Wait until one more job may go.
    pub async fn acquire(&mut self) {
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
            self.last = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            let wait = (1.0 - self.tokens) / self.per_second;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

/// Parse `N/s` or `N` (jobs per second, > 0).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s.trim().strip_suffix("/s").unwrap_or(s.trim());
    match n.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a rate like `50/s`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paces_after_the_burst() {
        let mut r = RateLimiter::new(40.0);
        let start = Instant::now();
        for _ in 0..60 {
            r.acquire().await;
        }
        // 40 at once, then 20 more at 40/s: half a second.
        let took = start.elapsed().as_secs_f64();
        assert!((0.45..=1.5).contains(&took), "{took}");
    }

    #[test]
    fn parses_rates() {
        assert_eq!(parse_rate("50/s"), Ok(50.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0/s", "-1", "fast", "inf"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
