//! The host thread: the trouble-host stack over an HCI H4 byte stream, on a current-thread
//! runtime of its own, serving the transport's requests and driving every link.

mod book;
mod central;
mod channel;
mod connections;
mod gate;
mod peripheral;
mod stream;
mod tend;

use std::cell::Cell;
use std::future::pending;
use std::rc::Rc;
use std::sync::Arc;

use acm_transport::{DeviceId, DeviceInfo, TransportError};
use bt_hci::cmd::info::ReadBdAddr;
use bt_hci::controller::ExternalController;
use futures_util::StreamExt;
use futures_util::future::{Either, LocalBoxFuture, select};
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use trouble_host::prelude::{Address, Connection, HostResources, Stack};

use self::connections::Entry;
use self::gate::Gate;
use self::stream::{HciReader, HciStream, HciWriter};
use self::tend::Tending;
use crate::air::{AirReport, Phy, credits_to_fill};
use crate::binding::{INITIAL_CREDITS, MAX_CREDITS, SPSM};
use crate::config::{BleConfig, HciEndpoint};
use crate::error::BleError;
use crate::link::{BleLink, HostStatus};
use crate::pool::HeapPool;
use crate::snoop::HciLog;

/// The most LE connections at once (one per peer device).
const CONNECTIONS: usize = 8;
/// The most L2CAP channels (so links) at once, over all connections.
const CHANNELS: usize = 8;
/// HCI commands in flight at once.
const COMMAND_SLOTS: usize = 8;
/// Links accepted and not yet taken by `accept`.
const ACCEPT_QUEUE: usize = 8;

/// The controller, as the host stack drives it.
pub(crate) type Hci = ExternalController<HciStream, COMMAND_SLOTS>;

/// Why the host stopped, shared with its links.
pub(crate) type Status = Arc<HostStatus>;
/// Hands a link's task to the host thread's set of tasks.
pub(crate) type Spawn<'a> = mpsc::UnboundedSender<LocalBoxFuture<'a, ()>>;
/// What every task on the host thread shares: `'a` is how long the tasks may borrow the stack
/// (whose own lifetime is `'s`).
#[derive(Clone)]
pub(crate) struct Ctx<'a, 's> {
    pub(crate) stack: &'a Stack<'s, Hci, HeapPool>,
    pub(crate) config: &'a BleConfig,
    /// Links accepted, for `accept`.
    pub(crate) accepted: &'a mpsc::Sender<BleLink>,
    pub(crate) spawn: Spawn<'a>,
    pub(crate) status: &'a Status,
    pub(crate) connections: std::rc::Rc<connections::Connections<'a>>,
    pub(crate) tending: &'a Tending,
    /// What holds back the K-frames the host stack has no room for.
    pub(crate) gate: &'a Rc<Gate>,
    /// What the connections run with, by peer, for the transport's user.
    pub(crate) report: &'a AirReport,
}

impl<'a> Ctx<'a, '_> {
    /// The credits this side grants on a new channel: sized to the busy interval and the
    /// fastest PHY the controller offers when connections are tuned, else the fixed few.
    pub(crate) fn credits(&self) -> u16 {
        if !self.config.tune {
            return INITIAL_CREDITS;
        }
        let phy = if self.tending.abilities.get().le_2m {
            Phy::Le2M
        } else {
            Phy::Le1M
        };
        credits_to_fill(
            self.config.connection_interval,
            phy,
            INITIAL_CREDITS,
            MAX_CREDITS,
        )
    }

    /// Records a new connection, whose events are `event_length` long if this side asked for
    /// that, and starts tending it.
    pub(crate) fn adopt(
        &self,
        connection: Connection<'a, HeapPool>,
        event_length: Option<std::time::Duration>,
    ) -> Result<std::rc::Rc<Entry<'a>>, TransportError> {
        let air = tend::initial_air(self, &connection, event_length);
        let entry = self.connections.add(connection, air);
        self.spawn
            .send(Box::pin(tend::tend(self.clone(), entry.clone())))
            .map_err(|_| TransportError::Shutdown)?;
        Ok(entry)
    }
}

/// A request from the transport to the host thread.
pub(crate) enum Command {
    /// Scan and list the acm devices seen.
    Discover(oneshot::Sender<Result<Vec<DeviceInfo>, TransportError>>),
    /// Open a link to a device.
    Dial(DeviceId, oneshot::Sender<Result<BleLink, TransportError>>),
}

/// The transport's handle on its host thread. Dropping it stops the thread.
pub(crate) struct Host {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) accepted: tokio::sync::Mutex<mpsc::Receiver<BleLink>>,
    pub(crate) report: AirReport,
    _stop: oneshot::Sender<()>,
}

/// Starts a host thread for `config` and waits until the controller has been initialised.
pub(crate) async fn start(config: BleConfig) -> Result<Host, BleError> {
    if config.accept && crate::advert::encode(&config.device).is_none() {
        return Err(BleError::IdTooLong(config.device.into_string()));
    }
    let (commands_tx, commands_rx) = mpsc::channel(8);
    let (accepted_tx, accepted_rx) = mpsc::channel(ACCEPT_QUEUE);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let report = AirReport::default();
    let host_report = report.clone();
    std::thread::Builder::new()
        .name(format!("acm-ble-{}", config.device))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(BleError::Thread(e)));
                    return;
                }
            };
            runtime.block_on(serve(
                config,
                host_report,
                commands_rx,
                accepted_tx,
                ready_tx,
                stop_rx,
            ));
        })
        .map_err(BleError::Thread)?;
    match ready_rx.await {
        Ok(Ok(())) => Ok(Host {
            commands: commands_tx,
            accepted: tokio::sync::Mutex::new(accepted_rx),
            report,
            _stop: stop_tx,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BleError::Start("the host thread ended".into())),
    }
}

/// Opens the byte stream to the controller.
async fn open(endpoint: &HciEndpoint) -> std::io::Result<(HciReader, HciWriter)> {
    match endpoint {
        HciEndpoint::Tcp(address) => {
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            let (reader, writer) = stream.into_split();
            Ok((Box::new(reader), Box::new(writer)))
        }
        HciEndpoint::Serial(path) => {
            let file = tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .await?;
            let (reader, writer) = tokio::io::split(file);
            Ok((Box::new(reader), Box::new(writer)))
        }
    }
}

/// Opens the byte stream to the controller and runs the stack on it.
async fn serve(
    config: BleConfig,
    report: AirReport,
    commands: mpsc::Receiver<Command>,
    accepted: mpsc::Sender<BleLink>,
    ready: oneshot::Sender<Result<(), BleError>>,
    stop: oneshot::Receiver<()>,
) {
    let log = match &config.hci_log {
        Some(path) => match HciLog::create(path) {
            Ok(log) => Some(log),
            Err(e) => {
                let _ = ready.send(Err(BleError::HciLog {
                    path: path.clone(),
                    source: e,
                }));
                return;
            }
        },
        None => None,
    };
    match open(&config.hci).await {
        Ok((reader, writer)) => {
            let io = Io {
                reader,
                writer,
                log,
            };
            run(io, config, report, commands, accepted, ready, stop).await;
        }
        Err(e) => {
            let _ = ready.send(Err(BleError::Open(e)));
        }
    }
}

/// A static random address: random bits with the two top bits set.
fn random_address() -> [u8; 6] {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    let bits = hasher.finish().to_le_bytes();
    [bits[0], bits[1], bits[2], bits[3], bits[4], bits[5]]
}

/// The stream to the controller and the log of what crosses it.
struct Io {
    reader: HciReader,
    writer: HciWriter,
    log: Option<HciLog>,
}

/// Runs the host stack until the controller goes away or the transport is dropped.
async fn run(
    io: Io,
    config: BleConfig,
    report: AirReport,
    mut commands: mpsc::Receiver<Command>,
    accepted: mpsc::Sender<BleLink>,
    ready: oneshot::Sender<Result<(), BleError>>,
    stop: oneshot::Receiver<()>,
) {
    let tending = Tending::default();
    let gate = Rc::new(Gate::default());
    let transport = HciStream::new(
        io.reader,
        io.writer,
        io.log,
        tending.stand_ins.clone(),
        gate.clone(),
    );
    let controller: Hci = ExternalController::new(transport);
    let mut resources: HostResources<HeapPool, CONNECTIONS, CHANNELS> = HostResources::new();
    let mut address = config.address.unwrap_or_else(random_address);
    address[5] |= 0xC0;
    let stack = trouble_host::new(controller, &mut resources)
        .set_random_address(Address::random(address))
        .register_l2cap_spsm(SPSM)
        .build();
    let mut runner = stack.runner();
    let book = book::Book::default();
    let status: Status = Arc::new(HostStatus::default());
    let ready = Cell::new(Some(ready));

    let (spawn, mut spawned) = mpsc::unbounded_channel::<LocalBoxFuture<'_, ()>>();
    let ctx = Ctx {
        stack: &stack,
        config: &config,
        accepted: &accepted,
        spawn,
        status: &status,
        connections: std::rc::Rc::default(),
        tending: &tending,
        gate: &gate,
        report: &report,
    };

    let work = async {
        if let Err(e) = stack.command(ReadBdAddr::new()).await {
            return format!("the controller did not answer: {e:?}");
        }
        tending.learn(&stack).await;
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(()));
        }
        let links = async {
            let mut tasks = FuturesUnordered::new();
            loop {
                tokio::select! {
                    task = spawned.recv() => match task {
                        Some(task) => tasks.push(task),
                        None => break,
                    },
                    Some(()) = tasks.next(), if !tasks.is_empty() => {}
                }
            }
            while tasks.next().await.is_some() {}
        };
        let serve_central = async {
            let mut central = stack.central();
            while let Some(command) = commands.recv().await {
                match command {
                    Command::Discover(reply) => {
                        let seen = central::discover(&mut central, &book, &config).await;
                        let _ = reply.send(seen);
                    }
                    Command::Dial(device, reply) => {
                        let link = central::dial(&ctx, &mut central, &book, &device).await;
                        let _ = reply.send(link);
                    }
                }
            }
            pending::<()>().await;
        };
        let serve_peripheral = async {
            if config.accept {
                peripheral::advertise(&ctx).await;
            }
            pending::<()>().await;
        };
        futures_util::future::join3(links, serve_central, serve_peripheral).await;
        "the host stopped".to_owned()
    };

    let running = std::pin::pin!(runner.run_with_handler(&book));
    let working = std::pin::pin!(work);
    let host = select(running, working);
    let why = match select(host, stop).await {
        Either::Left((Either::Left((result, _)), _)) => match result {
            Ok(()) => "the controller stopped".to_owned(),
            Err(e) => format!("the controller was lost: {e:?}"),
        },
        Either::Left((Either::Right((why, _)), _)) => why,
        Either::Right(_) => "the transport shut down".to_owned(),
    };
    status.stopped(why.clone());
    if let Some(ready) = ready.take() {
        let _ = ready.send(Err(BleError::Start(why)));
    }
}
