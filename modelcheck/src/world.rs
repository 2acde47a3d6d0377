//! The world of the model: the devices' real engines, the wires between them with the frames
//! in flight, the clock, and the model's own account of what the apps did and saw, which the
//! properties are checked against.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use acm_engine::EngineConfig;
use acm_engine::device::{DeviceEngine, LinkId, SessionId};
use acm_transport::Role;
use acm_wire::Control;
use acm_wire::pb::{self, CollaborateEventType, ConnectErrorCode, DisconnectReason};
use bytes::Bytes;

use crate::network::parse;
use crate::property::{Property, Violation, Witness};
use crate::step::{DEVICES, Step, Tamper};

mod apply;

/// The bundle of every app; one service, so that two sessions of a device with the same peer
/// are the same session for `SESS-3`.
pub(crate) const BUNDLE: &str = "com.example";
const SERVICE: &str = "chat";
/// The links' own largest frame: a message over 1024 bytes still fits one frame, and a
/// transfer of [`DATA_LEN`] bytes takes three fragments.
const LINK_MAX_FRAME: usize = 2048;
pub(crate) const DATA_LEN: usize = 4500;
pub(crate) const OVERLONG: usize = 1100;

/// A protocol mutant of the conformance suite, applied on the links of device 0.
#[cfg(feature = "mutants")]
pub type Mutation = acm_conformance::mutant::Mutation;
/// Without the `mutants` feature there is no mutant to apply.
#[cfg(not(feature = "mutants"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutation {}

#[cfg(feature = "mutants")]
type Rewriter = acm_conformance::mutant::FrameRewriter;
#[cfg(not(feature = "mutants"))]
#[derive(Debug)]
pub(crate) enum Rewriter {}

#[cfg(not(feature = "mutants"))]
impl Rewriter {
    fn new(mutation: Mutation) -> Self {
        match mutation {}
    }
    pub(crate) fn outgoing(&mut self, _: Bytes) -> Vec<Bytes> {
        match *self {}
    }
    pub(crate) fn incoming(&mut self, _: Bytes) -> Vec<Bytes> {
        match *self {}
    }
    pub(crate) fn take_held(&mut self) -> Option<Bytes> {
        match *self {}
    }
}

/// How far the model goes: its size and the most of each kind of step on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// 2 (one link) or 3 (two links: phone–tablet and tablet–watch).
    pub devices: usize,
    /// The most steps on a path (before the quiescence check).
    pub depth: usize,
    /// The most sessions each device's app creates (sessions accepted into are extra).
    pub sessions: usize,
    /// The most messages, transfers and events sent, in all.
    pub sends: usize,
    /// The most links lost.
    pub losses: usize,
    /// The most times the clock moves on.
    pub advances: usize,
    /// Whether the network may tamper with frames and apps replay tokens.
    pub hostile: bool,
    /// The mutant applied on device 0's links, if any.
    pub mutation: Option<Mutation>,
    /// Whether every new state is also checked once the network is quiet.
    pub settle: bool,
    /// Whether the links open in the exploration, their HELLOs in flight at the start
    /// (otherwise they are up before the first step).
    pub hellos: bool,
}

impl Bounds {
    /// The quick bound of `cargo test`: two devices, one session each.
    pub fn quick() -> Self {
        Self {
            devices: 2,
            depth: 7,
            sessions: 1,
            sends: 1,
            losses: 1,
            advances: 1,
            hostile: false,
            mutation: None,
            settle: true,
            hellos: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Known {
    Idle,
    Connecting {
        link: LinkId,
        channel: u32,
        /// When the request went out: its handshake timer runs from then.
        at: Instant,
        /// Its token number.
        token: u64,
    },
    Connected {
        link: LinkId,
        channel: u32,
        /// Whether the engine's `Connected` event has come.
        announced: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Session {
    pub(crate) peer: usize,
    pub(crate) known: Known,
    /// Destroyed while its request waited: gone for the app, its result still to come.
    pub(crate) destroyed: bool,
}

/// A request routed to an app, not answered by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Routed {
    pub(crate) number: u64,
    pub(crate) token: [u8; 16],
    pub(crate) from: usize,
    pub(crate) wire: usize,
    pub(crate) channel: u32,
    pub(crate) at: Instant,
}

/// What became of a request (by its token number), for `SESS-7`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct Request {
    /// The token number of the receiver's own request for the same session, waiting for its
    /// answer when this one arrived.
    pub(crate) crossed: Option<u64>,
    pub(crate) reached_app: bool,
    pub(crate) refused_exists: bool,
}

/// One end of a wire: a device's link, and the frames it sent that are in flight.
#[derive(Debug)]
pub(crate) struct End {
    pub(crate) device: usize,
    pub(crate) link: LinkId,
    pub(crate) queue: VecDeque<Bytes>,
    pub(crate) rewriter: Option<Rewriter>,
    pub(crate) sent_close: bool,
    pub(crate) got_close: bool,
    /// Channels this end sent DISCONNECT on.
    pub(crate) done: BTreeSet<u32>,
    /// Whether the end of the link was handed to the other end.
    pub(crate) eof_sent: bool,
    /// Tokens of the requests this end received.
    pub(crate) seen: BTreeSet<[u8; 16]>,
    pub(crate) last_rx: Instant,
    pub(crate) last_tx: Instant,
}

#[derive(Debug)]
pub(crate) struct Wire {
    pub(crate) ends: [End; 2],
    pub(crate) lost: bool,
}

/// What the step under way delivered.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Delivered {
    pub(crate) wire: usize,
    pub(crate) from: usize,
    pub(crate) disconnect: bool,
    pub(crate) channel: u32,
    pub(crate) replayed: bool,
    pub(crate) response: bool,
    pub(crate) tamper: Option<Tamper>,
}

/// What a device sent on a channel, by kind, in order, not yet seen arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Message,
    Data,
    Event,
}

/// The state of the model. See the crate docs.
#[derive(Debug)]
pub struct World {
    pub(crate) bounds: Bounds,
    /// When the links opened.
    pub(crate) start: Instant,
    pub(crate) now: Instant,
    pub(crate) devices: Vec<DeviceEngine>,
    pub(crate) wires: Vec<Wire>,
    pub(crate) sessions: Vec<BTreeMap<SessionId, Session>>,
    pub(crate) routed: Vec<Vec<Routed>>,
    pub(crate) requests: BTreeMap<u64, Request>,
    /// Each device's last token number, for a replay.
    pub(crate) last_token: Vec<Option<u64>>,
    pub(crate) next_token: u64,
    /// What each end sent on each channel: (wire, end, channel, kind).
    pub(crate) sent: BTreeMap<(usize, usize, u32, Kind), VecDeque<Bytes>>,
    /// Why an end's app ended a session: (wire, end, channel).
    pub(crate) causes: BTreeMap<(usize, usize, u32), DisconnectReason>,
    /// Channels whose errors the network provoked: (wire, end that reports them, channel).
    pub(crate) exempt: BTreeSet<(usize, usize, u32)>,
    pub(crate) creates: Vec<usize>,
    pub(crate) sends: usize,
    pub(crate) losses: usize,
    pub(crate) advances: usize,
    pub(crate) delivered: Option<Delivered>,
    /// The session an app is ending in the step under way: (device, link, channel, reason).
    pub(crate) ending: Option<(usize, LinkId, u32, DisconnectReason)>,
    /// The step under way.
    pub(crate) step: Option<Step>,
    /// The situations reached so far ([`Witness::bit`]).
    pub(crate) witnessed: u32,
}

/// The app of device `d`.
pub(crate) fn app(d: usize) -> pb::PeerInfo {
    pb::PeerInfo {
        device_id: DEVICES.get(d).copied().unwrap_or("?").into(),
        bundle_name: BUNDLE.into(),
        module_name: "entry".into(),
        ability_name: "EntryAbility".into(),
        service_name: SERVICE.into(),
    }
}

/// The token of number `n`.
pub(crate) fn token(n: u64) -> [u8; 16] {
    let mut token = [0u8; 16];
    token[8..].copy_from_slice(&n.to_be_bytes());
    token
}

pub(crate) fn token_number(token: &[u8]) -> u64 {
    token
        .get(8..16)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(u64::MAX, u64::from_be_bytes)
}

impl World {
    /// The first state: every link up (HELLOs exchanged), no session, nothing in flight.
    pub fn new(bounds: Bounds) -> Self {
        let now = Instant::now();
        let count = bounds.devices.clamp(2, DEVICES.len());
        let config = EngineConfig::default();
        let mut devices: Vec<DeviceEngine> = DEVICES[..count]
            .iter()
            .map(|name| DeviceEngine::new(*name, config))
            .collect();
        let pairs: &[(usize, usize)] = if count == 2 {
            &[(0, 1)]
        } else {
            &[(0, 1), (1, 2)]
        };
        let mut wires = Vec::new();
        for (i, &(a, b)) in pairs.iter().enumerate() {
            let nonce = [i as u8 + 1; 16];
            let end = |device: usize, devices: &mut Vec<DeviceEngine>, peer: usize, role| End {
                device,
                link: devices[device].add_link(now, role, DEVICES[peer], LINK_MAX_FRAME, nonce),
                queue: VecDeque::new(),
                rewriter: bounds.mutation.filter(|_| device == 0).map(Rewriter::new),
                sent_close: false,
                got_close: false,
                done: BTreeSet::new(),
                eof_sent: false,
                seen: BTreeSet::new(),
                last_rx: now,
                last_tx: now,
            };
            let dialer = end(a, &mut devices, b, Role::Dialer);
            let acceptor = end(b, &mut devices, a, Role::Acceptor);
            wires.push(Wire {
                ends: [dialer, acceptor],
                lost: false,
            });
        }
        let mut world = Self {
            bounds,
            start: now,
            now,
            devices,
            wires,
            sessions: vec![BTreeMap::new(); count],
            routed: vec![Vec::new(); count],
            requests: BTreeMap::new(),
            last_token: vec![None; count],
            next_token: 0,
            sent: BTreeMap::new(),
            causes: BTreeMap::new(),
            exempt: BTreeSet::new(),
            creates: vec![0; count],
            sends: 0,
            losses: 0,
            advances: 0,
            delivered: None,
            ending: None,
            step: None,
            witnessed: 0,
        };
        // The HELLOs: the links come up before the first step, unless the exploration opens
        // them.
        let hellos = bounds.hellos;
        let opened = world.drain().and_then(|()| {
            if hellos {
                return Ok(());
            }
            for wire in 0..world.wires.len() {
                for from in 0..2 {
                    while !world.wires[wire].ends[from].queue.is_empty() {
                        world.deliver(wire, from, None)?;
                    }
                }
            }
            world.collect()
        });
        debug_assert!(opened.is_ok(), "links come up: {opened:?}");
        world
    }

    /// The world after `steps` from the first state, or the first violation and the number
    /// of steps taken with it. A step that is not enabled where it comes is refused.
    pub fn replay(bounds: Bounds, steps: &[Step]) -> Result<Self, (usize, Violation)> {
        Self::replay_path(bounds, steps, true)
    }

    /// [`World::replay`], checking that each step is enabled only if `check` (the explorer's
    /// paths are).
    pub(crate) fn replay_path(
        bounds: Bounds,
        steps: &[Step],
        check: bool,
    ) -> Result<Self, (usize, Violation)> {
        let mut world = Self::new(bounds);
        for (i, step) in steps.iter().enumerate() {
            if check && !world.enabled().contains(step) {
                return Err((
                    i + 1,
                    Violation {
                        property: Property::OneResult,
                        detail: format!("step {} ({step}) is not possible here", i + 1),
                    },
                ));
            }
            world.apply(*step).map_err(|v| (i + 1, v))?;
        }
        Ok(world)
    }

    /// The model's clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The devices' engines.
    pub fn devices(&self) -> &[DeviceEngine] {
        &self.devices
    }

    /// The wire and end of `device`'s `link`.
    pub(crate) fn end_of(&self, device: usize, link: LinkId) -> Option<(usize, usize)> {
        self.wires.iter().enumerate().find_map(|(w, wire)| {
            wire.ends
                .iter()
                .position(|e| e.device == device && e.link == link)
                .map(|e| (w, e))
        })
    }

    /// How far ahead each deadline is, in milliseconds, of those later than now, earliest
    /// first: every link's next one, and every timer SPEC names that the model knows of (each
    /// waiting request's handshake and responder timers, each open link's silence), which a
    /// link's next deadline may hide behind an earlier one.
    pub(crate) fn deadlines(&self) -> BTreeSet<u64> {
        let config = EngineConfig::default();
        let links = self.wires.iter().flat_map(|w| &w.ends).flat_map(|e| {
            let engine = &self.devices[e.device];
            let open = !engine.is_closed(e.link);
            [
                engine.poll_timeout(e.link),
                open.then(|| e.last_rx + silence(&config)),
            ]
        });
        let handshakes = self
            .sessions
            .iter()
            .flat_map(|s| s.values())
            .filter_map(|s| match s.known {
                Known::Connecting { at, .. } => Some(at + config.handshake_timeout),
                _ => None,
            });
        let responders = self
            .routed
            .iter()
            .flatten()
            .map(|r| Some(r.at + config.responder_timeout));
        links
            .chain(handshakes.map(Some))
            .chain(responders)
            .flatten()
            .filter(|due| *due > self.now)
            .map(|due| {
                let ahead = due.duration_since(self.now);
                // Deadlines are whole milliseconds apart; a part of one rounds up to reach it.
                let ms = ahead.as_millis() as u64;
                if Duration::from_millis(ms) < ahead {
                    ms + 1
                } else {
                    ms
                }
            })
            .collect()
    }

    /// Marks `witness` as reached.
    pub(crate) fn witness(&mut self, witness: Witness) {
        self.witnessed |= witness.bit();
    }

    /// The situations reached on the way to this state.
    pub fn witnessed(&self) -> Vec<Witness> {
        Witness::of(self.witnessed)
    }

    fn due(&self, end: &End) -> bool {
        self.devices[end.device]
            .poll_timeout(end.link)
            .is_some_and(|due| due <= self.now)
    }

    /// Whether the next thing from end `from` of `wire` can be delivered.
    fn deliverable(&self, wire: &Wire, from: usize) -> bool {
        let (sender, receiver) = (&wire.ends[from], &wire.ends[1 - from]);
        !wire.lost
            && (!sender.queue.is_empty()
                || (!sender.eof_sent
                    && self.devices[sender.device].is_finished(sender.link)
                    && !self.devices[receiver.device].is_closed(receiver.link)))
    }

    /// The steps possible now, in a fixed order.
    pub fn enabled(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        let b = self.bounds;
        for (device, sessions) in self.sessions.iter().enumerate() {
            if self.creates[device] < b.sessions {
                for peer in self.peers(device) {
                    steps.push(Step::Create { device, peer });
                }
            }
            for (&session, s) in sessions {
                if s.destroyed {
                    continue;
                }
                match s.known {
                    Known::Idle => {
                        steps.push(Step::Connect { device, session });
                        if b.hostile && self.last_token[device].is_some() {
                            steps.push(Step::Replay { device, session });
                        }
                    }
                    Known::Connecting { .. } => {
                        steps.push(Step::Disconnect { device, session });
                    }
                    Known::Connected { .. } => {
                        if self.sends < b.sends {
                            steps.push(Step::Message { device, session });
                            steps.push(Step::Data { device, session });
                            steps.push(Step::Event { device, session });
                        }
                        steps.push(Step::Disconnect { device, session });
                    }
                }
                steps.push(Step::Destroy { device, session });
            }
            for r in &self.routed[device] {
                steps.push(Step::Accept {
                    device,
                    token: r.number,
                });
                steps.push(Step::Reject {
                    device,
                    token: r.number,
                });
            }
        }
        for (w, wire) in self.wires.iter().enumerate() {
            for from in 0..2 {
                if !self.deliverable(wire, from) {
                    continue;
                }
                steps.push(Step::Deliver { wire: w, from });
                if b.hostile {
                    let front = wire.ends[from].queue.front().and_then(parse);
                    match front.and_then(|(_, _, control)| control) {
                        Some(Control::ConnectResponse(_)) => steps.push(Step::Tamper {
                            wire: w,
                            from,
                            how: Tamper::ForgeToken,
                        }),
                        Some(Control::Message(_)) => steps.push(Step::Tamper {
                            wire: w,
                            from,
                            how: Tamper::Overlong,
                        }),
                        _ => {}
                    }
                }
            }
            let open = wire
                .ends
                .iter()
                .any(|e| !self.devices[e.device].is_closed(e.link));
            if !wire.lost && open && self.losses < b.losses {
                steps.push(Step::Lose { wire: w });
            }
        }
        if self.advances < b.advances {
            for ms in self.deadlines() {
                steps.push(Step::Advance { ms });
            }
        }
        for (w, wire) in self.wires.iter().enumerate() {
            for end in &wire.ends {
                if self.due(end) {
                    steps.push(Step::Fire {
                        device: end.device,
                        wire: w,
                    });
                }
            }
        }
        steps
    }

    /// The devices `device` has a wire to.
    fn peers(&self, device: usize) -> Vec<usize> {
        self.wires
            .iter()
            .filter_map(|w| match (w.ends[0].device, w.ends[1].device) {
                (a, b) if a == device => Some(b),
                (a, b) if b == device => Some(a),
                _ => None,
            })
            .collect()
    }
}

/// How long the link waits in silence before it closes (`LINK-6`).
pub(crate) fn silence(config: &EngineConfig) -> Duration {
    Duration::from_millis(u64::from(config.keepalive_ms())).saturating_mul(3)
}
