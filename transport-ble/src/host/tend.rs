//! Tending an LE connection: asking for what makes it fast (SPEC section 13.5: the 2M PHY, the
//! largest data length, an interval paced to the traffic), going on with what the controller and
//! the peer grant, and keeping [`AirParameters`] up to date for the connection's links.

use std::cell::Cell;
use std::future::{Future, pending};
use std::rc::Rc;
use std::time::Duration;

use bt_hci::cmd::Cmd;
use bt_hci::cmd::le::{
    LeConnUpdate, LeReadBufferSize, LeReadLocalSupportedFeatures, LeReadPhy, LeSetDataLength,
    LeSetPhy,
};
use bt_hci::param::{AllPhys, LeConnRole, PhyKind, PhyMask, PhyOptions};
use futures_util::future::select;
use tokio::time::Instant;
use trouble_host::prelude::{Connection, ConnectionEvent};

use super::Ctx;
use super::connections::Entry;
use super::stream::StandIns;
use crate::air::{AirParameters, MAX_OCTETS, MAX_TIME, Phy};
use crate::pool::HeapPool;

/// How long a controller may take to answer a command before the host takes its silence as a
/// refusal.
const COMMAND_WAIT: Duration = Duration::from_secs(2);
/// How long a PHY update may take to complete.
const PHY_WAIT: Duration = Duration::from_secs(5);
/// How often the pacing looks at a connection's traffic.
const PACE_TICK: Duration = Duration::from_millis(250);
/// The bytes a connection carries within one [`PACE_TICK`] that make it busy (4 KiB/s).
const BUSY_BYTES: u64 = 1024;
/// How long a connection carries less before it counts as idle.
const IDLE_AFTER: Duration = Duration::from_secs(2);
/// The supervision timeout asked for with every interval.
pub(crate) const SUPERVISION_TIMEOUT: Duration = Duration::from_secs(4);
/// HCI status "Unknown HCI Command", the stand-in answer to a command left unanswered.
const UNANSWERED: u8 = 0x01;

/// What the controller can do, read when the host starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Abilities {
    pub(crate) le_2m: bool,
    pub(crate) data_length: bool,
    pub(crate) acl_packet_length: u16,
    pub(crate) acl_packets: u16,
}

impl Default for Abilities {
    fn default() -> Self {
        Self {
            le_2m: false,
            data_length: false,
            acl_packet_length: MAX_OCTETS,
            acl_packets: 1,
        }
    }
}

/// Things to report once per transport, however many connections meet them.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Topic {
    NoLongPackets = 1,
    No2M = 2,
    LengthRefused = 4,
    PhyRefused = 8,
    PhyKept = 16,
    IntervalRefused = 32,
    PeerInterval = 64,
    Unanswered = 128,
}

/// The state tending shares over the host's connections.
#[derive(Debug, Default)]
pub(crate) struct Tending {
    pub(crate) abilities: Cell<Abilities>,
    pub(crate) stand_ins: Rc<StandIns>,
    said: Cell<u8>,
}

impl Tending {
    /// Runs `say` unless something about `topic` was said before.
    fn once(&self, topic: Topic, say: impl FnOnce()) {
        let bit = topic as u8;
        if self.said.get() & bit == 0 {
            self.said.set(self.said.get() | bit);
            say();
        }
    }

    /// Logs, once per `topic`, that the controller refused `command` with `error`, and `then`
    /// what the connection goes on with.
    fn refused(&self, topic: Topic, command: &str, error: &dyn std::fmt::Debug, then: &str) {
        self.once(topic, || {
            tracing::info!("the Bluetooth controller refused {command} ({error:?}): {then}");
        });
    }

    /// Reads what the controller can do.
    pub(crate) async fn learn(&self, stack: &trouble_host::Stack<'_, super::Hci, HeapPool>) {
        let mut abilities = Abilities::default();
        if let Ok(features) = stack.command(LeReadLocalSupportedFeatures::new()).await {
            abilities.le_2m = features.supports_le_2m_phy();
            abilities.data_length = features.supports_le_data_packet_length_extension();
        }
        if let Ok(buffers) = stack.command(LeReadBufferSize::new()).await {
            // 0 means the controller shares its BR/EDR buffers: no LE limit of its own.
            if buffers.le_acl_data_packet_length > 0 {
                abilities.acl_packet_length = buffers.le_acl_data_packet_length;
            }
            abilities.acl_packets = u16::from(buffers.total_num_le_acl_data_packets.max(1));
        }
        self.abilities.set(abilities);
    }

    /// Runs `command`, whose opcode is `opcode`; if the controller has not answered it within
    /// [`COMMAND_WAIT`], hands the host a refusal in its place (as a Command Status when
    /// `status_answer`, else a Command Complete) so that the commands after it can go.
    async fn answered<T>(
        &self,
        opcode: u16,
        status_answer: bool,
        command: impl Future<Output = T>,
    ) -> T {
        let mut command = std::pin::pin!(command);
        match tokio::time::timeout(COMMAND_WAIT, &mut command).await {
            Ok(answer) => answer,
            Err(_) => {
                self.once(Topic::Unanswered, || {
                    tracing::warn!(
                        "the Bluetooth controller did not answer HCI command {opcode:#06x} within {COMMAND_WAIT:?}: taken as refused"
                    );
                });
                if status_answer {
                    self.stand_ins.command_status(opcode, UNANSWERED);
                } else {
                    self.stand_ins.command_complete(opcode, UNANSWERED);
                }
                command.await
            }
        }
    }
}

/// The parameters a new connection starts with, as this side sees them; `event_length` is the
/// event length asked for when the connection was made, if this side made it.
pub(crate) fn initial_air(
    ctx: &Ctx<'_, '_>,
    connection: &Connection<'_, HeapPool>,
    event_length: Option<Duration>,
) -> AirParameters {
    let abilities = ctx.tending.abilities.get();
    let mut air = AirParameters::initial(
        connection.role() == LeConnRole::Central,
        std_duration(connection.params().conn_interval),
        abilities.acl_packet_length,
        abilities.acl_packets,
    );
    air.peripheral_latency = connection.params().peripheral_latency;
    air.event_length = event_length;
    air
}

fn std_duration(duration: embassy_time::Duration) -> Duration {
    Duration::from_micros(duration.as_micros())
}

fn phy(kind: PhyKind) -> Phy {
    match kind {
        PhyKind::Le2M => Phy::Le2M,
        PhyKind::LeCoded | PhyKind::LeCodedS2 => Phy::LeCoded,
        _ => Phy::Le1M,
    }
}

/// Tends the connection of `entry` until it is retired or goes down.
pub(crate) async fn tend<'a>(ctx: Ctx<'a, '_>, entry: Rc<Entry<'a>>) {
    let Some(connection) = entry.connection() else {
        return;
    };
    {
        let watching = std::pin::pin!(watch(&ctx, &entry, &connection));
        let asking = std::pin::pin!(ask(&ctx, &entry, &connection));
        let work = select(watching, asking);
        let retired = std::pin::pin!(entry.until_retired());
        select(work, retired).await;
    }
    // The last handle may be this one: dropping it takes a retired connection down.
    drop(connection);
}

/// Follows the connection's events, keeping its parameters up to date, until it goes down.
async fn watch(ctx: &Ctx<'_, '_>, entry: &Entry<'_>, connection: &Connection<'_, HeapPool>) {
    loop {
        match connection.next().await {
            ConnectionEvent::Disconnected { .. } => return,
            ConnectionEvent::PhyUpdated { tx_phy, rx_phy } => entry.update_air(|air| {
                air.tx_phy = phy(tx_phy);
                air.rx_phy = phy(rx_phy);
            }),
            ConnectionEvent::DataLengthUpdated {
                max_tx_octets,
                max_tx_time,
                max_rx_octets,
                max_rx_time,
            } => entry.update_air(|air| {
                air.max_tx_octets = max_tx_octets;
                air.max_tx_time = Duration::from_micros(u64::from(max_tx_time));
                air.max_rx_octets = max_rx_octets;
                air.max_rx_time = Duration::from_micros(u64::from(max_rx_time));
            }),
            ConnectionEvent::ConnectionParamsUpdated {
                conn_interval,
                peripheral_latency,
                ..
            } => entry.update_air(|air| {
                air.interval = std_duration(conn_interval);
                air.peripheral_latency = peripheral_latency;
            }),
            ConnectionEvent::RequestConnectionParams(request) => {
                // The peer knows what it can afford: take its parameters and keep them.
                entry.peer_paced();
                ctx.tending.once(Topic::PeerInterval, || {
                    tracing::info!(
                        "a peer asked for connection interval {:?}..{:?}: granted, and kept",
                        request.params().min_connection_interval,
                        request.params().max_connection_interval
                    );
                });
                let _ = request.accept(None, ctx.stack).await;
            }
            _ => {}
        }
    }
}

/// Asks for what makes the connection fast, then paces its interval; never returns.
async fn ask(ctx: &Ctx<'_, '_>, entry: &Entry<'_>, connection: &Connection<'_, HeapPool>) {
    if ctx.config.tune {
        let abilities = ctx.tending.abilities.get();
        if abilities.data_length {
            ask_data_length(ctx, connection).await;
        } else {
            ctx.tending.once(Topic::NoLongPackets, || {
                tracing::info!(
                    "the Bluetooth controller does not support LE data length extension: PDUs stay at 27 octets"
                );
            });
        }
        if connection.role() == LeConnRole::Central {
            if abilities.le_2m {
                ask_2m(ctx, entry, connection).await;
            } else {
                ctx.tending.once(Topic::No2M, || {
                    tracing::info!(
                        "the Bluetooth controller does not support the LE 2M PHY: connections stay on 1M"
                    );
                });
            }
            pace(ctx, entry, connection).await;
        }
    }
    pending::<()>().await;
}

/// Asks the controller for the largest data length (`BLE-12`).
async fn ask_data_length(ctx: &Ctx<'_, '_>, connection: &Connection<'_, HeapPool>) {
    let time = u16::try_from(MAX_TIME.as_micros()).unwrap_or(u16::MAX);
    let command = LeSetDataLength::new(connection.handle(), MAX_OCTETS, time);
    let asked = ctx
        .tending
        .answered(
            LeSetDataLength::OPCODE.to_raw(),
            false,
            ctx.stack.command(command),
        )
        .await;
    if let Err(e) = asked {
        let then = "PDUs stay at the length it has";
        ctx.tending
            .refused(Topic::LengthRefused, "LE Set Data Length", &e, then);
    }
}

/// Asks for the LE 2M PHY both ways (`BLE-11`) and waits for the outcome.
async fn ask_2m(ctx: &Ctx<'_, '_>, entry: &Entry<'_>, connection: &Connection<'_, HeapPool>) {
    let both = PhyMask::new().set_le_2m_phy(true);
    let command = LeSetPhy::new(
        connection.handle(),
        AllPhys::new(),
        both,
        both,
        PhyOptions::default(),
    );
    let asked = ctx
        .tending
        .answered(
            LeSetPhy::OPCODE.to_raw(),
            true,
            ctx.stack.async_command(command),
        )
        .await;
    if let Err(e) = asked {
        let then = "the connection stays on 1M";
        ctx.tending
            .refused(Topic::PhyRefused, "LE Set PHY", &e, then);
        return;
    }
    let on_2m = |air: &AirParameters| air.tx_phy == Phy::Le2M && air.rx_phy == Phy::Le2M;
    let deadline = Instant::now() + PHY_WAIT;
    while !on_2m(&entry.air_now()) {
        if tokio::time::timeout_at(deadline, entry.air_change())
            .await
            .is_err()
        {
            break;
        }
    }
    if on_2m(&entry.air_now()) {
        return;
    }
    // No update came (or it failed): read what the connection uses.
    let read = ctx
        .tending
        .answered(
            LeReadPhy::OPCODE.to_raw(),
            false,
            ctx.stack.command(LeReadPhy::new(connection.handle())),
        )
        .await;
    if let Ok(now) = read {
        entry.update_air(|air| {
            air.tx_phy = phy(now.tx_phy);
            air.rx_phy = phy(now.rx_phy);
        });
    }
    let air = entry.air_now();
    ctx.tending.once(Topic::PhyKept, || {
        tracing::info!(
            "the LE 2M PHY was not granted: the connection uses {}/{}",
            air.tx_phy.name(),
            air.rx_phy.name()
        );
    });
}

/// The LE Connection Update command for `interval`, with connection events of `event` at most.
fn conn_update(
    connection: &Connection<'_, HeapPool>,
    interval: Duration,
    event: Duration,
) -> LeConnUpdate {
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let interval = bt_hci::param::Duration::<1_250>::from_micros(micros(interval));
    let event = bt_hci::param::Duration::<625>::from_micros(micros(event));
    LeConnUpdate::new(
        connection.handle(),
        interval,
        interval,
        0,
        bt_hci::param::Duration::<10_000>::from_micros(micros(SUPERVISION_TIMEOUT)),
        event,
        event,
    )
}

/// As central, moves the connection between the busy interval (with events as long as the
/// interval) and the idle one as its traffic comes and goes (`BLE-15`). Stops when the
/// controller refuses, or when the peer asked for its own parameters.
async fn pace(ctx: &Ctx<'_, '_>, entry: &Entry<'_>, connection: &Connection<'_, HeapPool>) {
    let Some(idle_interval) = ctx.config.idle_interval else {
        return;
    };
    let busy_interval = ctx.config.connection_interval;
    let mut busy = true;
    let mut last_busy = Instant::now();
    let (mut seen, _) = entry.traffic();
    loop {
        tokio::time::sleep(PACE_TICK).await;
        if entry.is_peer_paced() {
            return;
        }
        let (carried, opened) = entry.traffic();
        if carried.saturating_sub(seen) >= BUSY_BYTES || opened {
            last_busy = Instant::now();
        }
        seen = carried;
        let want_busy = last_busy.elapsed() < IDLE_AFTER;
        if want_busy == busy {
            continue;
        }
        let (interval, event) = if want_busy {
            (busy_interval, busy_interval)
        } else {
            (idle_interval, Duration::ZERO)
        };
        let asked = ctx
            .tending
            .answered(
                LeConnUpdate::OPCODE.to_raw(),
                true,
                ctx.stack
                    .async_command(conn_update(connection, interval, event)),
            )
            .await;
        if let Err(e) = asked {
            let then = "the connection keeps its interval";
            ctx.tending
                .refused(Topic::IntervalRefused, "LE Connection Update", &e, then);
            return;
        }
        busy = want_busy;
        entry.update_air(|air| air.event_length = (event > Duration::ZERO).then_some(event));
    }
}
