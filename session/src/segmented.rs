//! acm over links whose messages are smaller than acm's frames: [`Segmented`] wraps a
//! transport so that each frame travels as segments (SPEC section 16).
//!
//! acm's frames carry a 12-byte header and, for data, an 8-byte data header. On a link whose
//! messages hold a few hundred bytes (a GATT characteristic, a serial line with small packets)
//! one frame per message spends a large share of the link on headers: 20 of every 244 bytes.
//! Over a segmented link acm sends frames of up to 64 KiB, each cut into messages that add one
//! byte apiece.
//!
//! Segmentation is a property of the link, not negotiated on it (`SEG-1`): both devices wrap
//! their transports, as both agree on the transport itself.
//!
//! ```
//! use acm::segmented::Segmented;
//! use acm::transport::{DeviceId, Transport};
//! use acm::{Device, DeviceConfig};
//! use acm_transport_mock::{DeviceOptions, MockNetwork};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let network = MockNetwork::new(1);
//! // A link whose messages hold at most 244 bytes.
//! let small = DeviceOptions::new().max_frame_size(244);
//! let watch = network.add_device_with(DeviceId::new("watch").unwrap(), small).unwrap();
//! let watch = Segmented::new(watch);
//! assert_eq!(watch.capabilities().max_frame_size, 65_535);
//! let device = Device::new(watch, DeviceConfig::default());
//! # let _ = device;
//! # }
//! ```

use std::sync::Mutex;

use acm_transport::{
    Capabilities, CloseReason, Closure, DeviceId, DeviceInfo, Link, PeerAddress, Role, Transport,
    TransportError,
};
use acm_wire::segment::{Desegmenter, SegmentError, segment_room, segments};
use async_trait::async_trait;
use bytes::Bytes;

/// The largest frame a segmented link carries unless told otherwise: the largest frame acm
/// sends by default.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 65_535;

/// The close code a segmented link closes with when the peer breaks `SEG-2` or `SEG-3`.
pub const SEGMENT_ERROR_CLOSE_CODE: u32 = 0x5E6;

/// A transport whose links carry each frame as one or more segments (SPEC section 16). See the
/// module docs.
#[derive(Debug)]
pub struct Segmented<T> {
    inner: T,
    max_frame_size: usize,
}

impl<T: Transport> Segmented<T> {
    /// Wraps `inner`: its links carry frames of up to [`DEFAULT_MAX_FRAME_SIZE`] bytes.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }

    /// Sets the largest frame the links carry (and rebuild: a peer's frame over it fails the
    /// link, `SEG-3`). At least 1.
    #[must_use]
    pub fn with_max_frame_size(mut self, max_frame_size: usize) -> Self {
        self.max_frame_size = max_frame_size.max(1);
        self
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    fn wrap(&self, link: Box<dyn Link>) -> Box<dyn Link> {
        Box::new(SegmentedLink::new(link, self.max_frame_size))
    }
}

#[async_trait]
impl<T: Transport> Transport for Segmented<T> {
    fn local_device(&self) -> &DeviceId {
        self.inner.local_device()
    }

    fn capabilities(&self) -> Capabilities {
        let mut capabilities = self.inner.capabilities();
        capabilities.max_frame_size = self.max_frame_size;
        capabilities
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        self.inner.discover().await
    }

    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        let link = self.inner.dial(device).await?;
        Ok(self.wrap(link))
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        let link = self.inner.accept().await?;
        Ok(self.wrap(link))
    }
}

/// A link that carries each frame as segments over another link.
///
/// Sends are served one frame at a time, so segments of two frames never interleave; so are
/// receives. A `recv` may be cancelled at any point without losing anything (the frame being
/// rebuilt is kept). A `send` cancelled between two segments of its frame cannot take back the
/// segments already sent: the link then counts as failed, and every later call says so.
#[derive(Debug)]
pub struct SegmentedLink {
    inner: Box<dyn Link>,
    max_frame_size: usize,
    sending: tokio::sync::Mutex<()>,
    receiving: tokio::sync::Mutex<Desegmenter>,
    /// Set when this side failed the link: a cut-short send, or a peer that broke SEG-2/SEG-3.
    failed: Mutex<Option<String>>,
}

/// Marks the link failed if a send is dropped between two segments of its frame.
struct CutShort<'a> {
    link: &'a SegmentedLink,
    armed: bool,
}

impl Drop for CutShort<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.link
                .fail("a send was cancelled between two segments of its frame".into());
        }
    }
}

impl SegmentedLink {
    /// Wraps `inner`, carrying frames of up to `max_frame_size` bytes.
    pub fn new(inner: Box<dyn Link>, max_frame_size: usize) -> Self {
        Self {
            inner,
            max_frame_size,
            sending: tokio::sync::Mutex::new(()),
            receiving: tokio::sync::Mutex::new(Desegmenter::new(max_frame_size)),
            failed: Mutex::new(None),
        }
    }

    fn failed(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn fail(&self, why: String) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.is_none() {
            *failed = Some(why);
        }
    }

    fn failed_error(why: String) -> TransportError {
        TransportError::Closed(Closure::Lost(why))
    }

    /// The peer broke the segment layout: fail the link, telling the peer why.
    async fn refuse(&self, err: &SegmentError) -> TransportError {
        let why = format!("{} ({})", err, err.rule());
        self.fail(why.clone());
        self.inner
            .close(CloseReason::new(SEGMENT_ERROR_CLOSE_CODE, why.clone()))
            .await;
        Self::failed_error(why)
    }
}

#[async_trait]
impl Link for SegmentedLink {
    fn local_device(&self) -> &DeviceId {
        self.inner.local_device()
    }

    fn peer_device(&self) -> &DeviceId {
        self.inner.peer_device()
    }

    fn role(&self) -> Role {
        self.inner.role()
    }

    fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        if frame.is_empty() {
            return Err(TransportError::EmptyFrame);
        }
        if frame.len() > self.max_frame_size {
            return Err(TransportError::FrameTooLarge {
                len: frame.len(),
                max: self.max_frame_size,
            });
        }
        let _one_frame_at_a_time = self.sending.lock().await;
        if let Some(why) = self.failed() {
            return Err(Self::failed_error(why));
        }
        // The link's message size is read once per frame (the contract lets it change between
        // frames): every segment of a frame is cut to the same size.
        let max_message = self.inner.max_frame_size();
        if segment_room(max_message) == 0 {
            return Err(TransportError::Unsupported(
                "segments on a link whose messages hold one byte",
            ));
        }
        let mut guard = CutShort {
            link: self,
            armed: false,
        };
        for segment in segments(&frame, max_message) {
            if let Err(err) = self.inner.send(segment).await {
                // Nothing of the frame went out, or the link has ended (or refused a segment it
                // should have taken) partway: what was sent is never delivered as a frame, and
                // the link no longer carries frames.
                if guard.armed {
                    guard.armed = false;
                    self.fail(format!("a frame was cut short: {err}"));
                }
                return Err(err);
            }
            guard.armed = true;
        }
        guard.armed = false;
        Ok(())
    }

    async fn recv(&self) -> Result<Bytes, TransportError> {
        let mut desegmenter = self.receiving.lock().await;
        loop {
            if let Some(why) = self.failed() {
                return Err(Self::failed_error(why));
            }
            // A link that ends mid-frame drops the partial frame: `recv` fails as the link
            // does, and nothing of the frame is delivered.
            let segment = self.inner.recv().await?;
            match desegmenter.push(segment) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(err) => return Err(self.refuse(&err).await),
            }
        }
    }

    async fn close(&self, reason: CloseReason) {
        self.inner.close(reason).await;
    }

    fn closure(&self) -> Option<Closure> {
        match self.failed() {
            Some(why) => Some(Closure::Lost(why)),
            None => self.inner.closure(),
        }
    }

    fn opening(&self) -> Bytes {
        self.inner.opening()
    }

    fn peer_address(&self) -> Option<PeerAddress> {
        self.inner.peer_address()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acm_transport_mock::{DeviceOptions, MockNetwork};
    use std::sync::Arc;

    fn id(name: &str) -> DeviceId {
        DeviceId::new(name).unwrap()
    }

    /// Two raw links of `max_message`-byte messages, and the segmented links over them.
    async fn pair(max_message: usize) -> (MockNetwork, Arc<dyn Link>, Arc<dyn Link>) {
        let network = MockNetwork::new(3);
        let options = DeviceOptions::new().max_frame_size(max_message);
        let watch = Segmented::new(
            network
                .add_device_with(id("watch"), options.clone())
                .unwrap(),
        );
        let phone = network.add_device_with(id("phone"), options).unwrap();
        let accepting = tokio::spawn(async move {
            let link = phone.accept().await.unwrap();
            (phone, link)
        });
        let to_phone = watch.dial(&id("phone")).await.unwrap();
        let (_phone, raw) = accepting.await.unwrap();
        (network, Arc::from(to_phone), Arc::from(raw))
    }

    #[tokio::test]
    async fn seg_1_frames_cross_as_full_segments_and_arrive_whole() {
        let network = MockNetwork::new(3);
        let options = DeviceOptions::new().max_frame_size(64);
        let watch = Segmented::new(
            network
                .add_device_with(id("watch"), options.clone())
                .unwrap(),
        );
        let phone = Segmented::new(network.add_device_with(id("phone"), options).unwrap())
            .with_max_frame_size(10_000);
        assert_eq!(phone.capabilities().max_frame_size, 10_000);
        let accepting = tokio::spawn(async move { phone.accept().await.unwrap() });
        let to_phone = watch.dial(&id("phone")).await.unwrap();
        let to_watch = accepting.await.unwrap();
        assert_eq!(to_phone.max_frame_size(), DEFAULT_MAX_FRAME_SIZE);
        assert_eq!(to_watch.max_frame_size(), 10_000);

        let frames: Vec<Bytes> = [1, 63, 64, 65, 500, 10_000]
            .iter()
            .map(|&len| (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into())
            .collect();
        for frame in &frames {
            to_phone.send(frame.clone()).await.unwrap();
        }
        for frame in &frames {
            assert_eq!(&to_watch.recv().await.unwrap(), frame);
        }
        let handle = network.links(&id("watch"), &id("phone")).pop().unwrap();
        let stats = handle.stats(&id("watch")).unwrap();
        let payload: usize = frames.iter().map(Bytes::len).sum();
        let expected: usize = frames.iter().map(|f| f.len().div_ceil(63)).sum();
        assert_eq!(stats.frames_sent as usize, expected, "segments of 63 bytes");
        assert_eq!(stats.bytes_sent as usize, payload + expected);
    }

    #[tokio::test]
    async fn frames_over_the_limit_and_empty_frames_are_refused_unsent() {
        let (_network, link, _raw) = pair(64).await;
        assert!(matches!(
            link.send(Bytes::from(vec![1u8; DEFAULT_MAX_FRAME_SIZE + 1]))
                .await,
            Err(TransportError::FrameTooLarge { .. })
        ));
        assert!(matches!(
            link.send(Bytes::new()).await,
            Err(TransportError::EmptyFrame)
        ));
        assert_eq!(link.closure(), None);
    }

    #[tokio::test]
    async fn seg_2_a_segment_with_reserved_bits_fails_the_link_and_tells_the_peer() {
        let (_network, link, raw) = pair(64).await;
        raw.send(Bytes::from_static(&[0x01, 1, 2])).await.unwrap();
        raw.send(Bytes::from_static(&[0x04, 3])).await.unwrap();
        let err = link.recv().await.unwrap_err();
        let TransportError::Closed(Closure::Lost(why)) = err else {
            panic!("not a failure: {err:?}");
        };
        assert!(why.contains("SEG-2"), "{why}");
        assert!(matches!(link.closure(), Some(Closure::Lost(_))));
        assert!(link.send(Bytes::from_static(b"x")).await.is_err());
        match raw.recv().await {
            Err(TransportError::Closed(Closure::Peer(reason))) => {
                assert_eq!(reason.code, SEGMENT_ERROR_CLOSE_CODE);
                assert!(reason.message.contains("SEG-2"));
            }
            other => panic!("the peer saw {other:?}"),
        }
    }

    #[tokio::test]
    async fn seg_3_a_frame_over_the_receivers_limit_fails_the_link() {
        let network = MockNetwork::new(3);
        let options = DeviceOptions::new().max_frame_size(64);
        let watch = network
            .add_device_with(id("watch"), options.clone())
            .unwrap();
        let phone = Segmented::new(network.add_device_with(id("phone"), options).unwrap())
            .with_max_frame_size(100);
        let accepting = tokio::spawn(async move { phone.accept().await.unwrap() });
        let raw = watch.dial(&id("phone")).await.unwrap();
        let link = accepting.await.unwrap();
        for segment in segments(&Bytes::from(vec![9u8; 101]), 64) {
            raw.send(segment).await.unwrap();
        }
        let err = link.recv().await.unwrap_err();
        assert!(err.to_string().contains("SEG-3"), "{err}");
    }

    #[tokio::test]
    async fn a_link_lost_mid_frame_delivers_no_partial_frame() {
        let (network, link, raw) = pair(64).await;
        raw.send(Bytes::from_static(&[0x00, 7])).await.unwrap();
        raw.send(Bytes::from_static(&[0x01, 1, 2, 3]))
            .await
            .unwrap();
        assert_eq!(link.recv().await.unwrap(), Bytes::from_static(&[7]));
        network.remove_device(&id("phone"));
        assert!(matches!(
            link.recv().await,
            Err(TransportError::Closed(Closure::Lost(_)))
        ));
    }

    #[tokio::test]
    async fn a_cancelled_recv_keeps_the_frame_being_rebuilt() {
        let (_network, link, raw) = pair(64).await;
        raw.send(Bytes::from_static(&[0x01, 1, 2])).await.unwrap();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), link.recv()).await;
        assert!(waited.is_err(), "a frame came from half a frame");
        raw.send(Bytes::from_static(&[0x00, 3])).await.unwrap();
        assert_eq!(link.recv().await.unwrap(), Bytes::from_static(&[1, 2, 3]));
    }

    #[tokio::test]
    async fn a_graceful_close_reaches_the_peer_after_every_segment() {
        let (_network, link, raw) = pair(64).await;
        let frame = Bytes::from(vec![5u8; 1000]);
        link.send(frame.clone()).await.unwrap();
        link.close(CloseReason::new(3, "bye")).await;
        assert!(matches!(link.closure(), Some(Closure::Local(_))));
        let mut rebuilt = Desegmenter::new(2000);
        let mut frames = Vec::new();
        let closed = loop {
            match raw.recv().await {
                Ok(segment) => frames.extend(rebuilt.push(segment).unwrap()),
                Err(err) => break err,
            }
        };
        assert_eq!(frames, [frame]);
        assert!(
            matches!(&closed, TransportError::Closed(Closure::Peer(r)) if r.code == 3),
            "{closed:?}"
        );
    }

    #[tokio::test]
    async fn a_send_cancelled_between_segments_fails_the_link() {
        let network = MockNetwork::new(3);
        let small = DeviceOptions::new().max_frame_size(64);
        let watch = Segmented::new(network.add_device_with(id("watch"), small.clone()).unwrap());
        let phone = network
            .add_device_with(id("phone"), small.receive_buffer(1000))
            .unwrap();
        let accepting = tokio::spawn(async move { phone.accept().await.unwrap() });
        let link = watch.dial(&id("phone")).await.unwrap();
        let _raw = accepting.await.unwrap();
        // Nobody reads the peer's end: the link's room runs out partway through the frame.
        let big = Bytes::from(vec![1u8; DEFAULT_MAX_FRAME_SIZE]);
        let cut = tokio::time::timeout(std::time::Duration::from_millis(50), link.send(big)).await;
        assert!(
            cut.is_err(),
            "the whole frame went out: make it larger than the link's room"
        );
        let Some(Closure::Lost(why)) = link.closure() else {
            panic!("the link still counts as open");
        };
        assert!(why.contains("cancelled"), "{why}");
        assert!(matches!(
            link.send(Bytes::from_static(b"next")).await,
            Err(TransportError::Closed(Closure::Lost(_)))
        ));
    }
}
