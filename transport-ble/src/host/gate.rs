//! Holds back the SDUs of an acm channel that the host stack has no room for, instead of letting
//! it drop them.
//!
//! trouble-host queues each channel's received SDUs (at most
//! [`L2CAP_RX_QUEUE_SIZE`](trouble_host::config::L2CAP_RX_QUEUE_SIZE)) and drops an SDU that
//! finds the queue full. Its credits do not prevent that: each time the reader takes one SDU, it
//! gives the peer back a credit for every K-frame *received* since its last grant, including the
//! ones still queued. A reader that takes one SDU while the queue is full so lets the peer send a
//! whole window more than there is room for, and all but one of those SDUs are lost.
//!
//! The gate sits on the HCI stream between the controller and the host stack. It reassembles
//! each ACL connection's L2CAP PDUs, learns the acm channels from the signalling that opens them,
//! counts for each channel the SDUs handed to the host stack and not yet taken by the channel's
//! reader, and holds a channel's K-frames back while the host stack's queue is full. The reader
//! reports each SDU it takes ([`Gate::taken`]), which lets held K-frames go on, in order.
//!
//! The peer cannot send more than the credits it holds, and the host stack only grants credits
//! for K-frames it was handed: what the gate holds for a channel stays within the credits that
//! channel grants, and the peer is held back once they are used: credits return as the reader
//! takes SDUs (SPEC `BLE-2`), and no SDU is lost (`BLE-3`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use tokio::sync::Notify;

use super::stream::{ACL, EVENT};

/// The most SDUs the host stack queues on a channel.
const HOST_QUEUE: usize = trouble_host::config::L2CAP_RX_QUEUE_SIZE;
/// The longest ACL payload handed to the host stack in one packet (its buffer holds 255 bytes).
pub(crate) const MAX_FRAGMENT: usize = 251;
/// The packet-boundary bits of an ACL header's handle field, and their values.
const BOUNDARY_MASK: u16 = 0x3000;
const CONTINUING: u16 = 0x1000;
/// The connection handle bits of an ACL header's handle field.
const HANDLE_MASK: u16 = 0x0FFF;
/// The HCI Disconnection Complete event.
const DISCONNECTION_COMPLETE: u8 = 0x05;
/// The LE signalling channel and the commands the gate reads on it.
const SIGNALLING: u16 = 0x0005;
const LE_CREDIT_CONNECTION_REQUEST: u8 = 0x14;
const LE_CREDIT_CONNECTION_RESPONSE: u8 = 0x15;
/// The first channel id of the dynamically allocated range.
const FIRST_DYNAMIC_CID: u16 = 0x0040;

/// How a channel was opened, as seen from this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opened {
    /// This side asked for it (it dialed).
    Dialed,
    /// The peer asked for it and this side accepted.
    Accepted,
}

/// One acm channel the gate watches.
#[derive(Debug)]
struct Channel {
    side: Opened,
    /// When the channel opened, to tell the newest of its kind.
    order: u64,
    /// Whether a reader has claimed it.
    claimed: bool,
    /// SDUs handed to the host stack and not yet taken by the reader.
    queued: usize,
    /// Bytes still to come of the SDU whose K-frames the host stack is being handed.
    sdu_left: usize,
    /// Complete K-frames held back (the handle field of their first fragment, the L2CAP PDU).
    held: VecDeque<(u16, Vec<u8>)>,
}

/// The L2CAP PDU being reassembled on a connection.
#[derive(Debug)]
struct Assembly {
    /// The handle field of the PDU's first fragment.
    flags: u16,
    /// The PDU so far, its header included.
    bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Packets ready for the host stack, in order.
    out: VecDeque<Vec<u8>>,
    /// By connection handle.
    assembling: HashMap<u16, Assembly>,
    /// By connection handle and local channel id.
    channels: HashMap<(u16, u16), Channel>,
    /// The channel id this side asked for, by connection handle and request identifier.
    requests: HashMap<(u16, u8), u16>,
    opened: u64,
}

/// The gate of one host's HCI stream (see the module's documentation).
#[derive(Debug, Default)]
pub(crate) struct Gate {
    inner: RefCell<Inner>,
    released: Notify,
}

impl Gate {
    /// Takes in a packet from the controller (H4, indicator first).
    pub(crate) fn received(&self, packet: Vec<u8>) {
        let mut inner = self.inner.borrow_mut();
        match packet.first() {
            Some(&ACL) if packet.len() >= 5 => inner.acl_from_controller(packet),
            Some(&EVENT) => {
                if let [_, DISCONNECTION_COMPLETE, _, 0, lo, hi, ..] = packet[..] {
                    inner.disconnected(u16::from_le_bytes([lo, hi]) & HANDLE_MASK);
                }
                inner.out.push_back(packet);
            }
            _ => inner.out.push_back(packet),
        }
    }

    /// The next packet for the host stack, if one is ready.
    pub(crate) fn next(&self) -> Option<Vec<u8>> {
        self.inner.borrow_mut().out.pop_front()
    }

    /// Resolves once K-frames held back were let go (poll it before checking [`Gate::next`]).
    pub(crate) async fn released(&self) {
        self.released.notified().await;
    }

    /// Notes a packet the host stack sends the controller (H4, indicator first): the channels it
    /// asks for and accepts.
    pub(crate) fn sent(&self, packet: &[u8]) {
        let Some((handle, flags, pdu)) = acl_parts(packet) else {
            return;
        };
        if flags & BOUNDARY_MASK == CONTINUING {
            return;
        }
        let Some((SIGNALLING, body)) = l2cap_parts(pdu) else {
            return;
        };
        let mut inner = self.inner.borrow_mut();
        match body {
            // LE Credit Based Connection Request: SPSM, source CID (ours), MTU, MPS, credits.
            [LE_CREDIT_CONNECTION_REQUEST, id, _, _, _, _, lo, hi, ..] => {
                inner
                    .requests
                    .insert((handle, *id), u16::from_le_bytes([*lo, *hi]));
            }
            // LE Credit Based Connection Response: destination CID (ours), MTU, MPS, credits,
            // result.
            [
                LE_CREDIT_CONNECTION_RESPONSE,
                _,
                _,
                _,
                lo,
                hi,
                _,
                _,
                _,
                _,
                _,
                _,
                0,
                0,
                ..,
            ] => {
                inner.open(handle, u16::from_le_bytes([*lo, *hi]), Opened::Accepted);
            }
            _ => {}
        }
    }

    /// Claims the newest channel opened on connection `handle` as `side` that no reader has
    /// claimed yet, returning its local channel id. The reader of a channel claims it as soon as
    /// the host stack hands it the channel, and reports every SDU it takes from then on.
    pub(crate) fn claim(&self, handle: u16, side: Opened) -> Option<u16> {
        let mut inner = self.inner.borrow_mut();
        let (&(_, cid), channel) = inner
            .channels
            .iter_mut()
            .filter(|((h, _), channel)| *h == handle && channel.side == side && !channel.claimed)
            .max_by_key(|(_, channel)| channel.order)?;
        channel.claimed = true;
        Some(cid)
    }

    /// The reader of channel `cid` on connection `handle` took an SDU from the host stack: room
    /// for one more, so held K-frames may go on.
    pub(crate) fn taken(&self, handle: u16, cid: u16) {
        let mut inner = self.inner.borrow_mut();
        let Some(channel) = inner.channels.get_mut(&(handle, cid)) else {
            return;
        };
        channel.queued = channel.queued.saturating_sub(1);
        if inner.release(handle, cid) {
            self.released.notify_one();
        }
    }

    /// Forgets channel `cid` on connection `handle` (it is down), with what it held.
    pub(crate) fn forget(&self, handle: u16, cid: u16) {
        self.inner.borrow_mut().channels.remove(&(handle, cid));
    }
}

impl Inner {
    fn acl_from_controller(&mut self, packet: Vec<u8>) {
        let Some((handle, flags, data)) = acl_parts(&packet) else {
            self.out.push_back(packet);
            return;
        };
        if flags & BOUNDARY_MASK == CONTINUING {
            match self.assembling.get_mut(&handle) {
                Some(assembly) => assembly.bytes.extend_from_slice(data),
                // A continuation of nothing: the host stack says what it makes of it.
                None => {
                    self.out.push_back(packet);
                    return;
                }
            }
        } else {
            // A PDU left unfinished goes on as it came; a new one begins.
            if let Some(unfinished) = self.assembling.remove(&handle) {
                self.out.extend(cut(unfinished.flags, &unfinished.bytes));
            }
            self.assembling.insert(
                handle,
                Assembly {
                    flags,
                    bytes: data.to_vec(),
                },
            );
        }
        let complete = self.assembling.get(&handle).is_some_and(|assembly| {
            let bytes = &assembly.bytes;
            bytes.len() >= 4
                && bytes.len() >= 4 + usize::from(u16::from_le_bytes([bytes[0], bytes[1]]))
        });
        if complete && let Some(assembly) = self.assembling.remove(&handle) {
            self.pdu(handle, assembly.flags, assembly.bytes);
        }
    }

    /// A whole L2CAP PDU from the controller on connection `handle`.
    fn pdu(&mut self, handle: u16, flags: u16, pdu: Vec<u8>) {
        let Some((cid, body)) = l2cap_parts(&pdu) else {
            self.out.extend(cut(flags, &pdu));
            return;
        };
        if cid == SIGNALLING {
            // LE Credit Based Connection Response to this side's request: destination CID,
            // MTU, MPS, credits, result.
            if let [
                LE_CREDIT_CONNECTION_RESPONSE,
                id,
                _,
                _,
                _,
                _,
                _,
                _,
                _,
                _,
                _,
                _,
                lo,
                hi,
                ..,
            ] = *body
                && let Some(ours) = self.requests.remove(&(handle, id))
                && u16::from_le_bytes([lo, hi]) == 0
            {
                self.open(handle, ours, Opened::Dialed);
            }
        }
        match self.channels.get_mut(&(handle, cid)) {
            Some(channel) if !channel.held.is_empty() || channel.queued >= HOST_QUEUE => {
                channel.held.push_back((flags, pdu));
            }
            Some(channel) => {
                channel.hand_over(&pdu);
                self.out.extend(cut(flags, &pdu));
            }
            None => self.out.extend(cut(flags, &pdu)),
        }
    }

    fn open(&mut self, handle: u16, cid: u16, side: Opened) {
        if cid < FIRST_DYNAMIC_CID {
            return;
        }
        self.opened += 1;
        self.channels.insert(
            (handle, cid),
            Channel {
                side,
                order: self.opened,
                claimed: false,
                queued: 0,
                sdu_left: 0,
                held: VecDeque::new(),
            },
        );
    }

    /// Hands the host stack the K-frames held for a channel while it has room; whether any went.
    fn release(&mut self, handle: u16, cid: u16) -> bool {
        let Some(channel) = self.channels.get_mut(&(handle, cid)) else {
            return false;
        };
        let mut any = false;
        while channel.queued < HOST_QUEUE {
            let Some((flags, pdu)) = channel.held.pop_front() else {
                break;
            };
            channel.hand_over(&pdu);
            self.out.extend(cut(flags, &pdu));
            any = true;
        }
        any
    }

    /// The connection `handle` is gone, and its channels with it.
    fn disconnected(&mut self, handle: u16) {
        self.assembling.remove(&handle);
        self.channels.retain(|(h, _), _| *h != handle);
        self.requests.retain(|(h, _), _| *h != handle);
    }
}

impl Channel {
    /// Counts a K-frame (a whole L2CAP PDU) handed to the host stack: the SDU it completes joins
    /// the host stack's queue.
    fn hand_over(&mut self, pdu: &[u8]) {
        let payload = pdu.get(4..).unwrap_or_default();
        if self.sdu_left == 0 {
            let [lo, hi, rest @ ..] = payload else {
                return;
            };
            let sdu_len = usize::from(u16::from_le_bytes([*lo, *hi]));
            if rest.len() >= sdu_len {
                self.queued += 1;
            } else {
                self.sdu_left = sdu_len - rest.len();
            }
        } else if payload.len() >= self.sdu_left {
            self.sdu_left = 0;
            self.queued += 1;
        } else {
            self.sdu_left -= payload.len();
        }
    }
}

/// An ACL packet's connection handle, handle field and payload.
fn acl_parts(packet: &[u8]) -> Option<(u16, u16, &[u8])> {
    let [ACL, lo, hi, _, _, data @ ..] = packet else {
        return None;
    };
    let flags = u16::from_le_bytes([*lo, *hi]);
    Some((flags & HANDLE_MASK, flags, data))
}

/// An L2CAP PDU's channel id and payload.
fn l2cap_parts(pdu: &[u8]) -> Option<(u16, &[u8])> {
    let [_, _, lo, hi, body @ ..] = pdu else {
        return None;
    };
    Some((u16::from_le_bytes([*lo, *hi]), body))
}

/// The ACL packets that carry `pdu` to the host stack: a first fragment with the handle field
/// `flags`, then continuing ones, each at most [`MAX_FRAGMENT`] bytes.
pub(crate) fn cut(flags: u16, pdu: &[u8]) -> Vec<Vec<u8>> {
    if pdu.is_empty() {
        return vec![acl_packet(flags, pdu)];
    }
    pdu.chunks(MAX_FRAGMENT)
        .enumerate()
        .map(|(i, chunk)| {
            let flags = if i == 0 {
                flags
            } else {
                (flags & !BOUNDARY_MASK) | CONTINUING
            };
            acl_packet(flags, chunk)
        })
        .collect()
}

fn acl_packet(flags: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(5 + payload.len());
    packet.push(ACL);
    packet.extend_from_slice(&flags.to_le_bytes());
    // A payload here is at most MAX_FRAGMENT bytes: its length fits 16 bits.
    packet.extend_from_slice(&u16::try_from(payload.len()).unwrap_or(0).to_le_bytes());
    packet.extend_from_slice(payload);
    packet
}

#[cfg(test)]
mod tests {
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
}
