//! The progress meter `acm send` and `acm listen` print: a line for people on stderr, redrawn
//! in place, or JSON progress objects.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::Out;

/// A progress line for people (on stderr, redrawn in place) or JSON progress objects.
#[derive(Debug)]
pub struct Meter {
    out: Out,
    direction: &'static str,
    name: String,
    total: u64,
    /// Bytes already there when the meter started (a resume): not counted in the rate.
    from: u64,
    start: Instant,
    last: Option<Instant>,
    drawn: bool,
    /// Whether the line at 100 % has been printed: it is printed once, and nothing after it.
    ended: bool,
}

/// How often the meter redraws at most.
const REDRAW: Duration = Duration::from_millis(200);

impl Meter {
    /// A meter for `name`, `direction` being "sending" or "receiving".
    pub fn new(out: Out, direction: &'static str, name: &str, total: u64) -> Self {
        Self {
            out,
            direction,
            name: name.to_string(),
            total,
            from: 0,
            start: Instant::now(),
            last: None,
            drawn: false,
            ended: false,
        }
    }

    /// Counts from `from` bytes already in place (a resume).
    pub fn resuming_at(mut self, from: u64) -> Self {
        self.from = from;
        self
    }

    /// `done` bytes of the total have moved. The line at 100 % is never skipped, and printed
    /// once: updates after it print nothing.
    pub fn update(&mut self, done: u64) {
        let now = Instant::now();
        let finished = done >= self.total;
        if self.ended || (!finished && self.last.is_some_and(|last| now - last < REDRAW)) {
            return;
        }
        self.last = Some(now);
        self.ended = finished;
        let elapsed = (now - self.start).as_secs_f64().max(1e-3);
        let rate = done.saturating_sub(self.from) as f64 / elapsed;
        let eta = if finished {
            0.0
        } else if rate > 0.0 {
            (self.total.saturating_sub(done)) as f64 / rate
        } else {
            f64::INFINITY
        };
        if self.out.json {
            self.out.line(
                "progress",
                json!({
                    "direction": self.direction,
                    "name": self.name,
                    "bytes": done,
                    "total": self.total,
                    "bytes_per_second": rate.round(),
                    "eta_seconds": if eta.is_finite() { Some(eta.ceil()) } else { None },
                }),
                String::new,
            );
            return;
        }
        let percent = percent(done, self.total);
        let eta = if eta.is_finite() {
            format!("{:.0}s", eta.ceil())
        } else {
            "?".into()
        };
        self.drawn = !finished;
        eprint!(
            "\r{} {}: {} / {} ({percent}%), {}/s, ETA {eta}   {}",
            self.direction,
            self.name,
            size(done),
            size(self.total),
            size(rate as u64),
            if finished { "\n" } else { "" }
        );
    }

    /// Every byte is in place: prints the line at 100 %, unless it was printed already. A
    /// transfer that moved no byte (an empty file, or one the receiver held whole) gets its
    /// line here, and so does one whose last report never came.
    pub fn complete(&mut self) {
        self.update(self.total);
    }

    /// Ends the line of a meter cut short.
    pub fn abandon(&mut self) {
        if !self.out.json && self.drawn {
            eprintln!();
        }
        self.drawn = false;
    }
}

/// How far `done` bytes of `total` are, in whole percent rounded down: 100 is the end, never
/// 99.6 % of the way.
fn percent(done: u64, total: u64) -> u128 {
    if done >= total {
        100
    } else {
        u128::from(done) * 100 / u128::from(total)
    }
}

/// Bytes for people.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_says_100_percent_only_at_the_end() {
        assert_eq!(percent(0, 0), 100);
        assert_eq!(percent(0, 1), 0);
        assert_eq!(percent((256 << 20) - (64 << 10), 256 << 20), 99);
        assert_eq!(percent(u64::MAX - 1, u64::MAX), 99);
        assert_eq!(percent(256 << 20, 256 << 20), 100);
    }
}
