//! The central role: scanning for acceptors and dialing them.

use std::time::Duration;

use acm_transport::{DeviceId, DeviceInfo, Role, TransportError};
use tokio::time::Instant;
use trouble_host::prelude::{
    Central, ConnectConfig, L2capChannel, LeCreditConnResultCode, RequestedConnParams, ScanConfig,
    Scanner, Stack,
};
use trouble_host::{BleHostError, Error};

use super::book::{Book, format_address};
use super::channel::{self, Gated, OpenError};
use super::connections::Hold;
use super::gate::Opened;
use super::{Ctx, Hci, peripheral, tend};
use crate::binding::{MIN_PEER_MTU, OPEN_WAIT, SPSM};
use crate::config::BleConfig;
use crate::link::{self, BleLink, LinkInfo};
use crate::pool::HeapPool;

/// How often a scan looks for the device it waits for.
const SCAN_POLL: Duration = Duration::from_millis(50);
/// The first pause before asking again for a channel the peer refused for lack of resources.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest such pause.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

fn embassy(duration: Duration) -> embassy_time::Duration {
    embassy_time::Duration::from_micros(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
}

/// Scans until `deadline`, or until `wanted` has been seen.
pub(crate) async fn scan(
    central: &mut Central<'_, Hci, HeapPool>,
    book: &Book,
    deadline: Instant,
    wanted: Option<&DeviceId>,
) -> Result<(), TransportError> {
    let mut scanner = Scanner::new(central);
    let config = ScanConfig {
        active: true,
        ..ScanConfig::default()
    };
    let session = scanner
        .scan(&config)
        .await
        .map_err(|e| TransportError::Io(std::io::Error::other(format!("scan failed: {e:?}"))))?;
    loop {
        if wanted.is_some_and(|id| book.address_of(id).is_some()) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(SCAN_POLL).await;
    }
    session.stop().await;
    Ok(())
}

/// Lists the acm devices advertising now.
pub(crate) async fn discover(
    central: &mut Central<'_, Hci, HeapPool>,
    book: &Book,
    config: &BleConfig,
) -> Result<Vec<DeviceInfo>, TransportError> {
    book.clear();
    scan(central, book, Instant::now() + config.scan_time, None).await?;
    Ok(book.devices())
}

/// Opens a link to `device`: an acm channel on the LE connection to it, made first if there is
/// none, then the OPEN exchange; the link's host half is handed to the host's tasks.
pub(crate) async fn dial<'a>(
    ctx: &Ctx<'a, '_>,
    central: &mut Central<'a, Hci, HeapPool>,
    book: &Book,
    device: &DeviceId,
) -> Result<BleLink, TransportError> {
    let config = ctx.config;
    let deadline = Instant::now() + config.dial_timeout;
    let known = book.address_of(device);
    let hold = match ctx.connections.hold_to(device, known.as_ref()) {
        Some(hold) => hold,
        None => connect(ctx, central, book, device, deadline).await?,
    };
    let mut channel =
        open_channel(ctx.stack, &hold.connection, device, deadline, ctx.credits()).await?;
    let gated = Gated::claim(ctx.gate, &hold.connection, Opened::Dialed)
        .ok_or_else(|| TransportError::Refused(device.clone()))?;
    if channel.peer_mtu() < MIN_PEER_MTU {
        return Err(TransportError::Refused(device.clone()));
    }
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .min(OPEN_WAIT);
    let peer = channel::exchange_open(
        ctx.stack,
        &mut channel,
        &gated,
        &config.device,
        true,
        remaining,
    )
    .await
    .map_err(|e| match e {
        OpenError::TimedOut => TransportError::TimedOut("waiting for the peer's OPEN"),
        OpenError::Down | OpenError::NotOpen => TransportError::Refused(device.clone()),
    })?;
    if peer != *device {
        return Err(TransportError::Refused(device.clone()));
    }
    hold.entry().name(&peer);
    ctx.report.insert(peer.clone(), &hold.entry().air());
    let (link, end) = link::pair(
        LinkInfo {
            local: config.device.clone(),
            peer,
            role: Role::Dialer,
            max_frame_size: usize::from(channel.peer_mtu()),
            peer_address: format_address(&hold.connection.peer_address()),
        },
        ctx.status,
    );
    let close_timeout = config.close_timeout;
    ctx.spawn
        .send(Box::pin(channel::drive(
            ctx.stack,
            hold,
            channel,
            gated,
            end,
            close_timeout,
        )))
        .map_err(|_| TransportError::Shutdown)?;
    Ok(link)
}

/// Makes a new LE connection to `device` (scanning for it first if its address is unknown),
/// listens for the peer's channels on it if this side accepts links, and holds it for a link.
async fn connect<'a>(
    ctx: &Ctx<'a, '_>,
    central: &mut Central<'a, Hci, HeapPool>,
    book: &Book,
    device: &DeviceId,
    deadline: Instant,
) -> Result<Hold<'a>, TransportError> {
    let config = ctx.config;
    let address = match book.address_of(device) {
        Some(address) => address,
        None => {
            scan(central, book, deadline, Some(device)).await?;
            book.address_of(device)
                .ok_or_else(|| TransportError::Unreachable(device.clone()))?
        }
    };
    let accept = [address];
    // Connection events as long as the interval, for throughput (SPEC `BLE-15`).
    let event_length = config.tune.then_some(config.connection_interval);
    let connect = ConnectConfig {
        scan_config: ScanConfig {
            filter_accept_list: &accept,
            ..ScanConfig::default()
        },
        connect_params: RequestedConnParams {
            min_connection_interval: embassy(config.connection_interval),
            max_connection_interval: embassy(config.connection_interval),
            min_event_length: embassy(event_length.unwrap_or_default()),
            max_event_length: embassy(event_length.unwrap_or_default()),
            supervision_timeout: embassy(tend::SUPERVISION_TIMEOUT),
            ..RequestedConnParams::default()
        },
    };
    let connection = tokio::time::timeout_at(deadline, central.connect(&connect))
        .await
        .map_err(|_| TransportError::Unreachable(device.clone()))?
        .map_err(|_| TransportError::Unreachable(device.clone()))?;
    let entry = ctx.adopt(connection, event_length)?;
    let hold = entry
        .hold()
        .ok_or_else(|| TransportError::Unreachable(device.clone()))?;
    if config.accept {
        ctx.spawn
            .send(Box::pin(peripheral::listen(ctx.clone(), entry)))
            .map_err(|_| TransportError::Shutdown)?;
    }
    Ok(hold)
}

/// Asks for the acm channel, asking again with growing pauses while the peer refuses for lack
/// of resources (it has not started listening on the new connection yet); grants `credits`.
async fn open_channel<'a>(
    stack: &'a Stack<'_, Hci, HeapPool>,
    connection: &trouble_host::prelude::Connection<'_, HeapPool>,
    device: &DeviceId,
    deadline: Instant,
    credits: u16,
) -> Result<L2capChannel<'a, HeapPool>, TransportError> {
    let config = channel::channel_config(credits);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = tokio::time::timeout_at(
            deadline,
            L2capChannel::create(stack, connection, SPSM, &config),
        )
        .await
        .map_err(|_| TransportError::TimedOut("opening the L2CAP channel"))?;
        match attempt {
            Ok(channel) => return Ok(channel),
            Err(BleHostError::BleHost(Error::L2capConnectError(
                LeCreditConnResultCode::NoResources,
            ))) if Instant::now() + backoff < deadline => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(BleHostError::BleHost(Error::L2capConnectError(_))) => {
                return Err(TransportError::Refused(device.clone()));
            }
            Err(_) => return Err(TransportError::Unreachable(device.clone())),
        }
    }
}
