//! What waits to be sent on a link: control frames first, then fragments of the transfers in
//! progress, taken in turn so that transfers interleave fairly.

use std::collections::VecDeque;

use acm_transport::FrameBuf;
use acm_wire::FLAG_MORE;
use acm_wire::Fragmenter;
use acm_wire::budget::Charge;
use acm_wire::pb::FrameType;
use bytes::Bytes;

#[derive(Debug)]
struct Transfer {
    channel: u32,
    transfer_id: u32,
    fragments: Fragmenter,
    /// The data's bytes, charged against the device's budget until the transfer leaves.
    _charge: Option<Charge>,
}

/// A fragment of a transfer handed out: how far the transfer has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) channel: u32,
    pub(crate) transfer_id: u32,
    /// The transfer's bytes handed out so far, this fragment's included.
    pub(crate) sent: u64,
    /// The transfer's whole length.
    pub(crate) total: u64,
    /// Whether this was its last fragment.
    pub(crate) done: bool,
}

/// A transfer that has left the queue, whole or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransferDone {
    pub(crate) channel: u32,
    pub(crate) transfer_id: u32,
}

/// A control frame waiting, and whether it answers a frame of the peer's.
#[derive(Debug)]
struct Queued {
    frame: Bytes,
    answer: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Outbound {
    control: VecDeque<Queued>,
    /// How many of `control` are answers to the peer's frames.
    answers: usize,
    /// The bytes of `control`, added up.
    control_bytes: usize,
    /// Whether the last control frame taken out was a piece of a split body with more to come
    /// (FLAG_MORE): its other pieces go before any other frame (SPEC `FRAME-10`).
    mid_body: bool,
    transfers: VecDeque<Transfer>,
}

/// Control frames, queued in order.
impl Extend<Bytes> for Outbound {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, frames: I) {
        self.push_control(frames);
    }
}

/// Control frames that answer the peer's, queued in order with the others
/// ([`Outbound::answering`]).
pub(crate) struct Answering<'a>(&'a mut Outbound);

impl Extend<Bytes> for Answering<'_> {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, frames: I) {
        self.0.push(frames, true);
    }
}

impl Outbound {
    pub(crate) fn push_control(&mut self, frames: impl IntoIterator<Item = Bytes>) {
        self.push(frames, false);
    }

    /// The queue, as a sink of frames that answer the peer's.
    pub(crate) fn answering(&mut self) -> Answering<'_> {
        Answering(self)
    }

    fn push(&mut self, frames: impl IntoIterator<Item = Bytes>, answer: bool) {
        for frame in frames {
            self.control_bytes = self.control_bytes.saturating_add(frame.len());
            self.answers = self.answers.saturating_add(usize::from(answer));
            self.control.push_back(Queued { frame, answer });
        }
    }

    /// Answers to the peer's frames waiting.
    pub(crate) fn answers_len(&self) -> usize {
        self.answers
    }

    /// The bytes of the control frames waiting.
    pub(crate) fn control_bytes(&self) -> usize {
        self.control_bytes
    }

    pub(crate) fn push_transfer(
        &mut self,
        channel: u32,
        transfer_id: u32,
        fragments: Fragmenter,
        charge: Option<Charge>,
    ) {
        self.transfers.push_back(Transfer {
            channel,
            transfer_id,
            fragments,
            _charge: charge,
        });
    }

    /// Control frames waiting.
    pub(crate) fn control_len(&self) -> usize {
        self.control.len()
    }

    /// Transfers waiting.
    pub(crate) fn transfers_len(&self) -> usize {
        self.transfers.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.control.is_empty() && self.transfers.is_empty()
    }

    /// The next frame to send, and for a transfer's fragment, how far the transfer has got. A
    /// DATA frame comes as its headers and its chunk, which shares the app's data.
    pub(crate) fn next(&mut self) -> Option<(FrameBuf, Option<Sent>)> {
        if let Some(Queued { frame, answer }) = self.control.pop_front() {
            self.mid_body = more_follows(&frame);
            self.answers = self.answers.saturating_sub(usize::from(answer));
            self.control_bytes = self.control_bytes.saturating_sub(frame.len());
            return Some((frame.into(), None));
        }
        let mut transfer = self.transfers.pop_front()?;
        let (headers, chunk) = transfer.fragments.next_parts()?;
        let frame = FrameBuf::new(headers, chunk);
        let done = transfer.fragments.remaining_frames() == 0;
        let sent = Sent {
            channel: transfer.channel,
            transfer_id: transfer.transfer_id,
            sent: transfer.fragments.sent_len(),
            total: transfer.fragments.total_len(),
            done,
        };
        if !done {
            self.transfers.push_back(transfer);
        }
        Some((frame, Some(sent)))
    }

    /// Drops the transfers of `channel`, returning them.
    pub(crate) fn abort_channel(&mut self, channel: u32) -> Vec<TransferDone> {
        let mut aborted = Vec::new();
        self.transfers.retain(|t| {
            if t.channel == channel {
                aborted.push(TransferDone {
                    channel,
                    transfer_id: t.transfer_id,
                });
            }
            t.channel != channel
        });
        aborted
    }

    /// Drops the control frames waiting: the link can carry nothing more.
    pub(crate) fn clear_control(&mut self) {
        self.control.clear();
        self.answers = 0;
        self.control_bytes = 0;
    }

    /// Drops the control frames waiting, as [`Outbound::clear_control`] does, but those that
    /// must come before a LINK_CLOSE queued next: the link's HELLO if it has not been sent (SPEC
    /// `LINK-1`), and the rest of a split body whose first pieces have (`FRAME-10`).
    pub(crate) fn clear_control_after_hello(&mut self) {
        let mut kept = VecDeque::new();
        let hello_first = self
            .control
            .front()
            .is_some_and(|queued| queued.frame.get(3) == Some(&(FrameType::Hello as u8)));
        if hello_first {
            kept.extend(self.control.pop_front());
        } else if self.mid_body {
            while let Some(piece) = self.control.pop_front() {
                let more = more_follows(&piece.frame);
                kept.push_back(piece);
                if !more {
                    break;
                }
            }
        }
        self.clear_control();
        self.answers = kept.iter().filter(|queued| queued.answer).count();
        self.control_bytes = kept.iter().map(|queued| queued.frame.len()).sum();
        self.control = kept;
    }

    /// Drops the transfers, returning them: they were cut short. Control frames already queued
    /// (a HELLO not yet sent, answers, closes) still go out, before a LINK_CLOSE queued after.
    pub(crate) fn clear_transfers(&mut self) -> Vec<TransferDone> {
        self.transfers
            .drain(..)
            .map(|t| TransferDone {
                channel: t.channel,
                transfer_id: t.transfer_id,
            })
            .collect()
    }
}

/// Whether `frame` is a piece of a split body with more pieces to come (FLAG_MORE).
fn more_follows(frame: &[u8]) -> bool {
    frame.get(4).is_some_and(|flags| flags & FLAG_MORE != 0)
}
