//! The mapping between the wire's enums and the numbers of OpenHarmony's
//! abilityConnectionManager API (SPEC section 9), and how unknown values on the wire are read
//! (SPEC `CTRL-3`).
//!
//! Every enum that mirrors the API has an UNSPECIFIED zero on the wire, so the wire number is
//! the API number plus one.
//!
//! ```
//! use acm_wire::pb::ConnectErrorCode;
//! use acm_wire::reference::ApiEnum;
//!
//! assert_eq!(ConnectErrorCode::PeerAppRejected.api_value(), Some(1));
//! assert_eq!(ConnectErrorCode::from_api_value(1), Some(ConnectErrorCode::PeerAppRejected));
//! assert_eq!(i32::from(ConnectErrorCode::PeerAppRejected), 2); // on the wire
//! ```

use crate::pb::{
    CollaborateEventType, ConnectErrorCode, DisconnectReason, LinkCloseReason, SessionError,
    StartOptionParams,
};

/// A wire enum that mirrors an enum of the reference API.
pub trait ApiEnum: Sized + Copy + Into<i32> + TryFrom<i32> + 'static {
    /// The API's name of the enum.
    const API_NAME: &'static str;

    /// Every value the API defines, in API order.
    const ALL: &'static [Self];

    /// The API's number for this value, or `None` for UNSPECIFIED.
    fn api_value(self) -> Option<i32> {
        let wire: i32 = self.into();
        wire.checked_sub(1).filter(|v| *v >= 0)
    }

    /// The value with the API's number `value`, or `None` if the API defines no such value.
    fn from_api_value(value: i32) -> Option<Self> {
        let wire = value.checked_add(1).filter(|w| *w > 0)?;
        Self::try_from(wire).ok()
    }
}

impl ApiEnum for ConnectErrorCode {
    const API_NAME: &'static str = "ConnectErrorCode";
    const ALL: &'static [Self] = &[
        Self::ConnectedSessionExists,
        Self::PeerAppRejected,
        Self::LocalWifiNotOpen,
        Self::PeerWifiNotOpen,
        Self::PeerAbilityNoOncollaborate,
        Self::SystemInternalError,
    ];
}

impl ApiEnum for DisconnectReason {
    const API_NAME: &'static str = "DisconnectReason";
    const ALL: &'static [Self] = &[
        Self::PeerAppCloseCollaboration,
        Self::PeerAppExit,
        Self::NetworkDisconnected,
    ];
}

impl ApiEnum for CollaborateEventType {
    const API_NAME: &'static str = "CollaborateEventType";
    const ALL: &'static [Self] = &[Self::SendFailure, Self::ColorSpaceConversionFailure];
}

impl ApiEnum for StartOptionParams {
    const API_NAME: &'static str = "StartOptionParams";
    const ALL: &'static [Self] = &[Self::StartInForeground];
}

/// Reads a ConnectErrorCode from the wire: a value this version does not know is read as
/// SYSTEM_INTERNAL_ERROR (SPEC `CTRL-3`).
pub fn read_connect_error_code(wire: i32) -> ConnectErrorCode {
    match ConnectErrorCode::try_from(wire) {
        Ok(ConnectErrorCode::Unspecified) | Err(_) => ConnectErrorCode::SystemInternalError,
        Ok(code) => code,
    }
}

/// Reads a DisconnectReason from the wire: a value this version does not know is read as
/// NETWORK_DISCONNECTED (SPEC `CTRL-3`).
pub fn read_disconnect_reason(wire: i32) -> DisconnectReason {
    match DisconnectReason::try_from(wire) {
        Ok(DisconnectReason::Unspecified) | Err(_) => DisconnectReason::NetworkDisconnected,
        Ok(reason) => reason,
    }
}

/// Reads a CollaborateEventType from the wire: `None` for a value this version does not know,
/// whose event the receiver drops (SPEC `CTRL-3`).
pub fn read_collaborate_event_type(wire: i32) -> Option<CollaborateEventType> {
    CollaborateEventType::try_from(wire)
        .ok()
        .filter(|t| *t != CollaborateEventType::Unspecified)
}

/// Reads StartOptionParams from the wire: absent, UNSPECIFIED or unknown values are read as the
/// API default, START_IN_FOREGROUND (SPEC `CTRL-3`).
pub fn read_start_options(wire: i32) -> StartOptionParams {
    match StartOptionParams::try_from(wire) {
        Ok(StartOptionParams::Unspecified) | Err(_) => StartOptionParams::StartInForeground,
        Ok(option) => option,
    }
}

/// Reads a LinkCloseReason from the wire: a value this version does not know is read as
/// PROTOCOL_ERROR (SPEC `CTRL-3`).
pub fn read_link_close_reason(wire: i32) -> LinkCloseReason {
    match LinkCloseReason::try_from(wire) {
        Ok(LinkCloseReason::Unspecified) | Err(_) => LinkCloseReason::ProtocolError,
        Ok(reason) => reason,
    }
}

/// Reads a SessionError from the wire: a value this version does not know is read as
/// INTERNAL_ERROR (SPEC `CTRL-3`).
pub fn read_session_error(wire: i32) -> SessionError {
    SessionError::try_from(wire).unwrap_or(SessionError::InternalError)
}
