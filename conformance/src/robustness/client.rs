//! The suite's two kinds of peers: the well-behaved client whose service is measured, and the
//! attackers' links, each reaching the implementation over TCP as a device of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use acm::secure::SecureConfig;
use acm_transport::{CloseReason, DeviceId, Link};
use acm_wire::pb::{self, FrameType};
use acm_wire::{Control, Fragmenter, encode_control};
use bytes::Bytes;
use tokio::time::Instant;

use crate::driver::fnv1a;
use crate::profile;
use crate::report::Verdict;
use crate::wire::peer::{Peer, suite_app};
use crate::wire::{TcpTarget, WireTarget};

/// The implementation under test, reached over TCP as a device of the suite's: each attacker
/// is a device of its own, so that the implementation's rule of one link per device pair
/// (`LINK-8`) does not close one attacker's link for another's.
pub type Reach = TcpTarget;

/// The implementation at `addr`, whose device id is `iut`, as device `id`.
pub fn reach(
    addr: SocketAddr,
    iut: &str,
    id: &str,
    security: Option<SecureConfig>,
) -> Result<Reach, String> {
    let id = DeviceId::new(id).map_err(|e| format!("device id {id:?}: {e}"))?;
    TcpTarget::known(addr, id, iut, true, security).map_err(|e| e.to_string())
}

/// Opens a link as `reach`'s device, connects a session to the profile's echo ability for
/// `service`, sends a message and waits for its echo: how long all that took.
pub async fn serve_once(reach: &Reach, service: &str) -> Result<Duration, String> {
    let start = Instant::now();
    let text = |v: Verdict| match v {
        Verdict::Fail { expected, actual } => format!("expected {expected}, got {actual}"),
        other => other.name().to_string(),
    };
    let mut peer = Peer::up(reach).await.map_err(text)?;
    let token = client_token(&reach.suite_device_id(), service);
    let (channel, _) = peer.open_echo_with(service, token).await.map_err(text)?;
    let hello = format!("hello from {service}");
    peer.send(
        &Control::Message(pb::Message {
            text: hello.clone(),
        }),
        channel,
    )
    .await
    .map_err(text)?;
    let echoed = peer.expect_message(channel).await.map_err(text)?;
    let elapsed = start.elapsed();
    peer.close().await;
    if echoed != hello {
        return Err(format!("the echo of {hello:?} came back as {echoed:?}"));
    }
    Ok(elapsed)
}

/// The token of `device`'s request for `service`: unique to the pair, so that clients on links
/// of their own never bring the token of another's request still waiting (`SESS-1` refuses
/// that across links, as the API names requests by token).
fn client_token(device: &str, service: &str) -> [u8; 16] {
    let mut token = [0; 16];
    token[..8].copy_from_slice(&fnv1a(device.as_bytes()).to_be_bytes());
    token[8..].copy_from_slice(&fnv1a(service.as_bytes()).to_be_bytes());
    token
}

/// An attacker's link, up: HELLO exchanged, with a 1 s keepalive asked for so that the
/// implementation's timers run fast.
pub struct Hostile {
    link: Arc<dyn Link>,
    /// The implementation's largest frame.
    max_frame: u32,
    next_channel: u32,
    suite: String,
    iut: String,
}

impl Hostile {
    /// Opens a link as `reach`'s device and exchanges HELLOs.
    pub async fn up(reach: &Reach) -> Result<Self, String> {
        let link = reach.open().await.map_err(|e| e.to_string())?;
        let link: Arc<dyn Link> = Arc::from(link);
        let suite = reach.suite_device_id();
        let hello = Control::Hello(pb::Hello {
            min_version: 1,
            max_version: 1,
            device_id: suite.clone(),
            max_frame_size: 65_535,
            keepalive_interval_ms: 1_000,
            features: 0,
            nonce: Bytes::from_static(&[0x66; 16]),
            max_data_size: 100 << 20,
        });
        let mut hostile = Self {
            link,
            max_frame: 65_535,
            next_channel: 1,
            suite,
            iut: reach.device_id(),
        };
        hostile.send(&hello, 0).await?;
        let first = tokio::time::timeout(Duration::from_secs(10), hostile.link.recv())
            .await
            .map_err(|_| "no HELLO within 10 s".to_string())?
            .map_err(|e| e.to_string())?;
        let frame = acm_wire::Frame::decode_exact(first, u32::MAX, None)
            .map_err(|e| format!("a bad first frame: {e}"))?;
        match Control::decode(FrameType::Hello, &frame.payload) {
            Some(Ok(Control::Hello(hello))) => hostile.max_frame = hello.max_frame_size,
            other => return Err(format!("HELLO first, got {other:?}")),
        }
        Ok(hostile)
    }

    /// The link, shared.
    pub fn link(&self) -> Arc<dyn Link> {
        self.link.clone()
    }

    /// Sends a control body on `channel`.
    pub async fn send(&self, control: &Control, channel: u32) -> Result<(), String> {
        let frames =
            encode_control(control, 1, channel, self.max_frame).map_err(|e| e.to_string())?;
        for frame in frames {
            self.link.send(frame).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Sends a CONNECT_REQUEST for the profile's `ability` and `service` on a new channel,
    /// with a token made of `token`; returns the channel.
    pub async fn request(
        &mut self,
        ability: &str,
        service: &str,
        token: u128,
    ) -> Result<u32, String> {
        let channel = self.next_channel;
        self.next_channel = self.next_channel.saturating_add(2);
        let mut target = suite_app(&self.iut);
        target.ability_name = ability.into();
        target.service_name = service.into();
        let request = pb::ConnectRequest {
            token: Bytes::copy_from_slice(&token.to_be_bytes()),
            source: Some(suite_app(&self.suite)),
            target: Some(target),
            options: Some(pb::ConnectOptions::default()),
        };
        self.send(&Control::ConnectRequest(request), channel)
            .await?;
        Ok(channel)
    }

    /// Opens a session with the profile's echo ability: reads until its CONNECT_RESPONSE.
    pub async fn echo_session(&mut self, service: &str, token: u128) -> Result<u32, String> {
        let channel = self.request(profile::ECHO, service, token).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let bytes = tokio::time::timeout_at(deadline, self.link.recv())
                .await
                .map_err(|_| "no CONNECT_RESPONSE within 10 s".to_string())?
                .map_err(|e| e.to_string())?;
            let Ok(frame) = acm_wire::Frame::decode_exact(bytes, u32::MAX, None) else {
                continue;
            };
            if frame.channel == channel {
                return match Control::decode(FrameType::ConnectResponse, &frame.payload) {
                    Some(Ok(Control::ConnectResponse(response)))
                        if matches!(
                            response.result,
                            Some(pb::connect_response::Result::Accepted(_))
                        ) =>
                    {
                        Ok(channel)
                    }
                    other => Err(format!("an accepted session, got {other:?}")),
                };
            }
        }
    }

    /// The FIRST fragment of a transfer on `channel` that declares `declared` bytes and carries
    /// `chunk`.
    pub fn first_fragment(
        channel: u32,
        transfer_id: u32,
        declared: u64,
        chunk: Bytes,
    ) -> Result<Bytes, String> {
        acm_wire::DataFragment {
            channel,
            transfer_id,
            index: 0,
            total_length: Some(declared),
            last: false,
            chunk,
        }
        .to_frame(1)
        .and_then(|frame| frame.to_bytes())
        .map_err(|e| e.to_string())
    }

    /// A later fragment of a transfer.
    pub fn next_fragment(
        channel: u32,
        transfer_id: u32,
        index: u32,
        chunk: Bytes,
    ) -> Result<Bytes, String> {
        acm_wire::DataFragment {
            channel,
            transfer_id,
            index,
            total_length: None,
            last: false,
            chunk,
        }
        .to_frame(1)
        .and_then(|frame| frame.to_bytes())
        .map_err(|e| e.to_string())
    }

    /// Sends `data` as one whole transfer on `channel`.
    pub async fn send_data(
        &self,
        channel: u32,
        transfer_id: u32,
        data: Bytes,
    ) -> Result<(), String> {
        let fragments = Fragmenter::new(1, channel, transfer_id, data, self.max_frame)
            .map_err(|e| e.to_string())?;
        for fragment in fragments {
            self.link.send(fragment).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Reads and drops everything the implementation sends, until the link ends or the
    /// [`Drain`] is dropped.
    pub fn drain(&self) -> Drain {
        let link = self.link.clone();
        Drain(tokio::spawn(
            async move { while link.recv().await.is_ok() {} },
        ))
    }

    /// Closes the link.
    pub async fn close(&self) {
        self.link.close(CloseReason::normal()).await;
    }
}

/// A task that reads a link and drops what it reads; stopped when dropped.
#[derive(Debug)]
pub struct Drain(tokio::task::JoinHandle<()>);

impl Drop for Drain {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::client_token;

    #[test]
    fn each_client_and_service_has_a_token_of_its_own() {
        let a = client_token("acm-churn-1", "churn");
        assert_eq!(a, client_token("acm-churn-1", "churn"));
        assert_ne!(a, client_token("acm-churn-2", "churn"));
        assert_ne!(a, client_token("acm-churn-1", "other"));
    }
}
