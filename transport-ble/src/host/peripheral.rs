//! The peripheral role: advertising the acm service, and accepting links on every LE
//! connection.

use std::rc::Rc;
use std::time::Duration;

use acm_transport::Role;
use futures_util::future::{Either, select};
use trouble_host::prelude::{Advertisement, AdvertisementParameters, L2capChannel};

use super::Ctx;
use super::book::format_address;
use super::channel::{self, Gated};
use super::connections::{Entry, Hold};
use super::gate::Opened;
use crate::advert;
use crate::binding::{MIN_PEER_MTU, OPEN_WAIT};
use crate::link::{self, LinkInfo};
use crate::pool::HeapPool;

/// The advertising interval: short, so that dialers find the device quickly.
const ADVERTISING_INTERVAL: embassy_time::Duration = embassy_time::Duration::from_millis(60);
/// The pause before advertising again after the controller refused to.
const RETRY: Duration = Duration::from_millis(500);

/// Advertises and accepts connections for as long as the host runs; each connection gets a
/// task that accepts its channels.
pub(crate) async fn advertise<'a>(ctx: &Ctx<'a, '_>) {
    let Some((adv_data, scan_data)) = advert::encode(&ctx.config.device) else {
        // Checked when the transport starts.
        return;
    };
    let params = AdvertisementParameters {
        interval_min: ADVERTISING_INTERVAL,
        interval_max: ADVERTISING_INTERVAL,
        ..AdvertisementParameters::default()
    };
    let mut peripheral = ctx.stack.peripheral();
    loop {
        let advertisement = Advertisement::ConnectableScannableUndirected {
            adv_data: &adv_data,
            scan_data: &scan_data,
        };
        let Ok(advertiser) = peripheral.advertise(&params, advertisement).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let Ok(connection) = advertiser.accept().await else {
            continue;
        };
        let Ok(entry) = ctx.adopt(connection, None) else {
            return;
        };
        if ctx
            .spawn
            .send(Box::pin(listen(ctx.clone(), entry)))
            .is_err()
        {
            return;
        }
    }
}

/// Accepts the acm channels the peer opens on a connection, each link carried by a task of
/// its own, until the connection has no link left (or had none within the dial timeout), or
/// goes down.
pub(crate) async fn listen<'a, 's>(ctx: Ctx<'a, 's>, entry: Rc<Entry<'a>>) {
    let Some(connection) = entry.connection() else {
        return;
    };
    let listener = L2capChannel::listen(ctx.stack, &connection);
    drop(connection);
    let config = channel::channel_config(ctx.credits());
    loop {
        let accepting = std::pin::pin!(listener.accept(&config));
        let idle = std::pin::pin!(entry.until_idle(ctx.config.dial_timeout));
        let channel = match select(accepting, idle).await {
            Either::Left((Ok(channel), _)) => channel,
            Either::Left((Err(_), _)) | Either::Right(_) => break,
        };
        // A channel arriving as the last link ends finds the connection retired: dropping it
        // takes it down.
        let Some(hold) = entry.hold() else { break };
        // Claimed before the next channel can open on the connection.
        let Some(gated) = Gated::claim(ctx.gate, &hold.connection, Opened::Accepted) else {
            continue;
        };
        if ctx
            .spawn
            .send(Box::pin(accept(ctx.clone(), hold, channel, gated)))
            .is_err()
        {
            break;
        }
    }
    entry.retire();
}

/// Exchanges OPENs on an accepted channel, queues the link for `accept`, then carries it.
async fn accept<'a>(
    ctx: Ctx<'a, '_>,
    hold: Hold<'a>,
    mut channel: L2capChannel<'a, HeapPool>,
    gated: Gated,
) {
    if channel.peer_mtu() < MIN_PEER_MTU {
        return;
    }
    let Ok(peer) = channel::exchange_open(
        ctx.stack,
        &mut channel,
        &gated,
        &ctx.config.device,
        false,
        OPEN_WAIT,
    )
    .await
    else {
        return;
    };
    hold.entry().name(&peer);
    ctx.report.insert(peer.clone(), &hold.entry().air());
    let (link, end) = link::pair(
        LinkInfo {
            local: ctx.config.device.clone(),
            peer,
            role: Role::Acceptor,
            max_frame_size: usize::from(channel.peer_mtu()),
            peer_address: format_address(&hold.connection.peer_address()),
        },
        ctx.status,
    );
    if ctx.accepted.try_send(link).is_err() {
        // Nobody takes links (or too many wait): the peer sees the link lost.
        return;
    }
    channel::drive(
        ctx.stack,
        hold,
        channel,
        gated,
        end,
        ctx.config.close_timeout,
    )
    .await;
}
