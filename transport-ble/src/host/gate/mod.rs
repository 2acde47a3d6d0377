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
mod tests;
