//! The profile's scenario driver (SPEC section 15.1), checked on its own: the random
//! scenarios depend on it, so a driver that answers wrongly shows here first, by name. Other
//! cases drive the scenario app through [`Drive`] to make the implementation send what only
//! its app's calls make it send.

use std::collections::HashMap;

use acm_wire::pb::{self, FrameType, connect_response};
use acm_wire::{Control, DataFragment, FrameKind, Limits, Reassembler};
use bytes::{Bytes, BytesMut};

use super::build::{accept, channel_token};
use super::peer::{ANSWER, Got, Peer, Step, describe};
use super::target::WireTarget;
use super::{WireCase, wire_case};
use crate::driver::{DRIVER, ERROR, OK, SCENARIO};
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/PROF-2/malformed-commands",
            ["PROF-2", "PROF-1", "PROF-3"],
            "the scenario driver answers drive:error 401 to unknown and malformed commands and to sessions and requests it does not have, in order, and drive:ok to a reset and a sync",
            malformed_commands
        )
        .breaking("PROF-2"),
    ]
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// Commands the driver must refuse with 401 right after a reset.
const REFUSED: [&str; 9] = [
    "drive:frobnicate 1",
    "drive:connect 0",
    "drive:connect 99",
    "drive:connect x",
    "drive:create 1 notes",
    "drive:create 1 notes ScenarioAbility extra",
    "drive:accept 1 1",
    "drive:reject 77 not now",
    "drive:destroy 4294967296",
];

/// Opens a driver session for `service` (`PROF-1`) and resets the scenario app: its channel.
async fn open_driver(peer: &mut Peer, service: &str) -> Step<u32> {
    let token = channel_token(0x44, peer.peek_channel());
    let (channel, response) = peer.ask(peer.request(DRIVER, service, token)).await?;
    if !matches!(response.result, Some(connect_response::Result::Accepted(_))) {
        return fail(
            "DriverAbility accepts at once (PROF-1)",
            format!("{:?}", response.result),
        );
    }
    // Reports of earlier runs may come first: the reset's answer ends them.
    peer.say(channel, "drive:reset").await?;
    for _ in 0..=crate::driver::MAX_KEPT {
        if peer.expect_message(channel).await? == OK {
            break;
        }
    }
    Ok(channel)
}

async fn malformed_commands(target: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(target).await?;
    let channel = open_driver(&mut peer, "driver-case").await?;
    for command in REFUSED {
        peer.say(channel, command).await?;
        let answer = peer.expect_message(channel).await?;
        if answer != "drive:error 401" {
            return fail(
                format!("drive:error 401 to {command:?} (PROF-2)"),
                format!("{answer:?}"),
            );
        }
    }
    peer.say(channel, "drive:sync").await?;
    let answer = peer.expect_message(channel).await?;
    if answer != OK {
        return fail("drive:ok to drive:sync (PROF-2)", format!("{answer:?}"));
    }
    peer.close().await;
    Ok(())
}

/// The suite's side of the scenario driver in a case written by hand: a driver session on the
/// case's link, and what the implementation sends on that link, gathered as it comes: the
/// answers and reports (`PROF-1`, `PROF-3`), the scenario sessions' requests, which the suite
/// accepts at once, the transfers received and the DISCONNECTs. Nothing may follow a
/// DISCONNECT on its channel (`DISC-2`).
pub(super) struct Drive {
    /// The driver session's channel.
    channel: u32,
    /// The transfer id of the next command with a payload.
    next_transfer: u32,
    /// The answers and reports, in the order they came.
    reports: Vec<String>,
    /// The channel of each scenario session's request, by service.
    requests: HashMap<String, u32>,
    /// The transfers received whole, by channel, in order.
    whole: HashMap<u32, Vec<Bytes>>,
    /// The bytes received on each channel in DATA fragments, of whole transfers or not.
    data_bytes: HashMap<u32, u64>,
    /// The DISCONNECTs received, by channel.
    ended: HashMap<u32, pb::Disconnect>,
    reassembler: Reassembler,
}

impl Drive {
    /// Opens a driver session on `peer`'s link for `service` and resets the scenario app.
    pub(super) async fn open(peer: &mut Peer, service: &str) -> Step<Self> {
        let channel = open_driver(peer, service).await?;
        Ok(Self {
            channel,
            next_transfer: 1,
            reports: Vec::new(),
            requests: HashMap::new(),
            whole: HashMap::new(),
            data_bytes: HashMap::new(),
            ended: HashMap::new(),
            reassembler: Reassembler::new(Limits::default()),
        })
    }

    /// Sends a command without payload.
    pub(super) async fn command(&self, peer: &Peer, command: &str) -> Step<()> {
        peer.say(self.channel, command).await
    }

    /// Sends a command with `payload`, as one transfer (`PROF-1`), reading nothing meanwhile (the
    /// cases that use it hold the implementation's data back).
    pub(super) async fn command_with(
        &mut self,
        peer: &Peer,
        command: &str,
        payload: &[u8],
    ) -> Step<()> {
        let mut body = BytesMut::with_capacity(command.len() + 1 + payload.len());
        body.extend_from_slice(command.as_bytes());
        body.extend_from_slice(b"\n");
        body.extend_from_slice(payload);
        let transfer = self.next_transfer;
        self.next_transfer += 1;
        peer.send_data_unread(self.channel, transfer, body.freeze())
            .await
    }

    /// How many of the answers and reports so far are `text`.
    pub(super) fn count(&self, text: &str) -> usize {
        self.reports.iter().filter(|r| *r == text).count()
    }

    /// The first report so far that begins with `prefix`.
    pub(super) fn report(&self, prefix: &str) -> Option<&str> {
        self.reports
            .iter()
            .find(|r| r.starts_with(prefix))
            .map(String::as_str)
    }

    /// The transfers received whole on `channel`.
    pub(super) fn whole(&self, channel: u32) -> &[Bytes] {
        self.whole.get(&channel).map_or(&[], Vec::as_slice)
    }

    /// The bytes received on `channel` in DATA fragments.
    fn data_bytes(&self, channel: u32) -> u64 {
        self.data_bytes.get(&channel).copied().unwrap_or(0)
    }

    /// The DISCONNECT received on `channel`, if one has come.
    pub(super) fn ended(&self, channel: u32) -> Option<&pb::Disconnect> {
        self.ended.get(&channel)
    }

    /// Creates scenario session `s` for `service` towards the suite's scenario app and
    /// connects it: the channel of its request, which the suite accepts.
    pub(super) async fn connect(&mut self, peer: &mut Peer, s: u32, service: &str) -> Step<u32> {
        let oks = self.count(OK);
        self.command(peer, &format!("drive:create {s} {service} {SCENARIO}"))
            .await?;
        self.command(peer, &format!("drive:connect {s}")).await?;
        let connected = format!("drive:done {s} connect connected");
        self.wait_for(
            peer,
            |d| d.count(OK) >= oks + 2 && d.count(&connected) == 1,
            &format!("drive:ok to the create and the connect, then {connected:?}"),
        )
        .await?;
        match self.requests.get(service) {
            Some(channel) => Ok(*channel),
            None => fail(
                format!("a CONNECT_REQUEST for {service:?}"),
                "none came before the session connected",
            ),
        }
    }

    /// Takes what the implementation sends until `done` holds, `what` naming it for the
    /// verdict when it does not come in time.
    pub(super) async fn wait_for(
        &mut self,
        peer: &mut Peer,
        done: impl Fn(&Self) -> bool,
        what: &str,
    ) -> Step<()> {
        while !done(self) {
            let got = match peer.next(ANSWER).await {
                Ok(got) => got,
                Err(_) => {
                    let last: Vec<_> = self.reports.iter().rev().take(8).rev().collect();
                    return fail(
                        what,
                        format!("nothing more within {ANSWER:?}; the last reports: {last:?}"),
                    );
                }
            };
            self.take(peer, got).await?;
        }
        Ok(())
    }

    /// Files one thing the implementation sent.
    async fn take(&mut self, peer: &Peer, got: Got) -> Step<()> {
        let frame = match got {
            Got::Frame(frame) => frame,
            Got::Ended(closure) => return fail("the link to stay up", closure.to_string()),
        };
        if let Some(bye) = self.ended.get(&frame.channel) {
            return fail(
                format!(
                    "nothing on channel {} after its DISCONNECT (DISC-2)",
                    frame.channel
                ),
                format!(
                    "{}, after {} bytes of data on the channel and DISCONNECT {}",
                    describe(&frame),
                    self.data_bytes(frame.channel),
                    bye.reason().as_str_name()
                ),
            );
        }
        let FrameKind::Known(kind) = frame.kind else {
            return fail("no extension frame", describe(&frame));
        };
        if kind == FrameType::Data {
            let fragment = DataFragment::parse(&frame)
                .map_err(|e| Verdict::fail("a valid data header", format!("{e} ({})", e.rule())))?;
            *self.data_bytes.entry(frame.channel).or_default() += fragment.chunk.len() as u64;
            let whole = self.reassembler.push(fragment).map_err(|e| {
                Verdict::fail("well-formed fragments", format!("{e} ({})", e.rule()))
            })?;
            if let Some(data) = whole {
                self.whole.entry(frame.channel).or_default().push(data);
            }
            return Ok(());
        }
        match Control::decode(kind, &frame.payload) {
            Some(Ok(Control::Message(message))) if frame.channel == self.channel => {
                if message.text.starts_with(ERROR) {
                    return fail("drive:ok to every command (PROF-2)", message.text);
                }
                self.reports.push(message.text);
            }
            Some(Ok(Control::ConnectRequest(request))) => {
                let service = request
                    .target
                    .as_ref()
                    .map(|t| t.service_name.clone())
                    .unwrap_or_default();
                peer.send(&accept(request.token), frame.channel).await?;
                self.requests.insert(service, frame.channel);
            }
            Some(Ok(Control::Disconnect(bye))) => {
                self.ended.insert(frame.channel, bye);
            }
            _ => {
                return fail(
                    "answers and reports, requests, DATA and DISCONNECT",
                    describe(&frame),
                );
            }
        }
        Ok(())
    }
}
