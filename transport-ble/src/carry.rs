//! Carrying a link's frames over an open channel, whatever Bluetooth stack provides it: one
//! SDU per frame, the binding's CLOSE, and how the link ends (SPEC `BLE-3` to `BLE-7`).

use std::time::Duration;

use acm_transport::{CloseReason, Closure};
use bytes::Bytes;
use futures_util::future::{Either, select};
use tokio::sync::{mpsc, oneshot};

use crate::binding::{self, Sdu};
use crate::link::{HostEnd, LinkShared, Outbound};

/// The receiving half of a channel.
pub(crate) trait SduReceiver {
    /// The next SDU, or `None` once the channel is down.
    async fn receive(&mut self) -> Option<Bytes>;
}

/// The sending half of a channel.
pub(crate) trait SduSender {
    /// Sends one SDU; `false` when the channel is down.
    async fn send(&mut self, sdu: &[u8]) -> bool;
}

/// How the reading half stopped.
enum ReadEnd {
    /// The peer sent CLOSE.
    PeerClosed(CloseReason),
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
    reader: &mut impl SduReceiver,
    shared: &LinkShared,
    inbound: &mpsc::Sender<Bytes>,
) -> ReadEnd {
    loop {
        let Some(sdu) = reader.receive().await else {
            return ReadEnd::Down;
        };
        match binding::parse(sdu) {
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
    writer: &mut impl SduSender,
    outbound: &mut mpsc::Receiver<Outbound>,
    peer_mtu: usize,
) -> WriteEnd {
    loop {
        match outbound.recv().await {
            Some(Outbound::Frame(frame)) => {
                if !writer.send(&frame).await {
                    return WriteEnd::Down;
                }
            }
            Some(Outbound::Close(reason, done)) => {
                let close = binding::close(&reason, peer_mtu);
                if !writer.send(&close).await {
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

/// Carries frames both ways until the link ends, and ends it: with the peer's reason, as lost
/// (`lost` names why, asked once the channel is down), or, after this side's CLOSE, once the
/// peer has taken the channel down (or `close_timeout` has passed). The caller then takes the
/// channel down.
pub(crate) async fn carry(
    reader: &mut impl SduReceiver,
    writer: &mut impl SduSender,
    mut end: HostEnd,
    peer_mtu: usize,
    close_timeout: Duration,
    lost: impl FnOnce() -> String,
) {
    let outcome = {
        let HostEnd {
            shared,
            outbound,
            inbound,
            ..
        } = &mut end;
        let reading = std::pin::pin!(read_loop(reader, shared, inbound));
        let writing = std::pin::pin!(write_loop(writer, outbound, peer_mtu));
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
            end.shared.end(Closure::Lost(lost()));
        }
        Either::Left(ReadEnd::Malformed(what)) => {
            end.shared.end(Closure::Lost(what));
        }
        Either::Left(ReadEnd::Abandoned) | Either::Right(WriteEnd::Abandoned) => {
            end.shared
                .end(Closure::Lost("this end of the link was dropped".into()));
        }
        Either::Right(WriteEnd::Closing(done)) => {
            // Our CLOSE is on its way behind every frame sent before it. Taking the channel
            // down now could overtake them: wait for the peer to do it, discarding what it
            // still sends.
            let drain = async { while reader.receive().await.is_some() {} };
            let _ = tokio::time::timeout(close_timeout, drain).await;
            drop(done);
        }
    }
    // Wakes a reader waiting for frames: the link has ended.
    drop(end);
}
