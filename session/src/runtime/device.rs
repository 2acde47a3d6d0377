//! The device runtime: it owns the transport and the links to other devices, as OpenHarmony's
//! system service does, and routes incoming requests to the apps registered on it.

use std::sync::{Arc, Mutex, Weak};

use acm_transport::{DeviceId, DeviceInfo, Transport};
use acm_wire::{BufferPool, pb};
use tokio::task::JoinHandle;

use crate::HashMap;
use crate::api::AcmError;
use crate::api::events::lock;
use crate::api::manager::{
    AbilityConnectionManager, AppInner, CollaborateRequest, CollaborateResult,
};
use crate::api::types::{ConnectOptions, Context, PeerInfo};
use crate::engine::names::{AppNames, KeyHashed, SessionKey};
use crate::engine::{EngineConfig, IncomingRequest, Token};

use super::link_task::{LinkCommand, LinkHandle, spawn_link};

/// Settings of a device runtime.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeviceConfig {
    /// The protocol engine's settings, for every link. Whether the transport carries data is
    /// taken from the transport's capabilities.
    pub engine: EngineConfig,
    /// The most bytes of buffers that received data transfers leave behind, once their apps
    /// have dropped them, the device keeps for the next transfers of any link to fill (see
    /// [`acm_wire::BufferPool`]). 0 keeps none. Default 16 MiB
    /// ([`acm_wire::pool::DEFAULT_POOL_BYTES`]); a watch may want far less.
    pub receive_pool_bytes: usize,
    /// The most bytes of received data an app's event stream holds unread ([`Event::Data`]
    /// events it has not taken yet), besides one transfer larger than that on its own. Once a
    /// stream holds that much, the link stops reading from the peer until the app reads (the
    /// peer's sends then wait: backpressure, not loss). Default 64 MiB
    /// ([`DEFAULT_STREAM_DATA_BYTES`]).
    ///
    /// [`Event::Data`]: crate::Event::Data
    pub stream_data_bytes: usize,
    /// Whether and how links are secured (SPEC section 17): secure by default, with a random
    /// identity per device and trust on first use (see [`crate::security`]).
    pub security: crate::Security,
}

/// The default of [`DeviceConfig::stream_data_bytes`]: 64 MiB.
pub const DEFAULT_STREAM_DATA_BYTES: usize = 64 << 20;

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            receive_pool_bytes: acm_wire::pool::DEFAULT_POOL_BYTES,
            stream_data_bytes: DEFAULT_STREAM_DATA_BYTES,
            security: crate::Security::default(),
        }
    }
}

impl DeviceConfig {
    /// Sets the engine's settings.
    #[must_use]
    pub fn with_engine(mut self, engine: EngineConfig) -> Self {
        self.engine = engine;
        self
    }

    /// Sets the most bytes of received transfers' buffers kept for reuse.
    #[must_use]
    pub fn with_receive_pool_bytes(mut self, bytes: usize) -> Self {
        self.receive_pool_bytes = bytes;
        self
    }

    /// Sets how links are secured.
    #[must_use]
    pub fn with_security(mut self, security: crate::Security) -> Self {
        self.security = security;
        self
    }

    /// Sets the most bytes of received data an event stream holds unread.
    #[must_use]
    pub fn with_stream_data_bytes(mut self, bytes: usize) -> Self {
        self.stream_data_bytes = bytes;
        self
    }
}

/// A request from another device that waits for an app's `accept_connect` or `reject`.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) link: LinkHandle,
    pub(crate) channel: u32,
    /// The session the request asks for: the requesting app and the service, which the
    /// accepting session must have as its peer and service (see [`SessionKey::with_remote`]).
    pub(crate) key: SessionKey,
    /// The bundle of the app the request is for.
    pub(crate) bundle: String,
}

impl AppNames for PeerInfo {
    fn app_names(&self) -> [&str; 4] {
        [
            &self.device_id,
            &self.bundle_name,
            &self.module_name,
            &self.ability_name,
        ]
    }
}

pub(crate) struct DeviceInner {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) config: DeviceConfig,
    /// The buffers every link's received transfers are delivered in, kept for reuse.
    pub(crate) receive_pool: BufferPool,
    links: Mutex<Vec<LinkHandle>>,
    /// Held while dialing, so that concurrent connects to one device share one link.
    dialing: tokio::sync::Mutex<()>,
    apps: Mutex<HashMap<String, Weak<AppInner>>>,
    pending: Mutex<HashMap<Token, Pending>>,
    /// This device's requests awaiting their answer, by session, with their tokens and the id
    /// of the link each was sent on.
    outgoing: Mutex<std::collections::HashMap<SessionKey, (Token, u64), KeyHashed>>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    /// Random bytes for the tokens of this device's requests, drawn in batches.
    tokens: Mutex<RandomBatch>,
}

/// Tokens a batch of random bytes holds: one draw from the operating system serves this many
/// requests, where a system call for each would cost a request a tenth of its own work.
const TOKENS_PER_DRAW: usize = 16;

/// Random bytes drawn from the operating system's CSPRNG ahead of use, handed out 16 at a time
/// and never twice.
struct RandomBatch {
    bytes: [u8; 16 * TOKENS_PER_DRAW],
    /// How many tokens of `bytes` are handed out already.
    used: usize,
}

impl RandomBatch {
    /// An empty batch: the first token draws one.
    fn new() -> Self {
        Self {
            bytes: [0; 16 * TOKENS_PER_DRAW],
            used: TOKENS_PER_DRAW,
        }
    }

    /// The next 16 bytes, drawing a batch when this one is used up.
    fn next(&mut self) -> Result<[u8; 16], String> {
        if self.used == TOKENS_PER_DRAW {
            fill_random(&mut self.bytes)?;
            self.used = 0;
        }
        let mut token = [0u8; 16];
        let at = self.used * 16;
        token.copy_from_slice(&self.bytes[at..at + 16]);
        // Not kept once handed out.
        self.bytes[at..at + 16].fill(0);
        self.used += 1;
        Ok(token)
    }
}

/// A device: the runtime that owns a transport and the links to other devices, and hands each
/// app its [`AbilityConnectionManager`]. Cloning gives another handle to the same device.
///
/// It needs a tokio runtime: [`Device::new`] spawns the task that accepts links.
#[derive(Clone)]
pub struct Device {
    inner: Arc<DeviceInner>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", self.inner.transport.local_device())
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Starts a device on `transport`: it accepts links from other devices at once.
    pub fn new(transport: impl Transport + 'static, config: DeviceConfig) -> Self {
        let mut config = config;
        let (transport, security) = crate::security::secure(transport, config.security);
        config.security = security;
        config.engine.carries_data = transport.capabilities().carries_data;
        let inner = Arc::new(DeviceInner {
            transport,
            receive_pool: BufferPool::new(config.receive_pool_bytes),
            config,
            links: Mutex::new(Vec::new()),
            dialing: tokio::sync::Mutex::new(()),
            apps: Mutex::new(HashMap::default()),
            pending: Mutex::new(HashMap::default()),
            outgoing: Mutex::new(std::collections::HashMap::default()),
            accept_task: Mutex::new(None),
            tokens: Mutex::new(RandomBatch::new()),
        });
        let task = tokio::spawn(accept_links(Arc::downgrade(&inner)));
        *lock(&inner.accept_task) = Some(task);
        Self { inner }
    }

    /// The requests to pair with unknown devices, for the device's owner to answer, when its
    /// secure layer asks (see [`crate::security`]); to the first caller only.
    pub fn pairing_requests(&self) -> Option<acm_secure::PairingRequests> {
        self.inner.config.security.pairing_requests()
    }

    /// This device's id.
    pub fn id(&self) -> &DeviceId {
        self.inner.transport.local_device()
    }

    /// The devices that can be reached now (OpenHarmony's `getAvailableDeviceListSync`).
    /// Fails with 801 when the transport cannot discover.
    pub async fn available_devices(&self) -> Result<Vec<DeviceInfo>, AcmError> {
        self.inner
            .transport
            .discover()
            .await
            .map_err(|e| AcmError::CapabilityNotSupported(format!("device discovery: {e}")))
    }

    /// The buffers received transfers leave behind, kept for the next ones to fill (see
    /// [`DeviceConfig::receive_pool_bytes`]): how many bytes it keeps now tells what memory
    /// the device holds on to between transfers.
    pub fn receive_pool(&self) -> &BufferPool {
        &self.inner.receive_pool
    }

    /// The manager for the app of `context` (its bundle). Managers of one bundle share their
    /// sessions and registered abilities.
    pub fn manager(&self, context: &Context) -> AbilityConnectionManager {
        let mut apps = lock(&self.inner.apps);
        if let Some(app) = apps.get(&context.bundle_name).and_then(Weak::upgrade) {
            return AbilityConnectionManager::from_inner(app);
        }
        let app = Arc::new(AppInner::new(
            context.bundle_name.clone(),
            self.inner.clone(),
        ));
        apps.insert(context.bundle_name.clone(), Arc::downgrade(&app));
        AbilityConnectionManager::from_inner(app)
    }

    /// Closes every link gracefully and waits until each has closed: what the apps sent before
    /// (a DISCONNECT from `disconnect`, messages, data) goes out first, then LINK_CLOSE, then
    /// the transport's own close. Then the device is as after [`Device::shutdown`]. A program
    /// about to exit awaits this so that nothing it sent is lost with the process; how long it
    /// takes is bounded by the transports' close (BLE waits up to its `close_timeout` for the
    /// peer), so put a timeout around it to bound it further.
    pub async fn close(&self) {
        let links: Vec<LinkHandle> = lock(&self.inner.links).clone();
        self.shutdown();
        for link in links {
            link.commands.closed().await;
        }
    }

    /// Closes every link (its sessions end with NETWORK_DISCONNECTED at the peers), stops
    /// accepting new ones, and forgets every app's registered abilities, so that handlers
    /// holding managers no longer keep the device and its transport alive: once the last
    /// handle is dropped, the transport is too.
    pub fn shutdown(&self) {
        if let Some(task) = lock(&self.inner.accept_task).take() {
            task.abort();
        }
        for link in lock(&self.inner.links).drain(..) {
            link.send_now(LinkCommand::Close);
        }
        let apps: Vec<_> = lock(&self.inner.apps)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for app in &apps {
            app.forget_handlers();
        }
    }
}

impl Drop for DeviceInner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.accept_task).take() {
            task.abort();
        }
    }
}

async fn accept_links(device: Weak<DeviceInner>) {
    loop {
        let Some(transport) = device.upgrade().map(|d| d.transport.clone()) else {
            return;
        };
        let link = match transport.accept().await {
            Ok(link) => link,
            Err(err) => {
                tracing::info!(%err, "no longer accepting links");
                return;
            }
        };
        let Some(device) = device.upgrade() else {
            return;
        };
        tracing::debug!(peer = %link.peer_device(), "link accepted");
        match random_bytes() {
            Ok(nonce) => {
                let _ = spawn_link(&device, link, device.config.engine, nonce);
            }
            Err(why) => tracing::error!(%why, "link refused"),
        }
    }
}

/// 16 bytes from the operating system's CSPRNG (SPEC `SESS-1`, `LINK-3`).
fn random_bytes() -> Result<[u8; 16], String> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    Ok(bytes)
}

/// Fills `bytes` from the operating system's CSPRNG.
fn fill_random(bytes: &mut [u8]) -> Result<(), String> {
    getrandom::fill(bytes).map_err(|e| format!("the system has no randomness: {e}"))
}

impl DeviceInner {
    /// A token for a request of this device: 16 bytes from the operating system's CSPRNG
    /// (SPEC `SESS-1`), drawn in batches.
    pub(crate) fn new_token(&self) -> Result<[u8; 16], String> {
        lock(&self.tokens).next()
    }

    /// A link to device `peer` (an id checked as [`DeviceId::check`] checks it): the preferred
    /// one that is up, or a new one.
    pub(crate) async fn link_to(self: &Arc<Self>, peer: &str) -> Result<LinkHandle, String> {
        if let Some(link) = self.preferred_link(peer) {
            return Ok(link);
        }
        let _dialing = self.dialing.lock().await;
        if let Some(link) = self.preferred_link(peer) {
            return Ok(link);
        }
        let peer = DeviceId::new(peer).map_err(|e| format!("device {peer:?}: {e}"))?;
        let link = self
            .transport
            .dial(&peer)
            .await
            .map_err(|e| format!("cannot reach device {peer}: {e}"))?;
        let (handle, up) = spawn_link(self, link, self.config.engine, random_bytes()?);
        match up.await {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(why)) => Err(why),
            Err(_) => Err("the link ended before it was up".into()),
        }
    }

    fn preferred_link(&self, peer: &str) -> Option<LinkHandle> {
        let mut links = lock(&self.links);
        links.retain(LinkHandle::is_open);
        links
            .iter()
            .filter(|l| l.peer.as_str() == peer)
            .min_by(|a, b| a.dialer.cmp(&b.dialer).then(a.id.cmp(&b.id)))
            .cloned()
    }

    /// Records a link that is up. When two links to one device exist, the one the lower device
    /// id dialed is preferred and the other retires once it has no session (SPEC `LINK-8`).
    pub(crate) fn remember_link(&self, link: LinkHandle) {
        let mut links = lock(&self.links);
        links.retain(LinkHandle::is_open);
        links.push(link.clone());
        let preferred = links
            .iter()
            .filter(|l| l.peer == link.peer)
            .min_by(|a, b| a.dialer.cmp(&b.dialer).then(a.id.cmp(&b.id)))
            .map(|l| l.id);
        for other in links.iter().filter(|l| l.peer == link.peer) {
            if Some(other.id) != preferred {
                other.send_now(LinkCommand::Retire);
            }
        }
    }

    pub(crate) fn forget_link(&self, link: &LinkHandle) {
        lock(&self.links).retain(|l| l.id != link.id);
        lock(&self.pending).retain(|_, p| p.link.id != link.id);
    }

    /// Hands a request to the app it targets (SPEC `SESS-3`, steps 3 and 4), with its session's
    /// key if the link has made it already. Returns the rejection to send at once, if any.
    pub(crate) fn route_request(
        self: &Arc<Self>,
        link: &LinkHandle,
        request: IncomingRequest,
        key: Option<SessionKey>,
    ) -> Option<(pb::ConnectErrorCode, String)> {
        let key = key.unwrap_or_else(|| SessionKey::incoming(&request.source, &request.target));
        let target = PeerInfo::from_wire(request.target);
        // The service is the one the request names for its target (SPEC 5.2); the source's
        // own service_name is optional.
        let mut source = PeerInfo::from_wire(request.source);
        source.set_service_name(&target.service_name);
        let app = lock(&self.apps)
            .get(&target.bundle_name)
            .and_then(Weak::upgrade);
        let handler = app
            .as_ref()
            .and_then(|app| app.handler(&target.module_name, &target.ability_name));
        // SESS-3 and SESS-7 across every link to the peer. The engine has checked this link,
        // where it knows whether a request still awaits its answer; a request of ours on this
        // link may be answered already while its caller has not yet run to forget it.
        let exists = app
            .as_ref()
            .is_some_and(|app| app.has_connected(&target, &source, &target.service_name));
        let crossing_wins = {
            let outgoing = lock(&self.outgoing);
            // Most of the time no request of this device waits: no key to build.
            !outgoing.is_empty()
                && outgoing
                    .get(&key)
                    .is_some_and(|(own, on)| *on != link.id && *own >= request.token)
        };
        if exists || crossing_wins {
            return Some((
                pb::ConnectErrorCode::ConnectedSessionExists,
                "SESS-3: a session between these apps for this service exists".into(),
            ));
        }
        let Some(handler) = handler else {
            return Some((
                pb::ConnectErrorCode::PeerAbilityNoOncollaborate,
                format!(
                    "no onCollaborate handler for {}/{}/{}",
                    target.bundle_name, target.module_name, target.ability_name
                ),
            ));
        };
        lock(&self.pending).insert(
            request.token,
            Pending {
                link: link.clone(),
                channel: request.channel,
                key,
                bundle: target.bundle_name,
            },
        );
        let verdict = handler(CollaborateRequest {
            peer_info: source,
            connect_options: ConnectOptions::from_wire(request.options),
            token: token_to_string(&request.token),
        });
        match verdict {
            CollaborateResult::Accept => None,
            CollaborateResult::Reject { reason } => {
                // A `reject` the handler already made has taken the token: do not answer twice.
                lock(&self.pending)
                    .remove(&request.token)
                    .map(|_| (pb::ConnectErrorCode::PeerAppRejected, reason))
            }
        }
    }

    /// Records a request this device is about to send on link `link_id`; false if one for the
    /// same session already waits.
    pub(crate) fn begin_outgoing(&self, key: SessionKey, token: Token, link_id: u64) -> bool {
        let mut outgoing = lock(&self.outgoing);
        if outgoing.contains_key(&key) {
            return false;
        }
        outgoing.insert(key, (token, link_id));
        true
    }

    pub(crate) fn end_outgoing(&self, key: &SessionKey) {
        lock(&self.outgoing).remove(key);
    }

    pub(crate) fn forget_request(&self, link: &LinkHandle, channel: u32) {
        lock(&self.pending).retain(|_, p| !(p.link.id == link.id && p.channel == channel));
    }

    /// Takes a pending request by its token, for `accept_connect` or `reject` by `bundle`.
    pub(crate) fn take_request(&self, token: &str, bundle: &str) -> Result<Pending, AcmError> {
        let parsed = parse_token(token)?;
        let mut pending = lock(&self.pending);
        // Taken, and put back if it is another app's: one lookup in the usual case.
        match pending.remove(&parsed) {
            None => Err(AcmError::parameter(
                "token: no pending request has this token (unknown, already used, or expired)",
            )),
            Some(p) if p.bundle != bundle => {
                pending.insert(parsed, p);
                Err(AcmError::parameter(
                    "token: the request is for another application",
                ))
            }
            Some(p) => Ok(p),
        }
    }

    /// Puts a request back (an `accept_connect` that was refused before anything was sent).
    pub(crate) fn restore_request(&self, token: &str, pending: Pending) {
        if let Ok(parsed) = parse_token(token) {
            lock(&self.pending).insert(parsed, pending);
        }
    }
}

/// A token as the API shows it: 32 lowercase hexadecimal digits (SPEC section 9).
pub(crate) fn token_to_string(token: &Token) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(token.len() * 2);
    for byte in token {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

fn parse_token(text: &str) -> Result<Token, AcmError> {
    let bad = || AcmError::parameter("token: expected 32 hexadecimal digits");
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let (pairs, []) = text.as_bytes().as_chunks::<2>() else {
        return Err(bad());
    };
    if pairs.len() != 16 {
        return Err(bad());
    }
    let mut token = [0u8; 16];
    for (byte, [high, low]) in token.iter_mut().zip(pairs) {
        *byte = digit(*high)
            .zip(digit(*low))
            .map(|(h, l)| h << 4 | l)
            .ok_or_else(bad)?;
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_never_handed_out_twice_and_are_not_kept_once_handed_out() {
        let mut batch = RandomBatch::new();
        let mut seen = std::collections::HashSet::new();
        // Across three draws.
        for n in 0..3 * TOKENS_PER_DRAW {
            let token = batch.next().unwrap();
            assert!(seen.insert(token), "token {n} came twice");
            assert_ne!(token, [0; 16]);
            let used = batch.used;
            assert!(batch.bytes[..used * 16].iter().all(|b| *b == 0));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn after_shutdown_a_handler_holding_its_manager_no_longer_keeps_the_device_alive() {
        let network = acm_transport_mock::MockNetwork::new(1);
        let transport = network
            .add_device(DeviceId::new("tablet").unwrap())
            .unwrap();
        let device = Device::new(transport, DeviceConfig::default());
        let app = device.manager(&Context::new("com.example", "entry", "EntryAbility"));
        let held = app.clone();
        app.register_ability("entry", "EntryAbility", move |_| {
            let _ = held.bundle_name();
            crate::CollaborateResult::Reject {
                reason: "busy".into(),
            }
        });
        let weak = Arc::downgrade(&device.inner);
        // The handler holds the app, the app the device: dropping every handle is not enough.
        drop(app);
        tokio::task::yield_now().await;
        assert!(weak.upgrade().is_some());

        device.shutdown();
        drop(device);
        tokio::task::yield_now().await;
        assert!(
            weak.upgrade().is_none(),
            "the device outlived its last handle after shutdown"
        );
    }

    #[test]
    fn a_token_is_shown_as_32_lowercase_hex_digits_and_read_back() {
        let token: Token = [
            0x00, 0x01, 0x0f, 0x10, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff, 0x12, 0x34, 0x56, 0x78,
            0x9a, 0xbc,
        ];
        let text = token_to_string(&token);
        assert_eq!(text, "00010f107f80abcdefff123456789abc");
        assert_eq!(parse_token(&text).unwrap(), token);
        assert_eq!(parse_token(&text.to_uppercase()).unwrap(), token);
        assert!(parse_token(&text[1..]).is_err());
        for bad in [
            String::new(),
            format!("{text}0"),
            format!("{text}00"),
            format!("g{}", &text[1..]),
            // A sign is not a digit, though u8::from_str_radix takes one.
            format!("+f{}", &text[2..]),
            format!("é{}", &text[2..]),
        ] {
            assert!(parse_token(&bad).is_err(), "{bad:?}");
        }
    }
}
