//! The BlueZ backend (cargo feature `bluez`): the same binding (SPEC section 13) over the Linux
//! kernel's L2CAP sockets and bluetoothd, through the bluer crate, for Linux machines with a
//! Bluetooth adapter.
//!
//! # Running on hardware
//!
//! 1. Build with `cargo build -p acm-transport-ble --features bluez` (needs `libdbus-1-dev` and
//!    `pkg-config`).
//! 2. On each machine: a kernel with Bluetooth, `bluetoothd` running, and an adapter that is
//!    up (`bluetoothctl power on`). Advertising and L2CAP sockets need `CAP_NET_ADMIN` (run
//!    as root, or `setcap cap_net_admin+ep` on the binary).
//! 3. Start a [`BluezTransport`] on each machine with [`BluezConfig::new`] and a device id; the
//!    acceptor advertises the acm service, the dialer finds it with `discover` and `dial`s it.
//!
//! BlueZ decides where in the advertisement the local name (the device id) goes; a dialer reads
//! it from either the advertising data or the scan response.

use std::sync::Arc;
use std::time::Duration;

use acm_transport::{Capabilities, DeviceId, DeviceInfo, Link, Role, Transport, TransportError};
use async_trait::async_trait;
use bluer::l2cap::{SeqPacket, SeqPacketListener, Socket, SocketAddr};
use bluer::{Adapter, AdapterEvent, Address, AddressType, Uuid};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::binding::{self, MIN_PEER_MTU, OPEN_WAIT, SDU_MTU, SERVICE_UUID, SPSM, Sdu};
use crate::carry::{SduReceiver, SduSender, carry};
use crate::link::{self, BleLink, HostEnd, HostStatus, LinkInfo};

/// The first pause before asking again for a channel the peer refused.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest such pause.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Links accepted and not yet taken by `accept`.
const ACCEPT_QUEUE: usize = 8;

/// Why a [`BluezTransport`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BluezError {
    /// bluetoothd, the adapter or the kernel refused.
    #[error("BlueZ: {0}")]
    Bluez(#[from] bluer::Error),
    /// The L2CAP socket could not be set up.
    #[error("cannot listen on the acm SPSM: {0}")]
    Socket(#[from] std::io::Error),
    /// The device id is too long to advertise.
    #[error("device id {0:?} is longer than the {max} bytes an advertisement carries", max = binding::MAX_ADVERTISED_ID_LEN)]
    IdTooLong(String),
}

/// The settings of a [`BluezTransport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BluezConfig {
    /// This device's id, advertised when accepting.
    pub device: DeviceId,
    /// The adapter's name (`hci0`, ...); `None` takes BlueZ's default adapter.
    pub adapter: Option<String>,
    /// Whether to advertise the acm service and accept links.
    pub accept: bool,
    /// How long `discover` scans.
    pub scan_time: Duration,
    /// How long a dial may take, from the scan for the device to its first SDU.
    pub dial_timeout: Duration,
    /// How long a graceful close waits for the peer to take the channel down.
    pub close_timeout: Duration,
}

impl BluezConfig {
    /// Settings for device `device` on the default adapter, accepting links.
    pub fn new(device: DeviceId) -> Self {
        Self {
            device,
            adapter: None,
            accept: true,
            scan_time: Duration::from_millis(1500),
            dial_timeout: Duration::from_secs(15),
            close_timeout: Duration::from_secs(5),
        }
    }

    /// Uses the adapter named `adapter`.
    #[must_use]
    pub fn with_adapter(mut self, adapter: impl Into<String>) -> Self {
        self.adapter = Some(adapter.into());
        self
    }

    /// Sets whether the transport advertises and accepts links.
    #[must_use]
    pub fn with_accept(mut self, accept: bool) -> Self {
        self.accept = accept;
        self
    }
}

/// acm's [`Transport`] over Bluetooth LE L2CAP channels, with BlueZ as the host stack. Links
/// are [`BleLink`]s and behave as the trouble-host backend's do. Dropping the transport stops
/// advertising and accepting, and ends every link it made as lost.
pub struct BluezTransport {
    config: BluezConfig,
    adapter: Adapter,
    status: Arc<HostStatus>,
    accepted: tokio::sync::Mutex<mpsc::Receiver<BleLink>>,
    /// Link tasks are aborted with the transport.
    tasks: mpsc::UnboundedSender<JoinHandle<()>>,
    _advertising: Option<bluer::adv::AdvertisementHandle>,
    acceptor: Option<JoinHandle<()>>,
    reaper: JoinHandle<()>,
}

impl std::fmt::Debug for BluezTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BluezTransport")
            .field("device", &self.config.device)
            .finish_non_exhaustive()
    }
}

impl BluezTransport {
    /// Connects to bluetoothd, powers the adapter on and, if `config.accept` is set, listens
    /// on the acm SPSM and advertises the acm service. Needs a Tokio runtime.
    pub async fn start(config: BluezConfig) -> Result<Self, BluezError> {
        let session = bluer::Session::new().await?;
        let adapter = match &config.adapter {
            Some(name) => session.adapter(name)?,
            None => session.default_adapter().await?,
        };
        adapter.set_powered(true).await?;
        let status = Arc::new(HostStatus::default());
        let (accepted_tx, accepted_rx) = mpsc::channel(ACCEPT_QUEUE);
        let (tasks, mut task_rx) = mpsc::unbounded_channel::<JoinHandle<()>>();
        // Holds every link task, to abort them all when the transport goes.
        let reaper = tokio::spawn(async move {
            let mut held = AbortAll(Vec::new());
            while let Some(task) = task_rx.recv().await {
                held.0.retain(|task| !task.is_finished());
                held.0.push(task);
            }
        });
        let (advertising, acceptor) = if config.accept {
            let id = config.device.as_str();
            if id.len() > binding::MAX_ADVERTISED_ID_LEN {
                return Err(BluezError::IdTooLong(id.to_owned()));
            }
            let listener = listen()?;
            let advertisement = bluer::adv::Advertisement {
                advertisement_type: bluer::adv::Type::Peripheral,
                service_uuids: [Uuid::from_bytes(SERVICE_UUID)].into_iter().collect(),
                local_name: Some(id.to_owned()),
                discoverable: Some(true),
                ..Default::default()
            };
            let handle = adapter.advertise(advertisement).await?;
            let acceptor = tokio::spawn(accept_loop(
                listener,
                config.clone(),
                accepted_tx,
                tasks.clone(),
                status.clone(),
            ));
            (Some(handle), Some(acceptor))
        } else {
            (None, None)
        };
        Ok(Self {
            config,
            adapter,
            status,
            accepted: tokio::sync::Mutex::new(accepted_rx),
            tasks,
            _advertising: advertising,
            acceptor,
            reaper,
        })
    }

    /// Scans for `scan_time`, or until `wanted` is seen; returns the acm devices seen.
    async fn scan(
        &self,
        scan_time: Duration,
        wanted: Option<&DeviceId>,
    ) -> Result<Vec<(DeviceInfo, Address, AddressType)>, TransportError> {
        let io = |e: bluer::Error| TransportError::Io(std::io::Error::other(e.to_string()));
        let mut events = self.adapter.discover_devices().await.map_err(io)?;
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + scan_time;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
            let AdapterEvent::DeviceAdded(address) = event else {
                continue;
            };
            let Some(found) = self.acm_device(address).await else {
                continue;
            };
            let done = wanted == Some(&found.0.id);
            seen.retain(|(info, _, _): &(DeviceInfo, Address, AddressType)| info.id != found.0.id);
            seen.push(found);
            if done {
                break;
            }
        }
        Ok(seen)
    }

    /// The acm device at `address`, if BlueZ has seen it advertise the acm service and a name.
    async fn acm_device(&self, address: Address) -> Option<(DeviceInfo, Address, AddressType)> {
        let device = self.adapter.device(address).ok()?;
        let uuids = device.uuids().await.ok()??;
        if !uuids.contains(&Uuid::from_bytes(SERVICE_UUID)) {
            return None;
        }
        let id = DeviceId::new(device.name().await.ok()??).ok()?;
        let kind = device.address_type().await.ok()?;
        let info = DeviceInfo::new(id.clone(), id.as_str(), address.to_string());
        Some((info, address, kind))
    }
}

/// Aborts every task it holds when dropped.
struct AbortAll(Vec<JoinHandle<()>>);

impl Drop for AbortAll {
    fn drop(&mut self) {
        for task in self.0.iter() {
            task.abort();
        }
    }
}

impl Drop for BluezTransport {
    fn drop(&mut self) {
        self.status.stopped("the transport shut down".into());
        if let Some(acceptor) = &self.acceptor {
            acceptor.abort();
        }
        self.reaper.abort();
    }
}

/// The listening socket on the acm SPSM, offering the largest SDU.
fn listen() -> std::io::Result<SeqPacketListener> {
    let socket = Socket::<SeqPacket>::new_seq_packet()?;
    socket.bind(SocketAddr::new(Address::any(), AddressType::LePublic, SPSM))?;
    socket.set_recv_mtu(SDU_MTU)?;
    socket.listen(ACCEPT_QUEUE as u32)
}

async fn accept_loop(
    listener: SeqPacketListener,
    config: BluezConfig,
    accepted: mpsc::Sender<BleLink>,
    tasks: mpsc::UnboundedSender<JoinHandle<()>>,
    status: Arc<HostStatus>,
) {
    while let Ok((socket, address)) = listener.accept().await {
        let (config, accepted, status) = (config.clone(), accepted.clone(), status.clone());
        let task = tokio::spawn(async move {
            let Ok(peer) = exchange_open(&socket, &config.device, false, OPEN_WAIT).await else {
                return;
            };
            let info = link_info(&config, &socket, peer, Role::Acceptor, address.addr);
            let Some(info) = info else { return };
            let (link, end) = link::pair(info, &status);
            if accepted.try_send(link).is_ok() {
                drive(socket, end, config.close_timeout).await;
            }
        });
        if tasks.send(task).is_err() {
            return;
        }
    }
}

/// A new link's description, or `None` if the peer's MTU is too small for acm (`BLE-2`).
fn link_info(
    config: &BluezConfig,
    socket: &SeqPacket,
    peer: DeviceId,
    role: Role,
    address: Address,
) -> Option<LinkInfo> {
    let peer_mtu = socket.send_mtu().ok()?;
    (peer_mtu >= usize::from(MIN_PEER_MTU)).then(|| LinkInfo {
        local: config.device.clone(),
        peer,
        role,
        max_frame_size: peer_mtu,
        peer_address: address.to_string(),
    })
}

/// The OPEN exchange of `BLE-5`: returns the id the peer's OPEN names.
async fn exchange_open(
    socket: &SeqPacket,
    local: &DeviceId,
    dialer: bool,
    wait: Duration,
) -> Result<DeviceId, ()> {
    let exchange = async {
        let mut receiving = Receiving::new(socket);
        let mut sending = Sending(socket);
        if dialer && !sending.send(&binding::open(local)).await {
            return Err(());
        }
        let Some(Ok(Sdu::Open(peer))) = receiving.receive().await.map(binding::parse) else {
            return Err(());
        };
        if !dialer && !sending.send(&binding::open(local)).await {
            return Err(());
        }
        Ok(peer)
    };
    tokio::time::timeout(wait, exchange)
        .await
        .unwrap_or(Err(()))
}

/// Reads SDUs from a socket, into a buffer of the receive MTU.
struct Receiving<'s> {
    socket: &'s SeqPacket,
    buffer: Vec<u8>,
}

impl<'s> Receiving<'s> {
    fn new(socket: &'s SeqPacket) -> Self {
        let mtu = socket.recv_mtu().unwrap_or(usize::from(SDU_MTU));
        Self {
            socket,
            buffer: vec![0; mtu.max(1)],
        }
    }
}

impl SduReceiver for Receiving<'_> {
    async fn receive(&mut self) -> Option<Bytes> {
        match self.socket.recv(&mut self.buffer).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(Bytes::copy_from_slice(&self.buffer[..n])),
        }
    }
}

/// Writes SDUs to a socket.
struct Sending<'s>(&'s SeqPacket);

impl SduSender for Sending<'_> {
    async fn send(&mut self, sdu: &[u8]) -> bool {
        matches!(self.0.send(sdu).await, Ok(n) if n == sdu.len())
    }
}

/// Carries a link until it ends, then closes the socket (the kernel takes the channel down,
/// and the LE connection with its last channel).
async fn drive(socket: SeqPacket, end: HostEnd, close_timeout: Duration) {
    let peer_mtu = socket.send_mtu().unwrap_or(usize::from(MIN_PEER_MTU));
    let mut receiving = Receiving::new(&socket);
    let mut sending = Sending(&socket);
    let lost = || "the L2CAP channel went down without a CLOSE".to_owned();
    carry(
        &mut receiving,
        &mut sending,
        end,
        peer_mtu,
        close_timeout,
        lost,
    )
    .await;
    drop(receiving);
    let _ = socket.shutdown(std::net::Shutdown::Both);
}

#[async_trait]
impl Transport for BluezTransport {
    fn local_device(&self) -> &DeviceId {
        &self.config.device
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(usize::from(SDU_MTU))
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        let seen = self.scan(self.config.scan_time, None).await?;
        Ok(seen.into_iter().map(|(info, _, _)| info).collect())
    }

    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        let deadline = tokio::time::Instant::now() + self.config.dial_timeout;
        let seen = self.scan(self.config.dial_timeout, Some(device)).await?;
        let Some((_, address, kind)) = seen.into_iter().find(|(info, _, _)| info.id == *device)
        else {
            return Err(TransportError::Unreachable(device.clone()));
        };
        let mut backoff = FIRST_BACKOFF;
        let socket = loop {
            let socket = Socket::<SeqPacket>::new_seq_packet().map_err(TransportError::Io)?;
            socket
                .bind(SocketAddr::new(Address::any(), kind, 0))
                .map_err(TransportError::Io)?;
            socket.set_recv_mtu(SDU_MTU).map_err(TransportError::Io)?;
            let target = SocketAddr::new(address, kind, SPSM);
            match tokio::time::timeout_at(deadline, socket.connect(target)).await {
                Ok(Ok(socket)) => break socket,
                Ok(Err(_)) if tokio::time::Instant::now() + backoff < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Ok(Err(_)) => return Err(TransportError::Refused(device.clone())),
                Err(_) => return Err(TransportError::TimedOut("opening the L2CAP channel")),
            }
        };
        let wait = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(OPEN_WAIT);
        let peer = exchange_open(&socket, &self.config.device, true, wait)
            .await
            .map_err(|()| TransportError::Refused(device.clone()))?;
        if peer != *device {
            return Err(TransportError::Refused(device.clone()));
        }
        let info = link_info(&self.config, &socket, peer, Role::Dialer, address)
            .ok_or_else(|| TransportError::Refused(device.clone()))?;
        let (link, end) = link::pair(info, &self.status);
        let task = tokio::spawn(drive(socket, end, self.config.close_timeout));
        self.tasks
            .send(task)
            .map_err(|_| TransportError::Shutdown)?;
        Ok(Box::new(link))
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        let mut accepted = self.accepted.lock().await;
        match accepted.recv().await {
            Some(link) => Ok(Box::new(link)),
            None => Err(TransportError::Shutdown),
        }
    }
}
