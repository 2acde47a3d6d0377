//! Data transfers (SPEC section 6).

use std::time::Duration;

use acm_wire::pb::{DisconnectReason, FrameType, SessionError};
use acm_wire::{Control, DataFragment, Fragmenter};
use bytes::{Bytes, BytesMut};

use super::cases_driver::Drive;
use super::peer::{ANSWER, Peer, Step, accept, disconnect_is};
use super::target::WireTarget;
use super::{Needs, WireCase, wire_case};
use crate::driver::{OK, SCENARIO};
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/DATA-5/single-fragment",
            ["DATA-2", "DATA-5"],
            "100 bytes in one fragment are echoed intact",
            single_fragment
        )
        .needing(Needs::Data),
        wire_case!(
            "wire/DATA-5/empty-transfer",
            ["DATA-5"],
            "a transfer of 0 bytes is echoed as one FIRST and LAST fragment",
            empty_transfer
        )
        .needing(Needs::Data),
        wire_case!(
            "wire/DATA-4/large-transfer",
            ["DATA-2", "DATA-3", "DATA-4", "DATA-5", "LINK-5"],
            "1 MiB is echoed intact in well-formed fragments",
            large_transfer
        )
        .needing(Needs::Data),
        wire_case!(
            "wire/DATA-4/interleaved-transfers",
            ["DATA-4"],
            "two transfers whose fragments interleave are both echoed intact",
            interleaved
        )
        .needing(Needs::Data),
        wire_case!(
            "wire/DATA-4/duplicate-fragment",
            ["DATA-4"],
            "a repeated fragment closes the session with PROTOCOL_ERROR and delivers nothing",
            duplicate
        )
        .breaking("DATA-4"),
        wire_case!(
            "wire/DATA-4/out-of-order-fragment",
            ["DATA-4"],
            "a fragment ahead of its turn closes the session with PROTOCOL_ERROR",
            out_of_order
        )
        .breaking("DATA-4"),
        wire_case!(
            "wire/DATA-4/unknown-transfer",
            ["DATA-4"],
            "a fragment of a transfer never begun closes the session",
            unknown_transfer
        )
        .breaking("DATA-4"),
        wire_case!(
            "wire/DATA-4/empty-middle-fragment",
            ["DATA-4"],
            "an empty fragment that is not the last closes the session",
            empty_middle
        )
        .breaking("DATA-4"),
        wire_case!(
            "wire/DATA-5/overrun",
            ["DATA-5"],
            "fragments carrying more than the total length close the session",
            overrun
        )
        .breaking("DATA-5"),
        wire_case!(
            "wire/DATA-5/short-transfer",
            ["DATA-5"],
            "a LAST fragment before the total length closes the session",
            short_transfer
        )
        .breaking("DATA-5"),
        wire_case!(
            "wire/DATA-3/reused-transfer-id",
            ["DATA-3"],
            "a transfer id used before closes the session",
            reused_transfer_id
        )
        .breaking("DATA-3")
        .needing(Needs::Data),
        wire_case!(
            "wire/DATA-2/first-with-index-1",
            ["DATA-2"],
            "a FIRST fragment with index 1 closes the session",
            first_index_one
        )
        .breaking("DATA-2"),
        wire_case!(
            "wire/DATA-1/short-data-header",
            ["DATA-1"],
            "a DATA payload shorter than its data header closes the session",
            short_header
        )
        .breaking("DATA-1"),
        wire_case!(
            "wire/DATA-6/over-max-data-size",
            ["DATA-6", "LINK-5"],
            "a transfer over the implementation's max_data_size closes the session with LIMIT_EXCEEDED",
            over_max
        )
        .breaking("DATA-6"),
        wire_case!(
            "wire/DATA-7/slow-reader",
            ["DATA-7", "MSG-2"],
            "8 transfers of 512 KiB to a suite that reads late all come back intact, in order",
            slow_reader
        )
        .needing(Needs::Data),
        wire_case!(
            "wire/DISC-2/disconnect-mid-transfer",
            ["DISC-2", "DISC-1", "DATA-5", "PROF-2", "PROF-3"],
            "two sessions on one link each send 4 MiB and one is disconnected mid-transfer: nothing of its transfer follows its DISCONNECT, its sendData fails with 401, and the other transfer arrives whole",
            disconnect_mid_transfer
        )
        .needing(Needs::Data),
        wire_case!(
            "wire/DISC-2/link-lost-mid-transfer",
            ["DISC-2", "LINK-8", "PROF-2", "PROF-3"],
            "a link lost while a session's 4 MiB transfer is under way on it, unread, makes the transfer's sendData call fail with 401, as the driver session on a second link reports",
            link_lost_mid_transfer
        )
        .breaking("LINK-8")
        .needing(Needs::Data),
        wire_case!(
            "wire/LINK-7/abrupt-close-mid-transfer",
            ["LINK-7", "DISC-2"],
            "a link dropped in the middle of a transfer leaves the implementation ready for a new link",
            abrupt_close
        )
        .needing(Needs::Data),
    ]
}

fn fragment(
    channel: u32,
    transfer_id: u32,
    index: u32,
    total: Option<u64>,
    last: bool,
    chunk: &'static [u8],
) -> Step<Bytes> {
    let fragment = DataFragment {
        channel,
        transfer_id,
        index,
        total_length: total,
        last,
        chunk: Bytes::from_static(chunk),
    };
    let mut out = BytesMut::new();
    fragment
        .encode(1, &mut out)
        .map_err(|e| Verdict::fail("an encodable fragment", e.to_string()))?;
    Ok(out.freeze())
}

async fn echo_check(peer: &mut Peer, channel: u32, data: Bytes) -> Step<()> {
    let back = peer.expect_data(channel).await?;
    if back != data {
        return Err(Verdict::fail(
            format!("{} bytes echoed intact", data.len()),
            format!("{} bytes, differing", back.len()),
        ));
    }
    Ok(())
}

async fn single_fragment(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("data-1").await?;
    let data = Bytes::from((0..100u8).collect::<Vec<_>>());
    peer.send_data(channel, 1, data.clone()).await?;
    echo_check(&mut peer, channel, data).await
}

async fn empty_transfer(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("data-0").await?;
    peer.send_data(channel, 1, Bytes::new()).await?;
    echo_check(&mut peer, channel, Bytes::new()).await
}

async fn large_transfer(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("data-large").await?;
    let data = Bytes::from(
        (0..1u32 << 20)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    peer.send_data(channel, 1, data.clone()).await?;
    echo_check(&mut peer, channel, data).await
}

async fn interleaved(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("data-mix").await?;
    let a = Bytes::from(vec![0xAA; 5000]);
    let b = Bytes::from(vec![0xBB; 3000]);
    // Small fragments, so that the two transfers really interleave.
    let max = 1024;
    let mut first = Fragmenter::new(1, channel, 1, a.clone(), max)
        .map_err(|e| Verdict::fail("fragments", e.to_string()))?;
    let mut second = Fragmenter::new(1, channel, 2, b.clone(), max)
        .map_err(|e| Verdict::fail("fragments", e.to_string()))?;
    loop {
        let x = first.next();
        let y = second.next();
        if x.is_none() && y.is_none() {
            break;
        }
        for frame in [x, y].into_iter().flatten() {
            peer.send_raw(frame).await?;
        }
    }
    // The shorter transfer completes first and is echoed first.
    echo_check(&mut peer, channel, b).await?;
    echo_check(&mut peer, channel, a).await
}

async fn session_error(
    t: &dyn WireTarget,
    frames: Vec<Step<Bytes>>,
    expected: SessionError,
) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("bad-data").await?;
    if channel != 1 {
        return Err(Verdict::fail(
            "the first session on channel 1",
            channel.to_string(),
        ));
    }
    for frame in frames {
        peer.send_raw(frame?).await?;
    }
    let bye = peer.expect_disconnect(channel).await?;
    if bye.reason() != DisconnectReason::NetworkDisconnected || bye.error() != expected {
        return Err(Verdict::fail(
            format!("NETWORK_DISCONNECTED with {}", expected.as_str_name()),
            format!(
                "{} / {} ({})",
                bye.reason().as_str_name(),
                bye.error().as_str_name(),
                bye.detail
            ),
        ));
    }
    peer.expect_alive().await
}

async fn duplicate(t: &dyn WireTarget) -> Step<()> {
    let frames = vec![
        fragment(1, 1, 0, Some(9), false, b"abc"),
        fragment(1, 1, 1, None, false, b"def"),
        fragment(1, 1, 1, None, false, b"def"),
        fragment(1, 1, 2, None, true, b"ghi"),
    ];
    session_error(t, frames, SessionError::ProtocolError).await
}

async fn out_of_order(t: &dyn WireTarget) -> Step<()> {
    let frames = vec![
        fragment(1, 1, 0, Some(9), false, b"abc"),
        // Index 2 where 1 is due, and not LAST: only DATA-4 is broken, not DATA-5 too.
        fragment(1, 1, 2, None, false, b"ghi"),
    ];
    session_error(t, frames, SessionError::ProtocolError).await
}

async fn unknown_transfer(t: &dyn WireTarget) -> Step<()> {
    session_error(
        t,
        vec![fragment(1, 4, 1, None, true, b"xyz")],
        SessionError::ProtocolError,
    )
    .await
}

async fn empty_middle(t: &dyn WireTarget) -> Step<()> {
    let frames = vec![
        fragment(1, 1, 0, Some(6), false, b"abc"),
        fragment(1, 1, 1, None, false, b""),
    ];
    session_error(t, frames, SessionError::ProtocolError).await
}

async fn overrun(t: &dyn WireTarget) -> Step<()> {
    let frames = vec![
        fragment(1, 1, 0, Some(4), false, b"abc"),
        fragment(1, 1, 1, None, true, b"def"),
    ];
    session_error(t, frames, SessionError::ProtocolError).await
}

async fn short_transfer(t: &dyn WireTarget) -> Step<()> {
    let frames = vec![
        fragment(1, 1, 0, Some(10), false, b"abc"),
        fragment(1, 1, 1, None, true, b"def"),
    ];
    session_error(t, frames, SessionError::ProtocolError).await
}

async fn reused_transfer_id(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("bad-data").await?;
    peer.send_data(channel, 5, Bytes::from_static(b"one"))
        .await?;
    echo_check(&mut peer, channel, Bytes::from_static(b"one")).await?;
    peer.send_data(channel, 5, Bytes::from_static(b"two"))
        .await?;
    let bye = peer.expect_disconnect(channel).await?;
    if bye.error() != SessionError::ProtocolError {
        return Err(Verdict::fail("PROTOCOL_ERROR", bye.error().as_str_name()));
    }
    Ok(())
}

async fn first_index_one(t: &dyn WireTarget) -> Step<()> {
    session_error(
        t,
        vec![fragment(1, 1, 1, Some(3), true, b"abc")],
        SessionError::ProtocolError,
    )
    .await
}

async fn short_header(t: &dyn WireTarget) -> Step<()> {
    let mut frame = fragment(1, 1, 0, Some(3), true, b"abc")?.to_vec();
    // Keep the header and 5 bytes of the 16-byte data header; fix the length field.
    frame.truncate(12 + 5);
    frame[5..8].copy_from_slice(&[0, 0, 5]);
    session_error(t, vec![Ok(Bytes::from(frame))], SessionError::ProtocolError).await
}

async fn over_max(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let max = peer.hello.as_ref().map_or(100 << 20, |h| h.max_data_size);
    let (channel, _) = peer.open_echo("too-much").await?;
    let fragment = DataFragment {
        channel,
        transfer_id: 1,
        index: 0,
        total_length: Some(max.saturating_add(1)),
        last: false,
        chunk: Bytes::from_static(b"start"),
    };
    let mut out = BytesMut::new();
    fragment
        .encode(1, &mut out)
        .map_err(|e| Verdict::fail("a fragment", e.to_string()))?;
    peer.send_raw(out.freeze()).await?;
    let bye = peer.expect_disconnect(channel).await?;
    if bye.error() != SessionError::LimitExceeded {
        return Err(Verdict::fail("LIMIT_EXCEEDED", bye.error().as_str_name()));
    }
    Ok(())
}

async fn slow_reader(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("slow").await?;
    let blobs: Vec<Bytes> = (0..8u8).map(|i| Bytes::from(vec![i; 512 * 1024])).collect();
    for (i, blob) in blobs.iter().enumerate() {
        peer.send_data(channel, i as u32 + 1, blob.clone()).await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for blob in blobs {
        echo_check(&mut peer, channel, blob).await?;
    }
    Ok(())
}

async fn abrupt_close(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("abrupt").await?;
    peer.send_raw(fragment(
        channel,
        1,
        0,
        Some(1_000_000),
        false,
        b"the beginning",
    )?)
    .await?;
    drop(peer);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = Peer::up(t).await?;
    let (channel, _) = again.open_echo("abrupt").await?;
    again
        .send_data(channel, 1, Bytes::from_static(b"fresh"))
        .await?;
    echo_check(&mut again, channel, Bytes::from_static(b"fresh")).await
}

/// What each session of [`disconnect_mid_transfer`] sends: more than the link and the
/// implementation hold on their way out while the suite reads nothing (the reference
/// implementation's mock transport holds 1 MiB in flight), so that the transfer is still under
/// way when its session ends.
const MID_TRANSFER: usize = 4 << 20;

/// `len` bytes that differ from those of another `seed`.
fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<_>>()
        .into()
}

async fn disconnect_mid_transfer(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let mut drive = Drive::open(&mut peer, "mid-transfer").await?;
    let cut = drive.connect(&mut peer, 1, "cut-short").await?;
    let goes_on = drive.connect(&mut peer, 2, "goes-on").await?;
    // A first transfer on the second session puts its transfer ids ahead of the first
    // session's: the end of the first session must end its own call, not one of the other
    // session's that happens to share an id.
    drive
        .command_with(&peer, "drive:send-data 2", b"first")
        .await?;
    drive
        .wait_for(
            &mut peer,
            |d| d.whole(goes_on).len() == 1 && d.count("drive:done 2 data ok") == 1,
            "the first transfer of session 2 and drive:done 2 data ok",
        )
        .await?;
    if drive.whole(goes_on)[0] != b"first"[..] {
        return Err(Verdict::fail("the bytes \"first\"", "other bytes"));
    }
    let oks = drive.count(OK);
    let (a, b) = (pattern(MID_TRANSFER, 0x11), pattern(MID_TRANSFER, 0x22));
    // The suite reads nothing until the first session is disconnected: both transfers are
    // queued on the link behind what it holds.
    drive.command_with(&peer, "drive:send-data 1", &a).await?;
    drive.command_with(&peer, "drive:send-data 2", &b).await?;
    // Lets both calls start before the disconnect.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drive.command(&peer, "drive:disconnect 1").await?;
    drive
        .wait_for(
            &mut peer,
            |d| {
                d.ended(cut).is_some()
                    && d.whole(goes_on).len() == 2
                    && d.count(OK) >= oks + 3
                    && d.count("drive:done 2 data ok") == 2
            },
            "session 1's DISCONNECT, session 2's transfer whole, drive:ok to the three commands \
             and drive:done 2 data ok",
        )
        .await?;
    drive
        .wait_for(
            &mut peer,
            |d| d.report("drive:done 1 data ").is_some(),
            "a drive:done report of session 1's sendData call, which its session's end ends \
             (DISC-2, PROF-3)",
        )
        .await?;
    if let Some(bye) = drive.ended(cut) {
        disconnect_is(
            bye,
            DisconnectReason::PeerAppCloseCollaboration,
            SessionError::None,
        )?;
    }
    if drive.whole(goes_on)[1] != b {
        return Err(Verdict::fail(
            format!("session 2's {MID_TRANSFER} bytes intact"),
            format!("{} bytes, differing", drive.whole(goes_on)[1].len()),
        ));
    }
    // The first transfer may have left whole before the disconnect; if not, it was cut short.
    let whole = drive.whole(cut).len() == 1;
    let wanted = if whole {
        "drive:done 1 data ok"
    } else {
        "drive:done 1 data error 401"
    };
    let done = drive.report("drive:done 1 data ").unwrap_or_default();
    if done != wanted {
        return Err(Verdict::fail(
            format!(
                "{wanted:?}: session 1's transfer {} (DISC-2)",
                if whole {
                    "arrived whole"
                } else {
                    "was cut short"
                }
            ),
            format!("{done:?}"),
        ));
    }
    // Nothing of the first transfer straggles after the DISCONNECT, up to the answer of a
    // command sent after everything else.
    drive.command(&peer, "drive:sync").await?;
    drive
        .wait_for(
            &mut peer,
            |d| d.count(OK) >= oks + 4,
            "drive:ok to drive:sync",
        )
        .await
}

async fn link_lost_mid_transfer(t: &dyn WireTarget) -> Step<()> {
    // The scenario session goes on the first link, the preferred one (LINK-8), the driver
    // session on the second, so that its reports do not wait behind the transfer.
    let mut first = Peer::up(t).await?;
    let mut second = Peer::up(t).await?;
    let mut drive = Drive::open(&mut second, "link-lost").await?;
    drive
        .command(&second, &format!("drive:create 1 link-lost {SCENARIO}"))
        .await?;
    drive.command(&second, "drive:connect 1").await?;
    let (channel, request) = match first.expect(FrameType::ConnectRequest, ANSWER).await? {
        (channel, Control::ConnectRequest(request)) => (channel, request),
        (_, other) => {
            return Err(Verdict::fail(
                "the scenario session's request on the preferred link (LINK-8)",
                format!("{other:?}"),
            ));
        }
    };
    first.send(&accept(request.token), channel).await?;
    drive
        .wait_for(
            &mut second,
            |d| d.count("drive:done 1 connect connected") == 1,
            "drive:done 1 connect connected",
        )
        .await?;
    // The suite reads nothing more on the first link: the transfer waits behind what it holds,
    // and a second later it still has not ended.
    drive
        .command_with(&second, "drive:send-data 1", &pattern(MID_TRANSFER, 0x33))
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let oks = drive.count(OK);
    drive.command(&second, "drive:sync").await?;
    drive
        .wait_for(&mut second, |d| d.count(OK) > oks, "drive:ok to drive:sync")
        .await?;
    if drive.report("drive:done 1 data ").is_some() {
        // The implementation's link held the whole transfer: nothing is cut short.
        return Ok(());
    }
    drop(first);
    drive
        .wait_for(
            &mut second,
            |d| d.report("drive:done 1 data ").is_some(),
            "a drive:done report of the sendData call whose link was lost (DISC-2, PROF-3)",
        )
        .await?;
    let done = drive.report("drive:done 1 data ").unwrap_or_default();
    if done != "drive:done 1 data error 401" {
        return Err(Verdict::fail(
            "drive:done 1 data error 401: the transfer was cut short by the loss of its link (DISC-2)",
            format!("{done:?}"),
        ));
    }
    Ok(())
}
