//! The progress of data transfers, seen from the link's frames: the driver looks at each DATA
//! frame it hands to the link or takes from it, so the engine needs to know nothing of it and
//! nothing is added to the wire (the FIRST fragment carries the transfer's length).

use crate::HashMap;

use acm_transport::FrameBuf;
use acm_wire::frame::type_code;
use acm_wire::header::{FrameHeader, HEADER_LEN};
use acm_wire::pb::FrameType;
use acm_wire::{DataFragment, FIRST_DATA_HEADER_LEN, Frame};
use bytes::Bytes;
use tokio::sync::watch;

/// Receive-side progress is reported at most every this many bytes, or every hundredth of the
/// transfer when that is larger, and once more when the transfer is whole.
pub(crate) const PROGRESS_STEP: u64 = 64 * 1024;

/// What progress needs to know of one DATA frame. It holds no reference to the frame's bytes:
/// the engine, which takes the frame next, then holds the only one and can keep a large chunk
/// as it arrived instead of copying it (see `acm_wire::Reassembler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FragmentInfo {
    /// The session's channel.
    pub(crate) channel: u32,
    /// The transfer the fragment belongs to.
    pub(crate) transfer_id: u32,
    /// The transfer's whole length, on FIRST fragments.
    pub(crate) total_length: Option<u64>,
    /// Whether this is the transfer's last fragment.
    pub(crate) last: bool,
    /// The data bytes the fragment carries.
    pub(crate) len: u64,
}

impl From<&DataFragment> for FragmentInfo {
    fn from(fragment: &DataFragment) -> Self {
        Self {
            channel: fragment.channel,
            transfer_id: fragment.transfer_id,
            total_length: fragment.total_length,
            last: fragment.last,
            len: fragment.chunk.len() as u64,
        }
    }
}

/// What progress needs of a DATA frame, or `None` for any other frame (or a malformed one,
/// which the engine judges on its own). Reads only the frame's headers, wherever the frame is
/// split.
pub(crate) fn fragment_info(message: &FrameBuf) -> Option<FragmentInfo> {
    let mut start = [0u8; HEADER_LEN + FIRST_DATA_HEADER_LEN];
    let got = message.copy_prefix(&mut start);
    let header = FrameHeader::parse(&start[..got]).ok()?;
    if header.frame_type != type_code(FrameType::Data) {
        return None;
    }
    // The data header shares the frame's buffer when the first part holds it (no copy on a
    // path every DATA frame takes); a frame split inside its headers gets a copy.
    let data_header = if message.head().len() >= got {
        message.head().slice(HEADER_LEN..got)
    } else {
        Bytes::copy_from_slice(start.get(HEADER_LEN..got)?)
    };
    let mut frame = Frame::new(header.version, FrameType::Data, header.channel, data_header);
    frame.flags = header.flags;
    let fragment = DataFragment::parse(&frame).ok()?;
    // What follows the data header in `start` is the chunk's first bytes.
    let headers = got.saturating_sub(fragment.chunk.len());
    Some(FragmentInfo {
        len: message.len().saturating_sub(headers) as u64,
        ..FragmentInfo::from(&fragment)
    })
}

/// What one receiving transfer has seen.
#[derive(Debug, Clone, Copy)]
struct Incoming {
    received: u64,
    total: u64,
    reported: u64,
}

/// The progress of the transfers of one link, both ways.
#[derive(Debug, Default)]
pub(crate) struct TransferProgress {
    /// Outgoing transfers whose sender asked for progress: bytes handed to the link.
    sending: HashMap<(u32, u32), watch::Sender<u64>>,
    /// Incoming transfers by (channel, transfer id).
    receiving: HashMap<(u32, u32), Incoming>,
}

impl TransferProgress {
    /// Reports the bytes of `transfer` on `channel` handed to the link through `progress`.
    pub(crate) fn watch_sending(
        &mut self,
        channel: u32,
        transfer: u32,
        progress: watch::Sender<u64>,
    ) {
        self.sending.insert((channel, transfer), progress);
    }

    /// Forgets an outgoing transfer (sent whole or aborted).
    pub(crate) fn forget_sending(&mut self, channel: u32, transfer: u32) {
        self.sending.remove(&(channel, transfer));
    }

    /// Counts a frame handed to the link.
    pub(crate) fn on_sent_frame(&mut self, frame: &FrameBuf) {
        if self.sending.is_empty() {
            return;
        }
        let Some(fragment) = fragment_info(frame) else {
            return;
        };
        if let Some(progress) = self.sending.get(&(fragment.channel, fragment.transfer_id)) {
            progress.send_modify(|sent| *sent += fragment.len);
        }
    }

    /// Counts a fragment received on a connected session; returns `(received, total)` when it
    /// is time to report (a step further, or the transfer's last fragment).
    pub(crate) fn on_received(&mut self, fragment: &FragmentInfo) -> Option<(u64, u64)> {
        let key = (fragment.channel, fragment.transfer_id);
        let entry = match fragment.total_length {
            Some(total) => self.receiving.entry(key).insert_entry(Incoming {
                received: 0,
                total,
                reported: 0,
            }),
            None => match self.receiving.entry(key) {
                std::collections::hash_map::Entry::Occupied(entry) => entry,
                std::collections::hash_map::Entry::Vacant(_) => return None,
            },
        };
        let incoming = entry.into_mut();
        incoming.received += fragment.len;
        let Incoming {
            received,
            total,
            reported,
        } = *incoming;
        if fragment.last {
            self.receiving.remove(&key);
            return Some((received, total));
        }
        let step = PROGRESS_STEP.max(total / 100);
        if received - reported >= step {
            incoming.reported = received;
            return Some((received, total));
        }
        None
    }

    /// Forgets the transfers of a session that ended.
    pub(crate) fn forget_channel(&mut self, channel: u32) {
        self.sending.retain(|(c, _), _| *c != channel);
        self.receiving.retain(|(c, _), _| *c != channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acm_wire::{Control, pb};

    fn fragment(index: u32, total: Option<u64>, len: usize, last: bool) -> DataFragment {
        DataFragment {
            channel: 1,
            transfer_id: 7,
            index,
            total_length: total,
            last,
            chunk: Bytes::from(vec![0; len]),
        }
    }

    fn info(index: u32, total: Option<u64>, len: usize, last: bool) -> FragmentInfo {
        FragmentInfo::from(&fragment(index, total, len, last))
    }

    #[test]
    fn reports_every_step_and_at_the_end() {
        let mut progress = TransferProgress::default();
        let chunk = 16 * 1024;
        let total = 10 * chunk as u64;
        let mut reports = Vec::new();
        for index in 0..10 {
            let first = (index == 0).then_some(total);
            if let Some(report) = progress.on_received(&info(index, first, chunk, index == 9)) {
                reports.push(report);
            }
        }
        assert_eq!(reports, [(65536, total), (131072, total), (total, total)]);
        assert!(progress.receiving.is_empty());
    }

    #[test]
    fn a_fragment_without_its_first_is_not_counted() {
        let mut progress = TransferProgress::default();
        assert_eq!(progress.on_received(&info(3, None, 10, true)), None);
    }

    #[test]
    fn data_frames_are_recognised_wherever_they_are_split_and_others_are_not() {
        for (first, len) in [(Some(5), 5), (None, 40)] {
            let fragment = fragment(u32::from(first.is_none()), first, len, true);
            let frame = fragment.to_frame(1).unwrap().to_bytes().unwrap();
            let expected = Some(FragmentInfo::from(&fragment));
            assert_eq!(fragment_info(&FrameBuf::from(frame.clone())), expected);
            for at in 0..=frame.len() {
                let split = FrameBuf::new(frame.slice(..at), frame.slice(at..));
                assert_eq!(fragment_info(&split), expected, "split at {at}");
            }
        }
        let nonsense = FrameBuf::from(Bytes::from_static(b"nonsense"));
        assert_eq!(fragment_info(&nonsense), None);
        let message = pb::Message { text: "hi".into() };
        let control = Control::Message(message).to_frame(1, 7);
        assert_eq!(fragment_info(&control.to_bytes().unwrap().into()), None);
    }

    #[test]
    fn the_info_of_a_frame_holds_none_of_its_bytes() {
        let frame = fragment(0, Some(20_000), 20_000, true)
            .to_frame(1)
            .unwrap()
            .to_bytes()
            .unwrap();
        let frame = FrameBuf::from(frame);
        let info = fragment_info(&frame).unwrap();
        assert_eq!(info.len, 20_000);
        // The engine takes the frame next: it must be its only user, or the reassembler copies.
        assert!(frame.into_bytes().is_unique());
    }
}
