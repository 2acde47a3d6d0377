//! The peripheral role: advertising the acm service and accepting links.

use std::time::Duration;

use acm_transport::Role;
use tokio::sync::mpsc;
use trouble_host::prelude::{
    Advertisement, AdvertisementParameters, Connection, L2capChannel, Stack,
};

use super::book::format_address;
use super::channel;
use super::{Hci, Spawn, Status};
use crate::advert;
use crate::binding::{MIN_PEER_MTU, OPEN_WAIT};
use crate::config::BleConfig;
use crate::link::{self, BleLink, LinkInfo};
use crate::pool::HeapPool;

/// The advertising interval: short, so that dialers find the device quickly.
const ADVERTISING_INTERVAL: embassy_time::Duration = embassy_time::Duration::from_millis(60);
/// The pause before advertising again after the controller refused to.
const RETRY: Duration = Duration::from_millis(500);

/// Advertises and accepts connections for as long as the host runs; each connection's channel
/// is set up by its own task.
pub(crate) async fn advertise<'a>(
    stack: &'a Stack<'_, Hci, HeapPool>,
    config: &'a BleConfig,
    accepted: &'a mpsc::Sender<BleLink>,
    spawn: &Spawn<'a>,
    status: &'a Status,
) {
    let Some((adv_data, scan_data)) = advert::encode(&config.device) else {
        // Checked when the transport starts.
        return;
    };
    let params = AdvertisementParameters {
        interval_min: ADVERTISING_INTERVAL,
        interval_max: ADVERTISING_INTERVAL,
        ..AdvertisementParameters::default()
    };
    let mut peripheral = stack.peripheral();
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
        let task = accept(stack, connection, config, accepted, status);
        if spawn.send(Box::pin(task)).is_err() {
            return;
        }
    }
}

/// Accepts the acm channel on a new connection, exchanges OPENs, queues the link for
/// `accept`, then carries it. A connection that opens no channel in time is dropped.
async fn accept<'a>(
    stack: &'a Stack<'_, Hci, HeapPool>,
    connection: Connection<'a, HeapPool>,
    config: &'a BleConfig,
    accepted: &'a mpsc::Sender<BleLink>,
    status: &'a Status,
) {
    let listener = L2capChannel::listen(stack, &connection);
    let config_channel = channel::channel_config();
    let accepting = tokio::time::timeout(config.dial_timeout, listener.accept(&config_channel));
    let Ok(Ok(mut channel)) = accepting.await else {
        return;
    };
    drop(listener);
    if channel.peer_mtu() < MIN_PEER_MTU {
        return;
    }
    let Ok(peer) =
        channel::exchange_open(stack, &mut channel, &config.device, false, OPEN_WAIT).await
    else {
        return;
    };
    let (link, end) = link::pair(
        LinkInfo {
            local: config.device.clone(),
            peer,
            role: Role::Acceptor,
            max_frame_size: usize::from(channel.peer_mtu()),
            peer_address: format_address(&connection.peer_address()),
        },
        status,
    );
    if accepted.try_send(link).is_err() {
        // Nobody takes links (or too many wait): the peer sees the link lost.
        return;
    }
    channel::drive(stack, connection, channel, end, config.close_timeout).await;
}
