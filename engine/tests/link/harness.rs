//! Two link engines joined by a perfect wire, a clock that moves only when told, and helpers to
//! speak raw frames to one engine as a scripted peer.

use std::time::{Duration, Instant};

use acm_engine::{EngineConfig, EngineEvent, LinkEngine, OutgoingRequest, Token};
use acm_transport::Role;
use acm_wire::pb::{self, FrameType};
use acm_wire::{Control, Frame, FrameKind};
use bytes::Bytes;

pub const A: &str = "phone";
pub const B: &str = "tablet";

pub struct Pair {
    pub now: Instant,
    pub a: LinkEngine,
    pub b: LinkEngine,
    pub a_events: Vec<EngineEvent>,
    pub b_events: Vec<EngineEvent>,
    /// Every frame that crossed, as (from A?, frame).
    pub wire: Vec<(bool, Frame)>,
}

impl Pair {
    pub fn new(a_config: EngineConfig, b_config: EngineConfig, max_frame: usize) -> Self {
        let now = Instant::now();
        let a = LinkEngine::new(
            now,
            Role::Dialer,
            A,
            Some(B.into()),
            max_frame,
            [1; 16],
            a_config,
        );
        let b = LinkEngine::new(
            now,
            Role::Acceptor,
            B,
            Some(A.into()),
            max_frame,
            [2; 16],
            b_config,
        );
        Self {
            now,
            a,
            b,
            a_events: Vec::new(),
            b_events: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// A pair whose link is up.
    pub fn up() -> Self {
        Self::up_with(EngineConfig::default(), EngineConfig::default(), 65_535)
    }

    pub fn up_with(a: EngineConfig, b: EngineConfig, max_frame: usize) -> Self {
        let mut pair = Self::new(a, b, max_frame);
        pair.pump();
        assert!(pair.a.is_up() && pair.b.is_up(), "link did not come up");
        pair.take_events();
        pair
    }

    /// Moves frames both ways until neither side has anything to send.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(frame) = self.a.poll_transmit(self.now) {
                self.record(true, &frame);
                self.b.handle_message(self.now, frame);
                moved = true;
            }
            while let Some(frame) = self.b.poll_transmit(self.now) {
                self.record(false, &frame);
                self.a.handle_message(self.now, frame);
                moved = true;
            }
            self.collect();
            if !moved {
                return;
            }
        }
    }

    fn record(&mut self, from_a: bool, frame: &Bytes) {
        if let Ok(decoded) = Frame::decode_exact(frame.clone(), u32::MAX, None) {
            self.wire.push((from_a, decoded));
        }
    }

    pub fn collect(&mut self) {
        while let Some(event) = self.a.poll_event() {
            self.a_events.push(event);
        }
        while let Some(event) = self.b.poll_event() {
            self.b_events.push(event);
        }
    }

    pub fn take_events(&mut self) -> (Vec<EngineEvent>, Vec<EngineEvent>) {
        self.collect();
        (
            std::mem::take(&mut self.a_events),
            std::mem::take(&mut self.b_events),
        )
    }

    /// Advances the clock, firing every deadline on the way, and pumps.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|t| *t <= end)
                .min();
            let Some(next) = next else { break };
            self.now = next.max(self.now);
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.pump();
    }

    /// Connects `request` from A and returns (A's channel, B's incoming channel).
    pub fn request(&mut self, request: OutgoingRequest) -> (u32, u32) {
        let channel = self.a.connect(self.now, request).expect("connect");
        self.pump();
        let (_, b_events) = self.take_events();
        let incoming = b_events
            .iter()
            .find_map(|e| match e {
                EngineEvent::IncomingRequest(incoming) => Some(incoming.channel),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no incoming request in {b_events:?}"));
        (channel, incoming)
    }

    /// A connected session: (A's channel, B's channel).
    pub fn connected(&mut self) -> (u32, u32) {
        let (a, b) = self.request(request(1));
        self.b.accept(b).expect("accept");
        self.pump();
        let (a_events, _) = self.take_events();
        assert!(
            a_events.contains(&EngineEvent::ConnectResult {
                channel: a,
                outcome: acm_engine::ConnectOutcome::Accepted
            }),
            "{a_events:?}"
        );
        (a, b)
    }
}

pub fn peer(device: &str, bundle: &str) -> pb::PeerInfo {
    pb::PeerInfo {
        device_id: device.into(),
        bundle_name: bundle.into(),
        module_name: "entry".into(),
        ability_name: "EntryAbility".into(),
        service_name: "notes".into(),
    }
}

/// A request from A's notes app to B's, with a token made of `seed`.
pub fn request(seed: u8) -> OutgoingRequest {
    OutgoingRequest {
        token: [seed; 16],
        source: peer(A, "com.example.notes"),
        target: peer(B, "com.example.notes"),
        options: pb::ConnectOptions::default(),
    }
}

/// The same request as B would make of A.
pub fn reverse_request(seed: u8) -> OutgoingRequest {
    OutgoingRequest {
        token: [seed; 16],
        source: peer(B, "com.example.notes"),
        target: peer(A, "com.example.notes"),
        options: pb::ConnectOptions::default(),
    }
}

/// A lone engine (B, the acceptor) facing a scripted peer that has sent a valid HELLO.
pub fn lone_engine(config: EngineConfig) -> (Instant, LinkEngine) {
    let now = Instant::now();
    let mut engine = LinkEngine::new(
        now,
        Role::Acceptor,
        B,
        Some(A.into()),
        65_535,
        [3; 16],
        config,
    );
    engine.handle_message(now, hello_frame(A, 1, 1));
    let _ = drain_frames(&mut engine, now);
    assert!(engine.is_up());
    while engine.poll_event().is_some() {}
    (now, engine)
}

pub fn hello(device: &str, min: u32, max: u32) -> pb::Hello {
    pb::Hello {
        min_version: min,
        max_version: max,
        device_id: device.into(),
        max_frame_size: 65_535,
        keepalive_interval_ms: 15_000,
        features: 0,
        nonce: Bytes::from_static(&[5; 16]),
        max_data_size: 100 << 20,
    }
}

pub fn hello_frame(device: &str, min: u32, max: u32) -> Bytes {
    Control::Hello(hello(device, min, max))
        .encode_frame(1, 0)
        .expect("hello encodes")
}

pub fn frame(control: Control, channel: u32) -> Bytes {
    control.encode_frame(1, channel).expect("encodes")
}

/// Every frame the engine wants to send, decoded.
pub fn drain_frames(engine: &mut LinkEngine, now: Instant) -> Vec<Frame> {
    std::iter::from_fn(|| engine.poll_transmit(now))
        .map(|b| Frame::decode_exact(b, u32::MAX, None).expect("engine sends valid frames"))
        .collect()
}

/// The decoded body of the frames of one type.
pub fn bodies(frames: &[Frame], frame_type: FrameType) -> Vec<Control> {
    frames
        .iter()
        .filter(|f| f.kind == FrameKind::Known(frame_type))
        .filter_map(|f| Control::decode(frame_type, &f.payload).and_then(Result::ok))
        .collect()
}

pub fn events(engine: &mut LinkEngine) -> Vec<EngineEvent> {
    std::iter::from_fn(|| engine.poll_event()).collect()
}

/// The LINK_CLOSE an engine sent, if any.
pub fn link_close(frames: &[Frame]) -> Option<pb::LinkClose> {
    bodies(frames, FrameType::LinkClose)
        .into_iter()
        .find_map(|c| match c {
            Control::LinkClose(close) => Some(close),
            _ => None,
        })
}

/// The DISCONNECTs an engine sent.
pub fn disconnects(frames: &[Frame]) -> Vec<(u32, pb::Disconnect)> {
    frames
        .iter()
        .filter(|f| f.kind == FrameKind::Known(FrameType::Disconnect))
        .filter_map(
            |f| match Control::decode(FrameType::Disconnect, &f.payload) {
                Some(Ok(Control::Disconnect(d))) => Some((f.channel, d)),
                _ => None,
            },
        )
        .collect()
}

pub fn token(seed: u8) -> Token {
    [seed; 16]
}

/// The CONNECT_REQUEST frame of `request` on `channel`.
pub fn request_frame(request: OutgoingRequest, channel: u32) -> Bytes {
    let body = pb::ConnectRequest {
        token: Bytes::copy_from_slice(&request.token),
        source: Some(request.source),
        target: Some(request.target),
        options: Some(request.options),
    };
    frame(Control::ConnectRequest(body), channel)
}
