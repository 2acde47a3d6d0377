//! What the suite's device records, and the target's reports (`PROF-3`) read as B's
//! observations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use acm::{
    AbilityConnectionManager, CollaborateEventType, CollaborateRequest, CollaborateResult,
    ConnectErrorCode, ConnectResult, DisconnectReason, Event,
};
use bytes::Bytes;

use super::super::implementation::{
    ABILITY, Call, HANDLER_REASON, Observation, Outcome, RequestRef, SERVICES, SessionEvent,
    SessionRef, Side,
};
use super::NO_ANSWER;
use crate::driver::{ERROR, OK, SCENARIO};
use crate::profile::MODULE;

/// The kinds of payloads, as reports name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Message,
    Data,
    Event,
}

/// What the suite's device records and the driver session's reader reports, shared with them.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) observations: Vec<Observation>,
    /// Tokens of the requests A's app received.
    pub(super) tokens: HashMap<RequestRef, String>,
    pub(super) next_request: RequestRef,
    /// What A sent, by kind, length and hash: how the suite names what B reports.
    pub(super) sent: HashMap<(Kind, usize, String), Bytes>,
    /// Reports the target made that do not follow `PROF-3`.
    pub(super) malformed: Vec<String>,
    /// Whether the reset's answer came: reports before it belong to an earlier scenario.
    pub(super) ready: bool,
}

pub(super) type SharedRef = Arc<Mutex<Shared>>;

pub(super) fn lock(shared: &SharedRef) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
/// A's app: reports each request and keeps it for a later answer, except for the refused
/// service, which it rejects at once (as the target's scenario app does, `PROF-3`).
pub(super) fn register(app: &AbilityConnectionManager, shared: &SharedRef) {
    let shared = shared.clone();
    app.register_ability(MODULE, SCENARIO, move |request: CollaborateRequest| {
        let mut shared = lock(&shared);
        let id = shared.next_request;
        shared.next_request += 1;
        shared.tokens.insert(id, request.token.clone());
        let service = request.peer_info.service_name.clone();
        let peer_ability = match request.peer_info.ability_name.as_str() {
            SCENARIO => ABILITY.to_string(),
            other => other.to_string(),
        };
        shared.observations.push(Observation::Request {
            device: Side::A,
            request: id,
            service: service.clone(),
            peer_ability,
        });
        if service == SERVICES[2] {
            CollaborateResult::Reject {
                reason: HANDLER_REASON.into(),
            }
        } else {
            CollaborateResult::Accept
        }
    });
}

/// Reads a driver session: answers go to the command waiting for them, reports become B's
/// observations.
pub(super) async fn read_driver(
    mut events: acm::EventStream,
    shared: SharedRef,
    answers: mpsc::Sender<Result<(), u32>>,
    down: Arc<AtomicBool>,
) {
    while let Some(event) = events.next().await {
        match event {
            Event::Message { msg, .. } => {
                if msg == OK {
                    let _ = answers.send(Ok(()));
                } else if let Some(code) = msg.strip_prefix(ERROR) {
                    let _ = answers.send(Err(code.parse().unwrap_or(NO_ANSWER)));
                } else {
                    let mut shared = lock(&shared);
                    if !shared.ready {
                        continue;
                    }
                    match parse_report(&msg, &shared.sent) {
                        Some(observation) => shared.observations.push(observation),
                        None => shared.malformed.push(msg),
                    }
                }
            }
            Event::Disconnect { .. } => break,
            _ => {}
        }
    }
    down.store(true, Ordering::SeqCst);
}

/// B's observation in a report (`PROF-3`); `None` when the report is malformed.
fn parse_report(text: &str, sent: &HashMap<(Kind, usize, String), Bytes>) -> Option<Observation> {
    let mut words = text.splitn(4, ' ');
    let head = words.next()?;
    match head {
        "drive:request" => {
            let request = words.next()?.parse().ok()?;
            let service = words.next()?.to_string();
            let ability = words.next()?;
            let peer_ability = if ability == SCENARIO {
                ABILITY
            } else {
                ability
            };
            Some(Observation::Request {
                device: Side::B,
                request,
                service,
                peer_ability: peer_ability.to_string(),
            })
        }
        "drive:event" => {
            let session: SessionRef = words.next()?.parse().ok()?;
            let what = words.next()?;
            let rest: Vec<&str> = words.next().unwrap_or_default().split(' ').collect();
            let named = |kind: Kind, len: &str, h: &str| -> Option<Bytes> {
                let len: usize = len.parse().ok()?;
                let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
                if h.len() != 16 || !h.chars().all(hex) {
                    return None;
                }
                Some(
                    sent.get(&(kind, len, h.to_string()))
                        .cloned()
                        .unwrap_or_else(|| {
                            Bytes::from(format!("(not sent by the suite: {len} bytes, hash {h})"))
                        }),
                )
            };
            let text = |bytes: Bytes| String::from_utf8_lossy(&bytes).into_owned();
            let event = match (what, rest.as_slice()) {
                ("connect", [""]) => SessionEvent::Connect,
                ("disconnect", [n]) => {
                    SessionEvent::Disconnect(DisconnectReason::from_value(n.parse().ok()?)?)
                }
                ("message", [len, h]) => SessionEvent::Message(text(named(Kind::Message, len, h)?)),
                ("data", [len, h]) => SessionEvent::Data(named(Kind::Data, len, h)?),
                ("collaborate", [t, len, h]) => SessionEvent::Collaborate(
                    CollaborateEventType::from_value(t.parse().ok()?)?,
                    Some(text(named(Kind::Event, len, h)?)),
                ),
                _ => return None,
            };
            Some(Observation::Event {
                device: Side::B,
                session,
                event,
            })
        }
        "drive:done" => {
            let session: SessionRef = words.next()?.parse().ok()?;
            let call = words.next()?;
            let rest = words.next()?;
            let call = match call {
                "connect" => Call::Connect,
                "accept" => Call::Accept,
                "message" => Call::SendMessage,
                "data" => Call::SendData,
                "event" => Call::SendEvent,
                _ => return None,
            };
            let outcome = if rest == "ok" && call != Call::Connect {
                Outcome::Ok
            } else if let Some(code) = rest.strip_prefix("error ") {
                Outcome::Error(code.parse().ok()?)
            } else if rest == "connected" && call == Call::Connect {
                Outcome::Connect(ConnectResult {
                    is_connected: true,
                    error_code: None,
                    reason: None,
                })
            } else if let Some(refused) = rest.strip_prefix("refused ")
                && call == Call::Connect
            {
                let (code, reason) = refused.split_once(' ').unwrap_or((refused, ""));
                Outcome::Connect(ConnectResult {
                    is_connected: false,
                    error_code: Some(ConnectErrorCode::from_value(code.parse().ok()?)?),
                    reason: (!reason.is_empty()).then(|| reason.to_string()),
                })
            } else {
                return None;
            };
            Some(Observation::Done {
                device: Side::B,
                session,
                call,
                outcome,
            })
        }
        _ => None,
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::hash;

    #[test]
    fn reports_are_read_as_b_observations() {
        let mut sent = HashMap::new();
        sent.insert((Kind::Message, 3, hash(b"#1:")), Bytes::from_static(b"#1:"));
        let parsed = parse_report("drive:event 4 message 3 ".to_string().as_str(), &sent);
        assert_eq!(parsed, None);
        let message = format!("drive:event 4 message 3 {}", hash(b"#1:"));
        assert_eq!(
            parse_report(&message, &sent),
            Some(Observation::Event {
                device: Side::B,
                session: 4,
                event: SessionEvent::Message("#1:".into()),
            })
        );
        assert_eq!(
            parse_report("drive:done 2 connect refused 5 not now", &sent),
            Some(Observation::Done {
                device: Side::B,
                session: 2,
                call: Call::Connect,
                outcome: Outcome::Connect(ConnectResult {
                    is_connected: false,
                    error_code: ConnectErrorCode::from_value(5),
                    reason: Some("not now".into()),
                }),
            })
        );
        assert_eq!(
            parse_report("drive:request 1 notes ScenarioAbility", &sent),
            Some(Observation::Request {
                device: Side::B,
                request: 1,
                service: "notes".into(),
                peer_ability: ABILITY.into(),
            })
        );
        assert!(parse_report("drive:event 1 connect", &sent).is_some());
        assert_eq!(parse_report("drive:done x accept ok", &sent), None);
        assert_eq!(parse_report("nonsense", &sent), None);
    }

    #[test]
    fn both_scenario_apps_refuse_the_same_service_for_the_same_reason() {
        assert_eq!(crate::driver::REFUSED_SERVICE, SERVICES[2]);
        assert_eq!(crate::driver::REFUSED_REASON, HANDLER_REASON);
    }
}
