//! The network of the model: frames handed from one end of a wire to the other (tampered
//! with, on a hostile network), and what each device sends taken onto the wires.

use acm_wire::{Control, Frame, FrameKind};
use bytes::Bytes;

use crate::property::Violation;
use crate::property::Witness;
use crate::step::Tamper;
use crate::world::{Delivered, Known, OVERLONG, World, token_number};

/// A frame's type and channel, and its control body if it has one whole.
pub(crate) fn parse(frame: &Bytes) -> Option<(FrameKind, u32, Option<Control>)> {
    let frame = Frame::decode_exact(frame.clone(), u32::MAX, None).ok()?;
    let control = match frame.kind {
        FrameKind::Known(t) if frame.flags & acm_wire::FLAG_MORE == 0 => {
            Control::decode_unchecked(t, &frame.payload).and_then(Result::ok)
        }
        _ => None,
    };
    Some((frame.kind, frame.channel, control))
}

impl World {
    /// Hands the next frame from end `from` of `wire` to the other end (tampered with as
    /// `tamper` says), or the link's end.
    pub(crate) fn deliver(
        &mut self,
        wire: usize,
        from: usize,
        tamper: Option<Tamper>,
    ) -> Result<(), Violation> {
        let to = 1 - from;
        let now = self.now;
        let (device, link) = (
            self.wires[wire].ends[to].device,
            self.wires[wire].ends[to].link,
        );
        let Some(mut frame) = self.wires[wire].ends[from].queue.pop_front() else {
            self.wires[wire].ends[from].eof_sent = true;
            self.devices[device].handle_link_lost(link, now, "the peer closed the link");
            return Ok(());
        };
        let mut delivered = Delivered {
            wire,
            from,
            tamper,
            ..Delivered::default()
        };
        if let Some((_, channel, control)) = parse(&frame) {
            delivered.channel = channel;
            match control {
                Some(Control::ConnectRequest(request)) => {
                    let t = <[u8; 16]>::try_from(&request.token[..]).unwrap_or_default();
                    delivered.replayed = !self.wires[wire].ends[to].seen.insert(t);
                    if delivered.replayed {
                        self.witness(Witness::ReplayRefused);
                    }
                    if !delivered.replayed {
                        self.note_crossing(device, self.wires[wire].ends[from].device, &t);
                    }
                }
                Some(Control::ConnectResponse(_)) if tamper.is_none() => delivered.response = true,
                Some(Control::ConnectResponse(mut response)) => {
                    let mut forged = response.token.to_vec();
                    if let Some(b) = forged.first_mut() {
                        *b ^= 0xFF;
                    }
                    response.token = Bytes::from(forged);
                    frame = reencode(&frame, Control::ConnectResponse(response));
                    self.exempt.insert((wire, to, channel));
                }
                Some(Control::Message(mut message)) if tamper.is_some() => {
                    message.text = "x".repeat(OVERLONG);
                    frame = reencode(&frame, Control::Message(message));
                    self.exempt.insert((wire, to, channel));
                }
                Some(Control::Disconnect(_)) => {
                    delivered.disconnect = true;
                    let held = self.devices[device]
                        .link(link)
                        .map_or(0, |l| l.reassembly_bytes());
                    if held > 0 {
                        self.witness(Witness::TransferCut);
                    }
                    self.routed[device].retain(|r| !(r.wire == wire && r.channel == channel));
                }
                Some(Control::LinkClose(_)) => self.wires[wire].ends[to].got_close = true,
                _ => {}
            }
        }
        self.delivered = Some(delivered);
        self.wires[wire].ends[to].last_rx = now;
        let frames = match &mut self.wires[wire].ends[to].rewriter {
            Some(rewriter) => rewriter.incoming(frame),
            None => vec![frame],
        };
        for frame in frames {
            self.devices[device].handle_message(link, now, frame.into());
        }
        Ok(())
    }

    /// A request with token `t` from `from` arrives at `to`: it crosses `to`'s own request for
    /// the same session if that one waits for its answer.
    fn note_crossing(&mut self, to: usize, from: usize, t: &[u8; 16]) {
        let own = self.sessions[to].values().find_map(|s| match s.known {
            Known::Connecting { token, .. } if s.peer == from => Some(token),
            _ => None,
        });
        if let (Some(own), Some(request)) = (own, self.requests.get_mut(&token_number(t))) {
            request.crossed = Some(own);
            self.witness(Witness::CrossingRequests);
        }
    }

    /// Takes every frame the devices have to send onto the wires, checking what each sends.
    pub(crate) fn drain(&mut self) -> Result<(), Violation> {
        let now = self.now;
        for w in 0..self.wires.len() {
            for e in 0..2 {
                let (device, link) = (self.wires[w].ends[e].device, self.wires[w].ends[e].link);
                let mut out = Vec::new();
                while let Some(frame) = self.devices[device].poll_transmit(link, now) {
                    let frame = frame.into_bytes();
                    match &mut self.wires[w].ends[e].rewriter {
                        Some(rewriter) => out.extend(rewriter.outgoing(frame)),
                        None => out.push(frame),
                    }
                }
                if self.devices[device].is_finished(link)
                    && let Some(rewriter) = &mut self.wires[w].ends[e].rewriter
                {
                    out.extend(rewriter.take_held());
                }
                for frame in out {
                    self.check_sent(w, e, &frame)?;
                    let end = &mut self.wires[w].ends[e];
                    end.last_tx = now;
                    if !self.wires[w].lost {
                        self.wires[w].ends[e].queue.push_back(frame);
                    }
                }
            }
        }
        Ok(())
    }
}

/// `control` in a frame of `frame`'s version and channel.
fn reencode(frame: &Bytes, control: Control) -> Bytes {
    let (version, channel) = Frame::decode_exact(frame.clone(), u32::MAX, None)
        .map(|f| (f.version, f.channel))
        .unwrap_or((1, 0));
    control
        .encode_frame(version, channel)
        .unwrap_or_else(|_| frame.clone())
}
