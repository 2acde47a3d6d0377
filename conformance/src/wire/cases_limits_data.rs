//! The limits of data transfers a peer can reach (SPEC section 6): the largest transfer, the
//! unfinished transfers and reassembly budget of `DATA-7`, and transfer ids (`DATA-3`), each at
//! the limit and one past it.

use acm_wire::DataFragment;
use acm_wire::pb::{self, DisconnectReason};
use bytes::Bytes;

use super::cases_limits::{fail, fragment_bytes};
use super::peer::{Peer, Step, disconnect_is};
use super::target::WireTarget;
use super::{Needs, WireCase, wire_case};
use crate::profile;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/DATA-6/transfer-at-max-data-size",
            ["DATA-6", "DATA-7"],
            "a transfer declaring exactly the implementation's max_data_size is admitted: the session goes on",
            data_at_limit
        ),
        wire_case!(
            "wire/DATA-7/unfinished-transfers-at-limit",
            ["DATA-7"],
            "16 unfinished transfers on a link, the profile's bound, are admitted: the session goes on",
            transfers_at_limit
        ),
        wire_case!(
            "wire/DATA-7/unfinished-transfers-one-past",
            ["DATA-7"],
            "a 17th unfinished transfer closes its session with LIMIT_EXCEEDED; the link goes on",
            transfers_past_limit
        )
        .breaking("DATA-7"),
        wire_case!(
            "wire/DATA-7/reassembly-budget-at-limit",
            ["DATA-7", "DATA-6"],
            "unfinished transfers declaring 256 MiB in all are admitted: the session goes on",
            budget_at_limit
        ),
        wire_case!(
            "wire/DATA-7/reassembly-budget-one-past",
            ["DATA-7"],
            "a transfer taking the declared total one byte past 256 MiB closes its session with LIMIT_EXCEEDED",
            budget_past_limit
        )
        .breaking("DATA-7"),
        wire_case!(
            "wire/DATA-3/first-transfer-id-zero",
            ["DATA-3"],
            "a session's first transfer may have id 0; the next must be above it",
            transfer_id_zero
        )
        .needing(Needs::Data),
        wire_case!(
            "wire/DATA-3/transfer-ids-used-up",
            ["DATA-3"],
            "after a transfer with id 4294967295, any FIRST closes the session with PROTOCOL_ERROR",
            transfer_ids_used_up
        )
        .breaking("DATA-3"),
    ]
}

/// A FIRST fragment, not LAST, of transfer `id` declaring `total` bytes, carrying one byte.
pub(super) fn first(channel: u32, id: u32, total: u64) -> Step<Bytes> {
    fragment_bytes(DataFragment {
        channel,
        transfer_id: id,
        index: 0,
        total_length: Some(total),
        last: false,
        chunk: Bytes::from_static(b"1"),
    })
}

/// The session still works: a message on it is echoed, with nothing else first.
pub(super) async fn goes_on(peer: &mut Peer, channel: u32) -> Step<()> {
    peer.say(channel, "still here").await?;
    let echoed = peer.expect_message(channel).await?;
    if echoed != "still here" {
        return fail("\"still here\" echoed", echoed);
    }
    Ok(())
}

/// The session closed with LIMIT_EXCEEDED; the link goes on.
pub(super) async fn limit_exceeded(peer: &mut Peer, channel: u32) -> Step<()> {
    let bye = peer.expect_disconnect(channel).await?;
    disconnect_is(
        &bye,
        DisconnectReason::NetworkDisconnected,
        pb::SessionError::LimitExceeded,
    )?;
    peer.expect_alive().await
}

async fn data_at_limit(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let max = peer.hello.as_ref().map_or(100 << 20, |h| h.max_data_size);
    let (channel, _) = peer.open_echo("data-limit").await?;
    peer.send_raw(first(channel, 1, max)?).await?;
    goes_on(&mut peer, channel).await
}

/// The profile's unfinished transfers per link (SPEC section 15).
const TRANSFERS: u32 = profile::UNFINISHED_TRANSFERS as u32;

async fn transfers(t: &dyn WireTarget, count: u32) -> Step<(Peer, u32)> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("transfers").await?;
    for id in 1..=count {
        peer.send_raw(first(channel, id, 2)?).await?;
    }
    Ok((peer, channel))
}

async fn transfers_at_limit(t: &dyn WireTarget) -> Step<()> {
    let (mut peer, channel) = transfers(t, TRANSFERS).await?;
    goes_on(&mut peer, channel).await
}

async fn transfers_past_limit(t: &dyn WireTarget) -> Step<()> {
    let (mut peer, channel) = transfers(t, TRANSFERS + 1).await?;
    limit_exceeded(&mut peer, channel).await
}

/// The profile's reassembly budget per link (SPEC section 15).
const BUDGET: u64 = profile::REASSEMBLY_BUDGET;

/// Begins transfers on `channel` whose declared lengths, each at most `max`, add up to `total`;
/// returns the last transfer id.
pub(super) async fn declare(peer: &Peer, channel: u32, total: u64, max: u64) -> Step<u32> {
    let mut left = total;
    let mut id = 0;
    while left > 0 {
        id += 1;
        let length = left.min(max);
        peer.send_raw(first(channel, id, length)?).await?;
        left -= length;
    }
    Ok(id)
}

async fn budget(t: &dyn WireTarget, past: bool) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let max = peer.hello.as_ref().map_or(100 << 20, |h| h.max_data_size);
    let (channel, _) = peer.open_echo("budget").await?;
    let id = declare(&peer, channel, BUDGET, max).await?;
    if !past {
        return goes_on(&mut peer, channel).await;
    }
    peer.send_raw(first(channel, id + 1, 2)?).await?;
    limit_exceeded(&mut peer, channel).await
}

async fn budget_at_limit(t: &dyn WireTarget) -> Step<()> {
    budget(t, false).await
}

async fn budget_past_limit(t: &dyn WireTarget) -> Step<()> {
    budget(t, true).await
}

async fn transfer_id_zero(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("id-zero").await?;
    peer.send_data(channel, 0, Bytes::from_static(b"zero"))
        .await?;
    if peer.expect_data(channel).await? != "zero" {
        return fail("\"zero\" echoed", "other bytes");
    }
    peer.send_data(channel, 1, Bytes::from_static(b"one"))
        .await?;
    if peer.expect_data(channel).await? != "one" {
        return fail("\"one\" echoed", "other bytes");
    }
    Ok(())
}

async fn transfer_ids_used_up(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("ids").await?;
    peer.send_raw(first(channel, u32::MAX, 2)?).await?;
    // A second transfer on the channel can have no greater id.
    peer.send_raw(first(channel, 7, 2)?).await?;
    let bye = peer.expect_disconnect(channel).await?;
    disconnect_is(
        &bye,
        DisconnectReason::NetworkDisconnected,
        pb::SessionError::ProtocolError,
    )?;
    peer.expect_alive().await
}
