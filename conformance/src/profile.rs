//! The conformance profile (SPEC section 15): the app an implementation under test runs so that
//! the black-box suite can exercise it from the wire alone. [`install`] installs it on a
//! reference [`Device`]; implementations in other languages build the same app on their stack.

use std::time::Duration;

use acm::{
    AbilityConnectionManager, CollaborateEventType, CollaborateRequest, CollaborateResult, Context,
    Device, Event, PeerInfo, SessionId,
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
/// Accepts every request [`SLOW_DELAY`] after it arrives, then echoes like [`ECHO`].
pub const SLOW: &str = "SlowAbility";
/// How long [`SLOW`] waits.
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
/// SERVICE, from its [`ECHO`] ability.
pub const CMD_CONNECT_BACK: &str = "acm:connect-back ";

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

/// Installs the profile app on `device`. Needs a tokio runtime.
pub fn install(device: &Device) -> Profile {
    let manager = device.manager(&context(ECHO));
    for (ability, delay) in [(ECHO, None), (SLOW, Some(SLOW_DELAY))] {
        let app = manager.clone();
        manager.register_ability(MODULE, ability, move |request| {
            tokio::spawn(accept_and_echo(app.clone(), request, ability, delay));
            CollaborateResult::Accept
        });
    }
    manager.register_ability(MODULE, REJECT, |_| CollaborateResult::Reject {
        reason: REJECT_REASON.into(),
    });
    manager.register_ability(MODULE, SILENT, |_| CollaborateResult::Accept);
    Profile { manager }
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
    echo(app, session, request.peer_info, events).await;
}

/// Echoes a session's messages and data until it ends, and obeys the profile's commands.
async fn echo(
    app: AbilityConnectionManager,
    session: SessionId,
    peer: PeerInfo,
    mut events: acm::EventStream,
) {
    while let Some(event) = events.next().await {
        match event {
            Event::Message { msg, .. } if msg == CMD_DISCONNECT => {
                let _ = app.disconnect(session);
            }
            Event::Message { msg, .. } if msg == CMD_DESTROY => {
                let _ = app.destroy_ability_connection_session(session);
                return;
            }
            Event::Message { msg, .. } if msg == CMD_EVENT => {
                let _ = app
                    .send_collaborate_event(
                        session,
                        CollaborateEventType::SendFailure,
                        EVENT_MESSAGE,
                    )
                    .await;
            }
            Event::Message { msg, .. } if msg.starts_with(CMD_CONNECT_BACK) => {
                let service = msg[CMD_CONNECT_BACK.len()..].to_string();
                tokio::spawn(connect_back(app.clone(), peer.clone(), service));
            }
            Event::Message { msg, .. } => {
                let _ = app.send_message(session, &msg).await;
            }
            Event::Data { data, .. } => {
                let _ = app.send_data(session, data).await;
            }
            Event::Disconnect { .. } => {
                let _ = app.destroy_ability_connection_session(session);
                return;
            }
            _ => {}
        }
    }
}

/// Boxed, so that the recursion through [`echo`] has a known `Send` future type.
fn connect_back(
    app: AbilityConnectionManager,
    peer: PeerInfo,
    service: String,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(connect_back_inner(app, peer, service))
}

async fn connect_back_inner(app: AbilityConnectionManager, peer: PeerInfo, service: String) {
    let target = PeerInfo::new(
        peer.device_id.clone(),
        peer.bundle_name.clone(),
        peer.module_name.clone(),
        peer.ability_name.clone(),
    );
    let Ok(session) = app.create_ability_connection_session(
        &service,
        &context(ECHO),
        target.clone(),
        acm::ConnectOptions::default(),
    ) else {
        return;
    };
    let Ok(events) = app.events(session) else {
        return;
    };
    match app.connect(session).await {
        Ok(result) if result.is_connected => echo(app, session, target, events).await,
        _ => {
            let _ = app.destroy_ability_connection_session(session);
        }
    }
}
