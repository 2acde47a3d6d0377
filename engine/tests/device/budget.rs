//! One memory budget for the whole device (SPEC `LIMIT-1`): transfers of every link are
//! admitted against it, and received data stays charged until the app lets go of it.

use acm_engine::EngineConfig;
use acm_engine::device::{DeviceEngine, DeviceEvent, SessionState};
use acm_wire::pb;
use acm_wire::{DataFragment, MemoryBudget};
use bytes::Bytes;

use crate::harness::*;

const MIB: u64 = 1 << 20;

/// A hub whose budget is `budget` bytes, and a session from each of `peers` to it: returns
/// the network and, per peer, the hub's link and the session's channel on it.
fn hub_with(budget: u64, peers: &[&str]) -> (Net, Vec<(acm_engine::device::LinkId, u32)>) {
    let mut names = peers.to_vec();
    names.push("hub");
    let mut net = Net::new(&names);
    let hub = net.index("hub");
    net.devices[hub] = DeviceEngine::new("hub", EngineConfig::default())
        .with_memory_budget(MemoryBudget::new(budget));
    let mut sessions = Vec::new();
    for (i, peer) in peers.iter().enumerate() {
        net.link(peer, "hub");
        let session = net.session(peer, "hub", "files");
        net.connect(peer, session, i as u8 + 1);
        let requests = Net::requests(&net.take("hub"));
        let theirs = net.accept("hub", &requests[0]);
        net.take(peer);
        match net.device("hub").session_state(theirs) {
            Some(SessionState::Connected { link, channel }) => sessions.push((link, channel)),
            other => panic!("not connected: {other:?}"),
        }
    }
    (net, sessions)
}

/// The FIRST fragment of a transfer declaring `declared` bytes, carrying 1 KiB of them.
fn first_fragment(channel: u32, transfer_id: u32, declared: u64) -> Bytes {
    DataFragment {
        channel,
        transfer_id,
        index: 0,
        total_length: Some(declared),
        last: false,
        chunk: Bytes::from(vec![7u8; 1024]),
    }
    .to_frame(1)
    .and_then(|frame| frame.to_bytes())
    .expect("encodes")
}

/// Whether `peer`'s session was ended by the hub.
fn ended(net: &mut Net, peer: &str) -> bool {
    net.take(peer).iter().any(|e| {
        matches!(
            e,
            DeviceEvent::Disconnected {
                reason: pb::DisconnectReason::NetworkDisconnected,
                ..
            }
        )
    })
}

#[test]
fn limit_1_transfers_of_several_links_share_one_budget_and_the_one_that_does_not_fit_is_refused() {
    // Each link's own reassembly budget (256 MiB) would take each of these.
    let (mut net, sessions) = hub_with(128 * MIB, &["a", "b", "c"]);
    let now = net.now;
    for (i, (link, channel)) in sessions.iter().enumerate() {
        let frame = first_fragment(*channel, 1, 60 * MIB);
        net.device("hub").handle_message(*link, now, frame.into());
        let used = net.device("hub").memory_budget().used();
        assert!(
            used <= 128 * MIB,
            "{used} charged after {} transfers",
            i + 1
        );
    }
    net.pump();
    // Two fit; the third link's session is closed (DATA-7, LIMIT_EXCEEDED).
    assert_eq!(net.device("hub").memory_budget().used(), 120 * MIB);
    assert!(!ended(&mut net, "a"));
    assert!(!ended(&mut net, "b"));
    assert!(ended(&mut net, "c"));
    let disconnects = net
        .take("hub")
        .into_iter()
        .filter(|e| matches!(e, DeviceEvent::Disconnected { .. }))
        .count();
    assert_eq!(disconnects, 1);
}

#[test]
fn limit_1_received_data_stays_charged_until_the_app_drops_it() {
    let (mut net, _) = hub_with(128 * MIB, &["a"]);
    let a_session = acm_engine::device::FIRST_SESSION_ID;
    let data = Bytes::from(vec![1u8; 3 << 20]);
    let now = net.now;
    net.device("a")
        .send_data(a_session, data, now)
        .expect("sent");
    net.pump();
    // The sender's charge is gone once every fragment left.
    assert_eq!(net.device("a").memory_budget().used(), 0);
    let received = net
        .take("hub")
        .into_iter()
        .find_map(|e| match e {
            DeviceEvent::Data { data, .. } => Some(data),
            _ => None,
        })
        .expect("delivered");
    assert_eq!(received.len(), 3 << 20);
    assert_eq!(net.device("hub").memory_budget().used(), 3 * MIB);
    let kept = received.slice(..10);
    drop(received);
    assert_eq!(net.device("hub").memory_budget().used(), 3 * MIB);
    drop(kept);
    // The data's charge is given back; the buffer it was delivered in is kept for reuse, and
    // counts as long as it is kept.
    let hub = net.device("hub");
    let pooled = hub.buffer_pool().kept_bytes() as u64;
    assert!(pooled >= 3 * MIB);
    assert_eq!(hub.memory_budget().used(), pooled);
}

#[test]
fn limit_1_data_waiting_to_be_sent_leaves_less_room_for_what_peers_send() {
    let (mut net, sessions) = hub_with(16 * MIB, &["a", "b"]);
    let now = net.now;
    // The hub's app sends 10 MiB to a that it cannot send yet (nothing is pumped).
    let hub_session = net
        .device("hub")
        .session_state(acm_engine::device::FIRST_SESSION_ID)
        .map(|_| acm_engine::device::FIRST_SESSION_ID)
        .expect("the hub's session");
    net.device("hub")
        .send_data(hub_session, Bytes::from(vec![0u8; 10 << 20]), now)
        .expect("queued");
    assert_eq!(net.device("hub").memory_budget().used(), 10 * MIB);
    // b's 8 MiB would fit a budget of 16 MiB, but not with a's 10 MiB waiting.
    let (link, channel) = sessions[1];
    net.device("hub")
        .handle_message(link, now, first_fragment(channel, 1, 8 * MIB).into());
    assert_eq!(
        net.device("hub").memory_budget().used(),
        10 * MIB,
        "refused"
    );
    net.pump();
    assert!(ended(&mut net, "b"));
    assert!(!ended(&mut net, "a"));
    assert_eq!(net.device("hub").memory_budget().used(), 0, "sent");
}
