//! The bodies and frames cases send, and the checks of what comes back, shared by the cases.

use acm_wire::pb::{self, connect_response};
use acm_wire::{Control, DataFragment};
use bytes::{Bytes, BytesMut};

use super::peer::Step;
use crate::report::Verdict;

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// A token made of one byte.
pub fn token(byte: u8) -> [u8; 16] {
    [byte; 16]
}

/// A token made of one byte and a number, unique for each number.
pub fn channel_token(byte: u8, number: u32) -> [u8; 16] {
    let mut token = [byte; 16];
    token[12..].copy_from_slice(&number.to_be_bytes());
    token
}

/// A MESSAGE body.
pub fn message(text: &str) -> Control {
    Control::Message(pb::Message { text: text.into() })
}

/// A CONNECT_RESPONSE that accepts the request of `token`.
pub fn accept(token: Bytes) -> Control {
    Control::ConnectResponse(pb::ConnectResponse {
        token,
        result: Some(connect_response::Result::Accepted(pb::Accepted {})),
    })
}

/// A CONNECT_RESPONSE that rejects the request of `token` with `code` and `reason`.
pub fn reject(token: Bytes, code: pb::ConnectErrorCode, reason: &str) -> Control {
    Control::ConnectResponse(pb::ConnectResponse {
        token,
        result: Some(connect_response::Result::Rejected(pb::Rejected {
            code: code.into(),
            reason: reason.into(),
        })),
    })
}

/// A DISCONNECT body.
pub fn disconnect(reason: pb::DisconnectReason, error: pb::SessionError, detail: &str) -> Control {
    Control::Disconnect(pb::Disconnect {
        reason: reason.into(),
        error: error.into(),
        detail: detail.into(),
    })
}

/// A COLLABORATE_EVENT body.
pub fn event(event_type: pb::CollaborateEventType, message: &str) -> Control {
    Control::CollaborateEvent(pb::CollaborateEvent {
        event_type: event_type.into(),
        message: message.into(),
    })
}

/// Checks that `response` rejects with `code`, and returns its reason.
pub fn rejected_with(response: &pb::ConnectResponse, code: pb::ConnectErrorCode) -> Step<String> {
    match &response.result {
        Some(connect_response::Result::Rejected(rejected)) if rejected.code() == code => {
            Ok(rejected.reason.clone())
        }
        other => fail(
            format!("rejected {}", code.as_str_name()),
            format!("{other:?}"),
        ),
    }
}

/// Checks that `response` accepts.
pub fn accepted(response: &pb::ConnectResponse) -> Step<()> {
    match &response.result {
        Some(connect_response::Result::Accepted(_)) => Ok(()),
        other => fail("accepted", format!("{other:?}")),
    }
}

/// Checks that a DISCONNECT carries `reason` and `error`.
pub fn disconnect_is(
    bye: &pb::Disconnect,
    reason: pb::DisconnectReason,
    error: pb::SessionError,
) -> Step<()> {
    if bye.reason() != reason || bye.error() != error {
        return fail(
            format!(
                "DISCONNECT {} / {}",
                reason.as_str_name(),
                error.as_str_name()
            ),
            format!(
                "{} / {} ({})",
                bye.reason().as_str_name(),
                bye.error().as_str_name(),
                bye.detail
            ),
        );
    }
    Ok(())
}

/// A transfer in one DATA frame (FIRST and LAST) of exactly `len` bytes in all on `channel`,
/// and its bytes.
pub fn data_frame(channel: u32, len: usize) -> Step<(Bytes, Bytes)> {
    let chunk = Bytes::from(vec![0x3C; len.saturating_sub(12 + 16)]);
    let mut out = BytesMut::new();
    DataFragment {
        channel,
        transfer_id: 1,
        index: 0,
        total_length: Some(chunk.len() as u64),
        last: true,
        chunk: chunk.clone(),
    }
    .encode(1, &mut out)
    .map_err(|e| Verdict::fail("an encodable fragment", e.to_string()))?;
    if out.len() != len {
        return fail(format!("a frame of {len} bytes"), out.len().to_string());
    }
    Ok((out.freeze(), chunk))
}
