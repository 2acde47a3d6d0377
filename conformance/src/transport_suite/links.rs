//! The transport suite's cases about whole links: closing from either end, a link dropped
//! without a close, several links at once, and backpressure.

use std::sync::atomic::{AtomicUsize, Ordering};

use acm_transport::{CloseReason, Closure, Link, TransportError};

use super::cases::{Frames, both, check, cross};
use super::frames::{HEADER_LEN, describe, frame};
use super::steps::{
    Ctx, Ends, Step, expect_all, expect_closure, expect_recv_closed, expect_send_closed, fail,
    send_all,
};
use crate::report::Verdict;

/// `closer` sends frames and closes with `reason` while `peer` reads: the peer gets every
/// frame, then the reason; each side's closure says who closed.
async fn close_after_frames(
    ctx: &Ctx,
    (closer, closer_name): (&dyn Link, &'static str),
    (peer, peer_name): (&dyn Link, &'static str),
    reason: CloseReason,
) -> Step {
    let max = closer.max_frame_size();
    let frames =
        move || (0..50u32).map(move |seq| frame(3, seq, (12 + seq as usize * 97).min(max)));
    let closing = async {
        send_all(&ctx.progress, "closer:", closer, frames()).await?;
        ctx.progress.at("closer:", "closing");
        closer.close(reason.clone()).await;
        ctx.progress.at("closer:", "closed");
        Ok(())
    };
    let reading = async {
        expect_all(&ctx.progress, "peer:", peer, frames()).await?;
        ctx.progress.at("peer:", "waiting for the close");
        expect_recv_closed(peer_name, peer, &Closure::Peer(reason.clone())).await
    };
    both(closing, reading).await?;
    expect_closure(closer_name, closer, &Closure::Local(reason.clone()))?;
    expect_closure(peer_name, peer, &Closure::Peer(reason))
}

pub(super) async fn dialer_closes(ctx: Ctx) -> Step {
    let ends = ctx.open().await?;
    let reason = CloseReason::new(0xDEAD_BEEF, "ü".repeat(512));
    let closer = (&*ends.dialer, "dialer");
    close_after_frames(&ctx, closer, (&*ends.acceptor, "acceptor"), reason).await
}

pub(super) async fn acceptor_closes(ctx: Ctx) -> Step {
    let ends = ctx.open().await?;
    let closer = (&*ends.acceptor, "acceptor");
    let reason = CloseReason::normal();
    close_after_frames(&ctx, closer, (&*ends.dialer, "dialer"), reason).await
}

pub(super) async fn after_close(ctx: Ctx) -> Step {
    let ends = ctx.open().await?;
    let reason = CloseReason::new(3, "done");
    let (local, peer) = (
        Closure::Local(reason.clone()),
        Closure::Peer(reason.clone()),
    );
    ctx.progress.at("dialer:", "closing");
    let closing = async {
        ends.dialer.close(reason).await;
        Ok(())
    };
    both(
        closing,
        expect_recv_closed("acceptor", &*ends.acceptor, &peer),
    )
    .await?;
    ctx.progress.at("both:", "using the closed link");
    for _ in 0..3 {
        expect_send_closed("dialer", &*ends.dialer, &local).await?;
        expect_recv_closed("dialer", &*ends.dialer, &local).await?;
        expect_send_closed("acceptor", &*ends.acceptor, &peer).await?;
        expect_recv_closed("acceptor", &*ends.acceptor, &peer).await?;
    }
    ends.dialer.close(CloseReason::new(9, "again")).await;
    ends.acceptor.close(CloseReason::new(9, "again")).await;
    expect_closure("dialer", &*ends.dialer, &local)?;
    expect_closure("acceptor", &*ends.acceptor, &peer)
}

pub(super) async fn dropped_link(ctx: Ctx) -> Step {
    let Ends { dialer, acceptor } = ctx.open().await?;
    let len = dialer.max_frame_size().min(65_535);
    let progress = &ctx.progress;
    let sending = async move {
        for seq in 0..16 {
            progress.at("dialer:", format!("sending frame {seq}"));
            if dialer.send(frame(4, seq, len)).await.is_err() {
                break;
            }
        }
        progress.at("dialer:", "dropping its end");
        drop(dialer);
        Ok(())
    };
    let reading = async {
        let mut next = 0;
        loop {
            progress.at("acceptor:", format!("waiting for frame {next} or the loss"));
            let expected = frame(4, next, len);
            match acceptor.recv().await {
                Ok(got) if got == expected => next += 1,
                Ok(got) => {
                    let wanted = format!("{} or the loss", describe(&expected));
                    return fail(wanted, describe(&got));
                }
                Err(TransportError::Closed(Closure::Lost(_))) => return Ok(()),
                Err(error) => {
                    return fail("Closed(Lost(..)) after whole frames", format!("{error:?}"));
                }
            }
        }
    };
    both(sending, reading).await?;
    let lost = Closure::Lost(String::new());
    expect_closure("acceptor", &*acceptor, &lost)?;
    expect_send_closed("acceptor", &*acceptor, &lost).await?;
    expect_recv_closed("acceptor", &*acceptor, &lost).await
}

/// Opens another link, or says that the transport does not open several to one device.
async fn another_link(ctx: &Ctx) -> Step<Ends> {
    match ctx.open_raw().await {
        Ok(ends) => Ok(ends),
        Err(TransportError::Unsupported(what)) => Err(Verdict::Unsupported(format!(
            "a second link to the same device: {what}"
        ))),
        Err(error) => fail(
            "another link between the same devices",
            format!("it failed: {error}"),
        ),
    }
}

/// Link `i` carries 16 frames each way, its own streams only.
async fn exchange(ctx: &Ctx, ends: &Ends, i: u8, round: u32) -> Step {
    let frames = move |stream: u8| {
        move || {
            Box::new((round * 16..round * 16 + 16).map(move |seq| frame(stream, seq, 40))) as Frames
        }
    };
    let lanes = [
        ("dialer 0:", "acceptor 0:"),
        ("dialer 1:", "acceptor 1:"),
        ("dialer 2:", "acceptor 2:"),
    ];
    let (out, back) = lanes[usize::from(i)];
    both(
        cross(
            ctx,
            (out, back),
            &*ends.dialer,
            &*ends.acceptor,
            frames(10 + i),
        ),
        cross(
            ctx,
            (back, out),
            &*ends.acceptor,
            &*ends.dialer,
            frames(20 + i),
        ),
    )
    .await
}

pub(super) async fn several_links(ctx: Ctx) -> Step {
    let first = ctx.open().await?;
    let second = another_link(&ctx).await?;
    let third = another_link(&ctx).await?;
    both(
        exchange(&ctx, &first, 0, 0),
        both(exchange(&ctx, &second, 1, 0), exchange(&ctx, &third, 2, 0)),
    )
    .await?;
    let reason = CloseReason::new(4, "only this one");
    ctx.progress.at("dialer 0:", "closing");
    both(
        async {
            first.dialer.close(reason.clone()).await;
            Ok(())
        },
        expect_recv_closed("acceptor", &*first.acceptor, &Closure::Peer(reason.clone())),
    )
    .await?;
    for (n, ends) in [(1, &second), (2, &third)] {
        check(
            &format!("link {n}'s dialer closure()"),
            None,
            ends.dialer.closure(),
        )?;
        check(
            &format!("link {n}'s acceptor closure()"),
            None,
            ends.acceptor.closure(),
        )?;
    }
    both(exchange(&ctx, &second, 1, 1), exchange(&ctx, &third, 2, 1)).await
}

pub(super) async fn backpressure(ctx: Ctx) -> Step {
    let ends = ctx.open().await?;
    let options = &ctx.options;
    let len = options
        .backpressure_frame
        .clamp(HEADER_LEN, ends.dialer.max_frame_size());
    let count = u32::try_from((options.backpressure_bytes / len).max(1)).unwrap_or(u32::MAX);
    let offered = count as usize * len;
    let sent = AtomicUsize::new(0);
    let sending = async {
        for seq in 0..count {
            ctx.progress
                .at("dialer:", format!("sending frame {seq} of {count}"));
            if let Err(error) = ends.dialer.send(frame(5, seq, len)).await {
                return fail(
                    format!("frame {seq} to be sent"),
                    format!("send failed: {error}"),
                );
            }
            sent.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    };
    let watching_then_reading = async {
        // The acceptor reads nothing until the sender has stopped getting anywhere.
        let mut last = None;
        loop {
            ctx.progress
                .at("acceptor:", "not reading, watching the sender");
            tokio::time::sleep(options.stall).await;
            let now = sent.load(Ordering::SeqCst);
            if now >= count as usize {
                return fail(
                    format!(
                        "send to wait before {offered} bytes were taken while the peer read nothing"
                    ),
                    format!("all {count} frames of {len} bytes were taken"),
                );
            }
            if last == Some(now) {
                break;
            }
            last = Some(now);
        }
        let frames = (0..count).map(|seq| frame(5, seq, len));
        expect_all(&ctx.progress, "acceptor:", &*ends.acceptor, frames).await
    };
    both(sending, watching_then_reading).await
}
