//! The control target: every protobuf control body decoded, validated and re-encoded.

use prost::Message as _;

use crate::Input;
use acm_wire::control::Control;
use acm_wire::error::ControlError;
use acm_wire::frame::{Frame, FrameKind, is_link_frame};
use acm_wire::limits::MAX_FRAME_SIZE;
use acm_wire::pb;
use acm_wire::pb::{
    CollaborateEventType, ConnectErrorCode, DisconnectReason, FrameType, LinkCloseReason,
    StartOptionParams,
};
use acm_wire::reference;

/// The frame types with a protobuf body, in the order the selector byte picks them.
pub(super) const CONTROL_TYPES: [FrameType; 9] = [
    FrameType::Hello,
    FrameType::LinkClose,
    FrameType::Ping,
    FrameType::Pong,
    FrameType::ConnectRequest,
    FrameType::ConnectResponse,
    FrameType::Message,
    FrameType::Disconnect,
    FrameType::CollaborateEvent,
];

/// A request as prost alone decodes it (its `PeerInfo` too, which [`pb`] writes out), in the
/// crate's types.
fn bare_request(body: &[u8]) -> Result<pb::ConnectRequest, prost::DecodeError> {
    let bare = acm_wire::bare_pb::ConnectRequest::decode(body)?;
    let peer = |p: acm_wire::bare_pb::PeerInfo| pb::PeerInfo {
        device_id: p.device_id,
        bundle_name: p.bundle_name,
        module_name: p.module_name,
        ability_name: p.ability_name,
        service_name: p.service_name,
    };
    Ok(pb::ConnectRequest {
        token: bare.token,
        source: bare.source.map(peer),
        target: bare.target.map(peer),
        // ConnectOptions is prost's own in both: the same type but for its module.
        options: bare
            .options
            .map(|o| pb::ConnectOptions::decode(&o.encode_to_vec()[..]))
            .transpose()?,
    })
}

/// Decodes a body with prost alone, without any check of its contents.
fn prost_decode(frame_type: FrameType, body: &[u8]) -> Result<Control, prost::DecodeError> {
    Ok(match frame_type {
        FrameType::Hello => Control::Hello(pb::Hello::decode(body)?),
        FrameType::LinkClose => Control::LinkClose(pb::LinkClose::decode(body)?),
        FrameType::Ping => Control::Ping(pb::Ping::decode(body)?),
        FrameType::Pong => Control::Pong(pb::Pong::decode(body)?),
        FrameType::ConnectRequest => Control::ConnectRequest(bare_request(body)?),
        FrameType::ConnectResponse => Control::ConnectResponse(pb::ConnectResponse::decode(body)?),
        FrameType::Message => Control::Message(pb::Message::decode(body)?),
        FrameType::Disconnect => Control::Disconnect(pb::Disconnect::decode(body)?),
        FrameType::CollaborateEvent => {
            Control::CollaborateEvent(pb::CollaborateEvent::decode(body)?)
        }
        FrameType::Unspecified | FrameType::Data => unreachable!("no protobuf body"),
    })
}

/// Collects the rules a body breaks, as SPEC.md words them.
#[derive(Default)]
struct Rules(Vec<&'static str>);

impl Rules {
    fn unless(&mut self, ok: bool, rules: &[&'static str]) {
        if !ok {
            self.0.extend_from_slice(rules);
        }
    }

    /// `len` bytes within `min..=max`, and no control character when `plain`.
    fn text(&mut self, text: &str, min: usize, max: usize, plain: bool, rule: &'static str) {
        self.unless((min..=max).contains(&text.len()), &[rule]);
        self.unless(!plain || !text.chars().any(char::is_control), &[rule]);
    }
}

/// The rules a decoded body breaks, written from SPEC sections 4.1, 5.2, 5.3, 7 and 8
/// rather than from [`Control::validate`].
fn violations(control: &Control) -> Vec<&'static str> {
    let mut rules = Rules::default();
    match control {
        Control::Hello(m) => {
            // LINK-3.
            let versions = 1 <= m.min_version && m.min_version <= m.max_version;
            rules.unless(versions && m.max_version <= 255, &["LINK-3"]);
            rules.text(&m.device_id, 1, 64, true, "LINK-3");
            let frame_size = 128..=16_777_227;
            rules.unless(frame_size.contains(&m.max_frame_size), &["LINK-3"]);
            let keepalive = 1_000..=600_000;
            rules.unless(keepalive.contains(&m.keepalive_interval_ms), &["LINK-3"]);
            rules.unless(m.nonce.len() == 16, &["LINK-3"]);
            rules.unless(m.max_data_size >= 1, &["LINK-3"]);
        }
        Control::LinkClose(m) => {
            rules.unless(m.reason != 0, &["CTRL-3"]);
            rules.unless(m.message.len() <= 1024, &["CTRL-4"]);
        }
        Control::Ping(_) | Control::Pong(_) => {}
        Control::ConnectRequest(m) => {
            // SESS-2. SPEC.md forbids control characters in the names; it does not say so for
            // service names, which this crate holds to the same rule as the other names.
            rules.unless(m.token.len() == 16, &["SESS-2"]);
            for (peer, service_required) in [(&m.source, false), (&m.target, true)] {
                let Some(peer) = peer else {
                    rules.0.push("SESS-2");
                    continue;
                };
                rules.text(&peer.device_id, 1, 64, true, "SESS-2");
                rules.text(&peer.bundle_name, 1, 1023, true, "SESS-2");
                rules.text(&peer.module_name, 1, 1023, true, "SESS-2");
                rules.text(&peer.ability_name, 1, 1023, true, "SESS-2");
                if service_required || !peer.service_name.is_empty() {
                    rules.text(&peer.service_name, 1, 256, true, "SESS-2");
                }
            }
            if let Some(options) = &m.options {
                rules.unless(options.parameters.len() <= 64, &["SESS-2"]);
                for (key, value) in &options.parameters {
                    rules.text(key, 1, 1023, true, "SESS-2");
                    rules.text(value, 0, 1023, false, "SESS-2");
                }
            }
        }
        Control::ConnectResponse(m) => {
            // SESS-4; the reject reason is a free text of CTRL-4.
            rules.unless(m.token.len() == 16, &["SESS-4"]);
            match &m.result {
                None => rules.0.push("SESS-4"),
                Some(pb::connect_response::Result::Accepted(_)) => {}
                Some(pb::connect_response::Result::Rejected(rejected)) => {
                    rules.unless(rejected.code != 0, &["CTRL-3", "SESS-4"]);
                    rules.unless(rejected.reason.len() <= 1024, &["CTRL-4"]);
                }
            }
        }
        Control::Message(m) => rules.unless(m.text.len() <= 1024, &["MSG-1"]),
        Control::Disconnect(m) => {
            rules.unless(m.reason != 0, &["CTRL-3"]);
            rules.unless(m.detail.len() <= 1024, &["CTRL-4"]);
        }
        Control::CollaborateEvent(m) => {
            rules.unless(m.event_type != 0, &["CTRL-3", "EVT-1"]);
            rules.unless(m.message.len() <= 1024, &["CTRL-4", "EVT-1"]);
        }
    }
    rules.0
}

/// A valid body's enums read as SPEC `CTRL-3` says: never as UNSPECIFIED.
fn check_enum_readings(control: &Control) {
    match control {
        Control::LinkClose(m) => {
            let reason = reference::read_link_close_reason(m.reason);
            assert_ne!(reason, LinkCloseReason::Unspecified);
            if let Ok(known) = LinkCloseReason::try_from(m.reason) {
                assert_eq!(reason, known);
            }
        }
        Control::ConnectRequest(m) => {
            let wire = m.options.as_ref().map_or(0, |o| o.start_options);
            let start = reference::read_start_options(wire);
            assert_eq!(start, StartOptionParams::StartInForeground);
        }
        Control::ConnectResponse(m) => {
            if let Some(pb::connect_response::Result::Rejected(rejected)) = &m.result {
                let code = reference::read_connect_error_code(rejected.code);
                assert_ne!(code, ConnectErrorCode::Unspecified);
                if let Ok(known) = ConnectErrorCode::try_from(rejected.code) {
                    assert_eq!(code, known);
                }
            }
        }
        Control::Disconnect(m) => {
            let reason = reference::read_disconnect_reason(m.reason);
            assert_ne!(reason, DisconnectReason::Unspecified);
            if let Ok(known) = DisconnectReason::try_from(m.reason) {
                assert_eq!(reason, known);
            }
            let error = reference::read_session_error(m.error);
            if let Ok(known) = pb::SessionError::try_from(m.error) {
                assert_eq!(error, known);
            }
        }
        Control::CollaborateEvent(m) => {
            let event = reference::read_collaborate_event_type(m.event_type);
            let known = CollaborateEventType::try_from(m.event_type).ok();
            assert_eq!(event, known);
            assert_ne!(event, Some(CollaborateEventType::Unspecified));
        }
        Control::Hello(_) | Control::Ping(_) | Control::Pong(_) | Control::Message(_) => {}
    }
}

/// Target `control_messages`: every protobuf control payload decoded and validated.
///
/// Input: a byte that picks the frame type (its value modulo 9, in the order of
/// `acm.v1.FrameType` without DATA), then the body. [`Control::decode`] must fail to decode
/// exactly when prost does, and must accept exactly the bodies a model of the SPEC rules
/// accepts, naming a rule the body breaks when it refuses one. An accepted body re-encodes to a
/// canonical body that decodes to an equal message, travels in a frame unchanged, and has its
/// enums read as `CTRL-3` says.
pub fn control_messages(data: &[u8]) {
    let mut input = Input::new(data);
    let frame_type = CONTROL_TYPES[usize::from(input.byte())
        .checked_rem(CONTROL_TYPES.len())
        .unwrap_or(0)];
    let body = input.rest();

    assert_eq!(Control::decode(FrameType::Data, body), None);
    assert_eq!(Control::decode(FrameType::Unspecified, body), None);
    let result = Control::decode(frame_type, body).expect("a control type has a body");
    let unchecked = prost_decode(frame_type, body);
    let control = match (unchecked, result) {
        (Err(prost), Err(err)) => {
            let ControlError::Decode { detail, .. } = &err else {
                panic!("prost fails ({prost}) but decode gives {err:?}");
            };
            assert_eq!(*detail, prost.to_string());
            assert_eq!(err.rule(), "CTRL-1");
            return;
        }
        (Err(prost), Ok(control)) => panic!("prost fails ({prost}) but decode gives {control:?}"),
        (Ok(unchecked), Err(err)) => {
            let broken = violations(&unchecked);
            assert!(
                broken.contains(&err.rule()),
                "{err:?} names {}, but {unchecked:?} breaks only {broken:?}",
                err.rule()
            );
            assert_eq!(unchecked.validate(), Err(err));
            return;
        }
        (Ok(unchecked), Ok(control)) => {
            assert_eq!(unchecked, control);
            control
        }
    };
    let broken = violations(&control);
    assert!(
        broken.is_empty(),
        "accepted {control:?}, which breaks {broken:?}"
    );
    assert_eq!(control.frame_type(), frame_type);
    assert_eq!(control.validate(), Ok(()));
    check_enum_readings(&control);

    let canonical = control.encode_body();
    assert_eq!(
        Control::decode(frame_type, &canonical),
        Some(Ok(control.clone())),
        "the canonical body decodes otherwise"
    );

    let channel = if is_link_frame(frame_type) { 0 } else { 7 };
    let wire = control.encode_frame(1, channel).expect("a body encodes");
    let frame = Frame::decode_exact(wire, MAX_FRAME_SIZE, Some(1)).expect("its frame decodes");
    assert_eq!(frame.kind, FrameKind::Known(frame_type));
    assert_eq!(frame.channel, channel);
    assert_eq!(frame.payload, canonical);
}
