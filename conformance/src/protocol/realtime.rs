//! Handshakes on a real clock. Over the wire the suite's steps take real time, and the model
//! assumes every handshake timer (`SESS-5`) far: a step that ran long enough for one to fire
//! leaves the model behind through no fault of the implementation. Such a scenario is voided,
//! not judged, and the runner draws another in its place.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::model::{End, Model};
use super::transition::Chan;

/// The panic payload of a voided scenario: why it was voided.
#[derive(Debug)]
pub struct Voided(pub String);

impl fmt::Display for Voided {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "voided: {}", self.0)
    }
}

/// The handshakes under way and when each began, on the suite's clock.
#[derive(Debug, Default)]
pub struct Handshakes {
    /// The shortest handshake timer of either device; `None` on the suite's paused clock.
    limit: Option<Duration>,
    began: HashMap<Chan, Instant>,
    /// Why the scenario no longer follows the model, once a handshake outlived `limit`.
    overrun: Option<String>,
}

/// Whether `chan`'s handshake is under way on either side, so a timer runs for it.
fn under_way(ends: &[End; 2]) -> bool {
    ends.iter()
        .any(|end| matches!(end, End::Requested(_) | End::Incoming(_)))
}

impl Handshakes {
    /// Tracks the handshakes of an implementation whose shortest handshake timer is `limit`.
    pub fn new(limit: Option<Duration>) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Before a step: the handshakes `model` (the state after the step) has under way start
    /// their clocks now, unless they started earlier. Taken before the step's calls, the time
    /// is never later than the implementation's own start of the timer.
    pub fn before_step(&mut self, model: &Model) {
        if self.limit.is_none() {
            return;
        }
        let now = Instant::now();
        for (chan, state) in &model.chans {
            if under_way(&state.ends) {
                self.began.entry(*chan).or_insert(now);
            }
        }
    }

    /// After a step has settled: whether a handshake it saw under way (the step may have ended
    /// it) has run long enough for a timer to fire. Once one has, the scenario stays overrun.
    pub fn after_step(&mut self, model: &Model) {
        let Some(limit) = self.limit else { return };
        // The handshake under way the longest: the one that began first.
        if self.overrun.is_none()
            && let Some((chan, began)) = self.began.iter().min_by_key(|(_, began)| **began)
            && let lasted = began.elapsed()
            && lasted >= limit
        {
            self.overrun = Some(format!(
                "the handshake of channel {chan} was under way for {} ms, and a handshake \
                 timer of {} ms may have ended it; the model assumes none fires (use the \
                 specification's timers on slow transports)",
                lasted.as_millis(),
                limit.as_millis()
            ));
        }
        self.began.retain(|chan, _| {
            model
                .chans
                .get(chan)
                .is_some_and(|state| under_way(&state.ends))
        });
    }

    /// Why the scenario may rightly differ from the model, if it may.
    pub fn overrun(&self) -> Option<&str> {
        self.overrun.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::super::implementation::Side;
    use super::super::model::ChanState;
    use super::super::profile::NOTHING;
    use super::*;

    fn set_chan(model: &mut Model, chan: Chan, ends: [End; 2]) {
        let state = ChanState {
            requester: Side::A,
            service: 0,
            ghost: false,
            req_handle: 1,
            resp_handle: None,
            ends,
            handed: false,
            pending: true,
        };
        model.chans.insert(chan, state);
    }

    #[test]
    fn a_handshake_under_way_past_the_limit_overruns_the_scenario_for_good() {
        let mut model = Model::new(NOTHING);
        let mut handshakes = Handshakes::new(Some(Duration::from_millis(30)));
        set_chan(&mut model, 7, [End::Requested(10_000), End::Unseen]);
        handshakes.before_step(&model);
        handshakes.after_step(&model);
        assert_eq!(handshakes.overrun(), None, "too early");
        std::thread::sleep(Duration::from_millis(40));
        // The step that answered it still saw it under way.
        set_chan(&mut model, 7, [End::Connected, End::Connected]);
        handshakes.before_step(&model);
        handshakes.after_step(&model);
        let why = handshakes.overrun().expect("overrun");
        assert!(why.contains("channel 7"), "{why}");
        handshakes.before_step(&model);
        handshakes.after_step(&model);
        assert!(handshakes.overrun().is_some(), "it stays overrun");
    }

    #[test]
    fn ended_handshakes_and_paused_clocks_never_overrun() {
        let mut model = Model::new(NOTHING);
        let mut paused = Handshakes::new(None);
        let mut real = Handshakes::new(Some(Duration::from_millis(20)));
        set_chan(
            &mut model,
            3,
            [End::Requested(10_000), End::Incoming(20_000)],
        );
        for handshakes in [&mut paused, &mut real] {
            handshakes.before_step(&model);
        }
        set_chan(&mut model, 3, [End::Closed, End::Closed]);
        for handshakes in [&mut paused, &mut real] {
            handshakes.after_step(&model);
        }
        std::thread::sleep(Duration::from_millis(30));
        for handshakes in [&mut paused, &mut real] {
            handshakes.before_step(&model);
            handshakes.after_step(&model);
            assert_eq!(handshakes.overrun(), None);
        }
    }
}
