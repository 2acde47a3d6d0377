//! The faults a test can inject into one direction of a link, and the code that mangles frames.

use std::num::NonZeroU64;
use std::time::Duration;

use bytes::Bytes;

use crate::rng::SplitMix64;

/// A fault to inject into one direction of a link (the frames that flow from one device to the
/// other) with [`LinkHandle::inject`](crate::LinkHandle::inject).
///
/// The counted faults (drop, truncate, corrupt) act on the frames *sent* after the injection,
/// in the order they are sent, and add up when injected again. When several are pending for
/// the same frame they apply in the order of the variants: a dropped frame takes no other
/// fault; the bytes dropped from its start come off before it is truncated, and it is
/// truncated before it is corrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Holds every frame in this direction, old and new, until [`Fault::Unstall`]: nothing is
    /// delivered, and the sender meets backpressure once the link's buffer is full. A graceful
    /// close reaches the receiver only after the held frames.
    Stall,
    /// Lets the frames held by [`Fault::Stall`] flow again.
    Unstall,
    /// Discards the next `n` frames whole.
    DropFrames(u64),
    /// Removes the next `n` bytes from the start of the upcoming frames; a frame that loses all
    /// its bytes vanishes and the rest come off the next ones.
    DropBytes(u64),
    /// Cuts each of the next `n` frames to a random length (chosen by the network's seed) from
    /// 1 byte to one byte short of the whole, so that each keeps a non-empty prefix and loses a
    /// non-empty tail. A 1-byte frame counts as one of the `n` and arrives whole.
    TruncateFrames(u64),
    /// Cuts the next frame short by `n` bytes. A frame of `n` bytes or fewer keeps its first
    /// byte: a truncated frame is never empty.
    TruncateBytes(u64),
    /// Changes one byte, at a random position, of each of the next `n` frames, by XOR with a
    /// random non-zero value (both chosen by the network's seed).
    CorruptFrames(u64),
    /// Changes each of the next `n` bytes, counted from the start of the upcoming frames, by
    /// XOR with a random non-zero value (chosen by the network's seed).
    CorruptBytes(u64),
    /// Delivers each frame sent from now on no earlier than its send time plus this delay
    /// (after any bandwidth delay). Order is kept: a frame never overtakes an earlier one.
    /// `Duration::ZERO` removes the delay.
    Latency(Duration),
    /// Caps the throughput at this many bytes per second: a frame of `len` bytes takes
    /// `len / bandwidth` seconds to cross, starting once the previous one has crossed.
    /// `None` removes the cap.
    Bandwidth(Option<NonZeroU64>),
    /// Sets the largest frame the sending device may send in this direction; its end of the
    /// link reports it from [`Link::max_frame_size`](acm_transport::Link::max_frame_size).
    /// Frames already sent are not affected.
    MaxFrameSize(usize),
    /// Lifts every fault of this direction: unstalls it, removes its latency and bandwidth cap,
    /// and forgets the pending drop, truncate and corrupt counts. The maximum frame size stays.
    Heal,
}

/// The counted faults still pending for one direction.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Mangler {
    drop_frames: u64,
    drop_bytes: u64,
    truncate_frames: u64,
    truncate_bytes: u64,
    corrupt_frames: u64,
    corrupt_bytes: u64,
}

impl Mangler {
    /// Adds a counted fault; returns `false`, changing nothing, for any other fault.
    pub(crate) fn add(&mut self, fault: &Fault) -> bool {
        let (count, n) = match fault {
            Fault::DropFrames(n) => (&mut self.drop_frames, n),
            Fault::DropBytes(n) => (&mut self.drop_bytes, n),
            Fault::TruncateFrames(n) => (&mut self.truncate_frames, n),
            Fault::TruncateBytes(n) => (&mut self.truncate_bytes, n),
            Fault::CorruptFrames(n) => (&mut self.corrupt_frames, n),
            Fault::CorruptBytes(n) => (&mut self.corrupt_bytes, n),
            _ => return false,
        };
        *count = count.saturating_add(*n);
        true
    }

    /// Whether no counted fault is pending: frames pass untouched.
    pub(crate) fn is_idle(&self) -> bool {
        *self == Self::default()
    }

    /// Applies the pending faults to the next frame sent: the frame to deliver, or `None` if it
    /// vanishes. Draws from `rng` only for the faults that need chance.
    pub(crate) fn apply(&mut self, mut frame: Bytes, rng: &mut SplitMix64) -> Option<Bytes> {
        if take_one(&mut self.drop_frames) {
            return None;
        }
        let dropped = take_up_to(&mut self.drop_bytes, frame.len());
        if dropped == frame.len() {
            return None;
        }
        frame = frame.slice(dropped..);
        if take_one(&mut self.truncate_frames) && frame.len() > 1 {
            frame.truncate(1 + rng.index(frame.len() - 1));
        }
        if self.truncate_bytes > 0 {
            let cut = take_up_to(&mut self.truncate_bytes, frame.len() - 1);
            self.truncate_bytes = 0;
            frame.truncate(frame.len() - cut);
        }
        if self.corrupt_frames == 0 && self.corrupt_bytes == 0 {
            return Some(frame);
        }
        let mut bytes = frame.to_vec();
        if take_one(&mut self.corrupt_frames) {
            let at = rng.index(bytes.len());
            if let Some(byte) = bytes.get_mut(at) {
                *byte ^= rng.nonzero_byte();
            }
        }
        let corrupted = take_up_to(&mut self.corrupt_bytes, bytes.len());
        for byte in bytes.iter_mut().take(corrupted) {
            *byte ^= rng.nonzero_byte();
        }
        Some(Bytes::from(bytes))
    }
}

/// Takes one from `count` if it is not 0; says whether it did.
fn take_one(count: &mut u64) -> bool {
    if *count == 0 {
        return false;
    }
    *count -= 1;
    true
}

/// Takes up to `limit` from `count`; returns how much it took.
fn take_up_to(count: &mut u64, limit: usize) -> usize {
    let taken = usize::try_from(*count).map_or(limit, |count| count.min(limit));
    *count -= taken as u64;
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mangle(faults: &[Fault], frames: &[&'static [u8]]) -> Vec<Option<Vec<u8>>> {
        let mut mangler = Mangler::default();
        for fault in faults {
            assert!(mangler.add(fault));
        }
        let mut rng = SplitMix64::new(1);
        frames
            .iter()
            .map(|frame| {
                mangler
                    .apply(Bytes::from_static(frame), &mut rng)
                    .map(|f| f.to_vec())
            })
            .collect()
    }

    #[test]
    fn only_counted_faults_are_added() {
        let mut mangler = Mangler::default();
        assert!(!mangler.add(&Fault::Stall));
        assert!(!mangler.add(&Fault::Latency(Duration::from_millis(1))));
        assert!(mangler.add(&Fault::DropFrames(u64::MAX)));
        assert!(mangler.add(&Fault::DropFrames(1)));
        assert_eq!(mangler.drop_frames, u64::MAX);
    }

    #[test]
    fn a_dropped_frame_takes_no_other_fault() {
        let out = mangle(
            &[Fault::DropFrames(1), Fault::TruncateBytes(1)],
            &[b"abc", b"def"],
        );
        assert_eq!(out, vec![None, Some(b"de".to_vec())]);
    }

    #[test]
    fn dropped_bytes_span_frames_and_empty_frames_vanish() {
        let out = mangle(&[Fault::DropBytes(4)], &[b"abc", b"defg", b"h"]);
        assert_eq!(out, vec![None, Some(b"efg".to_vec()), Some(b"h".to_vec())]);
    }

    #[test]
    fn truncation_by_bytes_keeps_the_first_byte() {
        let out = mangle(&[Fault::TruncateBytes(10)], &[b"abc", b"def"]);
        assert_eq!(out, vec![Some(b"a".to_vec()), Some(b"def".to_vec())]);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let out = mangle(
            &[Fault::DropBytes(u64::MAX), Fault::CorruptBytes(u64::MAX)],
            &[b"abc"],
        );
        assert_eq!(out, vec![None]);
    }
}
