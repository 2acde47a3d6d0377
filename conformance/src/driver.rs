//! The profile's scenario driver (SPEC section 15.1): a scenario app on the device under test
//! that the suite drives through commands on a driver session, and that reports what it
//! observes. [`install`] adds it to the reference profile; the suite's side of it is
//! [`crate::protocol::wire`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use acm::{
    AbilityConnectionManager, AcmError, CollaborateEventType, CollaborateRequest,
    CollaborateResult, ConnectOptions, ConnectResult, Context, Event, PeerInfo, SessionId,
};
use bytes::Bytes;
use tokio::sync::Notify;

use crate::profile::{BUNDLE, MODULE};

/// The ability of driver sessions.
pub const DRIVER: &str = "DriverAbility";
/// The scenario app's ability, on the device under test and on the suite's device.
pub const SCENARIO: &str = "ScenarioAbility";
/// The service the scenario app's handler refuses at once.
pub const REFUSED_SERVICE: &str = "refused";
/// The reason it gives.
pub const REFUSED_REASON: &str = "the app refuses this service";
/// The service the suite opens driver sessions for.
pub const DRIVER_SERVICE: &str = "driver";
/// The answer of a command that worked.
pub const OK: &str = "drive:ok";
/// The beginning of the answer of a command that failed: `drive:error N`.
pub const ERROR: &str = "drive:error ";
/// The most answers and reports the app keeps while no driver session is connected, and the
/// most sessions and requests it keeps between resets (`PROF-1`, `PROF-2`).
pub const MAX_KEPT: usize = 4096;
/// The longest answer or report, in bytes (SPEC `MSG-1`).
pub const MAX_REPORT: usize = 1024;
/// The API's code for a bad parameter.
const PARAMETER: u32 = 401;

/// The 64-bit FNV-1a hash of `bytes`, as the reports write it (`PROF-3`).
pub fn hash(bytes: &[u8]) -> String {
    format!("{:016x}", fnv1a(bytes))
}

/// The 64-bit FNV-1a hash of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What a scenario session's call is called in `drive:done` reports.
fn call_name(call: SendCall) -> &'static str {
    match call {
        SendCall::Message => "message",
        SendCall::Data => "data",
        SendCall::Event => "event",
    }
}

#[derive(Debug, Clone, Copy)]
enum SendCall {
    Message,
    Data,
    Event,
}

/// A scenario session: its id, whether the app destroyed it, and what keeps its `connect`
/// results after its `connect` events (`PROF-3`).
#[derive(Debug, Clone)]
struct Scenario {
    id: SessionId,
    destroyed: bool,
    /// `connect` events reported.
    connects: u32,
    /// `connect` calls that resolved connected.
    connected: u32,
    /// A connected result that came before its event, held until the event is reported.
    held: Option<String>,
}

/// The app's state: it belongs to the device, not to a driver session.
#[derive(Default)]
struct State {
    /// Bumped by every reset: what started before one reports nothing.
    generation: u64,
    sessions: HashMap<u32, Scenario>,
    /// Request tokens by number.
    requests: BTreeMap<u64, String>,
    next_request: u64,
    /// Answers and reports not sent yet, each with its sequence number.
    outbox: VecDeque<(u64, String)>,
    next_seq: u64,
    /// The driver session that connected last, while it is connected.
    outlet: Option<SessionId>,
}

/// The scenario driver of one device.
struct Driver {
    app: AbilityConnectionManager,
    state: Mutex<State>,
    wake: Notify,
}

fn context(ability: &str) -> Context {
    Context::new(BUNDLE, MODULE, ability)
}

impl Driver {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an answer or report, cut to [`MAX_REPORT`] bytes; the oldest give way beyond
    /// [`MAX_KEPT`].
    fn say(&self, state: &mut State, text: &str) {
        let seq = state.next_seq;
        state.next_seq += 1;
        state
            .outbox
            .push_back((seq, cut(text, MAX_REPORT).to_string()));
        while state.outbox.len() > MAX_KEPT {
            state.outbox.pop_front();
        }
        self.wake.notify_one();
    }

    /// Queues `text` unless a reset came since `generation`.
    fn report(&self, generation: u64, text: &str) {
        let mut state = self.lock();
        if state.generation == generation {
            self.say(&mut state, text);
        }
    }

    /// Queues an event report of session `number` unless it was destroyed or reset since; a
    /// `connect` event lets out the connected result that waited for it.
    fn report_event(&self, generation: u64, number: u32, id: SessionId, event: &Event) {
        let Some(text) = event_report(number, event) else {
            return;
        };
        let mut state = self.lock();
        let current = state
            .sessions
            .get(&number)
            .is_some_and(|s| s.id == id && !s.destroyed);
        if state.generation != generation || !current {
            return;
        }
        self.say(&mut state, &text);
        if let (Event::Connect { .. }, Some(session)) = (event, state.sessions.get_mut(&number)) {
            session.connects += 1;
            if let Some(held) = session.held.take() {
                self.say(&mut state, &held);
            }
        }
    }

    /// Queues the report of a `connect` call: a connected result only after the `connect`
    /// event it goes with (the call may end before the app has seen the event).
    fn report_connect(
        &self,
        generation: u64,
        number: u32,
        result: Result<ConnectResult, AcmError>,
    ) {
        let is_connected = matches!(&result, Ok(r) if r.is_connected);
        let text = connected(number, result);
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        if is_connected
            && let Some(session) = state.sessions.get_mut(&number)
            && !session.destroyed
        {
            session.connected += 1;
            if session.connected > session.connects {
                session.held = Some(text);
                return;
            }
        }
        self.say(&mut state, &text);
    }

    /// Sends what is queued, in order, on the outlet, for as long as the device runs.
    async fn pump(self: Arc<Self>) {
        loop {
            let next = {
                let state = self.lock();
                match (state.outlet, state.outbox.front()) {
                    (Some(outlet), Some((seq, text))) => Some((outlet, *seq, text.clone())),
                    _ => None,
                }
            };
            let Some((outlet, seq, text)) = next else {
                self.wake.notified().await;
                continue;
            };
            let sent = self.app.send_message(outlet, &text).await;
            let mut state = self.lock();
            if sent.is_ok() {
                if state.outbox.front().is_some_and(|(s, _)| *s == seq) {
                    state.outbox.pop_front();
                }
            } else if state.outlet == Some(outlet) {
                // The driver session is gone: keep the rest for the next one.
                state.outlet = None;
            }
        }
    }

    /// The scenario app's `onCollaborate`.
    fn on_request(&self, request: &CollaborateRequest) -> CollaborateResult {
        let mut state = self.lock();
        state.next_request += 1;
        let number = state.next_request;
        state.requests.insert(number, request.token.clone());
        while state.requests.len() > MAX_KEPT {
            state.requests.pop_first();
        }
        let service = &request.peer_info.service_name;
        let text = format!(
            "drive:request {number} {service} {}",
            request.peer_info.ability_name
        );
        self.say(&mut state, &text);
        if service == REFUSED_SERVICE {
            CollaborateResult::Reject {
                reason: REFUSED_REASON.into(),
            }
        } else {
            CollaborateResult::Accept
        }
    }

    /// Runs a driver session the app accepted until it ends.
    async fn run_driver(self: Arc<Self>, request: CollaborateRequest) {
        let app = &self.app;
        let peer = request.peer_info.clone();
        let service = peer.service_name.clone();
        let Ok(session) = app.create_ability_connection_session(
            &service,
            &context(DRIVER),
            peer,
            request.connect_options.clone(),
        ) else {
            return;
        };
        let Ok(mut events) = app.events(session) else {
            return;
        };
        if app.accept_connect(session, &request.token).await.is_err() {
            let _ = app.destroy_ability_connection_session(session);
            return;
        }
        let device = request.peer_info.device_id.clone();
        self.lock().outlet = Some(session);
        self.wake.notify_one();
        while let Some(event) = events.next().await {
            let (command, payload) = match event {
                Event::Message { msg, .. } => (msg, Bytes::new()),
                Event::Data { data, .. } => {
                    let split = data.iter().position(|b| *b == b'\n');
                    let (head, rest) = match split {
                        Some(at) => (data.slice(..at), data.slice(at + 1..)),
                        None => (data, Bytes::new()),
                    };
                    (String::from_utf8_lossy(&head).into_owned(), rest)
                }
                Event::Disconnect { .. } => break,
                _ => continue,
            };
            let answer = match self.obey(&device, &command, payload) {
                Ok(()) => OK.to_string(),
                Err(code) => format!("{ERROR}{code}"),
            };
            let mut state = self.lock();
            self.say(&mut state, &answer);
        }
        {
            let mut state = self.lock();
            if state.outlet == Some(session) {
                state.outlet = None;
            }
        }
        let _ = app.destroy_ability_connection_session(session);
    }

    /// Carries out one command (`PROF-2`); the error code of its answer when it fails.
    fn obey(self: &Arc<Self>, device: &str, command: &str, payload: Bytes) -> Result<(), u32> {
        let mut words = command.splitn(2, ' ');
        let verb = words.next().unwrap_or_default();
        let rest = words.next().unwrap_or_default();
        let number = |text: &str| text.parse::<u32>().ok().filter(|n| *n > 0);
        match verb {
            "drive:reset" if rest.is_empty() => {
                self.reset();
                Ok(())
            }
            "drive:sync" if rest.is_empty() => Ok(()),
            "drive:create" => {
                let mut args = rest.split(' ');
                let (Some(s), Some(service), Some(ability), None) =
                    (args.next(), args.next(), args.next(), args.next())
                else {
                    return Err(PARAMETER);
                };
                let s = number(s).ok_or(PARAMETER)?;
                self.create(device, s, service, ability)
            }
            "drive:reject" => {
                let (r, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                let r: u64 = r.parse().map_err(|_| PARAMETER)?;
                let token = self.lock().requests.get(&r).cloned().ok_or(PARAMETER)?;
                self.app.reject(&token, reason).map_err(|e| e.code())
            }
            "drive:accept" => {
                let (s, r) = rest.split_once(' ').ok_or(PARAMETER)?;
                let s = number(s).ok_or(PARAMETER)?;
                let r: u64 = r.parse().map_err(|_| PARAMETER)?;
                let (id, generation) = self.live(s)?;
                let token = self.lock().requests.get(&r).cloned().ok_or(PARAMETER)?;
                let driver = self.clone();
                tokio::spawn(async move {
                    let result = driver.app.accept_connect(id, &token).await;
                    driver.report(generation, &done(s, "accept", result));
                });
                Ok(())
            }
            _ => {
                let s = number(rest).ok_or(PARAMETER)?;
                let (id, generation) = self.live(s)?;
                self.call(verb, s, id, generation, payload)
            }
        }
    }

    /// The commands on one session that take only its number.
    fn call(
        self: &Arc<Self>,
        verb: &str,
        s: u32,
        id: SessionId,
        generation: u64,
        payload: Bytes,
    ) -> Result<(), u32> {
        let app = &self.app;
        let send = match verb {
            "drive:connect" => {
                let driver = self.clone();
                tokio::spawn(async move {
                    let result = driver.app.connect(id).await;
                    driver.report_connect(generation, s, result);
                });
                return Ok(());
            }
            "drive:disconnect" => return app.disconnect(id).map_err(|e| e.code()),
            "drive:destroy" => {
                app.destroy_ability_connection_session(id)
                    .map_err(|e| e.code())?;
                let mut state = self.lock();
                let held = state.sessions.get_mut(&s).and_then(|session| {
                    session.destroyed = true;
                    session.held.take()
                });
                if let Some(held) = held {
                    self.say(&mut state, &held);
                }
                return Ok(());
            }
            "drive:send-message" => SendCall::Message,
            "drive:send-data" => SendCall::Data,
            "drive:send-event" => SendCall::Event,
            _ => return Err(PARAMETER),
        };
        let text = match send {
            SendCall::Data => String::new(),
            _ => String::from_utf8(payload.to_vec()).map_err(|_| PARAMETER)?,
        };
        let driver = self.clone();
        tokio::spawn(async move {
            let app = &driver.app;
            let result = match send {
                SendCall::Message => app.send_message(id, &text).await,
                SendCall::Data => app.send_data(id, payload).await,
                SendCall::Event => {
                    app.send_collaborate_event(id, CollaborateEventType::SendFailure, &text)
                        .await
                }
            };
            driver.report(generation, &done(s, call_name(send), result));
        });
        Ok(())
    }

    /// Session `s` while the app has it, and the generation it belongs to.
    fn live(&self, s: u32) -> Result<(SessionId, u64), u32> {
        let state = self.lock();
        match state.sessions.get(&s) {
            Some(session) if !session.destroyed => Ok((session.id, state.generation)),
            _ => Err(PARAMETER),
        }
    }

    /// `drive:create S SERVICE ABILITY`.
    fn create(
        self: &Arc<Self>,
        device: &str,
        s: u32,
        service: &str,
        ability: &str,
    ) -> Result<(), u32> {
        {
            let state = self.lock();
            if state.sessions.contains_key(&s) || state.sessions.len() >= MAX_KEPT {
                return Err(PARAMETER);
            }
        }
        let peer = PeerInfo::new(device, BUNDLE, MODULE, ability);
        let id = self
            .app
            .create_ability_connection_session(
                service,
                &context(SCENARIO),
                peer,
                ConnectOptions::default(),
            )
            .map_err(|e| e.code())?;
        let events = self.app.events(id).map_err(|e| e.code())?;
        let generation = {
            let mut state = self.lock();
            state.sessions.insert(
                s,
                Scenario {
                    id,
                    destroyed: false,
                    connects: 0,
                    connected: 0,
                    held: None,
                },
            );
            state.generation
        };
        let driver = self.clone();
        tokio::spawn(async move {
            let mut events = events;
            while let Some(event) = events.next().await {
                driver.report_event(generation, s, id, &event);
            }
        });
        Ok(())
    }

    /// `drive:reset`.
    fn reset(&self) {
        let sessions = {
            let mut state = self.lock();
            state.generation += 1;
            state.requests.clear();
            state.next_request = 0;
            state.outbox.clear();
            std::mem::take(&mut state.sessions)
        };
        for session in sessions.values().filter(|s| !s.destroyed) {
            let _ = self.app.destroy_ability_connection_session(session.id);
        }
    }
}

/// The `drive:done` report of a call other than `connect`.
fn done(s: u32, call: &str, result: Result<(), AcmError>) -> String {
    match result {
        Ok(()) => format!("drive:done {s} {call} ok"),
        Err(err) => format!("drive:done {s} {call} error {}", err.code()),
    }
}

/// The `drive:done` report of `connect`.
fn connected(s: u32, result: Result<ConnectResult, AcmError>) -> String {
    match result {
        Ok(r) if r.is_connected => format!("drive:done {s} connect connected"),
        Ok(r) => {
            let code = r.error_code.map_or(-1, |c| c.value());
            let reason = r.reason.unwrap_or_default();
            format!("drive:done {s} connect refused {code} {reason}")
        }
        Err(err) => format!("drive:done {s} connect error {}", err.code()),
    }
}

/// The `drive:event` report of an event of session `s`.
fn event_report(s: u32, event: &Event) -> Option<String> {
    let what = match event {
        Event::Connect { .. } => "connect".to_string(),
        Event::Disconnect { reason, .. } => format!("disconnect {}", reason.value()),
        Event::Message { msg, .. } => format!("message {} {}", msg.len(), hash(msg.as_bytes())),
        Event::Data { data, .. } => format!("data {} {}", data.len(), hash(data)),
        Event::Collaborate { info, .. } => {
            let message = info.event_msg.as_deref().unwrap_or_default();
            format!(
                "collaborate {} {} {}",
                info.event_type.value(),
                message.len(),
                hash(message.as_bytes())
            )
        }
        _ => return None,
    };
    Some(format!("drive:event {s} {what}"))
}

/// Adds the scenario driver to the profile app `app` (SPEC section 15.1): registers
/// [`DRIVER`] and [`SCENARIO`], and starts the task that sends answers and reports. Needs a
/// tokio runtime.
pub fn install(app: &AbilityConnectionManager) {
    let driver = Arc::new(Driver {
        app: app.clone(),
        state: Mutex::default(),
        wake: Notify::new(),
    });
    tokio::spawn(driver.clone().pump());
    let on_driver = driver.clone();
    app.register_ability(MODULE, DRIVER, move |request| {
        tokio::spawn(on_driver.clone().run_driver(request));
        CollaborateResult::Accept
    });
    app.register_ability(MODULE, SCENARIO, move |request| driver.on_request(&request));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv_1a_64() {
        assert_eq!(hash(b""), "cbf29ce484222325");
        assert_eq!(hash(b"a"), "af63dc4c8601ec8c");
        assert_eq!(hash(b"acm"), "e723bc1905456c50");
    }

    #[test]
    fn reports_are_cut_on_a_character_boundary() {
        assert_eq!(cut("éé", 3), "é");
        assert_eq!(cut("abc", 5), "abc");
    }
}
