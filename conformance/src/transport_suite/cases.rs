//! The cases of the transport suite. The transport contract (`acm_transport`'s crate docs) has
//! no rule ids of its own, so each case cites the SPEC rules that rely on it: `FRAME-9` for
//! whole frames, `LINK-7` for closing, and the bindings' rules (`BLE-`, `TCP-`) that carry it.

use acm_transport::{FrameBuf, Link, Role, TransportError};
use bytes::Bytes;

use super::TransportCase;
use super::frames::{HEADER_LEN, describe, frame};
use super::links::{
    acceptor_closes, after_close, backpressure, dialer_closes, dropped_link, several_links,
};
use super::steps::{Ctx, Ends, Progress, Step, expect_all, expect_frame, fail, send_all};
use crate::report::{Case, Verdict};

macro_rules! transport_case {
    ($id:literal, [$($rule:literal),+ $(,)?], $title:literal, $run:path) => {
        TransportCase {
            case: Case::new($id, &[$($rule),+], $title),
            run: |ctx| Box::pin($run(ctx)),
        }
    };
}

/// Every case of the transport suite, in a stable order.
pub fn cases() -> Vec<TransportCase> {
    vec![
        transport_case!(
            "transport/open/ids-and-roles",
            ["LINK-1", "LINK-3", "BLE-5", "TCP-5"],
            "a dialed and an accepted link name both devices and roles, carry a HELLO-sized frame, and carry frames both ways",
            ids_and_roles
        ),
        transport_case!(
            "transport/order/frames-arrive-in-order",
            ["FRAME-9", "BLE-3", "TCP-2"],
            "frames of mixed sizes arrive in the order sent, small ones never overtaking large ones, both ways",
            frames_in_order
        ),
        transport_case!(
            "transport/delivery/nothing-lost-or-duplicated",
            ["FRAME-9", "BLE-3", "TCP-2"],
            "many frames sent both ways at once each arrive exactly once, then a last marker frame",
            nothing_lost_or_duplicated
        ),
        transport_case!(
            "transport/size/every-size-up-to-the-maximum",
            ["FRAME-1", "FRAME-9", "BLE-2", "BLE-3", "TCP-2", "TCP-3"],
            "frames of every size from a bare header to the link's maximum arrive whole, both ways",
            every_size
        ),
        transport_case!(
            "transport/size/over-the-maximum-is-refused",
            ["FRAME-5", "LINK-5", "TCP-3"],
            "a frame one byte over the link's maximum fails with FrameTooLarge (from try_send_buf too, unless it gives the frame back), nothing is sent, and the link goes on",
            over_the_maximum
        ),
        transport_case!(
            "transport/size/empty-frame-is-refused",
            ["FRAME-1", "FRAME-9", "TCP-2"],
            "an empty frame fails with EmptyFrame (from try_send_buf too, unless it gives the frame back), nothing is sent, and the link goes on",
            empty_frame
        ),
        transport_case!(
            "transport/reserved/version-0-prefix",
            ["BLE-8", "TCP-9", "FRAME-3"],
            "a frame beginning AC 4D 00 is refused with Unsupported by a transport whose binding reserves it, or carried unaltered by one that has no messages of its own",
            reserved_prefix
        ),
        transport_case!(
            "transport/close/by-the-dialer-after-earlier-frames",
            ["LINK-7", "CTRL-4", "BLE-6", "TCP-6"],
            "the dialer's close reaches the acceptor with its code and a 1024-byte message, after every frame sent before it",
            dialer_closes
        ),
        transport_case!(
            "transport/close/by-the-acceptor-after-earlier-frames",
            ["LINK-7", "BLE-6", "TCP-6"],
            "the acceptor's normal close reaches the dialer after every frame sent before it",
            acceptor_closes
        ),
        transport_case!(
            "transport/close/then-send-and-recv-fail-with-closed",
            ["LINK-7", "BLE-6", "TCP-6"],
            "after a close, send and recv keep failing with Closed on both sides, and closing again changes nothing",
            after_close
        ),
        transport_case!(
            "transport/loss/dropped-link-is-lost-without-partial-frames",
            ["FRAME-9", "BLE-7", "TCP-7"],
            "dropping a link that is sending large frames ends the peer's end as lost, after whole frames only",
            dropped_link
        ),
        transport_case!(
            "transport/links/several-at-once-are-independent",
            ["LINK-8", "BLE-1", "TCP-1"],
            "three links between the same devices carry their own frames only, and closing one leaves the others open",
            several_links
        ),
        transport_case!(
            "transport/backpressure/slow-reader-holds-the-sender-back",
            ["FRAME-9", "BLE-2", "TCP-8"],
            "a sender to a peer that does not read is held back before the offered bytes are all taken, and the peer then reads every frame",
            backpressure
        ),
        transport_case!(
            "transport/parts/frames-sent-in-two-parts-arrive-whole",
            ["FRAME-9", "BLE-3", "TCP-2"],
            "frames handed to send_buf as two parts split anywhere arrive whole and in order, read with recv and with recv_buf, both ways",
            frames_in_parts
        ),
        transport_case!(
            "transport/parts/frames-tried-at-once-keep-their-order",
            ["FRAME-9", "BLE-3", "TCP-2"],
            "frames handed to try_send_buf in two parts, then to send_buf when given back, arrive whole and in order, both ways",
            frames_tried_at_once
        ),
    ]
}

/// Fails unless `got` equals `expected`.
pub(super) fn check<T: PartialEq + std::fmt::Debug>(what: &str, expected: T, got: T) -> Step {
    if expected == got {
        Ok(())
    } else {
        fail(format!("{what}: {expected:?}"), format!("{got:?}"))
    }
}

/// Runs `a` and `b` at once; the first failure ends both.
pub(super) async fn both(a: impl Future<Output = Step>, b: impl Future<Output = Step>) -> Step {
    tokio::try_join!(a, b).map(|((), ())| ())
}

/// Frames to send, made on demand (twice: once to send, once to check what arrives).
pub(super) type Frames = Box<dyn Iterator<Item = Bytes> + Send>;

/// Sends `frames` on `from` while `to` checks that it receives them, in order.
pub(super) async fn cross(
    ctx: &Ctx,
    lanes: (&'static str, &'static str),
    from: &dyn Link,
    to: &dyn Link,
    frames: impl Fn() -> Frames,
) -> Step {
    both(
        send_all(&ctx.progress, lanes.0, from, frames()),
        expect_all(&ctx.progress, lanes.1, to, frames()),
    )
    .await
}

/// Sends `frames(1, max)` from the dialer and `frames(2, max)` from the acceptor at once, each
/// with its own end's maximum, and checks that each side receives the other's, in order.
async fn both_ways(ctx: &Ctx, ends: &Ends, frames: impl Fn(u8, usize) -> Frames) -> Step {
    let (up, down) = (ends.dialer.max_frame_size(), ends.acceptor.max_frame_size());
    let (dialer, acceptor) = (&*ends.dialer, &*ends.acceptor);
    both(
        cross(ctx, ("dialer:", "acceptor:"), dialer, acceptor, || {
            frames(1, up)
        }),
        cross(ctx, ("acceptor:", "dialer:"), acceptor, dialer, || {
            frames(2, down)
        }),
    )
    .await
}

async fn ids_and_roles(ctx: Ctx) -> Step {
    let ends = ctx.open().await?;
    let (first, second) = (ctx.pair.first.local_device(), &ctx.pair.second_id);
    let (dialer, acceptor) = (&*ends.dialer, &*ends.acceptor);
    for (what, expected, got) in [
        ("the dialer's local_device()", first, dialer.local_device()),
        ("the dialer's peer_device()", second, dialer.peer_device()),
        (
            "the acceptor's local_device()",
            second,
            acceptor.local_device(),
        ),
        (
            "the acceptor's peer_device()",
            first,
            acceptor.peer_device(),
        ),
    ] {
        check(what, expected, got)?;
    }
    check("the dialer's role()", Role::Dialer, dialer.role())?;
    check("the acceptor's role()", Role::Acceptor, acceptor.role())?;
    check("the dialer's closure()", None, dialer.closure())?;
    check("the acceptor's closure()", None, acceptor.closure())?;
    for (side, link) in [("dialer", dialer), ("acceptor", acceptor)] {
        if link.max_frame_size() < 128 {
            return fail(
                format!("the {side}'s max_frame_size() to be at least 128, so that a HELLO fits"),
                link.max_frame_size().to_string(),
            );
        }
    }
    both_ways(&ctx, &ends, |stream, _| {
        Box::new([frame(stream, 0, 128)].into_iter())
    })
    .await
}

/// Large and small frames, interleaved, on a link whose maximum is `max`.
fn mixed(stream: u8, max: usize) -> Frames {
    Box::new((0..60u32).map(move |seq| {
        let cycle = [max, HEADER_LEN, 1000, 13, max / 2, 12 + seq as usize];
        frame(stream, seq, cycle[seq as usize % 6].min(max))
    }))
}

async fn frames_in_order(ctx: Ctx) -> Step {
    let ends = ctx.open().await?;
    both_ways(&ctx, &ends, mixed).await
}

/// `count` frames of varied small sizes, then a marker frame of another stream.
fn counted(stream: u8, count: usize, max: usize) -> Frames {
    let span = max.min(2048) - HEADER_LEN + 1;
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    let frames = (0..count).map(move |seq| {
        let len = HEADER_LEN + (seq as usize).wrapping_mul(7919).wrapping_add(13) % span;
        frame(stream, seq, len)
    });
    Box::new(frames.chain([frame(stream + 64, count, HEADER_LEN)]))
}

async fn nothing_lost_or_duplicated(ctx: Ctx) -> Step {
    let ends = ctx.open().await?;
    let count = ctx.options.many_frames;
    both_ways(&ctx, &ends, |stream, max| counted(stream, count, max)).await
}

/// Every size from a bare header to 140 bytes, the powers of two and their neighbours, and
/// the largest two, up to `max`.
fn sizes(stream: u8, max: usize) -> Frames {
    let mut sizes: Vec<usize> = (HEADER_LEN..=140).collect();
    let mut power = 256;
    while power <= max {
        sizes.extend([power - 1, power, power + 1]);
        power = power.saturating_mul(2);
    }
    sizes.extend([max.saturating_sub(1), max]);
    sizes.retain(|len| (HEADER_LEN..=max).contains(len));
    let frames = sizes.into_iter().enumerate();
    Box::new(frames.map(move |(seq, len)| frame(stream, seq as u32, len)))
}

async fn every_size(ctx: Ctx) -> Step {
    let ends = ctx.open().await?;
    both_ways(&ctx, &ends, sizes).await
}

/// Sends `bad` on the dialer's end, which must refuse it as `refused` says, then checks that
/// the next frame the acceptor gets is the next one sent.
async fn refused_then_goes_on(
    ctx: &Ctx,
    ends: &Ends,
    bad: Bytes,
    expected: &str,
    refused: impl Fn(&TransportError) -> bool,
) -> Step {
    ctx.progress.at(
        "dialer:",
        format!("trying to send {} at once", describe(&bad)),
    );
    // Refused as send refuses it, or given back by a transport that cannot send at once.
    match ends.dialer.try_send_buf(bad.clone().into()) {
        Err(error) if refused(&error) => {}
        Ok(Some(back)) if back.clone().into_bytes() == bad => {}
        Err(error) => return fail(expected, format!("try_send_buf: Err({error:?})")),
        Ok(Some(other)) => return fail(expected, format!("try_send_buf gave back {other:?}")),
        Ok(None) => return fail(expected, "try_send_buf: Ok(None): it was sent"),
    }
    ctx.progress
        .at("dialer:", format!("sending {}", describe(&bad)));
    match ends.dialer.send(bad).await {
        Err(error) if refused(&error) => {}
        Err(error) => return fail(expected, format!("Err({error:?})")),
        Ok(()) => return fail(expected, "Ok(()): it was sent"),
    }
    check(
        "the dialer's closure() after the refusal",
        None,
        ends.dialer.closure(),
    )?;
    let next = frame(1, 1, HEADER_LEN + 1);
    both(
        send_all(&ctx.progress, "dialer:", &*ends.dialer, [next.clone()]),
        expect_frame(&ctx.progress, "acceptor:", &*ends.acceptor, &next),
    )
    .await
}

async fn reserved_prefix(ctx: Ctx) -> Step {
    let ends = ctx.open().await?;
    let mut bytes = frame(1, 1, HEADER_LEN + 4).to_vec();
    bytes[2] = 0; // version 0: the prefix bindings keep for their own messages
    let reserved = Bytes::from(bytes);
    ctx.progress.at("dialer:", "sending a version-0 frame");
    match ends.dialer.send(reserved.clone()).await {
        Err(TransportError::Unsupported(_)) => {
            let next = frame(1, 2, HEADER_LEN + 1);
            both(
                send_all(&ctx.progress, "dialer:", &*ends.dialer, [next.clone()]),
                expect_frame(&ctx.progress, "acceptor:", &*ends.acceptor, &next),
            )
            .await
        }
        Ok(()) => {
            expect_frame(&ctx.progress, "acceptor:", &*ends.acceptor, &reserved).await?;
            Err(Verdict::Informational(
                "the transport carries version-0 frames as opaque bytes: it has no messages of its own"
                    .into(),
            ))
        }
        Err(error) => fail(
            "Err(Unsupported) or the frame carried unaltered",
            format!("Err({error:?})"),
        ),
    }
}

async fn over_the_maximum(ctx: Ctx) -> Step {
    let ends = ctx.open().await?;
    let max = ends.dialer.max_frame_size();
    let Some(over) = max.checked_add(1) else {
        return Err(Verdict::Unsupported("the link has no largest frame".into()));
    };
    let expected = format!("Err(FrameTooLarge {{ len: {over}, max: {max} }})");
    let too_large = |error: &TransportError| matches!(error, TransportError::FrameTooLarge { len, max: m } if *len == over && *m == max);
    refused_then_goes_on(&ctx, &ends, frame(1, 0, over), &expected, too_large).await
}

async fn empty_frame(ctx: Ctx) -> Step {
    let ends = ctx.open().await?;
    let empty = |error: &TransportError| matches!(error, TransportError::EmptyFrame);
    refused_then_goes_on(&ctx, &ends, Bytes::new(), "Err(EmptyFrame)", empty).await
}

/// How [`send_in_parts`] sends a frame.
#[derive(Clone, Copy)]
enum Sending {
    /// With `send_buf`.
    Wait,
    /// With `try_send_buf`, then with `send_buf` if it gives the frame back.
    TryFirst,
}

/// Sends `frames` on `from`, each in two parts split at a point that moves along the frame
/// from one to the next (empty head and empty body included), as `how` says.
async fn send_in_parts(
    progress: &Progress,
    lane: &'static str,
    from: &dyn Link,
    frames: Frames,
    how: Sending,
) -> Step {
    for (i, frame) in frames.enumerate() {
        let at = i.wrapping_mul(7919) % (frame.len() + 1);
        progress.at(
            lane,
            format!("sending its frame #{i} split at {at}, {}", describe(&frame)),
        );
        let mut parts = Some(FrameBuf::new(frame.slice(..at), frame.slice(at..)));
        if let Sending::TryFirst = how {
            parts = match from.try_send_buf(parts.take().unwrap_or_default()) {
                Ok(back) => back,
                Err(error) => {
                    return fail(
                        format!("{} to be sent in two parts", describe(&frame)),
                        format!("try_send_buf failed: {error}"),
                    );
                }
            };
        }
        let Some(parts) = parts else {
            continue;
        };
        if let Err(error) = from.send_buf(parts).await {
            return fail(
                format!("{} to be sent in two parts", describe(&frame)),
                format!("send_buf failed: {error}"),
            );
        }
    }
    progress.at(lane, "done sending");
    Ok(())
}

/// Receives `expected` on `to`, in order, every other frame with `recv_buf` (its parts
/// joined) and the others with `recv`.
async fn expect_in_either_form(
    progress: &Progress,
    lane: &'static str,
    to: &dyn Link,
    expected: Frames,
) -> Step {
    for (i, frame) in expected.enumerate() {
        if i % 2 == 0 {
            expect_frame(progress, lane, to, &frame).await?;
            continue;
        }
        progress.at(
            lane,
            format!("waiting with recv_buf for {}", describe(&frame)),
        );
        match to.recv_buf().await {
            Ok(got) => {
                let got = got.into_bytes();
                if got != frame {
                    return fail(describe(&frame), describe(&got));
                }
            }
            Err(error) => return fail(describe(&frame), format!("recv_buf failed: {error}")),
        }
    }
    progress.at(lane, "done reading");
    Ok(())
}

async fn frames_in_parts(ctx: Ctx) -> Step {
    parts_both_ways(ctx, Sending::Wait).await
}

async fn frames_tried_at_once(ctx: Ctx) -> Step {
    parts_both_ways(ctx, Sending::TryFirst).await
}

/// Frames in two parts cross both ways at once, sent as `how` says.
async fn parts_both_ways(ctx: Ctx, how: Sending) -> Step {
    let ends = ctx.open().await?;
    let (up, down) = (ends.dialer.max_frame_size(), ends.acceptor.max_frame_size());
    let (dialer, acceptor) = (&*ends.dialer, &*ends.acceptor);
    let progress = &ctx.progress;
    both(
        both(
            send_in_parts(progress, "dialer:", dialer, mixed(1, up), how),
            expect_in_either_form(progress, "acceptor:", acceptor, mixed(1, up)),
        ),
        both(
            send_in_parts(progress, "acceptor:", acceptor, mixed(2, down), how),
            expect_in_either_form(progress, "dialer:", dialer, mixed(2, down)),
        ),
    )
    .await
}
