//! Seed inputs for the `engine` corpus, built from valid traffic: scripts of a peer and apps
//! that open, use and end sessions, and the frames a real engine sends in such a session,
//! replayed byte for byte.

use std::time::Instant;

use crate::put_varint;
use acm_transport::Role;
use acm_wire::pb::{CollaborateEventType, DisconnectReason, LinkCloseReason};
use bytes::Bytes;

use super::calls::{
    ACCEPT, CLOSE, CONNECT, DISCONNECT as CALL_DISCONNECT, REJECT, SEND_DATA, SEND_EVENT,
    SEND_MESSAGE,
};
use super::driver::{
    B_TO_A, ON_B, OP_ADVANCE, OP_CALL, OP_LINK_LOST, OP_NEXT_DEADLINE, OP_TIMEOUT_NOW, OP_TRANSMIT,
    PAIR, WIRE_CORRUPT, WIRE_DELIVER, WIRE_DROP, WIRE_PUMP, WIRE_REPEAT, WIRE_SPLIT, WIRE_SWAP,
};
use super::peer::{
    CONTINUE, DISCONNECT, ECHO, EVENT, FIRST_PIECE, FRAGMENT, HELLO, LINK_CLOSE, MESSAGE, MUTATE,
    PING, RAW, REQUEST, RESPONSE, SMALL_FRAMES, TRANSFER,
};
use crate::Seed;
use acm_engine::{EngineConfig, LinkEngine, OutgoingRequest};

/// Config bytes: the engine as acceptor with SPEC's limits; as dialer; with 128-byte frames
/// and a small data budget; two engines.
const ACCEPTOR: [u8; 2] = [0x00, 0x00];
const DIALER: [u8; 2] = [0x02, 0x00];
const SMALL: [u8; 2] = [0x14, 0x05];
const TWO: [u8; 2] = [PAIR, 0x00];

/// An input under construction.
struct Script(Vec<u8>);

impl Script {
    fn new(config: [u8; 2]) -> Self {
        Self(config.to_vec())
    }

    fn op(mut self, op: u8, args: &[u8]) -> Self {
        self.0.push(op);
        self.0.extend_from_slice(args);
        self
    }

    fn call(self, call: u8, args: &[u8]) -> Self {
        self.op(OP_CALL + call, args)
    }

    fn transmit(self) -> Self {
        self.op(OP_TRANSMIT, &[])
    }

    /// A short text argument.
    fn text(mut self, text: &str) -> Self {
        self.0.push(u8::try_from(text.len()).unwrap_or(0));
        self.0.extend_from_slice(text.as_bytes());
        self
    }

    /// A raw frame from the peer.
    fn raw(mut self, frame: &[u8]) -> Self {
        self.0.push(RAW);
        put_varint(&mut self.0, frame.len() as u64);
        self.0.extend_from_slice(frame);
        self
    }

    /// The peer's HELLO, then the engine's frames.
    fn hello(self) -> Self {
        self.op(HELLO, &[0, 0]).transmit()
    }

    /// A request from the peer on its next channel, accepted by the app.
    fn accepted(self, token: u8) -> Self {
        self.op(REQUEST, &[0, 0, token])
            .transmit()
            .call(ACCEPT, &[0])
            .transmit()
    }

    fn seed(self, name: &str) -> Seed {
        Seed {
            target: "engine",
            name: name.into(),
            bytes: self.0,
        }
    }
}

fn scripted() -> Vec<Seed> {
    vec![
        Script::new(ACCEPTOR)
            .hello()
            .accepted(0x11)
            .op(MESSAGE, &[0])
            .text("hello from the phone")
            .op(TRANSFER, &[0, 0, 0x20, 7, 0, 0xFF])
            .op(EVENT, &[0, 1])
            .text("send failed")
            .call(SEND_MESSAGE, &[0])
            .text("hello from the tablet")
            .call(SEND_DATA, &[0, 0x45, 3])
            .call(SEND_EVENT, &[0, 0])
            .text("")
            .transmit()
            .op(PING, &[42])
            .transmit()
            .op(DISCONNECT, &[0, 1, 0])
            .text("")
            .op(LINK_CLOSE, &[1])
            .text("done")
            .seed("session-as-acceptor"),
        Script::new(DIALER)
            .hello()
            .call(CONNECT, &[0x08, 0x22])
            .transmit()
            .op(RESPONSE, &[0, 0])
            .call(SEND_MESSAGE, &[0])
            .text("hi")
            .call(SEND_DATA, &[0, 0x10, 9])
            .transmit()
            .op(MESSAGE, &[0])
            .text("hi back")
            .call(CALL_DISCONNECT, &[0, 0])
            .transmit()
            .call(CLOSE, &[0])
            .text("bye")
            .transmit()
            .seed("session-as-dialer"),
        Script::new(DIALER)
            .hello()
            .call(CONNECT, &[0, 0x33])
            .transmit()
            .op(RESPONSE, &[0, 0x05])
            .text("busy")
            .call(CONNECT, &[0x01, 0x34])
            .transmit()
            .op(RESPONSE, &[0, 0x03])
            .seed("rejected-and-wrong-token"),
        Script::new(ACCEPTOR)
            .hello()
            .op(REQUEST, &[0, 0, 0x44])
            .call(REJECT, &[0, 1])
            .text("not now")
            .op(REQUEST, &[0, 0, 0x44])
            .op(REQUEST, &[0x80, 1, 0x45])
            .transmit()
            .seed("rejected-and-replayed"),
        Script::new(SMALL)
            .hello()
            .accepted(0x55)
            .op(MESSAGE | SMALL_FRAMES, &[0, 0xA0])
            .op(TRANSFER, &[0, 0, 0x3F, 1, 1, 2])
            .op(TRANSFER, &[0, 0, 0x20, 2, 2, 1])
            .op(CONTINUE, &[0, 7])
            .op(CONTINUE, &[0, 7])
            .call(SEND_MESSAGE, &[0, 0x90])
            .call(SEND_DATA, &[0, 0x4A, 5])
            .op(OP_TRANSMIT | 0x20, &[])
            .transmit()
            .op(TRANSFER, &[0, 0, 0x81, 3, 0, 0xFF])
            .seed("small-frames-and-limits"),
        Script::new(ACCEPTOR)
            .hello()
            .op(REQUEST, &[0, 0, 0x66])
            .op(OP_ADVANCE | 0xC0, &[])
            .call(CONNECT, &[0x02, 0x67])
            .op(OP_NEXT_DEADLINE, &[])
            .op(OP_ADVANCE | 0xA0, &[])
            .op(OP_TIMEOUT_NOW, &[])
            .transmit()
            .op(OP_ADVANCE | 0xE0, &[])
            .op(OP_NEXT_DEADLINE, &[])
            .seed("timeouts"),
        Script::new(DIALER)
            .op(OP_NEXT_DEADLINE, &[])
            .transmit()
            .seed("no-hello"),
        Script::new(ACCEPTOR)
            .hello()
            .call(CONNECT, &[0, 0x10])
            .op(REQUEST, &[0, 0, 0x20])
            .op(REQUEST, &[0, 1, 0x05])
            .transmit()
            .seed("crossing-requests"),
        Script::new(SMALL)
            .hello()
            .accepted(0x77)
            .op(MESSAGE | FIRST_PIECE | SMALL_FRAMES, &[0, 0xB0])
            .op(PING, &[1])
            .transmit()
            .seed("split-body-interrupted"),
        Script::new(ACCEPTOR)
            .hello()
            .accepted(0x78)
            .op(FRAGMENT, &[0, 1, 1, 0, 5, 3, 1, 2, 3])
            .op(FRAGMENT, &[0, 2, 1, 1, 2, 4, 5])
            .op(MUTATE, &[0, 30, 0xFF])
            .op(ECHO, &[1])
            .op(OP_LINK_LOST, &[])
            .seed("fragments-mutations-echo"),
    ]
}

fn pair() -> Vec<Seed> {
    let pump = |s: Script| s.op(WIRE_PUMP, &[]);
    let session = |s: Script| {
        pump(pump(s.call(CONNECT, &[0, 0x42])).op((OP_CALL + ACCEPT) | ON_B, &[0]))
            .call(SEND_MESSAGE, &[0])
            .text("from A")
            .op((OP_CALL + SEND_DATA) | ON_B, &[0, 0x50, 8])
            .op((OP_CALL + SEND_EVENT) | ON_B, &[0, 1])
            .text("from B")
    };
    vec![
        pump(pump(session(pump(Script::new(TWO)))).call(CALL_DISCONNECT, &[0, 0]))
            .op((OP_CALL + CLOSE) | ON_B, &[0])
            .text("shutting down")
            .seed("pair-session"),
        session(pump(Script::new([PAIR | 0x04, 0x01])))
            .op(OP_TRANSMIT, &[])
            .op(WIRE_SWAP, &[])
            .op(WIRE_DELIVER | 0x20, &[])
            .op(WIRE_DROP | B_TO_A, &[])
            .op(WIRE_REPEAT, &[])
            .op(WIRE_CORRUPT, &[12, 0x40])
            .op(WIRE_PUMP, &[])
            .seed("pair-faults"),
        pump(session(pump(Script::new([PAIR, 0x04]))))
            .op(OP_ADVANCE | 0x40, &[])
            .op(OP_NEXT_DEADLINE, &[])
            .op(WIRE_PUMP, &[])
            .op(OP_ADVANCE | 0xE0, &[])
            .op(OP_LINK_LOST | ON_B, &[])
            .seed("pair-keepalive"),
        pump(Script::new(TWO))
            .call(CONNECT, &[0, 0x42])
            .op(OP_TRANSMIT, &[])
            .op(WIRE_SPLIT, &[5])
            .op(OP_TRANSMIT, &[])
            .op(WIRE_SPLIT | B_TO_A, &[0])
            .op((OP_CALL + ACCEPT) | ON_B, &[0])
            .op(WIRE_PUMP, &[])
            .op((OP_CALL + SEND_DATA) | ON_B, &[0, 0x50, 8])
            .op(OP_TRANSMIT, &[])
            .op(
                WIRE_SPLIT | B_TO_A | 0xE0,
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            )
            .op(WIRE_PUMP, &[])
            .seed("pair-split-frames"),
    ]
}

/// Runs a session between two real engines and returns the frames the dialer sent, as
/// messages, with the points at which the acceptor's app accepted.
fn recorded(max_frame: usize) -> Script {
    let now = Instant::now();
    let config = EngineConfig::default();
    let mut a = LinkEngine::new(now, Role::Dialer, "phone", None, max_frame, [1; 16], config);
    let mut b = LinkEngine::new(
        now,
        Role::Acceptor,
        "tablet",
        None,
        max_frame,
        [2; 16],
        config,
    );
    let mut script = Script::new(if max_frame == 128 {
        [0, 0x01]
    } else {
        ACCEPTOR
    });
    let exchange = |a: &mut LinkEngine, b: &mut LinkEngine, script: Script| {
        let mut script = script;
        while let Some(frame) = a.poll_transmit(now) {
            script = script.raw(&frame);
            b.handle_message(now, frame);
        }
        while let Some(frame) = b.poll_transmit(now) {
            a.handle_message(now, frame);
        }
        script.transmit()
    };
    script = exchange(&mut a, &mut b, script);
    let mut request = OutgoingRequest {
        token: [0x5A; 16],
        source: acm_wire::pb::PeerInfo {
            device_id: "phone".into(),
            bundle_name: "com.example.notes".into(),
            module_name: "entry".into(),
            ability_name: "EntryAbility".into(),
            service_name: String::new(),
        },
        target: acm_wire::pb::PeerInfo::default(),
        options: Default::default(),
    };
    request.target = acm_wire::pb::PeerInfo {
        device_id: "tablet".into(),
        service_name: "notes".into(),
        ..request.source.clone()
    };
    let channel = a.connect(now, request).unwrap_or(1);
    script = exchange(&mut a, &mut b, script);
    let _ = b.accept(channel);
    script = exchange(&mut a, &mut b, script.call(ACCEPT, &[0]));
    let _ = a.send_message(channel, "a message from the phone");
    let _ = a.send_data(channel, Bytes::from(vec![0xA5; 700]));
    let event = CollaborateEventType::SendFailure;
    let _ = a.send_collaborate_event(channel, event, "it failed");
    script = exchange(&mut a, &mut b, script);
    let _ = a.disconnect(channel, DisconnectReason::PeerAppCloseCollaboration);
    a.close(LinkCloseReason::Normal, "no sessions left");
    exchange(&mut a, &mut b, script)
}

/// The seed inputs of the `engine` target.
pub fn seeds() -> Vec<Seed> {
    let mut seeds = scripted();
    seeds.extend(pair());
    seeds.push(recorded(65_535).seed("recorded-session"));
    seeds.push(recorded(128).seed("recorded-session-128"));
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_passes_and_names_are_unique() {
        let seeds = seeds();
        let mut names = std::collections::BTreeSet::new();
        for seed in &seeds {
            assert!(names.insert(seed.name.clone()), "{}", seed.name);
            super::super::engine(&seed.bytes);
        }
        assert!(seeds.len() >= 10);
    }
}
