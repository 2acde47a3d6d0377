//! One link on the host thread: opening its channel's first exchange, then carrying frames both
//! ways until it ends.

use std::time::Duration;

use acm_transport::{Closure, DeviceId};
use bytes::Bytes;
use futures_util::future::{Either, select};
use tokio::sync::{mpsc, oneshot};
use trouble_host::prelude::CreditFlowPolicy;
use trouble_host::prelude::{
    Connection, L2capChannel, L2capChannelConfig, L2capChannelReader, L2capChannelWriter, Stack,
};

use super::Hci;
use super::connections::Hold;

use crate::binding::{self, INITIAL_CREDITS, MPS, SDU_MTU, Sdu};
use crate::link::{HostEnd, LinkShared, Outbound};
use crate::pool::HeapPool;

/// The channel parameters this side offers.
pub(crate) fn channel_config() -> L2capChannelConfig {
    L2capChannelConfig {
        mtu: Some(SDU_MTU),
        mps: Some(MPS),
        flow_policy: CreditFlowPolicy::Every(1),
        initial_credits: Some(INITIAL_CREDITS),
    }
}

/// Why the first exchange on a channel failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The channel went down.
    Down,
    /// The peer's first SDU was not an OPEN.
    NotOpen,
    /// No OPEN arrived in time.
    TimedOut,
}

/// The first exchange: the dialer sends its OPEN and waits for the acceptor's; the acceptor
/// waits for the dialer's OPEN before it answers with its own (so a dialer never receives an SDU
/// before it has sent one). Returns the id the peer's OPEN names.
pub(crate) async fn exchange_open(
    stack: &Stack<'_, Hci, HeapPool>,
    channel: &mut L2capChannel<'_, HeapPool>,
    local: &DeviceId,
    dialer: bool,
    timeout: Duration,
) -> Result<DeviceId, OpenError> {
    let exchange = async {
        if dialer {
            channel
                .send(stack, &binding::open(local))
                .await
                .map_err(|_| OpenError::Down)?;
        }
        let sdu = channel
            .receive_sdu(stack)
            .await
            .map_err(|_| OpenError::Down)?;
        let Ok(Sdu::Open(peer)) = binding::parse(Bytes::copy_from_slice(sdu.as_ref())) else {
            return Err(OpenError::NotOpen);
        };
        if !dialer {
            channel
                .send(stack, &binding::open(local))
                .await
                .map_err(|_| OpenError::Down)?;
        }
        Ok(peer)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(OpenError::TimedOut))
}

/// How the reading half stopped.
enum ReadEnd {
    /// The peer sent CLOSE.
    PeerClosed(acm_transport::CloseReason),
    /// The channel went down.
    Down,
    /// The peer broke the binding.
    Malformed(String),
    /// Nobody reads this link any more.
    Abandoned,
}

/// How the writing half stopped.
enum WriteEnd {
    /// This side sent CLOSE; the sender is dropped when the link is down.
    Closing(oneshot::Sender<()>),
    /// The channel went down under a send.
    Down,
    /// The link was dropped while open.
    Abandoned,
}

async fn read_loop(
    stack: &Stack<'_, Hci, HeapPool>,
    reader: &mut L2capChannelReader<'_, HeapPool>,
    shared: &LinkShared,
    inbound: &mpsc::Sender<Bytes>,
) -> ReadEnd {
    loop {
        let Ok(sdu) = reader.receive_sdu(stack).await else {
            return ReadEnd::Down;
        };
        match binding::parse(Bytes::copy_from_slice(sdu.as_ref())) {
            Ok(Sdu::Frame(frame)) => {
                if shared.discards() {
                    continue;
                }
                if inbound.send(frame).await.is_err() {
                    return ReadEnd::Abandoned;
                }
            }
            Ok(Sdu::Close(reason)) => return ReadEnd::PeerClosed(reason),
            Ok(Sdu::Open(_) | Sdu::Unknown(_) | Sdu::Empty) => {}
            Err(malformed) => return ReadEnd::Malformed(malformed.to_string()),
        }
    }
}

async fn write_loop(
    stack: &Stack<'_, Hci, HeapPool>,
    writer: &mut L2capChannelWriter<'_, HeapPool>,
    outbound: &mut mpsc::Receiver<Outbound>,
    peer_mtu: usize,
) -> WriteEnd {
    loop {
        match outbound.recv().await {
            Some(Outbound::Frame(frame)) => {
                if writer.send(stack, &frame).await.is_err() {
                    return WriteEnd::Down;
                }
            }
            Some(Outbound::Close(reason, done)) => {
                let close = binding::close(&reason, peer_mtu);
                if writer.send(stack, &close).await.is_err() {
                    return WriteEnd::Down;
                }
                return WriteEnd::Closing(done);
            }
            None => return WriteEnd::Abandoned,
        }
    }
}

/// Waits until this side closes the link, then for twice the close timeout: a close that takes
/// that long (a peer that reads nothing, so credits never come back) gives up.
async fn close_deadline(shared: &LinkShared, close_timeout: Duration) {
    shared.closed_locally.notified().await;
    tokio::time::sleep(close_timeout * 2).await;
}

/// The text of a loss, from what the connection says.
fn lost(connection: &Connection<'_, HeapPool>, what: &str) -> Closure {
    if connection.is_connected() {
        Closure::Lost(what.to_owned())
    } else {
        Closure::Lost("the Bluetooth LE connection was lost".into())
    }
}

/// Carries frames both ways on an open channel until the link ends, then takes the channel
/// down, and the connection too when no other link is on it.
pub(crate) async fn drive(
    stack: &Stack<'_, Hci, HeapPool>,
    hold: Hold<'_>,
    channel: L2capChannel<'_, HeapPool>,
    mut end: HostEnd,
    close_timeout: Duration,
) {
    let peer_mtu = usize::from(channel.peer_mtu());
    let (mut writer, mut reader) = channel.split();
    let outcome = {
        let HostEnd {
            shared,
            outbound,
            inbound,
            ..
        } = &mut end;
        let reading = std::pin::pin!(read_loop(stack, &mut reader, shared, inbound));
        let writing = std::pin::pin!(write_loop(stack, &mut writer, outbound, peer_mtu));
        let io = select(reading, writing);
        let deadline = std::pin::pin!(close_deadline(shared, close_timeout));
        match select(io, deadline).await {
            Either::Left((Either::Left((read, _)), _)) => Either::Left(read),
            Either::Left((Either::Right((write, _)), _)) => Either::Right(write),
            Either::Right(_) => Either::Right(WriteEnd::Down),
        }
    };
    match outcome {
        Either::Left(ReadEnd::PeerClosed(reason)) => {
            end.shared.end(Closure::Peer(reason));
        }
        Either::Left(ReadEnd::Down) | Either::Right(WriteEnd::Down) => {
            end.shared.end(lost(
                &hold.connection,
                "the channel went down without a CLOSE",
            ));
        }
        Either::Left(ReadEnd::Malformed(what)) => {
            end.shared.end(Closure::Lost(what));
        }
        Either::Left(ReadEnd::Abandoned) | Either::Right(WriteEnd::Abandoned) => {
            end.shared
                .end(Closure::Lost("this end of the link was dropped".into()));
        }
        Either::Right(WriteEnd::Closing(done)) => {
            // Our CLOSE is on its way behind every frame sent before it. Disconnecting now
            // could overtake them: wait for the peer to take the channel down, discarding what
            // it still sends.
            let drain = async { while reader.receive_sdu(stack).await.is_ok() {} };
            let _ = tokio::time::timeout(close_timeout, drain).await;
            drop(done);
        }
    }
    // Wake a reader waiting for frames; the link has ended.
    drop(end);
    writer.disconnect();
    reader.disconnect();
    drop(hold);
}
