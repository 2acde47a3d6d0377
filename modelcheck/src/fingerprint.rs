//! The fingerprint of a state: what the explorer recognises states by.

use std::hash::{Hash, Hasher};
use std::time::Instant;

use acm_engine::device::SessionState;

use crate::world::{Known, World};

impl World {
    /// A fingerprint of the state: what the properties and the future depend on, with times
    /// relative to now. Two states with the same fingerprint are taken as the same.
    pub fn fingerprint(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        let rel = |t: Instant| -> i128 {
            if t >= self.now {
                t.duration_since(self.now).as_nanos() as i128
            } else {
                -(self.now.duration_since(t).as_nanos() as i128)
            }
        };
        (
            &self.creates,
            self.sends,
            self.losses,
            self.advances,
            &self.last_token,
        )
            .hash(&mut h);
        for (d, device) in self.devices.iter().enumerate() {
            device.pending_requests().hash(&mut h);
            device.session_count().hash(&mut h);
            for (id, s) in &self.sessions[d] {
                (id, s.peer, s.destroyed).hash(&mut h);
                device.session_state(*id).map(state_key).hash(&mut h);
                if let Known::Connecting { at, .. } = s.known {
                    rel(at).hash(&mut h);
                }
                if let Known::Connected { announced, .. } = s.known {
                    announced.hash(&mut h);
                }
            }
            for r in &self.routed[d] {
                (r.number, r.token, r.from, r.wire, r.channel, rel(r.at)).hash(&mut h);
            }
        }
        for wire in &self.wires {
            wire.lost.hash(&mut h);
            for end in &wire.ends {
                let engine = &self.devices[end.device];
                (
                    engine.is_up(end.link),
                    engine.is_closed(end.link),
                    engine.is_finished(end.link),
                    engine.poll_timeout(end.link).map(rel),
                    engine.link(end.link).map(|l| l.session_count()),
                    engine.link(end.link).map(|l| l.reassembly_bytes()),
                )
                    .hash(&mut h);
                (&end.queue, end.sent_close, end.got_close, &end.done).hash(&mut h);
                (end.eof_sent, &end.seen, rel(end.last_rx), rel(end.last_tx)).hash(&mut h);
                if let Some(rewriter) = &end.rewriter {
                    format!("{rewriter:?}").hash(&mut h);
                }
            }
        }
        (&self.requests, &self.sent, &self.causes, &self.exempt).hash(&mut h);
        h.finish()
    }
}

fn state_key(state: SessionState) -> (u8, u64, u32) {
    match state {
        SessionState::Idle => (0, 0, 0),
        SessionState::Connecting { link, channel } => (1, link.get(), channel),
        SessionState::Connected { link, channel } => (2, link.get(), channel),
    }
}
