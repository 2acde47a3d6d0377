//! The scripted peer's sessions: channels, requests and answers, and the messages, data and
//! events it sends and expects on them (SPEC sections 5 to 7).

use super::*;

impl Peer {
    /// The channel [`Peer::channel`] will give next.
    pub fn peek_channel(&self) -> u32 {
        self.next_channel
    }

    /// A fresh channel of the suite's (odd: the suite dials).
    pub fn channel(&mut self) -> u32 {
        let channel = self.next_channel;
        self.next_channel += 2;
        channel
    }

    /// A CONNECT_REQUEST from the suite's app to the profile's `ability` for `service`.
    pub fn request(&self, ability: &str, service: &str, token: [u8; 16]) -> pb::ConnectRequest {
        let mut target = suite_app(&self.iut_device);
        target.ability_name = ability.into();
        target.service_name = service.into();
        pb::ConnectRequest {
            token: Bytes::copy_from_slice(&token),
            source: Some(suite_app(&self.suite_device)),
            target: Some(target),
            options: Some(pb::ConnectOptions::default()),
        }
    }

    /// Sends `request` on a new channel and returns the channel and the answer.
    pub async fn ask(&mut self, request: pb::ConnectRequest) -> Step<(u32, pb::ConnectResponse)> {
        let channel = self.channel();
        self.send(&Control::ConnectRequest(request), channel)
            .await?;
        let response = self.expect_response(channel).await?;
        Ok((channel, response))
    }

    /// Waits for the CONNECT_RESPONSE on `channel`.
    pub async fn expect_response(&mut self, channel: u32) -> Step<pb::ConnectResponse> {
        let within = ANSWER + self.timers.slow;
        let (on, control) = self.expect(FrameType::ConnectResponse, within).await?;
        let Control::ConnectResponse(response) = control else {
            return fail("CONNECT_RESPONSE", format!("{control:?}"));
        };
        if on != channel {
            return fail(
                format!("CONNECT_RESPONSE on channel {channel} (SESS-4)"),
                format!("on channel {on}"),
            );
        }
        Ok(response)
    }

    /// Opens a session with the profile's echo ability for `service`: (channel, token).
    pub async fn open_echo(&mut self, service: &str) -> Step<(u32, [u8; 16])> {
        let token = channel_token(0x10, self.next_channel);
        self.open_echo_with(service, token).await
    }

    /// [`Peer::open_echo`] with the request's `token`.
    pub async fn open_echo_with(
        &mut self,
        service: &str,
        token: [u8; 16],
    ) -> Step<(u32, [u8; 16])> {
        let (channel, response) = self
            .ask(self.request(profile::ECHO, service, token))
            .await?;
        if response.token.as_ref() != token {
            return fail(
                "the request's token in CONNECT_RESPONSE (SESS-4)",
                hex(&response.token),
            );
        }
        match response.result {
            Some(connect_response::Result::Accepted(_)) => Ok((channel, token)),
            other => fail("accepted", format!("{other:?}")),
        }
    }

    /// Waits for the next session frame on `channel`, as a control body.
    pub async fn expect_on(&mut self, channel: u32, wanted: FrameType) -> Step<Control> {
        let (on, control) = self.expect(wanted, ANSWER).await?;
        if on != channel {
            return fail(
                format!("{} on channel {channel}", wanted.as_str_name()),
                format!("on channel {on}"),
            );
        }
        Ok(control)
    }

    /// Waits for a DISCONNECT on `channel`.
    pub async fn expect_disconnect(&mut self, channel: u32) -> Step<pb::Disconnect> {
        match self.expect_on(channel, FrameType::Disconnect).await? {
            Control::Disconnect(disconnect) => Ok(disconnect),
            other => fail("DISCONNECT", format!("{other:?}")),
        }
    }

    /// Waits for a MESSAGE on `channel`.
    pub async fn expect_message(&mut self, channel: u32) -> Step<String> {
        match self.expect_on(channel, FrameType::Message).await? {
            Control::Message(message) => Ok(message.text),
            other => fail("MESSAGE", format!("{other:?}")),
        }
    }

    /// Receives one whole transfer on `channel`, checking every fragment against `DATA-1` to
    /// `DATA-5`.
    pub async fn expect_data(&mut self, channel: u32) -> Step<Bytes> {
        loop {
            let frame = match self.next(ANSWER).await? {
                Got::Frame(frame) if frame.kind == FrameKind::Known(FrameType::Data) => frame,
                Got::Frame(frame) => return fail("DATA", describe(&frame)),
                Got::Ended(closure) => return fail("DATA", format!("the link ended: {closure}")),
            };
            if frame.channel != channel {
                return fail(format!("DATA on channel {channel}"), describe(&frame));
            }
            let fragment = DataFragment::parse(&frame)
                .map_err(|e| Verdict::fail("a valid data header", format!("{e} ({})", e.rule())))?;
            match self.reassembler.push(fragment) {
                Ok(Some(data)) => return Ok(data),
                Ok(None) => {}
                Err(err) => {
                    return fail("well-formed fragments", format!("{err} ({})", err.rule()));
                }
            }
        }
    }

    /// The fragments of `data` as one transfer on `channel`, each at most the implementation's
    /// maximum frame size.
    fn fragments(&self, channel: u32, transfer_id: u32, data: Bytes) -> Step<Fragmenter> {
        let max = self.hello.as_ref().map_or(65_535, |h| h.max_frame_size);
        Fragmenter::new(self.version, channel, transfer_id, data, max)
            .map_err(|e| Verdict::fail("an encodable transfer", e.to_string()))
    }

    /// Sends `data` as one transfer on `channel`, taking in what the implementation sends
    /// meanwhile (kept for the next reads), as any peer that is not testing flow control does.
    /// A transfer can take longer than three of the implementation's keepalive intervals over
    /// a slow transport, and one whose buffers are small (Bluetooth LE's credits) would hold
    /// the implementation's PINGs back for all that time, for which `LINK-13` closes the link.
    pub async fn send_data(&mut self, channel: u32, transfer_id: u32, data: Bytes) -> Step<()> {
        for fragment in self.fragments(channel, transfer_id, data)? {
            self.send_reading(fragment).await?;
        }
        Ok(())
    }

    /// Sends `data` as one transfer on `channel` without reading anything meanwhile: for cases
    /// that hold the implementation's frames back on purpose.
    pub async fn send_data_unread(&self, channel: u32, transfer_id: u32, data: Bytes) -> Step<()> {
        for fragment in self.fragments(channel, transfer_id, data)? {
            self.send_raw(fragment).await?;
        }
        Ok(())
    }

    /// Sends raw bytes as one link message, as [`Peer::send_raw`] does, taking in what arrives
    /// while the send waits. A receive that is still waiting when the send is through is given
    /// up: links hand over a frame whole or not at all.
    pub async fn send_reading(&mut self, bytes: Bytes) -> Step<()> {
        let link = &*self.link;
        let unread = &mut self.unread;
        let send = link.send(bytes);
        tokio::pin!(send);
        let sent = loop {
            tokio::select! {
                biased;
                sent = &mut send => break sent,
                got = link.recv() => match got {
                    Ok(frame) => unread.push_back(frame),
                    // The link ended: the send fails too, and the next read says how it ended.
                    Err(_) => break send.await,
                },
            }
        };
        self.sent_now();
        sent.map_err(|e| Verdict::fail("the link to accept the frame", e.to_string()))
    }

    /// Sends a text message on `channel`.
    pub async fn say(&self, channel: u32, text: &str) -> Step<()> {
        self.send(&message(text), channel).await
    }

    /// Sends a text message on `channel` and tells whether the send was held back: not done
    /// within `patience`, the implementation having stopped reading (`TCP-8`). A held-back send
    /// is not given up, which would end a secure link (its record is sealed, `SEC-9`): the
    /// suite receives what the implementation sends until the send is through, and keeps it for
    /// the next reads.
    pub async fn say_held(&mut self, channel: u32, text: &str, patience: Duration) -> Step<bool> {
        let kept = {
            let this = &*self;
            let send = this.say(channel, text);
            tokio::pin!(send);
            if let Ok(sent) = tokio::time::timeout(patience, &mut send).await {
                return sent.map(|()| false);
            }
            let mut kept = Vec::new();
            let mut sent = false;
            let mut recv = this.link.recv();
            // Once the send is through, the receive under way finishes (the implementation has
            // echoes to send), so that no frame is lost to a cancelled receive.
            loop {
                tokio::select! {
                    done = &mut send, if !sent => {
                        done?;
                        sent = true;
                    }
                    got = &mut recv => {
                        match got {
                            Ok(bytes) => kept.push(bytes),
                            Err(err) => {
                                return fail("the held-back send to go through", err.to_string());
                            }
                        }
                        if sent {
                            break;
                        }
                        recv = this.link.recv();
                    }
                }
            }
            kept
        };
        self.unread.extend(kept);
        Ok(true)
    }

    /// Waits for a COLLABORATE_EVENT on `channel`.
    pub async fn expect_event(&mut self, channel: u32) -> Step<pb::CollaborateEvent> {
        match self.expect_on(channel, FrameType::CollaborateEvent).await? {
            Control::CollaborateEvent(event) => Ok(event),
            other => fail("COLLABORATE_EVENT", format!("{other:?}")),
        }
    }

    /// Asks the profile, on the session of `origin`, to connect back for `service`, and returns
    /// the implementation's request (without answering it).
    pub async fn request_back(
        &mut self,
        origin: u32,
        service: &str,
    ) -> Step<(u32, pb::ConnectRequest)> {
        self.say(origin, &format!("{}{service}", profile::CMD_CONNECT_BACK))
            .await?;
        let (on, control) = self.expect(FrameType::ConnectRequest, ANSWER).await?;
        match control {
            Control::ConnectRequest(request) => Ok((on, request)),
            other => fail("CONNECT_REQUEST", format!("{other:?}")),
        }
    }

    /// Opens an echo session for `origin_service`, asks the profile to connect back for
    /// `service` and returns (the echo session's channel, the implementation's request's
    /// channel, its request).
    pub async fn connect_back(
        &mut self,
        origin_service: &str,
        service: &str,
    ) -> Step<(u32, u32, pb::ConnectRequest)> {
        let (origin, _) = self.open_echo(origin_service).await?;
        let (on, request) = self.request_back(origin, service).await?;
        Ok((origin, on, request))
    }

    /// Waits for the profile's report of a connect-back on `origin` (SPEC section 15) and
    /// returns what follows `acm:connect-result `: `connected`, or the API's error code
    /// together with the reason that comes in the next message.
    pub async fn expect_connect_result(&mut self, origin: u32) -> Step<(String, Option<String>)> {
        let report = self.expect_message(origin).await?;
        let Some(result) = report.strip_prefix(profile::CONNECT_RESULT) else {
            return fail("acm:connect-result (section 15)", report);
        };
        if result == "connected" {
            return Ok((result.to_string(), None));
        }
        let reason = self.expect_message(origin).await?;
        Ok((result.to_string(), Some(reason)))
    }
}
