//! The attackers: each family plays one way of abusing an implementation over TCP, with as
//! many hostile connections or links as asked, until it is stopped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acm::secure::SecureConfig;
use acm_transport::DeviceId;
use acm_wire::Control;
use acm_wire::pb;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::client::{Hostile, Reach, reach};
use crate::profile;

/// The ways of attacking an implementation that the suite plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Family {
    /// TCP connections that send nothing, past the opening budget.
    IdleConnections,
    /// Connections that send their OPEN a byte every 200 ms, and open again when dropped.
    TrickledOpenings,
    /// Links whose binding opening is done and that then send nothing: no secure handshake
    /// message, or no HELLO on a plain link.
    StalledHandshakes,
    /// Links up that send PINGs as fast as they can and read nothing.
    PingsUnread,
    /// Links with an echo session that send messages and read nothing.
    MessagesUnread,
    /// Links with an echo session that send 256 KiB transfers and read nothing.
    DataUnread,
    /// Links that each send up to 4000 requests to an ability that never answers, and read
    /// what comes (the requests expire after the responder timeout).
    RequestFlood,
    /// Links with four echo sessions each, on each of which a transfer declaring 100 MiB
    /// begins and is never finished.
    LargeDeclarations,
}

impl Family {
    /// Every family, in the order the suite plays them.
    pub const ALL: [Family; 8] = [
        Family::IdleConnections,
        Family::TrickledOpenings,
        Family::StalledHandshakes,
        Family::PingsUnread,
        Family::MessagesUnread,
        Family::DataUnread,
        Family::RequestFlood,
        Family::LargeDeclarations,
    ];

    /// A short name, for case ids and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::IdleConnections => "idle-connections",
            Self::TrickledOpenings => "trickled-openings",
            Self::StalledHandshakes => "stalled-handshakes",
            Self::PingsUnread => "pings-unread",
            Self::MessagesUnread => "messages-unread",
            Self::DataUnread => "data-unread",
            Self::RequestFlood => "request-flood",
            Self::LargeDeclarations => "large-declarations",
        }
    }

    /// Whether its attackers read nothing on links of their own, which the target must close
    /// (`LINK-13`).
    pub fn reads_nothing(self) -> bool {
        matches!(
            self,
            Self::PingsUnread | Self::MessagesUnread | Self::DataUnread
        )
    }

    /// Whether its attackers come from another address than the well-behaved client's (where
    /// the target is on this host's loopback), an address the target must let in again once
    /// the attack stops (`LIMIT-3`).
    pub fn from_elsewhere(self) -> bool {
        matches!(
            self,
            Self::IdleConnections | Self::TrickledOpenings | Self::StalledHandshakes
        )
    }

    /// The family with `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// How long the legitimate client is measured while the attack goes on. The request
    /// flood lasts past the responder timeout (20 s), so that its requests expire meanwhile;
    /// the attacks that read nothing last until the target has closed every attacker's link
    /// ([`Family::reads_nothing`]), for at most this long.
    pub fn measured_for(self) -> Duration {
        match self {
            Self::RequestFlood => Duration::from_secs(24),
            // At most: the case ends once every attacker's link has ended (LINK-13).
            Self::PingsUnread | Self::MessagesUnread | Self::DataUnread => Duration::from_secs(40),
            _ => Duration::from_secs(3),
        }
    }
}

/// One attack: a family and how many hostile connections or links it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attack {
    /// The family.
    pub family: Family,
    /// Its hostile connections or links.
    pub links: usize,
    /// For [`Family::LargeDeclarations`], the bytes sent of each transfer declared.
    pub fill: usize,
    /// For [`Family::RequestFlood`], the requests each link sends (at most 4000, within a
    /// link's 4096 sessions).
    pub requests: usize,
}

impl Attack {
    /// `links` attackers of `family`, with the suite's amounts: 4 MiB sent of each declared
    /// transfer, 4000 requests a link.
    pub fn new(family: Family, links: usize) -> Self {
        Self {
            family,
            links,
            fill: 4 << 20,
            requests: 4000,
        }
    }
}

/// Where the attackers reach the implementation.
#[derive(Clone)]
pub struct Field {
    /// Its address.
    pub addr: SocketAddr,
    /// Its device id.
    pub iut: String,
    /// The secure layer the attackers run, as the suite does; `None` for a plain target.
    pub security: Option<SecureConfig>,
}

impl Field {
    /// The target as attacker number `n` reaches it.
    fn attacker(&self, n: usize) -> Result<Reach, String> {
        reach(
            self.addr,
            &self.iut,
            &format!("acm-attacker-{n}"),
            self.security.clone(),
        )
    }
}

/// What the attackers saw.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Attackers on a link of their own that began their attack.
    pub began: usize,
    /// Of those, how long each link that the target ended stayed up once its attack began.
    pub ended: Vec<Duration>,
    /// Attackers that could not even begin (their link was refused, or their session); for the
    /// attackers that open again when dropped, every connection ended or reset before the
    /// target answered its OPEN.
    pub refused: usize,
}

/// An attack under way.
pub struct Running {
    tasks: JoinSet<()>,
    held: Vec<TcpStream>,
    observed: Arc<Mutex<Observed>>,
}

impl Running {
    /// What the attackers saw so far.
    pub fn observed(&self) -> Observed {
        self.observed.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Stops every attacker and returns what they saw.
    pub async fn stop(mut self) -> Observed {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        drop(std::mem::take(&mut self.held));
        self.observed()
    }
}

/// Starts `attack` against the target at `field`; it goes on until stopped. Returns once every
/// attacker has begun (connected, or opened its link and sent what comes first).
pub async fn start(field: &Field, attack: Attack) -> Running {
    let observed = Arc::new(Mutex::new(Observed::default()));
    let mut running = Running {
        tasks: JoinSet::new(),
        held: Vec::new(),
        observed: observed.clone(),
    };
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel::<()>(attack.links.max(1));
    for n in 0..attack.links {
        let ready = ready_tx.clone();
        match attack.family {
            Family::IdleConnections => match connect_from_elsewhere(field.addr).await {
                Ok(stream) => running.held.push(stream),
                Err(_) => note_refused(&observed),
            },
            Family::TrickledOpenings => {
                let addr = field.addr;
                running
                    .tasks
                    .spawn(trickle(addr, n, ready, observed.clone()));
                continue;
            }
            Family::StalledHandshakes => {
                running
                    .tasks
                    .spawn(stall(field.addr, n, ready, observed.clone()));
                continue;
            }
            _ => {
                let reach = field.attacker(n);
                let observed = observed.clone();
                running.tasks.spawn(async move {
                    let mut ready = Some(ready);
                    let outcome = match reach {
                        Ok(reach) => unread(&reach, attack, n, &mut ready, &observed).await,
                        Err(_) => None,
                    };
                    if let Ok(mut seen) = observed.lock() {
                        match outcome {
                            Some(Some(lifetime)) => seen.ended.push(lifetime),
                            Some(None) => {}
                            None => seen.refused = seen.refused.saturating_add(1),
                        }
                    }
                    signal(&mut ready).await;
                    // Held until stopped, so that what it opened stays open.
                    std::future::pending::<()>().await;
                });
                continue;
            }
        }
        let _ = ready.send(()).await;
    }
    drop(ready_tx);
    // Every attacker has begun, or at most 20 s have passed.
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..attack.links {
        if tokio::time::timeout_at(deadline, ready.recv())
            .await
            .is_err()
        {
            break;
        }
    }
    running
}

/// Tells [`start`] that an attacker has begun, once.
async fn signal(ready: &mut Option<tokio::sync::mpsc::Sender<()>>) {
    if let Some(ready) = ready.take() {
        let _ = ready.send(()).await;
    }
}

/// Counts an attacker on a link of its own that has begun, and tells [`start`].
/// Returns the moment it began.
async fn note_begun(
    ready: &mut Option<tokio::sync::mpsc::Sender<()>>,
    observed: &Mutex<Observed>,
) -> Instant {
    if let Ok(mut seen) = observed.lock() {
        seen.began = seen.began.saturating_add(1);
    }
    signal(ready).await;
    Instant::now()
}

fn note_refused(observed: &Mutex<Observed>) {
    if let Ok(mut seen) = observed.lock() {
        seen.refused = seen.refused.saturating_add(1);
    }
}

/// A TCP connection to `addr` as another host would open it: from 127.0.0.2 when `addr` is
/// 127.0.0.1 (every 127.0.0.0/8 address is this host's on Linux), so that a target's limits
/// per address (`LIMIT-2`, `LIMIT-3`) see the attacker apart from the well-behaved client, as
/// they would on a network; from wherever the system chooses otherwise. When the connection
/// from 127.0.0.2 cannot be made, it fails: made from 127.0.0.1, it would count against the
/// well-behaved client's address, as an attacker on a network cannot.
async fn connect_from_elsewhere(addr: SocketAddr) -> std::io::Result<TcpStream> {
    if addr.ip() == std::net::Ipv4Addr::LOCALHOST {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from(([127, 0, 0, 2], 0)))?;
        return socket.connect(addr).await;
    }
    TcpStream::connect(addr).await
}

/// How soon after an attack from another address stops that address must be let in again
/// (`LIMIT-3`).
pub const READMITTED_WITHIN: Duration = Duration::from_secs(10);

/// Tries an opening from the attackers' address every 100 ms, until the target answers its
/// OPEN: how long after the call that took, or why it was not let in within
/// [`READMITTED_WITHIN`].
pub async fn readmitted(addr: SocketAddr) -> Result<Duration, String> {
    let began = Instant::now();
    let open = DeviceId::new("acm-readmitted")
        .map(|id| acm_transport_tcp::binding::open(&id))
        .map_err(|e| e.to_string())?;
    let mut last = String::from("none");
    while began.elapsed() < READMITTED_WITHIN {
        match answered(addr, &open).await {
            Ok(()) => return Ok(began.elapsed()),
            Err(why) => last = why,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "not let in within {READMITTED_WITHIN:?}; the last try: {last}"
    ))
}

/// Whether the target answers `open`, sent on a new connection from the attackers' address,
/// with the header of its own within 2 s.
async fn answered(addr: SocketAddr, open: &[u8]) -> Result<(), String> {
    let mut stream = connect_from_elsewhere(addr)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    stream
        .write_all(open)
        .await
        .map_err(|e| format!("sending OPEN: {e}"))?;
    let mut header = [0u8; acm_transport_tcp::binding::HEADER_LEN];
    match tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut header)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("waiting for its OPEN: {e}")),
        Err(_) => Err("no OPEN within 2 s".into()),
    }
}

/// A connection that sends its OPEN a byte every 200 ms, and opens again when dropped.
async fn trickle(
    addr: SocketAddr,
    n: usize,
    ready: tokio::sync::mpsc::Sender<()>,
    observed: Arc<Mutex<Observed>>,
) {
    let id = DeviceId::new(format!("acm-trickler-{n}")).ok();
    let open = id
        .as_ref()
        .map(acm_transport_tcp::binding::open)
        .unwrap_or_default();
    let mut ready = Some(ready);
    loop {
        if let Ok(mut stream) = connect_from_elsewhere(addr).await {
            if let Some(ready) = ready.take() {
                let _ = ready.send(()).await;
            }
            for (at, byte) in open.iter().enumerate() {
                let mut probe = [0u8; 1];
                let dropped = stream.write_all(&[*byte]).await.is_err() || {
                    // A read that ends at once tells the connection was dropped.
                    let read =
                        tokio::time::timeout(Duration::from_millis(200), stream.read(&mut probe));
                    matches!(read.await, Ok(Ok(0) | Err(_)))
                };
                if dropped {
                    if at == 0 {
                        note_refused(&observed);
                    }
                    break;
                }
            }
        } else {
            note_refused(&observed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A connection that does the binding's opening (OPEN both ways, `TCP-5`) and then sends
/// nothing, neither the secure layer's first handshake message nor HELLO; opened again 50 ms
/// after the target drops it.
async fn stall(
    addr: SocketAddr,
    n: usize,
    ready: tokio::sync::mpsc::Sender<()>,
    observed: Arc<Mutex<Observed>>,
) {
    let open = DeviceId::new(format!("acm-staller-{n}"))
        .map(|id| acm_transport_tcp::binding::open(&id))
        .unwrap_or_default();
    let mut ready = Some(ready);
    loop {
        let mut answered = false;
        if let Ok(mut stream) = connect_from_elsewhere(addr).await
            && stream.write_all(&open).await.is_ok()
        {
            signal(&mut ready).await;
            // Their OPEN, then nothing until the end.
            let mut sink = [0u8; 256];
            while let Ok(1..) = stream.read(&mut sink).await {
                answered = true;
            }
        }
        if !answered {
            note_refused(&observed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An attacker that reads nothing (or, for the request flood and the declarations, reads and
/// drops everything): returns how long its link stayed up once the attack began, `None` for a
/// link still up, or `None` in the outer option when it could not begin.
async fn unread(
    reach: &Reach,
    attack: Attack,
    n: usize,
    ready: &mut Option<tokio::sync::mpsc::Sender<()>>,
    observed: &Mutex<Observed>,
) -> Option<Option<Duration>> {
    let mut hostile = Hostile::up(reach).await.ok()?;
    let token_base = (n as u128) << 64;
    let mut began = Instant::now();
    let fill = attack.fill;
    let ended = match attack.family {
        Family::PingsUnread => {
            began = note_begun(ready, observed).await;
            let mut value = 0u64;
            loop {
                let ping = Control::Ping(pb::Ping { value });
                if hostile.send(&ping, 0).await.is_err() {
                    break true;
                }
                value = value.wrapping_add(1);
            }
        }
        Family::MessagesUnread => {
            let channel = hostile.echo_session("unread", token_base | 1).await.ok()?;
            began = note_begun(ready, observed).await;
            let text = "m".repeat(1000);
            loop {
                let message = Control::Message(pb::Message { text: text.clone() });
                if hostile.send(&message, channel).await.is_err() {
                    break true;
                }
            }
        }
        Family::DataUnread => {
            let channel = hostile.echo_session("unread", token_base | 1).await.ok()?;
            began = note_begun(ready, observed).await;
            let data = Bytes::from(vec![0xD5u8; 256 << 10]);
            let mut transfer = 1u32;
            loop {
                if hostile
                    .send_data(channel, transfer, data.clone())
                    .await
                    .is_err()
                {
                    break true;
                }
                transfer = transfer.wrapping_add(1);
            }
        }
        Family::RequestFlood => {
            let _drain = hostile.drain();
            began = note_begun(ready, observed).await;
            for i in 0..attack.requests.min(4000) as u128 {
                let service = format!("flood-{i}");
                if hostile
                    .request(profile::SILENT, &service, token_base | (i + 1))
                    .await
                    .is_err()
                {
                    return Some(Some(began.elapsed()));
                }
            }
            let link = hostile.link();
            while link.closure().is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            true
        }
        Family::LargeDeclarations => {
            let mut channels = Vec::new();
            for s in 0..4u128 {
                let channel = hostile
                    .echo_session(&format!("declared-{s}"), token_base | (s + 1))
                    .await
                    .ok()?;
                channels.push(channel);
            }
            let _drain = hostile.drain();
            began = note_begun(ready, observed).await;
            let chunk = Bytes::from(vec![0xDEu8; 60_000]);
            for channel in &channels {
                let first = Hostile::first_fragment(*channel, 1, 100 << 20, chunk.clone()).ok()?;
                if hostile.link().send(first).await.is_err() {
                    return Some(Some(began.elapsed()));
                }
            }
            // Then as many bytes of each as `fill` says, in turn, and never the end.
            let mut index = 1u32;
            let mut sent = chunk.len();
            while sent < fill {
                for channel in &channels {
                    let Ok(next) = Hostile::next_fragment(*channel, 1, index, chunk.clone()) else {
                        break;
                    };
                    if hostile.link().send(next).await.is_err() {
                        return Some(Some(began.elapsed()));
                    }
                }
                sent = sent.saturating_add(chunk.len());
                index = index.saturating_add(1);
            }
            let link = hostile.link();
            while link.closure().is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            true
        }
        Family::IdleConnections | Family::TrickledOpenings | Family::StalledHandshakes => false,
    };
    hostile.close().await;
    Some(ended.then(|| began.elapsed()))
}
