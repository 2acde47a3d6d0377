//! Runs the operations of an input: against one engine facing the scripted peer, or against
//! two engines joined by a wire that may drop, reorder, repeat or corrupt frames.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::Input;
use acm_transport::{FrameBuf, Role};
use acm_wire::frame::type_code;
use acm_wire::header::{FLAG_FIRST, FrameHeader, HEADER_LEN};
use acm_wire::pb::FrameType;
use acm_wire::{Control, DATA_HEADER_LEN, FIRST_DATA_HEADER_LEN, Limits};
use bytes::Bytes;

use super::calls::{self, CALL_FRAMES};
use super::observer::{Cause, Observer, State};
use super::peer::Peer;
use super::shadow::Shadow;
use acm_engine::{EngineConfig, LinkEngine};

/// The first API call and the first clock or link operation in the operation byte's low five
/// bits; below the calls are the peer's frames or the wire's operations.
pub(super) const OP_CALL: u8 = 16;
pub(super) const OP_ADVANCE: u8 = 24;
pub(super) const OP_ADVANCE_MS: u8 = 25;
pub(super) const OP_NEXT_DEADLINE: u8 = 26;
pub(super) const OP_LINK_LOST: u8 = 27;
pub(super) const OP_TIMEOUT_NOW: u8 = 28;
pub(super) const OP_TRANSMIT: u8 = 29;
/// Wire operations (pair mode), in bits 0-2; bit 3 picks the direction (B to A).
pub(super) const WIRE_DELIVER: u8 = 0;
pub(super) const WIRE_COLLECT: u8 = 1;
pub(super) const WIRE_DROP: u8 = 2;
pub(super) const WIRE_SWAP: u8 = 3;
pub(super) const WIRE_REPEAT: u8 = 4;
pub(super) const WIRE_CORRUPT: u8 = 5;
pub(super) const WIRE_PUMP: u8 = 6;
pub(super) const WIRE_SPLIT: u8 = 7;
pub(super) const B_TO_A: u8 = 8;
/// In the operation byte of a call or a link loss in pair mode: the call is B's.
pub(super) const ON_B: u8 = 0x80;

/// The config bytes (fuzz/README.md).
pub(super) const PAIR: u8 = 0x01;
const FRAME_SIZES: [u32; 4] = [65_535, 128, 300, 1024];
const DATA_LIMITS: [(u64, u64, usize); 4] = [
    (100 << 20, 256 << 20, 32),
    (64, 128, 2),
    (1000, 1000, 1),
    (16, 48, 3),
];
const LINK_FRAMES: [usize; 4] = [65_535, 128, 200, 16_777_227];
const ADVANCES_MS: [u64; 8] = [1, 999, 1_000, 5_000, 10_000, 15_000, 20_000, 45_000];

/// How many control frames one frame from the peer may make the engine queue.
const FRAME_FRAMES: usize = CALL_FRAMES;

fn config(a: u8, b: u8, data_limits: u8, carries_data: bool) -> EngineConfig {
    let (max_data, budget, transfers) = DATA_LIMITS[usize::from(data_limits & 3)];
    let limits = Limits::default()
        .with_max_frame_size(FRAME_SIZES[usize::from((a >> 2) & 3)])
        .with_max_data_size(max_data)
        .with_max_reassembly_bytes(budget)
        .with_max_transfers(transfers);
    let mut config = EngineConfig::default()
        .with_limits(limits)
        .with_carries_data(carries_data);
    if b & 0x04 != 0 {
        config.keepalive_interval = Duration::from_secs(1);
    }
    if b & 0x08 != 0 {
        config.max_sessions = 2;
    }
    if b & 0x10 != 0 {
        config.remembered_tokens = 2;
    }
    config
}

/// One engine with its observer and the shadow of what it receives.
struct Side {
    engine: LinkEngine,
    observer: Observer,
    shadow: Shadow,
}

impl Side {
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &'static str,
        now: Instant,
        role: Role,
        device: &str,
        peer: Option<&str>,
        link_max_frame: usize,
        config: EngineConfig,
    ) -> Self {
        let nonce = [u8::from(role == Role::Dialer); 16];
        let engine = LinkEngine::new(
            now,
            role,
            device,
            peer.map(str::to_string),
            link_max_frame,
            nonce,
            config,
        );
        let link_max = u32::try_from(link_max_frame).unwrap_or(u32::MAX);
        let observer = Observer::new(name, role, device, link_max, config, now);
        Self {
            engine,
            observer,
            shadow: Shadow::default(),
        }
    }

    /// Hands `frame` to the engine: whole, or in two parts split at `split` (clamped to the
    /// frame), as a transport that keeps a sender's parts apart delivers it.
    fn deliver(&mut self, now: Instant, frame: Bytes, split: Option<usize>) {
        let (max_frame, version) = self.observer.accepts();
        let arrival = self.shadow.feed(&frame, max_frame, version);
        let before = self.engine.queued_control_frames();
        self.observer.received(now);
        match split {
            Some(at) => {
                let at = at.min(frame.len());
                let parts = FrameBuf::new(frame.slice(..at), frame.slice(at..));
                self.engine.handle_message_buf(now, parts);
            }
            None => self.engine.handle_message(now, frame),
        }
        let cause = Cause::Arrival(&arrival);
        self.observer
            .after(&mut self.engine, now, cause, before, FRAME_FRAMES);
        self.observer.check_poll_timeout(&self.engine);
    }

    /// Takes up to `max` frames from the engine, with the bodies they complete.
    fn transmit(&mut self, now: Instant, max: usize) -> Vec<(Bytes, Option<(u32, Control)>)> {
        let before = self.engine.queued_control_frames();
        let mut frames = Vec::new();
        while frames.len() < max {
            let Some(frame) = self.engine.poll_transmit(now) else {
                break;
            };
            let body = self.observer.transmitted(now, &frame);
            frames.push((frame, body));
        }
        self.observer
            .after(&mut self.engine, now, Cause::Transmit, before, 0);
        self.observer.check_poll_timeout(&self.engine);
        frames
    }

    fn timeout(&mut self, now: Instant) {
        let early = self.engine.poll_timeout().is_none_or(|next| now < next);
        let before = self.engine.queued_control_frames();
        let allowance = 2 + CALL_FRAMES * self.observer.session_count();
        self.engine.handle_timeout(now);
        let events = self
            .observer
            .after(&mut self.engine, now, Cause::Timeout, before, allowance);
        if early {
            let name = self.observer.name;
            assert_eq!(events, 0, "{name}: events before the deadline");
            let queued = self.engine.queued_control_frames();
            assert_eq!(queued, before, "{name}: frames before the deadline");
        }
        self.observer.after_timeout(&self.engine, now);
    }

    fn link_lost(&mut self, now: Instant) {
        let before = self.engine.queued_control_frames();
        let open = !self.engine.is_closed();
        self.engine.handle_link_lost("lost");
        self.observer
            .after(&mut self.engine, now, Cause::LinkLost, before, 0);
        assert!(self.engine.is_closed());
        assert!(
            !(open && self.engine.wants_transmit()),
            "sends after losing the link"
        );
    }

    fn call(&mut self, call: u8, input: &mut Input<'_>, now: Instant, peer_device: &str) {
        let (engine, observer) = (&mut self.engine, &mut self.observer);
        calls::call(call, input, engine, observer, now, peer_device);
        observer.check_poll_timeout(engine);
    }
}

/// Runs one input.
pub(super) fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let (a, b) = (input.byte(), input.byte());
    let link_max_frame = LINK_FRAMES[usize::from(b & 3)];
    let now = Instant::now();
    let config_a = config(a, b, a >> 4, a & 0x40 == 0);
    let expect = |device| (a & 0x80 == 0).then_some(device);
    if a & PAIR == 0 {
        let role = if a & 0x02 == 0 {
            Role::Acceptor
        } else {
            Role::Dialer
        };
        let peer_role = if role == Role::Dialer {
            Role::Acceptor
        } else {
            Role::Dialer
        };
        let side = Side::new(
            "engine",
            now,
            role,
            "tablet",
            expect("phone"),
            link_max_frame,
            config_a,
        );
        let mut scripted = Scripted {
            now,
            side,
            peer: Peer::new(peer_role, "phone", "tablet"),
        };
        play(&mut scripted, &mut input);
    } else {
        let config_b = config(a, b, b >> 5, b & 0x80 == 0);
        let a_side = Side::new(
            "A",
            now,
            Role::Dialer,
            "phone",
            expect("tablet"),
            link_max_frame,
            config_a,
        );
        let b_side = Side::new(
            "B",
            now,
            Role::Acceptor,
            "tablet",
            expect("phone"),
            link_max_frame,
            config_b,
        );
        let mut pair = Pair {
            now,
            sides: [a_side, b_side],
            wires: [VecDeque::new(), VecDeque::new()],
            clean: true,
        };
        play(&mut pair, &mut input);
    }
}

/// What the operations act on: one engine and the scripted peer, or two engines and a wire.
trait World {
    fn now(&mut self) -> &mut Instant;
    fn sides(&mut self) -> &mut [Side];
    /// Operations 0 to 15: the peer's frames, or the wire's.
    fn below_calls(&mut self, op: u8, flags: u8, input: &mut Input<'_>);
    fn call(&mut self, call: u8, flags: u8, input: &mut Input<'_>);
    fn link_lost(&mut self, flags: u8);
    fn transmit(&mut self, op: u8, flags: u8);
    /// The last checks once the input is used up.
    fn finish(&mut self);
}

fn play(world: &mut impl World, input: &mut Input<'_>) {
    while !input.is_empty() {
        let byte = input.byte();
        let (op, flags) = (byte & 0x1F, byte & 0xE0);
        match op {
            0..OP_CALL => world.below_calls(op, flags, input),
            OP_CALL..OP_ADVANCE => world.call(op - OP_CALL, flags, input),
            OP_ADVANCE | OP_ADVANCE_MS => {
                let ms = match op {
                    OP_ADVANCE => ADVANCES_MS[usize::from(flags >> 5)],
                    _ => input.varint().min(10_000_000),
                };
                let now = world.now();
                *now = now.checked_add(Duration::from_millis(ms)).unwrap_or(*now);
                if op == OP_ADVANCE || flags & 0x20 == 0 {
                    timeouts(world);
                }
            }
            OP_NEXT_DEADLINE => {
                let sides = world.sides().iter();
                if let Some(next) = sides.filter_map(|s| s.engine.poll_timeout()).min() {
                    let now = world.now();
                    *now = (*now).max(next);
                }
                timeouts(world);
            }
            OP_LINK_LOST => world.link_lost(flags),
            OP_TIMEOUT_NOW => timeouts(world),
            _ => world.transmit(op, flags),
        }
    }
    world.finish();
}

fn timeouts(world: &mut impl World) {
    let now = *world.now();
    for side in world.sides() {
        side.timeout(now);
    }
}

struct Scripted {
    now: Instant,
    side: Side,
    peer: Peer,
}

impl Scripted {
    fn send(&mut self, max: usize) {
        for (frame, body) in self.side.transmit(self.now, max) {
            self.peer.learn(&frame, body.as_ref());
        }
    }
}

impl World for Scripted {
    fn now(&mut self) -> &mut Instant {
        &mut self.now
    }

    fn sides(&mut self) -> &mut [Side] {
        std::slice::from_mut(&mut self.side)
    }

    fn below_calls(&mut self, op: u8, flags: u8, input: &mut Input<'_>) {
        for frame in self.peer.frames(op, flags, input) {
            self.side.deliver(self.now, frame, None);
        }
    }

    fn call(&mut self, call: u8, _: u8, input: &mut Input<'_>) {
        let peer = self.peer.device.clone();
        self.side.call(call, input, self.now, &peer);
    }

    fn link_lost(&mut self, _: u8) {
        self.side.link_lost(self.now);
    }

    fn transmit(&mut self, _: u8, flags: u8) {
        self.send(match flags >> 5 {
            0 => usize::MAX,
            n => usize::from(n),
        });
    }

    fn finish(&mut self) {
        self.send(usize::MAX);
    }
}

struct Pair {
    now: Instant,
    sides: [Side; 2],
    /// Frames on their way: A to B, then B to A.
    wires: [VecDeque<Bytes>; 2],
    /// Whether every frame so far went through unchanged, in order, and no link was lost.
    clean: bool,
}

impl World for Pair {
    fn now(&mut self) -> &mut Instant {
        &mut self.now
    }

    fn sides(&mut self) -> &mut [Side] {
        &mut self.sides
    }

    fn below_calls(&mut self, op: u8, flags: u8, input: &mut Input<'_>) {
        self.wire(op, flags, input);
    }

    fn call(&mut self, call: u8, flags: u8, input: &mut Input<'_>) {
        let side = usize::from(flags & ON_B != 0);
        let peer = self.sides[1 - side].observer.local_device.clone();
        self.sides[side].call(call, input, self.now, &peer);
    }

    fn link_lost(&mut self, flags: u8) {
        self.clean = false;
        self.sides[usize::from(flags & ON_B != 0)].link_lost(self.now);
    }

    fn transmit(&mut self, op: u8, _: u8) {
        if op == OP_TRANSMIT {
            self.collect();
        } else {
            self.pump();
        }
    }

    fn finish(&mut self) {
        self.pump();
        if self.clean {
            self.check_everything_arrived();
        }
    }
}

/// Where the frame and data headers of `frame` end if it is a DATA frame (where a sender that
/// keeps the app's bytes apart splits it); the frame header's end otherwise.
fn headers_len(frame: &[u8]) -> usize {
    match FrameHeader::parse(frame) {
        Ok(h) if h.frame_type == type_code(FrameType::Data) && h.flags & FLAG_FIRST != 0 => {
            HEADER_LEN + FIRST_DATA_HEADER_LEN
        }
        Ok(h) if h.frame_type == type_code(FrameType::Data) => HEADER_LEN + DATA_HEADER_LEN,
        _ => HEADER_LEN,
    }
}

impl Pair {
    fn wire(&mut self, op: u8, flags: u8, input: &mut Input<'_>) {
        let from = usize::from(op & B_TO_A != 0);
        match op & 7 {
            WIRE_DELIVER => {
                for _ in 0..=(flags >> 5) {
                    let Some(frame) = self.wires[from].pop_front() else {
                        break;
                    };
                    self.sides[1 - from].deliver(self.now, frame, None);
                }
            }
            WIRE_SPLIT => {
                for _ in 0..=(flags >> 5) {
                    let Some(frame) = self.wires[from].pop_front() else {
                        break;
                    };
                    let split = match input.byte() {
                        0xFF => headers_len(&frame),
                        at => usize::from(at),
                    };
                    self.sides[1 - from].deliver(self.now, frame, Some(split));
                }
            }
            WIRE_COLLECT => {
                self.collect();
            }
            WIRE_DROP => {
                self.clean &= self.wires[from].pop_front().is_none();
            }
            WIRE_SWAP => {
                let wire = &mut self.wires[from];
                if wire.len() >= 2 {
                    wire.swap(0, 1);
                    self.clean = false;
                }
            }
            WIRE_REPEAT => {
                let wire = &mut self.wires[from];
                if let Some(frame) = wire.front().cloned() {
                    wire.push_front(frame);
                    self.clean = false;
                }
            }
            WIRE_CORRUPT => {
                let (at, xor) = (input.byte(), input.byte().max(1));
                let wire = &mut self.wires[from];
                if let Some(frame) = wire.pop_front() {
                    let mut bytes = frame.to_vec();
                    let at = usize::from(at) % bytes.len().max(1);
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= xor;
                    }
                    wire.push_front(bytes.into());
                    self.clean = false;
                }
            }
            _ => self.pump(),
        }
    }

    /// Moves every frame the engines want to send onto the wire.
    fn collect(&mut self) -> bool {
        let mut moved = false;
        for (side, wire) in self.sides.iter_mut().zip(&mut self.wires) {
            for (frame, _) in side.transmit(self.now, usize::MAX) {
                wire.push_back(frame);
                moved = true;
            }
        }
        moved
    }

    /// Delivers everything, both ways, until nothing moves.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = self.collect();
            for from in 0..2 {
                while let Some(frame) = self.wires[from].pop_front() {
                    self.sides[1 - from].deliver(self.now, frame, None);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the engines never stop sending to each other");
    }

    /// On a clean wire, once everything is delivered: every message, event and transfer the
    /// app sent on a session both sides still have connected has arrived.
    fn check_everything_arrived(&self) {
        let [a, b] = &self.sides;
        for (from, to) in [(a, b), (b, a)] {
            for (channel, sender) in &from.observer.sessions {
                let Some(receiver) = to.observer.sessions.get(channel) else {
                    continue;
                };
                if sender.state == State::Connected && receiver.state == State::Connected {
                    assert_eq!(
                        sender.sent, receiver.delivered,
                        "{} sent on channel {channel} what {} never got",
                        from.observer.name, to.observer.name
                    );
                }
            }
        }
    }
}
