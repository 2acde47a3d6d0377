//! The conformance profile (SPEC section 15): the app an implementation under test runs so that
//! the black-box suite can exercise it from the wire alone. [`install`] installs it on a
//! reference [`Device`]; implementations in other languages build the same app on their stack.

use std::time::Duration;

use acm::engine::EngineConfig;
use acm::wire::Limits;
use acm::{
    AbilityConnectionManager, AcmError, CollaborateEventType, CollaborateRequest,
    CollaborateResult, ConnectErrorCode, ConnectOptions, Context, Device, DeviceConfig, Event,
    PeerInfo, SessionId,
};

/// The profile app's bundle.
pub const BUNDLE: &str = "org.acm.conformance";
/// The profile app's module.
pub const MODULE: &str = "entry";
/// Accepts every request at once and echoes every message and transfer back.
pub const ECHO: &str = "EchoAbility";
/// Rejects every request with [`REJECT_REASON`].
pub const REJECT: &str = "RejectAbility";
/// The reason [`REJECT`] gives.
pub const REJECT_REASON: &str = "rejected by profile";
/// Accepts every request [`Timers::slow`] after it arrives, then echoes like [`ECHO`].
pub const SLOW: &str = "SlowAbility";
/// How long [`SLOW`] waits with the timers of the specification.
pub const SLOW_DELAY: Duration = Duration::from_secs(2);
/// Never answers.
pub const SILENT: &str = "SilentAbility";
/// Not registered: requests for it get PEER_ABILITY_NO_ONCOLLABORATE.
pub const MISSING: &str = "MissingAbility";
/// The ability the suite's own requests come from.
pub const SUITE_ABILITY: &str = "SuiteAbility";

/// A message asking the profile to call `disconnect` on its session.
pub const CMD_DISCONNECT: &str = "acm:disconnect";
/// A message asking the profile to destroy its session.
pub const CMD_DESTROY: &str = "acm:destroy";
/// A message asking the profile to send a COLLABORATE_EVENT (SEND_FAILURE, [`EVENT_MESSAGE`]).
pub const CMD_EVENT: &str = "acm:event";
/// The message of the profile's collaboration event.
pub const EVENT_MESSAGE: &str = "profile event";
/// A message `acm:connect-back SERVICE` asks the profile to connect to the sender's app for
/// SERVICE, from its [`ECHO`] ability, with the session's options.
pub const CMD_CONNECT_BACK: &str = "acm:connect-back ";
/// A message `acm:event N` asks for a SEND_FAILURE event whose message is N bytes of `e`.
pub const CMD_EVENT_OF: &str = "acm:event ";
/// A message `acm:message N` asks for a message of N bytes of `m`.
pub const CMD_MESSAGE_OF: &str = "acm:message ";
/// How the profile reports a connect-back's outcome: `acm:connect-result connected`, or the
/// API's ConnectErrorCode number followed by a message with the reason.
pub const CONNECT_RESULT: &str = "acm:connect-result ";
/// The event message of a call of the profile that failed: `acm:send-failed N`, with the API's
/// error code.
pub const SEND_FAILED: &str = "acm:send-failed ";
/// The parameter that sets the length of [`REJECT`]'s reason.
pub const REASON_LENGTH: &str = "reason-length";

/// The most sessions one link of the profile's device carries (SPEC `SESS-8`).
pub const SESSIONS_PER_LINK: usize = 64;

/// The most unfinished transfers one link of the profile's device holds (SPEC `DATA-7`).
pub const UNFINISHED_TRANSFERS: usize = 16;

/// The reassembly budget of one link of the profile's device, in declared bytes (SPEC
/// `DATA-7`).
pub const REASSEMBLY_BUDGET: u64 = 256 << 20;

/// The memory budget of the profile's device, for the data of all its links together (SPEC
/// `LIMIT-1`).
pub const MEMORY_BUDGET: u64 = 256 << 20;

/// The size limits of the profile's device (SPEC section 15): what it announces in HELLO and
/// what it lets unfinished transfers hold.
pub fn limits() -> Limits {
    Limits::default()
        .with_max_frame_size(65_535)
        .with_max_data_size(100 << 20)
        .with_max_reassembly_bytes(REASSEMBLY_BUDGET)
        .with_max_transfers(UNFINISHED_TRANSFERS)
}

/// The timers the device under test runs with (SPEC section 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How long a side waits for the peer's HELLO (`LINK-10`).
    pub hello: Duration,
    /// How long the binding waits for the peer's OPEN (`TCP-5`, `BLE-5`).
    pub open: Duration,
    /// How long a requester waits for CONNECT_RESPONSE (`SESS-5`).
    pub handshake: Duration,
    /// How long a responder waits for its app (`SESS-5`).
    pub responder: Duration,
    /// The keepalive interval the device asks for in HELLO (`LINK-6`).
    pub keepalive: Duration,
    /// How long [`SLOW`] waits before it accepts.
    pub slow: Duration,
}

impl Timers {
    /// The timers of the specification.
    pub const SPEC: Self = Self {
        hello: Duration::from_secs(10),
        open: Duration::from_secs(10),
        handshake: Duration::from_secs(10),
        responder: Duration::from_secs(20),
        keepalive: Duration::from_secs(15),
        slow: SLOW_DELAY,
    };

    /// The profile's short timers, for runs over a real network.
    pub const SHORT: Self = Self {
        hello: Duration::from_secs(1),
        open: Duration::from_secs(1),
        handshake: Duration::from_secs(1),
        responder: Duration::from_secs(2),
        keepalive: Duration::from_secs(2),
        slow: Duration::from_millis(500),
    };
}

impl Default for Timers {
    fn default() -> Self {
        Self::SPEC
    }
}

/// The settings of the profile's device (SPEC section 15) with `timers`: at most
/// [`SESSIONS_PER_LINK`] sessions per link, a memory budget of [`MEMORY_BUDGET`], the default
/// limits otherwise. The binding's OPEN
/// wait is the transport's to set.
pub fn device_config(timers: Timers) -> DeviceConfig {
    DeviceConfig::default()
        .with_engine(engine_config(timers))
        .with_memory_budget(MEMORY_BUDGET)
}

/// The engine settings of [`device_config`].
pub fn engine_config(timers: Timers) -> EngineConfig {
    let mut engine = EngineConfig::default()
        .with_limits(limits())
        .with_max_sessions(SESSIONS_PER_LINK)
        .with_keepalive_interval(timers.keepalive)
        .with_handshake_timeout(timers.handshake);
    engine.hello_timeout = timers.hello;
    engine.responder_timeout = timers.responder;
    engine
}

/// The profile, installed on a device; dropping it ends the app (its sessions end with
/// PEER_APP_EXIT).
#[derive(Debug, Clone)]
pub struct Profile {
    manager: AbilityConnectionManager,
}

impl Profile {
    /// The profile app's manager.
    pub fn manager(&self) -> &AbilityConnectionManager {
        &self.manager
    }
}

fn context(ability: &str) -> Context {
    Context::new(BUNDLE, MODULE, ability)
}

/// Installs the profile app on `device`, with the specification's timers. Needs a tokio
/// runtime.
pub fn install(device: &Device) -> Profile {
    install_with(device, Timers::SPEC)
}

/// Installs the profile app on `device`; [`SLOW`] waits as `timers` say. Needs a tokio runtime.
pub fn install_with(device: &Device, timers: Timers) -> Profile {
    let manager = device.manager(&context(ECHO));
    for (ability, delay) in [(ECHO, None), (SLOW, Some(timers.slow))] {
        let app = manager.clone();
        manager.register_ability(MODULE, ability, move |request| {
            tokio::spawn(accept_and_echo(app.clone(), request, ability, delay));
            CollaborateResult::Accept
        });
    }
    manager.register_ability(MODULE, REJECT, |request| CollaborateResult::Reject {
        reason: rejection_reason(&request),
    });
    manager.register_ability(MODULE, SILENT, |_| CollaborateResult::Accept);
    crate::driver::install(&manager);
    Profile { manager }
}

/// [`REJECT`]'s reason for `request`.
fn rejection_reason(request: &CollaborateRequest) -> String {
    request
        .connect_options
        .parameters
        .get(REASON_LENGTH)
        .and_then(|n| n.parse::<u64>().ok())
        .map_or_else(
            || REJECT_REASON.to_string(),
            |n| "r".repeat(usize::try_from(n).unwrap_or(MAX_COUNT).min(MAX_COUNT)),
        )
}

/// A session the profile accepted or connected, and what it echoes on.
#[derive(Clone)]
struct Echo {
    app: AbilityConnectionManager,
    session: SessionId,
    /// The app at the other end, as the request named it.
    peer: PeerInfo,
    /// The options the session was opened with, as the app received them.
    options: ConnectOptions,
}

async fn accept_and_echo(
    app: AbilityConnectionManager,
    request: CollaborateRequest,
    ability: &'static str,
    delay: Option<Duration>,
) {
    let peer = request.peer_info.clone();
    let service = peer.service_name.clone();
    let Ok(session) = app.create_ability_connection_session(
        &service,
        &context(ability),
        peer,
        request.connect_options.clone(),
    ) else {
        return;
    };
    let Ok(events) = app.events(session) else {
        return;
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if app.accept_connect(session, &request.token).await.is_err() {
        let _ = app.destroy_ability_connection_session(session);
        return;
    }
    let echo = Echo {
        app,
        session,
        peer: request.peer_info,
        options: request.connect_options,
    };
    echo.run(events).await;
}

/// The largest N of the profile's commands: a peer's number never makes the app allocate more.
pub const MAX_COUNT: usize = 65_536;

/// The count N of a command `PREFIX N`, at most [`MAX_COUNT`].
fn count_of(msg: &str, prefix: &str) -> Option<usize> {
    let n: u64 = msg.strip_prefix(prefix)?.parse().ok()?;
    Some(usize::try_from(n).unwrap_or(MAX_COUNT).min(MAX_COUNT))
}

impl Echo {
    /// Echoes the session's messages, transfers and events until it ends, and obeys the
    /// profile's commands.
    async fn run(self, mut events: acm::EventStream) {
        while let Some(event) = events.next().await {
            match event {
                Event::Message { msg, .. } if !self.obey(&msg).await => return,
                Event::Data { data, .. } => {
                    let sent = self.app.send_data(self.session, data).await;
                    self.report(sent).await;
                }
                Event::Collaborate { info, .. } => {
                    let message = info.event_msg.unwrap_or_default();
                    let sent = self
                        .app
                        .send_collaborate_event(self.session, info.event_type, &message)
                        .await;
                    self.report(sent).await;
                }
                Event::Disconnect { .. } => {
                    let _ = self.app.destroy_ability_connection_session(self.session);
                    return;
                }
                _ => {}
            }
        }
    }

    /// Acts on a message: a command, or an echo. False once the session is gone.
    async fn obey(&self, msg: &str) -> bool {
        let app = &self.app;
        let sent = if msg == CMD_DISCONNECT {
            app.disconnect(self.session)
        } else if msg == CMD_DESTROY {
            let _ = app.destroy_ability_connection_session(self.session);
            return false;
        } else if msg == CMD_EVENT {
            app.send_collaborate_event(
                self.session,
                CollaborateEventType::SendFailure,
                EVENT_MESSAGE,
            )
            .await
        } else if let Some(n) = count_of(msg, CMD_EVENT_OF) {
            let message = "e".repeat(n);
            app.send_collaborate_event(self.session, CollaborateEventType::SendFailure, &message)
                .await
        } else if let Some(n) = count_of(msg, CMD_MESSAGE_OF) {
            app.send_message(self.session, &"m".repeat(n)).await
        } else if let Some(service) = msg.strip_prefix(CMD_CONNECT_BACK) {
            tokio::spawn(connect_back(self.clone(), service.to_string()));
            Ok(())
        } else {
            app.send_message(self.session, msg).await
        };
        self.report(sent).await;
        true
    }

    /// Tells the peer that a call failed, with a SEND_FAILURE event naming its error code.
    async fn report(&self, result: Result<(), AcmError>) {
        if let Err(err) = result {
            let message = format!("{SEND_FAILED}{}", err.code());
            let _ = self
                .app
                .send_collaborate_event(self.session, CollaborateEventType::SendFailure, &message)
                .await;
        }
    }
}

/// Boxed, so that the recursion through [`Echo::run`] has a known `Send` future type.
fn connect_back(
    origin: Echo,
    service: String,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(connect_back_inner(origin, service))
}

async fn connect_back_inner(origin: Echo, service: String) {
    let app = origin.app.clone();
    let peer = &origin.peer;
    let target = PeerInfo::new(
        peer.device_id.clone(),
        peer.bundle_name.clone(),
        peer.module_name.clone(),
        peer.ability_name.clone(),
    );
    let created = app.create_ability_connection_session(
        &service,
        &context(ECHO),
        target.clone(),
        origin.options.clone(),
    );
    let session = match created {
        Ok(session) => session,
        Err(err) => return origin.report(Err(err)).await,
    };
    let Ok(events) = app.events(session) else {
        return;
    };
    let result = app.connect(session).await;
    let connected = matches!(&result, Ok(r) if r.is_connected);
    let report = match &result {
        Ok(r) if r.is_connected => vec![format!("{CONNECT_RESULT}connected")],
        Ok(r) => vec![
            format!(
                "{CONNECT_RESULT}{}",
                r.error_code
                    .unwrap_or(ConnectErrorCode::SystemInternalError)
                    .value()
            ),
            truncate(r.reason.as_deref().unwrap_or_default(), MAX_TEXT),
        ],
        Err(err) => vec![format!("{SEND_FAILED}{}", err.code())],
    };
    for line in report {
        let _ = app.send_message(origin.session, &line).await;
    }
    if connected {
        let echo = Echo {
            app,
            session,
            peer: target,
            options: origin.options,
        };
        echo.run(events).await;
    } else {
        let _ = app.destroy_ability_connection_session(session);
    }
}

/// The longest text the profile sends.
const MAX_TEXT: usize = 1024;

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commands_count_is_read_and_bounded() {
        assert_eq!(count_of("acm:message 1025", CMD_MESSAGE_OF), Some(1025));
        assert_eq!(
            count_of("acm:message 99999999999999999999", CMD_MESSAGE_OF),
            None
        );
        assert_eq!(
            count_of("acm:message 18446744073709551615", CMD_MESSAGE_OF),
            Some(MAX_COUNT)
        );
        assert_eq!(count_of("acm:message -1", CMD_MESSAGE_OF), None);
        assert_eq!(count_of("acm:event 3", CMD_MESSAGE_OF), None);
    }

    #[test]
    fn truncate_cuts_at_a_character_boundary() {
        assert_eq!(truncate("éé", 3), "é");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
