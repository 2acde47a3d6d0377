//! The gate's tests: SDUs held back while the host stack's queue is full, and let go in order.

use super::*;

const HANDLE: u16 = 0x0040;
const CID: u16 = 0x0041;

fn acl(handle: u16, first: bool, payload: &[u8]) -> Vec<u8> {
    let flags = handle | if first { 0x2000 } else { CONTINUING };
    acl_packet(flags, payload)
}

fn l2cap(cid: u16, body: &[u8]) -> Vec<u8> {
    let mut pdu = (body.len() as u16).to_le_bytes().to_vec();
    pdu.extend_from_slice(&cid.to_le_bytes());
    pdu.extend_from_slice(body);
    pdu
}

/// A K-frame beginning an SDU of `sdu_len` bytes, carrying `part` of it.
fn first_k_frame(cid: u16, sdu_len: u16, part: &[u8]) -> Vec<u8> {
    let mut body = sdu_len.to_le_bytes().to_vec();
    body.extend_from_slice(part);
    l2cap(cid, &body)
}

/// The SDU numbered `n`, 20 bytes.
fn sdu(n: u32) -> Vec<u8> {
    let mut sdu = n.to_be_bytes().to_vec();
    sdu.resize(20, n as u8);
    sdu
}

/// A gate on which this side accepted channel `cid` on connection `handle`.
fn accepted(gate: &Gate, handle: u16, cid: u16) {
    let mut body = vec![LE_CREDIT_CONNECTION_RESPONSE, 1, 10, 0];
    body.extend_from_slice(&cid.to_le_bytes());
    body.extend_from_slice(&[0xFF, 0xFF, 0xFB, 0xFF, 32, 0, 0, 0]);
    gate.sent(&acl(handle, true, &l2cap(SIGNALLING, &body)));
    assert_eq!(gate.claim(handle, Opened::Accepted), Some(cid));
}

fn drain(gate: &Gate) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| gate.next()).collect()
}

/// The SDUs in `packets`, K-frames of one fragment each on `cid`.
fn sdus_in(packets: &[Vec<u8>], cid: u16) -> Vec<Vec<u8>> {
    packets
        .iter()
        .filter_map(|packet| {
            let (_, _, pdu) = acl_parts(packet)?;
            let (on, body) = l2cap_parts(pdu)?;
            (on == cid).then(|| body.get(2..).unwrap_or_default().to_vec())
        })
        .collect()
}

/// The receiving side of a channel as trouble-host 0.8 runs it: a queue of `HOST_QUEUE`
/// SDUs that drops an SDU finding it full, and, when the reader takes an SDU, credits back
/// for every K-frame received since the last grant.
#[derive(Default)]
struct HostStack {
    queue: VecDeque<Vec<u8>>,
    received: u16,
    dropped: usize,
}

impl HostStack {
    fn receive(&mut self, packet: &[u8]) {
        let Some((_, _, pdu)) = acl_parts(packet) else {
            return;
        };
        let Some((CID, body)) = l2cap_parts(pdu) else {
            return;
        };
        self.received += 1;
        if self.queue.len() == HOST_QUEUE {
            self.dropped += 1;
        } else {
            self.queue.push_back(body[2..].to_vec());
        }
    }

    /// The reader takes an SDU: it and the credits granted back.
    fn take(&mut self) -> Option<(Vec<u8>, u16)> {
        let sdu = self.queue.pop_front()?;
        Some((sdu, std::mem::take(&mut self.received)))
    }
}

/// A peer with `credits` sending numbered SDUs as fast as its credits allow, to a reader
/// that takes one SDU each time the peer is held back, `rounds` times, and then everything;
/// with or without the gate between. The SDUs the reader got, and those the host dropped.
fn slow_reader(through_gate: bool, credits: u16, rounds: usize) -> (Vec<Vec<u8>>, usize) {
    let gate = Gate::default();
    accepted(&gate, HANDLE, CID);
    let mut host = HostStack::default();
    let (mut peer_credits, mut next, mut got) = (credits, 0u32, Vec::new());
    let total = 400;
    let mut round = 0;
    loop {
        while peer_credits > 0 && next < total {
            peer_credits -= 1;
            let packet = acl(HANDLE, true, &first_k_frame(CID, 20, &sdu(next)));
            next += 1;
            if through_gate {
                gate.received(packet);
            } else {
                host.receive(&packet);
            }
        }
        for packet in drain(&gate) {
            host.receive(&packet);
        }
        let Some((sdu, granted)) = host.take() else {
            break;
        };
        gate.taken(HANDLE, CID);
        got.push(sdu);
        peer_credits += granted;
        round += 1;
        if round > rounds {
            // A fast reader from now on: it takes what the host holds before the peer goes on.
            while let Some((sdu, granted)) = host.take() {
                gate.taken(HANDLE, CID);
                for packet in drain(&gate) {
                    host.receive(&packet);
                }
                got.push(sdu);
                peer_credits += granted;
            }
        }
    }
    (got, host.dropped)
}

#[test]
fn without_the_gate_a_slow_reader_makes_the_host_stack_drop_sdus() {
    // The cause of the lost frames: one SDU taken from a full queue gives the peer a whole
    // window of credits back, and the queue has room for one.
    let (got, dropped) = slow_reader(false, 32, 3);
    assert_eq!(dropped, 3 * 31);
    assert_eq!(got.len(), 400 - dropped);
    assert_eq!(got[32], sdu(32));
    assert_eq!(got[33], sdu(64), "SDUs 33 to 63 were dropped");
}

#[test]
fn through_the_gate_a_slow_reader_gets_every_sdu_in_order() {
    for credits in [1, 8, 24, 32, 64] {
        let (got, dropped) = slow_reader(true, credits, 10);
        assert_eq!(dropped, 0, "credits {credits}");
        assert_eq!(
            got,
            (0..400).map(sdu).collect::<Vec<_>>(),
            "credits {credits}"
        );
    }
}

#[test]
fn a_channel_gets_at_most_a_queue_and_the_rest_follows_in_order_as_sdus_are_taken() {
    let gate = Gate::default();
    accepted(&gate, HANDLE, CID);
    for n in 0..40 {
        gate.received(acl(HANDLE, true, &first_k_frame(CID, 20, &sdu(n))));
    }
    let handed = drain(&gate);
    assert_eq!(sdus_in(&handed, CID), (0..32).map(sdu).collect::<Vec<_>>());
    gate.taken(HANDLE, CID);
    assert_eq!(sdus_in(&drain(&gate), CID), vec![sdu(32)]);
    // A K-frame arriving while others wait goes after them.
    gate.received(acl(HANDLE, true, &first_k_frame(CID, 20, &sdu(40))));
    assert!(drain(&gate).is_empty());
    for _ in 0..8 {
        gate.taken(HANDLE, CID);
    }
    assert_eq!(
        sdus_in(&drain(&gate), CID),
        (33..41).map(sdu).collect::<Vec<_>>()
    );
}

#[test]
fn other_channels_and_signalling_pass_a_channel_that_waits() {
    let gate = Gate::default();
    accepted(&gate, HANDLE, CID);
    accepted(&gate, HANDLE, CID + 1);
    for n in 0..33 {
        gate.received(acl(HANDLE, true, &first_k_frame(CID, 20, &sdu(n))));
    }
    drain(&gate);
    let other = acl(HANDLE, true, &first_k_frame(CID + 1, 20, &sdu(7)));
    let credit = acl(
        HANDLE,
        true,
        &l2cap(SIGNALLING, &[0x16, 9, 4, 0, 0x41, 0, 1, 0]),
    );
    let event = vec![EVENT, 0x13, 5, 1, 0x40, 0, 1, 0];
    gate.received(other.clone());
    gate.received(credit.clone());
    gate.received(event.clone());
    assert_eq!(drain(&gate), vec![other, credit, event]);
}

#[test]
fn an_sdu_of_several_k_frames_takes_one_place() {
    let gate = Gate::default();
    accepted(&gate, HANDLE, CID);
    let big: Vec<u8> = (0..100u8).collect();
    for _ in 0..HOST_QUEUE {
        gate.received(acl(HANDLE, true, &first_k_frame(CID, 100, &big[..60])));
        gate.received(acl(HANDLE, true, &l2cap(CID, &big[60..])));
    }
    assert_eq!(drain(&gate).len(), 2 * HOST_QUEUE);
    gate.received(acl(HANDLE, true, &first_k_frame(CID, 20, &sdu(0))));
    assert!(drain(&gate).is_empty());
    gate.taken(HANDLE, CID);
    assert_eq!(drain(&gate).len(), 1);
}

#[test]
fn fragments_become_whole_pdus_cut_to_what_the_host_reads() {
    let gate = Gate::default();
    accepted(&gate, HANDLE, CID);
    let payload: Vec<u8> = (0..600u16).map(|i| i as u8).collect();
    let pdu = first_k_frame(CID, 600, &payload);
    gate.received(acl(HANDLE, true, &pdu[..100]));
    assert!(drain(&gate).is_empty(), "nothing before the PDU is whole");
    gate.received(acl(HANDLE, false, &pdu[100..]));
    let handed = drain(&gate);
    assert_eq!(handed, cut(HANDLE | 0x2000, &pdu));
    assert_eq!(handed.len(), 3);
    assert!(handed.iter().all(|packet| packet.len() <= 5 + MAX_FRAGMENT));
}

#[test]
fn a_dialed_channel_opens_with_the_peers_acceptance_only() {
    let gate = Gate::default();
    for (id, cid, result) in [(1u8, 0x0041u16, 0x0004u16), (2, 0x0042, 0)] {
        let mut request = vec![LE_CREDIT_CONNECTION_REQUEST, id, 10, 0, 0xAC, 0];
        request.extend_from_slice(&cid.to_le_bytes());
        request.extend_from_slice(&[0xFF, 0xFF, 0xFB, 0xFF, 32, 0]);
        gate.sent(&acl(HANDLE, true, &l2cap(SIGNALLING, &request)));
        let mut response = vec![LE_CREDIT_CONNECTION_RESPONSE, id, 10, 0, 0x50, 0];
        response.extend_from_slice(&[0xFF, 0xFF, 0xFB, 0xFF, 32, 0]);
        response.extend_from_slice(&result.to_le_bytes());
        gate.received(acl(HANDLE, true, &l2cap(SIGNALLING, &response)));
    }
    assert_eq!(gate.claim(HANDLE, Opened::Accepted), None);
    assert_eq!(gate.claim(HANDLE, Opened::Dialed), Some(0x0042));
    assert_eq!(gate.claim(HANDLE, Opened::Dialed), None);
}

#[test]
fn a_lost_connection_or_a_forgotten_channel_lets_go_of_what_was_held() {
    let gate = Gate::default();
    accepted(&gate, HANDLE, CID);
    for n in 0..40 {
        gate.received(acl(HANDLE, true, &first_k_frame(CID, 20, &sdu(n))));
    }
    drain(&gate);
    gate.forget(HANDLE, CID);
    gate.taken(HANDLE, CID);
    assert!(drain(&gate).is_empty());
    accepted(&gate, HANDLE, CID);
    for n in 0..40 {
        gate.received(acl(HANDLE, true, &first_k_frame(CID, 20, &sdu(n))));
    }
    drain(&gate);
    gate.received(vec![EVENT, DISCONNECTION_COMPLETE, 4, 0, 0x40, 0, 0x13]);
    assert_eq!(drain(&gate).len(), 1);
    assert_eq!(gate.claim(HANDLE, Opened::Accepted), None);
    // A new channel with the same ids starts afresh.
    accepted(&gate, HANDLE, CID);
    gate.received(acl(HANDLE, true, &first_k_frame(CID, 20, &sdu(0))));
    assert_eq!(drain(&gate).len(), 1);
}

#[test]
fn malformed_packets_pass_on_without_a_panic() {
    let gate = Gate::default();
    accepted(&gate, HANDLE, CID);
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![ACL],
        vec![ACL, 0x40, 0x10, 0, 0],
        vec![ACL, 0x40, 0x20, 0, 0],
        vec![ACL, 0x40, 0x20, 3, 0, 1, 2, 3],
        acl(HANDLE, true, &[0, 0, 0x41, 0]),
        acl(HANDLE, true, &[1, 0, 0x41, 0, 9]),
        acl(HANDLE, false, &[0xFF; 10]),
        acl(HANDLE, true, &[0xFF, 0xFF, 0x41, 0]),
        acl(
            HANDLE,
            true,
            &l2cap(SIGNALLING, &[LE_CREDIT_CONNECTION_RESPONSE]),
        ),
        vec![EVENT, DISCONNECTION_COMPLETE],
    ];
    for input in &inputs {
        gate.sent(input);
        gate.received(input.clone());
        drain(&gate);
    }
    for length in 0..64usize {
        let bytes: Vec<u8> = (0..length).map(|i| (i * 37 + length) as u8).collect();
        gate.sent(&bytes);
        gate.received(bytes.clone());
        gate.received(acl(HANDLE, true, &bytes));
        gate.received(acl(HANDLE, false, &bytes));
        drain(&gate);
    }
}
