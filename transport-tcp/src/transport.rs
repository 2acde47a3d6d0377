//! The transport: a device that listens on a TCP port (or not), dials peers by id or by address,
//! and exchanges OPEN with each.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use acm_transport::{Capabilities, DeviceId, DeviceInfo, Link, Role, Transport, TransportError};
use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::binding;
use crate::config::TcpConfig;
use crate::error::TcpError;
use crate::link::{LinkInfo, TcpLink};
use crate::opening::{self, Openings};
use crate::stream::{FrameReader, Next, ReadError};
use crate::waste::{Charge, Ledger};

/// How long the listener pauses after the system refuses it a connection (out of file
/// descriptors, say) before it accepts again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// acm's `Transport` over TCP. See the crate docs and SPEC.md section 14.
///
/// * Made with [`TcpTransport::bind`], it listens and [`accept`](Transport::accept) returns the
///   links other devices dial to it. Made with [`TcpTransport::client`], it only dials, and
///   `accept` fails at once with [`TransportError::Unsupported`] (rather than waiting for links
///   that cannot come).
/// * [`dial`](Transport::dial) reaches devices by id at the addresses given with
///   [`TcpTransport::add_peer`]; [`TcpTransport::dial_addr`] reaches whatever device listens at
///   an address and learns its id from its OPEN.
/// * [`discover`](Transport::discover) lists the peers added, in the order of their ids, without
///   probing them: TCP has no discovery of its own.
/// * Links outlive the transport: dropping it stops the listener (links not yet accepted are
///   dropped, which their dialers see as lost), and leaves the links it handed out open.
pub struct TcpTransport {
    device: DeviceId,
    config: TcpConfig,
    peers: Mutex<BTreeMap<DeviceId, SocketAddr>>,
    listener: Option<Listener>,
}

/// The listening half of a transport.
struct Listener {
    addr: SocketAddr,
    accepted: tokio::sync::Mutex<mpsc::Receiver<TcpLink>>,
    task: AbortHandle,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpTransport {
    /// Listens on `addr` (port 0 picks a free port; [`TcpTransport::local_addr`] says which)
    /// with the default [`TcpConfig`].
    pub async fn bind(device: DeviceId, addr: SocketAddr) -> Result<Self, TcpError> {
        Self::bind_with(device, addr, TcpConfig::new()).await
    }

    /// Listens on `addr` with `config`.
    pub async fn bind_with(
        device: DeviceId,
        addr: SocketAddr,
        config: TcpConfig,
    ) -> Result<Self, TcpError> {
        config.validate()?;
        let bound = TcpListener::bind(addr)
            .await
            .and_then(|listener| Ok((listener.local_addr()?, listener)));
        let (local, listener) = bound.map_err(|source| TcpError::Bind { addr, source })?;
        let (accepted_tx, accepted) = mpsc::channel(config.accept_backlog);
        let task = tokio::spawn(listen(
            listener,
            device.clone(),
            config.clone(),
            accepted_tx,
        ));
        Ok(Self {
            device,
            config,
            peers: Mutex::default(),
            listener: Some(Listener {
                addr: local,
                accepted: tokio::sync::Mutex::new(accepted),
                task: task.abort_handle(),
            }),
        })
    }

    /// A transport that only dials, with the default [`TcpConfig`].
    pub fn client(device: DeviceId) -> Self {
        Self {
            device,
            config: TcpConfig::new(),
            peers: Mutex::default(),
            listener: None,
        }
    }

    /// A transport that only dials, with `config`.
    pub fn client_with(device: DeviceId, config: TcpConfig) -> Result<Self, TcpError> {
        config.validate()?;
        Ok(Self {
            config,
            ..Self::client(device)
        })
    }

    /// The address the transport listens on, or `None` for a client.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(|listener| listener.addr)
    }

    /// The transport's settings.
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// Says that device `id` listens at `addr`, so that [`Transport::dial`] can reach it and
    /// [`Transport::discover`] lists it. Returns the address it replaces, if any.
    pub fn add_peer(&self, id: DeviceId, addr: SocketAddr) -> Option<SocketAddr> {
        self.peers().insert(id, addr)
    }

    /// Forgets device `id`'s address. Returns it, if there was one.
    pub fn remove_peer(&self, id: &DeviceId) -> Option<SocketAddr> {
        self.peers().remove(id)
    }

    /// Dials whatever device listens at `addr`; the link's
    /// [`peer_device`](Link::peer_device) is the id its OPEN gives.
    ///
    /// Fails with [`TransportError::Io`] when the connection cannot be made or the device
    /// there ends it without answering OPEN (kind `ConnectionRefused`) or answers with
    /// something else (kind `InvalidData`), and with [`TransportError::TimedOut`] when
    /// connecting or the OPEN exchange takes longer than the configured timeouts.
    pub async fn dial_addr(&self, addr: SocketAddr) -> Result<Box<dyn Link>, TransportError> {
        let opened = self.open(addr).await.map_err(|e| e.into_transport(None))?;
        Ok(Box::new(opened.start(
            &self.device,
            Role::Dialer,
            &self.config,
            None,
        )))
    }

    fn peers(&self) -> MutexGuard<'_, BTreeMap<DeviceId, SocketAddr>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects to `addr` and exchanges OPEN.
    async fn open(&self, addr: SocketAddr) -> Result<Opened, DialError> {
        let connecting = TcpStream::connect(addr);
        let stream = tokio::time::timeout(self.config.connect_timeout, connecting)
            .await
            .map_err(|_| DialError::TimedOut("connecting"))?
            .map_err(DialError::Connect)?;
        let (mut reader, mut writer, addrs) = split(stream, &self.config)?;
        let exchange = async {
            writer.write_all(&binding::open(&self.device)).await?;
            writer.flush().await?;
            expect_open(&mut reader).await
        };
        let peer = tokio::time::timeout(self.config.open_timeout, exchange)
            .await
            .map_err(|_| DialError::TimedOut("waiting for the peer's OPEN"))??;
        Ok(Opened {
            reader,
            writer,
            addrs,
            peer,
        })
    }
}

impl fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTransport")
            .field("device", &self.device)
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Transport for TcpTransport {
    fn local_device(&self) -> &DeviceId {
        &self.device
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(self.config.max_frame_size)
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        Ok(self
            .peers()
            .iter()
            .map(|(id, addr)| DeviceInfo::new(id.clone(), id.as_str(), addr.to_string()))
            .collect())
    }

    /// Dials `device` at the address given with [`TcpTransport::add_peer`]. Fails with
    /// [`TransportError::Unreachable`] for a device without an address, with
    /// [`TransportError::NotListening`] where nothing listens, with
    /// [`TransportError::OtherDevice`] when the OPEN there names another device, with
    /// [`TransportError::NotAcm`] when what answers there is no acm binding, and with
    /// [`TransportError::Refused`] when the device ends the connection without answering OPEN.
    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        let addr = self.peers().get(device).copied();
        let addr = addr.ok_or_else(|| TransportError::Unreachable(device.clone()))?;
        let opened = self
            .open(addr)
            .await
            .map_err(|e| e.into_transport(Some((device, addr))))?;
        if opened.peer != *device {
            // Another device listens there: the connection is dropped without CLOSE.
            return Err(TransportError::OtherDevice {
                device: device.clone(),
                found: opened.peer,
                address: format!("tcp://{addr}"),
            });
        }
        Ok(Box::new(opened.start(
            &self.device,
            Role::Dialer,
            &self.config,
            None,
        )))
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        let Some(listener) = &self.listener else {
            return Err(TransportError::Unsupported(
                "accepting links on a transport that does not listen",
            ));
        };
        let mut accepted = listener.accepted.lock().await;
        match accepted.recv().await {
            Some(link) => Ok(Box::new(link)),
            None => Err(TransportError::Shutdown),
        }
    }
}

/// Why a dial failed.
#[derive(Debug)]
enum DialError {
    /// The connection could not be made.
    Connect(io::Error),
    /// The connection failed during the OPEN exchange.
    Io(io::Error),
    /// The device ended the connection, or sent CLOSE, instead of answering OPEN.
    Refused,
    /// The device answered with something other than OPEN.
    Broken(ReadError),
    /// Connecting or the OPEN exchange took too long.
    TimedOut(&'static str),
}

impl From<io::Error> for DialError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

impl DialError {
    /// The error a dial reports: by device id when one was dialed (with its address), else as
    /// I/O errors.
    fn into_transport(self, device: Option<(&DeviceId, SocketAddr)>) -> TransportError {
        match (self, device) {
            (Self::Connect(error), Some((device, addr))) if nobody_there(&error) => {
                TransportError::NotListening {
                    device: device.clone(),
                    address: format!("tcp://{addr}"),
                    why: error.kind().to_string(),
                }
            }
            (Self::Broken(error), Some((_, addr))) => TransportError::NotAcm {
                address: format!("tcp://{addr}"),
                why: error.to_string(),
            },
            (Self::Refused, Some((device, _))) => TransportError::Refused(device.clone()),
            (Self::Refused, None) => io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the device ended the connection without answering OPEN",
            )
            .into(),
            (Self::Connect(error) | Self::Io(error), _) => error.into(),
            (Self::Broken(error), _) => io::Error::new(io::ErrorKind::InvalidData, error).into(),
            (Self::TimedOut(what), _) => TransportError::TimedOut(what),
        }
    }
}

/// Whether a connect error means that no device listens there.
fn nobody_there(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable
    )
}

/// A connection whose OPEN exchange is done.
struct Opened {
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    addrs: Addrs,
    /// The id the peer's OPEN gave.
    peer: DeviceId,
}

impl Opened {
    /// Makes it a link of `local`'s; `unused` is charged if this side ends the link before
    /// the peer sends a frame on it.
    fn start(
        self,
        local: &DeviceId,
        role: Role,
        config: &TcpConfig,
        unused: Option<Charge>,
    ) -> TcpLink {
        let (local_addr, peer_addr) = self.addrs;
        let info = LinkInfo {
            local: local.clone(),
            peer: self.peer,
            role,
            local_addr,
            peer_addr,
            max_frame_size: config.max_frame_size,
            receive_buffer: config.receive_buffer,
            close_timeout: config.close_timeout,
        };
        TcpLink::start(info, self.reader, self.writer, unused)
    }
}

/// The two socket addresses of a connection: this end's, then the peer's.
type Addrs = (SocketAddr, SocketAddr);

/// Sets a new connection up and splits it into a frame reader and a writer.
fn split(
    stream: TcpStream,
    config: &TcpConfig,
) -> io::Result<(FrameReader<OwnedReadHalf>, OwnedWriteHalf, Addrs)> {
    stream.set_nodelay(true)?;
    let addrs = (stream.local_addr()?, stream.peer_addr()?);
    let (reader, writer) = stream.into_split();
    Ok((
        FrameReader::new(reader, config.max_frame_size),
        writer,
        addrs,
    ))
}

/// Reads the peer's OPEN, which must come first.
async fn expect_open(reader: &mut FrameReader<OwnedReadHalf>) -> Result<DeviceId, DialError> {
    match reader.next().await {
        Ok(Next::Open(peer)) => Ok(peer),
        Ok(Next::Close) | Err(ReadError::Ended) => Err(DialError::Refused),
        Ok(Next::Frame) => Err(DialError::Broken(ReadError::Unexpected(
            "a frame before its OPEN",
        ))),
        Err(ReadError::Io(error)) => Err(DialError::Io(error)),
        Err(error) => Err(DialError::Broken(error)),
    }
}

/// Accepts connections until the transport is dropped, answering each one's OPEN on a task of
/// its own. The connections in their OPEN exchange are bounded (`LIMIT-2`): a new one takes
/// the place of the oldest from its address, or of the oldest of all, when their places are
/// full, so that connections that never finish their OPEN keep nobody out for longer than a
/// newcomer takes to come. A connection from an address that has wasted its allowance of
/// openings (`LIMIT-3`) is dropped at once, with a reset, and costs no task.
async fn listen(
    listener: TcpListener,
    device: DeviceId,
    config: TcpConfig,
    accepted: mpsc::Sender<TcpLink>,
) {
    let openings = Openings::default();
    let ledger = Ledger::new(config.wasted_opens());
    let limits = opening::Limits {
        total: config.max_pending_opens,
        per_address: config.max_pending_opens_per_address,
        wait: config.open_timeout,
        pressed_wait: config.pressed_open_timeout,
    };
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        if ledger.refuses(from.ip()) {
            // A reset, so that no state outlives the connection on either side.
            let _ = stream.set_zero_linger();
            drop(stream);
            continue;
        }
        openings.admit(from.ip(), limits, |place, wait| {
            let charge = Charge::new(&ledger, from.ip());
            let answer = answer(
                stream,
                device.clone(),
                config.clone(),
                wait,
                accepted.clone(),
                ledger.clone(),
            );
            tokio::spawn(async move {
                // Pushed out (the task aborted), timed out or malformed: wasted.
                match answer.await {
                    Err(DialError::TimedOut(_) | DialError::Broken(_)) => drop(charge),
                    _ => charge.forgive(),
                }
                drop(place);
            })
            .abort_handle()
        });
    }
}

/// The acceptor's side of the OPEN exchange: waits for the dialer's OPEN, answers with its
/// own once a place waits for the link, and queues the link for `accept`, to be charged to the
/// peer's address in `ledger` if this side ends it before the peer sends a frame. On any
/// failure the connection is dropped without an answer.
async fn answer(
    stream: TcpStream,
    device: DeviceId,
    config: TcpConfig,
    wait: Duration,
    accepted: mpsc::Sender<TcpLink>,
    ledger: Ledger,
) -> Result<(), DialError> {
    let (mut reader, mut writer, addrs) = split(stream, &config)?;
    let exchange = async {
        let peer = expect_open(&mut reader).await?;
        let place = accepted.try_reserve().map_err(|_| DialError::Refused)?;
        writer.write_all(&binding::open(&device)).await?;
        writer.flush().await?;
        Ok::<_, DialError>((peer, place))
    };
    let (peer, place) = tokio::time::timeout(wait, exchange)
        .await
        .map_err(|_| DialError::TimedOut("waiting for the peer's OPEN"))??;
    let opened = Opened {
        reader,
        writer,
        addrs,
        peer,
    };
    let unused = Charge::new(&ledger, opened.addrs.1.ip());
    place.send(opened.start(&device, Role::Acceptor, &config, Some(unused)));
    Ok(())
}
