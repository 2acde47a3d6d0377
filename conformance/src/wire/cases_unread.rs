//! A peer that reads nothing (`LINK-13`): the implementation bounds the answers it queues for
//! such a peer and closes the link once the peer has taken nothing for three keepalive
//! intervals, and a link that has ended does not wait for such a peer without end.

use std::future::Future;
use std::time::Duration;

use acm_transport::{Closure, FrameBuf, Link, TransportError};
use acm_wire::Control;
use acm_wire::pb::{self, LinkCloseReason};
use bytes::Bytes;
use tokio::time::Instant;

use super::peer::{Peer, Step};
use super::target::WireTarget;
use super::{Needs, WireCase, wire_case};
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/LINK-13/pings-unread",
            ["LINK-13", "LINK-6"],
            "a peer that sends PINGs and reads none of the PONGs is closed with RESOURCE_EXHAUSTED, its answers bounded",
            pings_unread
        )
        .breaking("LINK-13"),
        wire_case!(
            "wire/LINK-13/closed-link-behind-unread-data",
            ["LINK-13", "LINK-7"],
            "after the suite's LINK_CLOSE, with the echo of a 2 MiB transfer unread before it, the implementation ends the link within three keepalive intervals",
            closed_behind_unread_data
        )
        .breaking("LINK-7")
        .needing(Needs::Data),
    ]
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// How long the implementation may keep a link up once the suite's sends have stopped going
/// through (the implementation stopped reading): three of its keepalive intervals (`LINK-13`),
/// and room for the close and for the binding's ([`WireTarget::close_allowance`]).
fn unread_limit(peer: &Peer, t: &dyn WireTarget) -> Duration {
    peer.timers.keepalive * 4 + Duration::from_secs(10) + t.close_allowance()
}

/// How long the suite goes on sending while its sends still go through: the sockets' buffers
/// fill first (over TCP they can take tens of MiB each way).
const FILL_LIMIT: Duration = Duration::from_secs(60);

/// PINGs a peer offers before the suite calls the implementation's answers unbounded.
const UNREAD_PINGS: u64 = 50_000_000;

/// PINGs the suite hands the link in one send: over TCP both sides' socket buffers must fill
/// (megabytes of 20-byte frames) before anything is held back, which one PING a send makes
/// take a minute on a slow machine.
const PINGS_PER_SEND: u64 = 256;

/// `PINGS_PER_SEND` PING frames on the link's control channel, numbered from `first`.
fn pings(first: u64) -> Step<Vec<FrameBuf>> {
    (first..first + PINGS_PER_SEND)
        .map(|value| {
            Control::Ping(pb::Ping { value })
                .encode_frame(1, 0)
                .map(FrameBuf::from)
                .map_err(|e| Verdict::fail("an encodable PING", e.to_string()))
        })
        .collect()
}

/// Whether `closure` is the end of a link the implementation closed for one of `reasons`. Over
/// TCP the close comes behind everything the suite left unread, and a socket closed with unread
/// bytes is reset: the end of the connection is all a peer that reads nothing can see.
fn closed_for(t: &dyn WireTarget, closure: Option<Closure>, reasons: &[LinkCloseReason]) -> bool {
    match closure {
        Some(Closure::Peer(reason)) => reasons.iter().any(|r| *r as u32 == reason.code),
        Some(Closure::Lost(_)) => t.unread_close_is_lost(),
        _ => false,
    }
}

async fn pings_unread(t: &dyn WireTarget) -> Step<()> {
    let peer = Peer::up(t).await?;
    let link = peer.link();
    let limit = unread_limit(&peer, t);
    let started = Instant::now();
    let mut sent = 0u64;
    // PINGs as fast as the link takes them, nothing read. A send that waits is never given up
    // (that would end a secure link): the suite watches how long it has waited.
    loop {
        if sent >= UNREAD_PINGS {
            return fail(
                format!("the link closed before {UNREAD_PINGS} PINGs went unanswered (LINK-13)"),
                "it took them all",
            );
        }
        if started.elapsed() > FILL_LIMIT {
            return fail(
                format!("the implementation to stop reading within {FILL_LIMIT:?} (LINK-13)"),
                format!("it took {sent} PINGs and kept reading"),
            );
        }
        let send = link.send_bufs(pings(sent)?);
        tokio::pin!(send);
        let waiting = Instant::now();
        let outcome = loop {
            tokio::select! {
                outcome = &mut send => break outcome.map_err(drop),
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if waiting.elapsed() > limit {
                        if let Some(outcome) = once_read(link, &mut send).await {
                            break outcome;
                        }
                        return fail(
                            "the link closed while the suite read nothing (LINK-13)",
                            format!("it stayed open {limit:?} after the suite's sends stopped going through, {sent} PINGs in"),
                        );
                    }
                }
            }
        };
        match outcome {
            Ok(()) => sent += PINGS_PER_SEND,
            Err(_) => break,
        }
    }
    if closed_for(t, link.closure(), &[LinkCloseReason::ResourceExhausted]) {
        return Ok(());
    }
    fail(
        "the link closed by the implementation with RESOURCE_EXHAUSTED (LINK-13)",
        format!("{:?}", link.closure()),
    )
}

/// How long the suite reads, once its sends have waited past the limit, before it concludes
/// that the link is still up: long enough to read all the socket buffers can hold.
const READ_GRACE: Duration = Duration::from_secs(30);

/// The outcome of `send`, still waiting past the limit, once the suite reads what waits for
/// it for up to [`READ_GRACE`]: `Err` if the link turns out to have ended, `None` if it is
/// still up and `send` still waits.
///
/// Over TCP the suite's end of a connection the implementation dropped may stay up while the
/// suite reads nothing. With both sides' buffers full, each kernel may have pruned some of
/// what the other sent: the implementation's reset then falls outside the window the suite's
/// kernel accepts and is dropped, and no retransmission of the suite's brings another. Once
/// the suite has read what waits for it, the connection's end reaches it.
async fn once_read(
    link: &dyn Link,
    send: &mut (impl Future<Output = Result<(), TransportError>> + Unpin),
) -> Option<Result<(), ()>> {
    let read = async {
        loop {
            tokio::select! {
                outcome = &mut *send => return outcome.map_err(drop),
                received = link.recv() => if received.is_err() {
                    return Err(());
                },
            }
        }
    };
    tokio::time::timeout(READ_GRACE, read).await.ok()
}

/// The transfer the suite sends to the echo and reads nothing of: more than the link holds on
/// its way to the suite, so that the echo waits to be sent.
const UNREAD_ECHO: usize = 2 << 20;

async fn closed_behind_unread_data(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("unread").await?;
    peer.send_data_unread(channel, 1, Bytes::from(vec![0xD5; UNREAD_ECHO]))
        .await?;
    // Lets the echo fill the link.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let close = Control::LinkClose(pb::LinkClose {
        reason: LinkCloseReason::Normal.into(),
        message: "bye".into(),
    });
    peer.send(&close, 0).await?;
    // The implementation has ended the link's sessions and has nothing more to send; what it
    // sent before waits behind the suite, which reads nothing. It may not wait without end
    // (`LINK-13`): the link must end.
    let link = peer.link();
    let limit = unread_limit(&peer, t);
    let started = Instant::now();
    while link.closure().is_none() {
        if started.elapsed() > limit {
            return fail(
                "the link ended while the suite read nothing after its LINK_CLOSE (LINK-13)",
                format!("it stayed open {limit:?}"),
            );
        }
        // Over TCP the end shows only to a send; the implementation discards what follows the
        // LINK_CLOSE.
        let ping = Control::Ping(pb::Ping { value: 1 });
        let _ = peer.send(&ping, 0).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}
