//! Timing: warm-up, then samples of ours and the baseline taken in turn, so that both see the
//! same machine load, and the statistics of the pairs.

use std::time::{Duration, Instant};

/// How long to sample.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Rounds run and thrown away before sampling.
    pub warmup: usize,
    /// Pairs of samples (ours, baseline).
    pub samples: usize,
    /// How long one sample should take at least; the operation is repeated until it does.
    pub sample_time: Duration,
}

impl Plan {
    /// The full run.
    pub fn full() -> Self {
        Self {
            warmup: 3,
            samples: 41,
            sample_time: Duration::from_millis(60),
        }
    }

    /// A smoke run: the code paths, not the numbers.
    pub fn quick() -> Self {
        Self {
            warmup: 1,
            samples: 3,
            sample_time: Duration::from_millis(2),
        }
    }
}

/// The paired samples of one measure: seconds per operation.
#[derive(Debug, Clone)]
pub struct Pairs {
    /// Ours, seconds per operation, one per sample.
    pub ours: Vec<f64>,
    /// The baseline, seconds per operation, one per sample.
    pub baseline: Vec<f64>,
}

impl Pairs {
    /// The median of ours, in seconds per operation.
    pub fn ours_median(&self) -> f64 {
        median(&self.ours)
    }

    /// The median of the baseline, in seconds per operation.
    pub fn baseline_median(&self) -> f64 {
        median(&self.baseline)
    }

    /// The ratios ours / baseline of each pair of samples, sorted.
    pub fn ratios(&self) -> Vec<f64> {
        let mut ratios: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.baseline)
            .map(|(o, b)| o / b)
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios
    }

    /// The median ratio of time per operation, ours / baseline, with its 10th and 90th
    /// percentiles.
    pub fn time_ratio(&self) -> Spread {
        Spread::of(&self.ratios())
    }
}

/// A median and the spread around it.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// The median.
    pub median: f64,
    /// The 10th percentile.
    pub low: f64,
    /// The 90th percentile.
    pub high: f64,
}

impl Spread {
    /// The statistics of `sorted` (ascending, not empty).
    pub fn of(sorted: &[f64]) -> Self {
        Self {
            median: percentile(sorted, 0.5),
            low: percentile(sorted, 0.1),
            high: percentile(sorted, 0.9),
        }
    }

    /// A figure known exactly: no spread.
    pub fn exact(value: f64) -> Self {
        Self {
            median: value,
            low: value,
            high: value,
        }
    }

    /// The spread of the inverse: for turning a ratio of times into a ratio of throughputs.
    pub fn inverse(self) -> Self {
        Self {
            median: 1.0 / self.median,
            low: 1.0 / self.high,
            high: 1.0 / self.low,
        }
    }
}

/// The median of `values` (not empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 0.5)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let weight = rank - lo as f64;
    sorted[lo] * (1.0 - weight) + sorted[hi] * weight
}

/// The repetitions that fill a sample, given that `reps` of them (of both operations, with
/// their set-up) took `wall`; `None` while that was too short to tell.
fn scaled(plan: Plan, reps: u64, wall: Duration) -> Option<u64> {
    let goal = plan.sample_time.as_secs_f64();
    if wall.as_secs_f64() < goal / 4.0 && reps < 1 << 30 {
        return None;
    }
    Some(((reps as f64 * goal / wall.as_secs_f64().max(1e-9)).ceil() as u64).max(1))
}

/// Samples two synchronous operations in turn. Each closure runs its operation as many times
/// as it is told and returns the time that counts (so that set-up can be left out of it).
pub fn pairs_sync(
    plan: Plan,
    mut ours: impl FnMut(u64) -> Duration,
    mut baseline: impl FnMut(u64) -> Duration,
) -> Pairs {
    // The closures never wait, so the futures below finish on their first poll; the runtime
    // only drives them, and all the timing happens inside the closures.
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
        .block_on(pairs_async(
            plan,
            async |reps| ours(reps),
            async |reps| baseline(reps),
        ))
}

/// Samples two asynchronous operations in turn: first warm-up and calibration, which finds how
/// many repetitions of both fill `sample_time` of wall-clock time (set-up included), then
/// `samples` pairs, alternating which of the two goes first so that neither always follows
/// the other. Each closure runs its operation as many times as it is told and returns the time
/// that counts.
pub async fn pairs_async(
    plan: Plan,
    mut ours: impl AsyncFnMut(u64) -> Duration,
    mut baseline: impl AsyncFnMut(u64) -> Duration,
) -> Pairs {
    for _ in 0..plan.warmup {
        ours(1).await;
        baseline(1).await;
    }
    let mut reps = 1u64;
    loop {
        let start = Instant::now();
        ours(reps).await;
        baseline(reps).await;
        if let Some(scaled) = scaled(plan, reps, start.elapsed()) {
            reps = scaled;
            break;
        }
        reps = reps.saturating_mul(4);
    }
    let mut pairs = Pairs {
        ours: Vec::with_capacity(plan.samples),
        baseline: Vec::with_capacity(plan.samples),
    };
    let per_op = |took: Duration| took.as_secs_f64() / reps as f64;
    for sample in 0..plan.samples {
        if sample % 2 == 0 {
            pairs.ours.push(per_op(ours(reps).await));
            pairs.baseline.push(per_op(baseline(reps).await));
        } else {
            pairs.baseline.push(per_op(baseline(reps).await));
            pairs.ours.push(per_op(ours(reps).await));
        }
    }
    pairs
}

/// Runs `f` `reps` times and returns the time it took in all.
pub fn repeat(reps: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    start.elapsed()
}
