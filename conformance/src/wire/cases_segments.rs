//! Segmented links (SPEC section 16), written segment by segment below the segmentation: the
//! segment layout, frames rebuilt from segments, the largest frame, and how a failed segmented
//! link closes (`LINK-12`'s code `0x5E6`).

use acm_transport::{Closure, Link, TransportError};
use acm_wire::pb::{self, FrameType, LinkCloseReason};
use acm_wire::segment::{Desegmenter, MORE, segments};
use acm_wire::{Control, DataFragment, Frame, FrameKind};
use bytes::Bytes;

use super::peer::{ANSWER, Peer, Step, describe};
use super::target::{SEGMENT_MESSAGE, WireTarget};
use super::{Needs, WireCase, wire_case};
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    [
        wire_case!(
            "wire/SEG-1/frames-travel-as-segments",
            ["SEG-1", "SEG-2"],
            "HELLOs and a 1000-byte message cross as segments: the implementation rebuilds the suite's (cut smaller than needed) and sends well-formed ones",
            as_segments
        ),
        wire_case!(
            "wire/SEG-1/segments-of-two-frames-interleaved",
            ["SEG-1", "FRAME-9"],
            "a frame whose segments another frame interrupts is rebuilt wrong: the link closes with PROTOCOL_ERROR",
            interleaved
        )
        .breaking("SEG-1"),
        wire_case!(
            "wire/SEG-2/reserved-header-bit",
            ["SEG-2", "LINK-12"],
            "a segment header with bit 0x02 set fails the link, closed with code 0x5E6",
            reserved_bit
        )
        .breaking("SEG-2"),
        wire_case!(
            "wire/SEG-2/segment-without-frame-bytes",
            ["SEG-2", "LINK-12"],
            "a segment of its header alone fails the link, closed with code 0x5E6",
            header_only
        )
        .breaking("SEG-2"),
        wire_case!(
            "wire/SEG-3/frame-at-the-largest",
            ["SEG-3", "FRAME-5"],
            "a DATA frame of 65 535 bytes in segments is rebuilt and its transfer echoed",
            largest
        ),
        wire_case!(
            "wire/SEG-3/frame-one-past-the-largest",
            ["SEG-3", "LINK-12"],
            "segments adding up to a frame of 65 536 bytes fail the link before the last is kept, closed with code 0x5E6",
            past_largest
        )
        .breaking("SEG-3"),
    ]
    .into_iter()
    .map(|case| case.needing(Needs::Segments))
    .collect()
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// The largest frame of the target's segmented links.
const LARGEST: usize = acm::segmented::DEFAULT_MAX_FRAME_SIZE;

/// A link below the segmentation: the suite writes segments and reads them.
struct Segments {
    link: Box<dyn Link>,
    rebuilt: Desegmenter,
    suite: String,
}

impl Segments {
    async fn open(t: &dyn WireTarget) -> Step<Self> {
        let link = t
            .open_segments()
            .await
            .map_err(|e| Verdict::fail("a link below the segmentation", e.to_string()))?;
        Ok(Self {
            link,
            rebuilt: Desegmenter::new(LARGEST),
            suite: t.suite_device_id(),
        })
    }

    async fn send_segment(&self, segment: Bytes) -> Step<()> {
        self.link
            .send(segment)
            .await
            .map_err(|e| Verdict::fail("the link to take the segment", e.to_string()))
    }

    /// Sends `frame` cut into segments of at most `message` bytes.
    async fn send_frame(&self, frame: &Bytes, message: usize) -> Step<()> {
        for segment in segments(frame, message) {
            self.send_segment(segment).await?;
        }
        Ok(())
    }

    async fn send(&self, control: &Control, channel: u32, message: usize) -> Step<()> {
        let frame = control
            .encode_frame(1, channel)
            .map_err(|e| Verdict::fail("an encodable frame", e.to_string()))?;
        self.send_frame(&frame, message).await
    }

    /// The next frame the implementation sends, rebuilt from well-formed segments.
    async fn next_frame(&mut self) -> Step<Frame> {
        loop {
            let segment = match tokio::time::timeout(ANSWER, self.link.recv()).await {
                Err(_) => return fail("a frame", "nothing arrived"),
                Ok(Err(e)) => return fail("a frame", e.to_string()),
                Ok(Ok(segment)) => segment,
            };
            let frame = self.rebuilt.push(segment).map_err(|e| {
                Verdict::fail(
                    "well-formed segments (SEG-2)",
                    format!("{e} ({})", e.rule()),
                )
            })?;
            if let Some(frame) = frame {
                return Frame::decode_exact(frame, u32::MAX, None).map_err(|e| {
                    Verdict::fail("well-formed frames (SEG-1, FRAME-9)", e.to_string())
                });
            }
        }
    }

    async fn expect(&mut self, wanted: FrameType) -> Step<Frame> {
        loop {
            let frame = self.next_frame().await?;
            match frame.kind {
                FrameKind::Known(t) if t == wanted => return Ok(frame),
                FrameKind::Known(FrameType::Ping) => {}
                _ => return fail(wanted.as_str_name(), describe(&frame)),
            }
        }
    }

    /// Exchanges HELLOs, the suite's cut into segments of `message` bytes.
    async fn up(&mut self, message: usize) -> Step<()> {
        let hello = Control::Hello(pb::Hello {
            min_version: 1,
            max_version: 1,
            device_id: self.suite.clone(),
            max_frame_size: 65_535,
            keepalive_interval_ms: 30_000,
            features: 0,
            nonce: Bytes::from_static(&[0x5A; 16]),
            max_data_size: 100 << 20,
        });
        self.send(&hello, 0, message).await?;
        self.expect(FrameType::Hello).await.map(|_| ())
    }

    /// Waits for the segmented link to fail with the close code of `LINK-12`.
    async fn expect_failed(&mut self) -> Step<()> {
        loop {
            match tokio::time::timeout(ANSWER, self.link.recv()).await {
                Err(_) => return fail("the link to fail, code 0x5E6", "it stayed up"),
                Ok(Ok(_)) => {}
                Ok(Err(TransportError::Closed(Closure::Peer(reason)))) if reason.code == 0x5E6 => {
                    return Ok(());
                }
                Ok(Err(e)) => return fail("a close with code 0x5E6 (LINK-12)", e.to_string()),
            }
        }
    }
}

async fn as_segments(t: &dyn WireTarget) -> Step<()> {
    let mut seg = Segments::open(t).await?;
    seg.up(20).await?;
    // The rest through the target's own segmented links, as a peer would.
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("segments").await?;
    let text = "s".repeat(1000);
    peer.say(channel, &text).await?;
    if peer.expect_message(channel).await? != text {
        return fail("the message echoed", "another text");
    }
    Ok(())
}

fn ping(value: u64) -> Step<Bytes> {
    Control::Ping(pb::Ping { value })
        .encode_frame(1, 0)
        .map_err(|e| Verdict::fail("a PING", e.to_string()))
}

async fn interleaved(t: &dyn WireTarget) -> Step<()> {
    let mut seg = Segments::open(t).await?;
    seg.up(SEGMENT_MESSAGE).await?;
    let first = ping(1)?;
    let (head, tail) = first.split_at(6);
    let mut one = vec![MORE];
    one.extend_from_slice(head);
    seg.send_segment(Bytes::from(one)).await?;
    seg.send_frame(&ping(2)?, SEGMENT_MESSAGE).await?;
    let mut two = vec![0];
    two.extend_from_slice(tail);
    seg.send_segment(Bytes::from(two)).await?;
    let frame = seg.expect(FrameType::LinkClose).await?;
    match Control::decode_unchecked(FrameType::LinkClose, &frame.payload) {
        Some(Ok(Control::LinkClose(close))) if close.reason() == LinkCloseReason::ProtocolError => {
            Ok(())
        }
        other => fail("LINK_CLOSE PROTOCOL_ERROR", format!("{other:?}")),
    }
}

async fn reserved_bit(t: &dyn WireTarget) -> Step<()> {
    let mut seg = Segments::open(t).await?;
    seg.up(SEGMENT_MESSAGE).await?;
    let mut segment = vec![0x02];
    segment.extend_from_slice(&ping(3)?);
    seg.send_segment(Bytes::from(segment)).await?;
    seg.expect_failed().await
}

async fn header_only(t: &dyn WireTarget) -> Step<()> {
    let mut seg = Segments::open(t).await?;
    seg.up(SEGMENT_MESSAGE).await?;
    seg.send_segment(Bytes::from_static(&[MORE])).await?;
    seg.expect_failed().await
}

/// Opens an echo session over raw segments: its channel.
async fn echo_session(seg: &mut Segments, t: &dyn WireTarget) -> Step<u32> {
    let mut target = super::peer::suite_app(&t.device_id());
    target.ability_name = crate::profile::ECHO.into();
    target.service_name = "largest".into();
    let request = Control::ConnectRequest(pb::ConnectRequest {
        token: Bytes::from_static(&[0x5B; 16]),
        source: Some(super::peer::suite_app(&seg.suite)),
        target: Some(target),
        options: Some(pb::ConnectOptions::default()),
    });
    seg.send(&request, 1, SEGMENT_MESSAGE).await?;
    seg.expect(FrameType::ConnectResponse).await?;
    Ok(1)
}

async fn largest(t: &dyn WireTarget) -> Step<()> {
    let mut seg = Segments::open(t).await?;
    seg.up(SEGMENT_MESSAGE).await?;
    let channel = echo_session(&mut seg, t).await?;
    let (frame, chunk) = super::peer::data_frame(channel, LARGEST)?;
    seg.send_frame(&frame, SEGMENT_MESSAGE).await?;
    let back = seg.expect(FrameType::Data).await?;
    let fragment =
        DataFragment::parse(&back).map_err(|e| Verdict::fail("a DATA fragment", e.to_string()))?;
    if fragment.chunk != chunk {
        return fail("the transfer echoed in one frame", describe(&back));
    }
    Ok(())
}

async fn past_largest(t: &dyn WireTarget) -> Step<()> {
    let mut seg = Segments::open(t).await?;
    seg.up(SEGMENT_MESSAGE).await?;
    let channel = echo_session(&mut seg, t).await?;
    // The frame's own header says 65 536 bytes; its segments say so too.
    let (frame, _) = super::peer::data_frame(channel, LARGEST + 1)?;
    seg.send_frame(&frame, SEGMENT_MESSAGE).await?;
    seg.expect_failed().await
}
