//! Deliberately broken variants of the reference implementation, for proving that the suites
//! catch what they claim to: each [`Mutation`] breaks one rule of SPEC.md.
//!
//! The defects live outside the implementation, in a transport wrapper ([`Mutant`]) whose links
//! rewrite the frames the implementation sends or receives, so that no build of the product
//! carries them. To the peer, and to the implementation's apps, a mutated device behaves as an
//! implementation with the defect would.
//!
//! ```
//! use acm_conformance::mutant::{Mutant, Mutation};
//! use acm_transport::{DeviceId, Transport};
//! use acm_transport_mock::MockNetwork;
//!
//! let network = MockNetwork::new(1);
//! let transport = network.add_device(DeviceId::new("iut").unwrap()).unwrap();
//! let broken = Mutant::new(transport, Mutation::ReorderFragments);
//! assert_eq!(broken.local_device().as_str(), "iut");
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use acm_transport::{
    Capabilities, CloseReason, Closure, DeviceId, DeviceInfo, Link, Role, Transport, TransportError,
};
use acm_wire::pb::{DisconnectReason, FrameType};
use acm_wire::{Control, DataFragment, FLAG_MORE, Frame, FrameKind};
use async_trait::async_trait;
use bytes::Bytes;

/// One deliberate defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// `disconnect()` tells the peer PEER_APP_EXIT instead of PEER_APP_CLOSE_COLLABORATION
    /// (breaks `DISC-1`).
    WrongDisconnectReason,
    /// A CONNECT_RESPONSE is taken whatever token it carries (breaks `SESS-4`).
    AcceptAnyResponseToken,
    /// A replayed request token is not refused (breaks `SESS-1`).
    AcceptReplayedToken,
    /// Each fragment's bytes are delivered as they arrive, not the whole transfer (breaks
    /// `DATA-4`'s delivery of whole transfers).
    DeliverPartialData,
    /// Messages over 1024 bytes are delivered instead of ending the session (breaks `MSG-1`).
    IgnoreMessageLimit,
    /// The second and third fragments of a transfer are sent in swapped order (breaks
    /// `DATA-4`).
    ReorderFragments,
}

impl Mutation {
    /// Every mutation.
    pub const ALL: [Self; 6] = [
        Self::WrongDisconnectReason,
        Self::AcceptAnyResponseToken,
        Self::AcceptReplayedToken,
        Self::DeliverPartialData,
        Self::IgnoreMessageLimit,
        Self::ReorderFragments,
    ];
}

/// A transport whose links carry `mutation`'s defect.
#[derive(Debug)]
pub struct Mutant<T> {
    inner: T,
    mutation: Mutation,
}

impl<T: Transport> Mutant<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, mutation: Mutation) -> Self {
        Self { inner, mutation }
    }

    fn wrap(&self, link: Box<dyn Link>) -> Box<dyn Link> {
        Box::new(MutantLink {
            inner: link,
            rewriter: Mutex::new(FrameRewriter::new(self.mutation)),
            incoming: Mutex::new(VecDeque::new()),
        })
    }
}

#[async_trait]
impl<T: Transport> Transport for Mutant<T> {
    fn local_device(&self) -> &DeviceId {
        self.inner.local_device()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        self.inner.discover().await
    }

    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        Ok(self.wrap(self.inner.dial(device).await?))
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        Ok(self.wrap(self.inner.accept().await?))
    }
}

/// What a mutant link remembers to rewrite frames. Ordered maps, so that two ends that saw the
/// same frames print alike (a model checker fingerprints them).
#[derive(Debug, Default)]
struct Rewrites {
    /// The token of each request this side sent, by channel.
    sent_tokens: BTreeMap<u32, Bytes>,
    /// Tokens of requests received.
    seen_tokens: BTreeSet<Bytes>,
    /// Replayed tokens replaced on the way in, by channel, to restore on the way out.
    replaced: BTreeMap<u32, Bytes>,
    /// Tokens made to replace replayed ones.
    made: u64,
    /// The last transfer id handed out on each channel (partial delivery).
    transfer_ids: BTreeMap<u32, u32>,
    /// A transfer's second fragment, held back until its third has gone.
    held: Option<(u32, u32, Bytes)>,
}

/// One end of a link with `mutation`'s defect, on raw frames: what the end sends goes through
/// [`FrameRewriter::outgoing`] on its way to the link, and what it receives through
/// [`FrameRewriter::incoming`] on its way to the implementation. [`Mutant`]'s links are made of
/// one; a model checker or a test can put one between two engines.
///
/// ```
/// use acm_conformance::mutant::{FrameRewriter, Mutation};
/// use acm_wire::Control;
/// use acm_wire::pb::{self, DisconnectReason};
///
/// let mut end = FrameRewriter::new(Mutation::WrongDisconnectReason);
/// let disconnect = Control::Disconnect(pb::Disconnect {
///     reason: DisconnectReason::PeerAppCloseCollaboration.into(),
///     ..Default::default()
/// });
/// let sent = end.outgoing(disconnect.encode_frame(1, 3).unwrap());
/// assert_eq!(sent.len(), 1);
/// ```
#[derive(Debug)]
pub struct FrameRewriter {
    mutation: Mutation,
    state: Rewrites,
}

impl FrameRewriter {
    /// An end with `mutation`'s defect, which has sent and received nothing yet.
    pub fn new(mutation: Mutation) -> Self {
        Self {
            mutation,
            state: Rewrites::default(),
        }
    }

    /// The defect.
    pub fn mutation(&self) -> Mutation {
        self.mutation
    }

    /// A frame held back that must still go out before the link closes, if any
    /// ([`Mutation::ReorderFragments`] holds a fragment until the next one has gone).
    pub fn take_held(&mut self) -> Option<Bytes> {
        self.state.held.take().map(|(_, _, frame)| frame)
    }

    /// What goes out instead of `frame`: nothing, the frame, or several.
    pub fn outgoing(&mut self, frame: Bytes) -> Vec<Bytes> {
        let Some(parsed) = parse(&frame) else {
            return vec![frame];
        };
        let state = &mut self.state;
        match (self.mutation, parsed) {
            (
                Mutation::WrongDisconnectReason,
                Parsed::Control(frame, Control::Disconnect(mut d)),
            ) if d.reason == DisconnectReason::PeerAppCloseCollaboration as i32 => {
                d.reason = DisconnectReason::PeerAppExit as i32;
                reencode(&frame, &Control::Disconnect(d))
            }
            (
                Mutation::AcceptAnyResponseToken,
                Parsed::Control(frame, Control::ConnectRequest(request)),
            ) => {
                state
                    .sent_tokens
                    .insert(frame.channel, request.token.clone());
                vec![whole(&frame)]
            }
            (
                Mutation::AcceptReplayedToken,
                Parsed::Control(frame, Control::ConnectResponse(mut response)),
            ) => match state.replaced.remove(&frame.channel) {
                Some(original) => {
                    response.token = original;
                    reencode(&frame, &Control::ConnectResponse(response))
                }
                None => vec![whole(&frame)],
            },
            (Mutation::ReorderFragments, Parsed::Data(frame, fragment)) => {
                let key = (fragment.channel, fragment.transfer_id);
                match state.held.take() {
                    Some((channel, transfer, second))
                        if (channel, transfer) == key && fragment.index == 2 =>
                    {
                        vec![whole(&frame), second]
                    }
                    held => {
                        let mut out: Vec<Bytes> = held.map(|(_, _, f)| f).into_iter().collect();
                        if fragment.index == 1 && !fragment.last {
                            state.held = Some((key.0, key.1, whole(&frame)));
                        } else {
                            out.push(whole(&frame));
                        }
                        out
                    }
                }
            }
            (_, parsed) => vec![parsed.into_bytes()],
        }
    }

    /// What arrives instead of `frame`: nothing, the frame, or several.
    pub fn incoming(&mut self, frame: Bytes) -> Vec<Bytes> {
        let Some(parsed) = parse(&frame) else {
            return vec![frame];
        };
        let state = &mut self.state;
        match (self.mutation, parsed) {
            (
                Mutation::AcceptAnyResponseToken,
                Parsed::Control(frame, Control::ConnectResponse(mut response)),
            ) => match state.sent_tokens.get(&frame.channel) {
                Some(token) if *token != response.token => {
                    response.token = token.clone();
                    reencode(&frame, &Control::ConnectResponse(response))
                }
                _ => vec![whole(&frame)],
            },
            (
                Mutation::AcceptReplayedToken,
                Parsed::Control(frame, Control::ConnectRequest(mut request)),
            ) => {
                if state.seen_tokens.insert(request.token.clone()) {
                    return vec![whole(&frame)];
                }
                state.made = state.made.wrapping_add(1);
                let mut fresh = [0xA5u8; 16];
                fresh[..8].copy_from_slice(&state.made.to_be_bytes());
                let original =
                    std::mem::replace(&mut request.token, Bytes::copy_from_slice(&fresh));
                state.replaced.insert(frame.channel, original);
                reencode(&frame, &Control::ConnectRequest(request))
            }
            (Mutation::IgnoreMessageLimit, Parsed::Control(frame, Control::Message(mut m)))
                if m.text.len() > acm_wire::limits::MAX_MESSAGE_LEN =>
            {
                let mut end = acm_wire::limits::MAX_MESSAGE_LEN;
                while !m.text.is_char_boundary(end) {
                    end -= 1;
                }
                m.text.truncate(end);
                reencode(&frame, &Control::Message(m))
            }
            (Mutation::DeliverPartialData, Parsed::Data(frame, fragment)) => {
                let last = state.transfer_ids.entry(fragment.channel).or_insert(0);
                *last = (*last).max(fragment.transfer_id).saturating_add(1);
                let alone = DataFragment {
                    channel: fragment.channel,
                    transfer_id: *last,
                    index: 0,
                    total_length: Some(fragment.chunk.len() as u64),
                    last: true,
                    chunk: fragment.chunk,
                };
                match alone.to_frame(frame.version).and_then(|f| f.to_bytes()) {
                    Ok(bytes) => vec![bytes],
                    Err(_) => vec![whole(&frame)],
                }
            }
            (_, parsed) => vec![parsed.into_bytes()],
        }
    }
}

#[derive(Debug)]
struct MutantLink {
    inner: Box<dyn Link>,
    rewriter: Mutex<FrameRewriter>,
    /// Frames received and made, waiting to be handed out.
    incoming: Mutex<VecDeque<Bytes>>,
}

impl MutantLink {
    fn rewriter(&self) -> MutexGuard<'_, FrameRewriter> {
        self.rewriter.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn incoming(&self) -> MutexGuard<'_, VecDeque<Bytes>> {
        self.incoming.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A frame the rewrites look into: a control body that came whole in its frame, or a data
/// fragment. Short-lived, moved once.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Control(Frame, Control),
    Data(Frame, DataFragment),
}

impl Parsed {
    fn into_bytes(self) -> Bytes {
        match self {
            Self::Control(frame, _) | Self::Data(frame, _) => whole(&frame),
        }
    }
}

/// `bytes` parsed, if it is a frame the rewrites may look into.
fn parse(bytes: &Bytes) -> Option<Parsed> {
    let frame = Frame::decode_exact(bytes.clone(), u32::MAX, None).ok()?;
    match frame.kind {
        FrameKind::Known(FrameType::Data) => {
            let fragment = DataFragment::parse(&frame).ok()?;
            Some(Parsed::Data(frame, fragment))
        }
        FrameKind::Known(frame_type) if frame.flags & FLAG_MORE == 0 => {
            let control = Control::decode_unchecked(frame_type, &frame.payload)?.ok()?;
            Some(Parsed::Control(frame, control))
        }
        _ => None,
    }
}

/// The frame's bytes as they came.
fn whole(frame: &Frame) -> Bytes {
    frame.to_bytes().unwrap_or_default()
}

/// `control` in a frame of `frame`'s version and channel.
fn reencode(frame: &Frame, control: &Control) -> Vec<Bytes> {
    match control.encode_frame(frame.version, frame.channel) {
        Ok(bytes) => vec![bytes],
        Err(_) => vec![whole(frame)],
    }
}

#[async_trait]
impl Link for MutantLink {
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
        self.inner.max_frame_size()
    }

    async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        let frames = self.rewriter().outgoing(frame);
        for frame in frames {
            self.inner.send(frame).await?;
        }
        Ok(())
    }

    async fn recv(&self) -> Result<Bytes, TransportError> {
        loop {
            if let Some(frame) = self.incoming().pop_front() {
                return Ok(frame);
            }
            let frame = self.inner.recv().await?;
            let rewritten = self.rewriter().incoming(frame);
            let mut rewritten = rewritten.into_iter();
            if let Some(first) = rewritten.next() {
                self.incoming().extend(rewritten);
                return Ok(first);
            }
        }
    }

    async fn close(&self, reason: CloseReason) {
        let held = self.rewriter().take_held();
        if let Some(frame) = held {
            let _ = self.inner.send(frame).await;
        }
        self.inner.close(reason).await;
    }

    fn closure(&self) -> Option<Closure> {
        self.inner.closure()
    }
}
