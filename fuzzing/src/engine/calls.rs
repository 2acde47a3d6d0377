//! The apps' calls on an engine, with arguments from the input: each call's result is compared
//! with the one the observer's account of the link and its sessions predicts.

use std::time::Instant;

use crate::Input;
use acm_wire::pb::{self, CollaborateEventType, ConnectErrorCode, DisconnectReason};
use acm_wire::reference::ApiEnum;
use acm_wire::{Control, limits::MAX_MESSAGE_LEN, limits::MAX_TEXT_LEN};
use bytes::Bytes;

use super::args;
use super::observer::{Cause, Key, Observer, State};
use acm_engine::{EngineError, LinkEngine, truncate};

/// How many control frames one call may queue at most: a body split into 128-byte frames.
pub(super) const CALL_FRAMES: usize = 12;

/// The calls, by their number in the operation byte (fuzz/README.md).
pub(super) const CONNECT: u8 = 0;
pub(super) const ACCEPT: u8 = 1;
pub(super) const REJECT: u8 = 2;
pub(super) const SEND_MESSAGE: u8 = 3;
pub(super) const SEND_DATA: u8 = 4;
pub(super) const SEND_EVENT: u8 = 5;
pub(super) const DISCONNECT: u8 = 6;
pub(super) const CLOSE: u8 = 7;

/// The error every call gives while the link is not up or has ended.
fn link_error(observer: &Observer) -> Option<EngineError> {
    if observer.closed.is_some() {
        Some(EngineError::LinkClosed)
    } else if observer.up.is_none() {
        Some(EngineError::LinkNotUp)
    } else {
        None
    }
}

/// What a call that needs a session in `state` on `channel` gives.
fn in_state(
    observer: &Observer,
    channel: u32,
    states: &[State],
    expected: &'static str,
) -> Result<(), EngineError> {
    if let Some(err) = link_error(observer) {
        return Err(err);
    }
    match observer.state(channel) {
        Some(state) if states.contains(&state) => Ok(()),
        _ => Err(EngineError::WrongState { channel, expected }),
    }
}

fn check<T: PartialEq + std::fmt::Debug>(observer: &Observer, call: &str, got: &T, expected: &T) {
    assert_eq!(got, expected, "{}: {call}", observer.name);
}

/// Makes call `call` (0 to 7) on `engine` at `now`; `peer_device` is the peer's device id.
pub(super) fn call(
    call: u8,
    input: &mut Input<'_>,
    engine: &mut LinkEngine,
    observer: &mut Observer,
    now: Instant,
    peer_device: &str,
) {
    let known: Vec<u32> = observer.sessions.keys().copied().collect();
    let before = engine.queued_control_frames();
    match call {
        CONNECT => {
            let request = args::request(input, &observer.local_device, peer_device, false);
            let key = Key::new(
                &request.source,
                &request.target,
                &request.target.service_name,
            );
            let expected = if let Some(err) = link_error(observer) {
                Err(err)
            } else if observer.key_in_use(&key) {
                Err(EngineError::SessionExists)
            } else if request.options.need_send_data == Some(true) && !observer.config.carries_data
            {
                Err(EngineError::LocalCannotCarryData)
            } else if observer.session_count() >= observer.config.max_sessions {
                Err(EngineError::TooManySessions(observer.config.max_sessions))
            } else {
                u32::try_from(observer.next_local()).map_err(|_| EngineError::ChannelsExhausted)
            };
            let got = engine.connect(now, request.clone());
            check(observer, "connect", &got, &expected);
            if let Ok(channel) = got {
                observer.requested(now, channel, &request);
            }
        }
        ACCEPT => {
            let channel = args::channel(input, &known);
            let expected = in_state(observer, channel, &[State::Incoming], "incoming");
            let got = engine.accept(channel);
            check(observer, "accept", &got, &expected);
            if got.is_ok() {
                let token = observer.sessions[&channel].token;
                observer.set_state(channel, State::Connected);
                let accepted = pb::connect_response::Result::Accepted(pb::Accepted {});
                observer.expect_body(channel, response(token, accepted));
            }
        }
        REJECT => {
            let channel = args::channel(input, &known);
            let code = pick(input, ConnectErrorCode::ALL);
            let reason = args::text(input);
            let expected = in_state(observer, channel, &[State::Incoming], "incoming");
            let got = engine.reject(channel, code, &reason);
            check(observer, "reject", &got, &expected);
            if got.is_ok() {
                let token = observer.sessions[&channel].token;
                observer.set_state(channel, State::Closed);
                let rejected = pb::connect_response::Result::Rejected(pb::Rejected {
                    code: code.into(),
                    reason: truncate(&reason, MAX_TEXT_LEN),
                });
                observer.expect_body(channel, response(token, rejected));
            }
        }
        SEND_MESSAGE => {
            let channel = args::channel(input, &known);
            let text = args::text(input);
            let expected = if text.len() > MAX_MESSAGE_LEN {
                Err(EngineError::MessageTooLong(text.len()))
            } else {
                in_state(observer, channel, &[State::Connected], "connected")
            };
            let got = engine.send_message(channel, &text);
            check(observer, "send_message", &got, &expected);
            if got.is_ok() {
                observer.expect_body(channel, Control::Message(pb::Message { text }));
            }
        }
        SEND_DATA => {
            let channel = args::channel(input, &known);
            let max = observer.up.as_ref().map_or(u64::MAX, |up| up.max_data);
            let data = args::data(args::data_len(input, max), input.byte());
            let len = data.len() as u64;
            let expected = match link_error(observer) {
                Some(err) => Err(err),
                None if len > max => Err(EngineError::DataTooLarge { len, max }),
                None => in_state(observer, channel, &[State::Connected], "connected").map(|()| {
                    let last = observer.last_transfer.get(&channel).copied();
                    last.unwrap_or(0).saturating_add(1)
                }),
            };
            let got = engine.send_data(channel, data.clone());
            check(observer, "send_data", &got, &expected);
            if let Ok(transfer_id) = got {
                observer.queued_transfer(channel, transfer_id, data);
            }
        }
        SEND_EVENT => {
            let channel = args::channel(input, &known);
            let event_type = pick(input, CollaborateEventType::ALL);
            let message = args::text(input);
            let expected = in_state(observer, channel, &[State::Connected], "connected");
            let got = engine.send_collaborate_event(channel, event_type, &message);
            check(observer, "send_collaborate_event", &got, &expected);
            if got.is_ok() {
                let event = pb::CollaborateEvent {
                    event_type: event_type.into(),
                    message: truncate(&message, MAX_TEXT_LEN),
                };
                observer.expect_body(channel, Control::CollaborateEvent(event));
            }
        }
        DISCONNECT => {
            let channel = args::channel(input, &known);
            let reason = pick(input, DisconnectReason::ALL);
            let states = [State::Connected, State::Requested];
            let expected = in_state(observer, channel, &states, "connected or requested");
            let got = engine.disconnect(channel, reason);
            check(observer, "disconnect", &got, &expected);
            if got.is_ok() {
                observer.set_state(channel, State::Closed);
                let disconnect = pb::Disconnect {
                    reason: reason.into(),
                    error: pb::SessionError::None.into(),
                    detail: String::new(),
                };
                observer.expect_body(channel, Control::Disconnect(disconnect));
            }
        }
        _ => {
            let reason = pb::LinkCloseReason::try_from(1 + i32::from(input.byte() % 7))
                .unwrap_or(pb::LinkCloseReason::Normal);
            let message = args::text(input);
            engine.close(reason, message);
        }
    }
    observer.after(engine, now, Cause::Call, before, CALL_FRAMES);
    if call == CLOSE {
        assert!(
            engine.is_closed(),
            "{}: close() left the link open",
            observer.name
        );
    }
}

/// One of `all`, by a byte.
fn pick<T: Copy>(input: &mut Input<'_>, all: &[T]) -> T {
    all[usize::from(input.byte()) % all.len()]
}

fn response(token: [u8; 16], result: pb::connect_response::Result) -> Control {
    Control::ConnectResponse(pb::ConnectResponse {
        token: Bytes::copy_from_slice(&token),
        result: Some(result),
    })
}
