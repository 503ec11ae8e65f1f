//! The reconnection delay: jittered exponential backoff that never gives up.
//!
//! Policy (why): after the `n`-th consecutive failed connection attempt the next one may start after
//! `d = min(max, min_delay * 2^(n-1))`, drawn uniformly from `[d/2, d]` ("equal jitter"). Doubling
//! keeps a dead broker from being hammered; the cap (default 5 s) bounds how long a recovered broker
//! goes unnoticed; the jitter spreads the reconnects of many workers after a broker restart so they
//! do not arrive in one burst. There is no attempt limit: a worker waits for its broker for as long
//! as it runs. Publishers never sleep on it: while the delay runs they fail at once with
//! `ErrorKind::Unavailable` (the API answers 503), and the first publish after it tries again.

use rand::Rng;
use std::time::Duration;

/// The delay before the next attempt after `failures` consecutive failures (`failures >= 1`).
pub(crate) fn reconnect_delay(failures: u32, min: Duration, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let ceiling = min.saturating_mul(1u32 << exponent).min(max).max(min);
    let half = ceiling / 2;
    let jitter_ns = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
    let extra = if jitter_ns == 0 {
        0
    } else {
        rand::rng().random_range(0..=jitter_ns)
    };
    half + Duration::from_nanos(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let min = Duration::from_millis(200);
        let max = Duration::from_secs(5);
        for _ in 0..200 {
            let first = reconnect_delay(1, min, max);
            assert!(
                first >= Duration::from_millis(100) && first <= min,
                "{first:?}"
            );
            let third = reconnect_delay(3, min, max);
            assert!(
                third >= Duration::from_millis(400) && third <= Duration::from_millis(800),
                "{third:?}"
            );
            let late = reconnect_delay(1000, min, max);
            assert!(late >= max / 2 && late <= max, "{late:?}");
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let min = Duration::from_millis(200);
        let max = Duration::from_secs(5);
        let delays: std::collections::HashSet<_> =
            (0..50).map(|_| reconnect_delay(4, min, max)).collect();
        assert!(delays.len() > 10, "jitter must vary the delay");
    }
}
