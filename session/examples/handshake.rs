//! Two devices on the in-memory mock network open a link, negotiate, open a session, exchange a
//! message and a data transfer, and part, printing every frame as it crosses the link.
//!
//! Run with `cargo run -p acm --example handshake`. It exits non-zero if any step does not go
//! as SPEC.md says.

use std::error::Error;

use acm::transport::{CloseReason, DeviceId, Link, Transport};
use acm::wire::pb::{self, FrameType, connect_response};
use acm::wire::{
    Control, DataFragment, Fragmenter, Frame, FrameKind, HEADER_LEN, Limits, Reassembler,
    SUPPORTED_VERSIONS, negotiate_version,
};
use acm_transport_mock::MockNetwork;
use bytes::Bytes;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| format!("no system randomness: {e}"))?;
    Ok(bytes)
}

fn hello(device: &DeviceId, limits: &Limits) -> Result<Control> {
    Ok(Control::Hello(pb::Hello {
        min_version: (*SUPPORTED_VERSIONS.start()).into(),
        max_version: (*SUPPORTED_VERSIONS.end()).into(),
        device_id: device.to_string(),
        max_frame_size: limits.max_frame_size,
        keepalive_interval_ms: 15_000,
        features: 0,
        nonce: Bytes::copy_from_slice(&random::<16>()?),
        max_data_size: limits.max_data_size,
    }))
}

fn describe(frame: &Frame) -> String {
    let header = frame.header();
    let name = match frame.kind {
        FrameKind::Known(t) => t
            .as_str_name()
            .trim_start_matches("FRAME_TYPE_")
            .to_string(),
        FrameKind::Extension(code) => format!("EXTENSION {code:#04x}"),
    };
    let head: Vec<String> = header
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{name:<17} v{} chan {:<2} flags {:#04x} len {:>5} | {}",
        header.version,
        header.channel,
        header.flags,
        header.length,
        head.join(" ")
    )
}

async fn send(link: &dyn Link, from: &str, frame: Bytes) -> Result<()> {
    let decoded = Frame::decode_exact(frame.clone(), u32::MAX, None)?;
    if decoded.kind != FrameKind::Known(FrameType::Data) || decoded.flags != 0 {
        println!("{from:>6} -> {}", describe(&decoded));
    }
    link.send(frame).await?;
    Ok(())
}

/// Receives one frame and decodes its control body (DATA frames come back as `None`).
async fn recv(
    link: &dyn Link,
    limits: &Limits,
    version: Option<u8>,
) -> Result<(Frame, Option<Control>)> {
    let frame = Frame::decode_exact(link.recv().await?, limits.max_frame_size, version)?;
    let control = match frame.kind {
        FrameKind::Known(t) => Control::decode(t, &frame.payload).transpose()?,
        FrameKind::Extension(_) => None,
    };
    Ok((frame, control))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    println!("acm frame header: {HEADER_LEN} bytes, big-endian");
    println!("  magic AC 4D | version | type | flags | length (24 bits) | channel (32 bits)\n");

    let network = MockNetwork::new(7);
    let phone_id = DeviceId::new("phone-1")?;
    let tablet_id = DeviceId::new("tablet-1")?;
    let phone = network.add_device(phone_id.clone())?;
    let tablet = network.add_device(tablet_id.clone())?;
    let limits = Limits::default();

    let seen = phone.discover().await?;
    println!(
        "phone discovers: {:?}\n",
        seen.iter().map(|d| d.id.as_str()).collect::<Vec<_>>()
    );
    let a = phone.dial(&tablet_id).await?;
    let b = tablet.accept().await?;

    // Link setup: both send HELLO at once, then negotiate (SPEC section 4).
    send(&*a, "phone", hello(&phone_id, &limits)?.encode_frame(1, 0)?).await?;
    send(
        &*b,
        "tablet",
        hello(&tablet_id, &limits)?.encode_frame(1, 0)?,
    )
    .await?;
    let (_, Some(Control::Hello(tablet_hello))) = recv(&*a, &limits, None).await? else {
        return Err("phone: first frame is not HELLO".into());
    };
    let (_, Some(Control::Hello(phone_hello))) = recv(&*b, &limits, None).await? else {
        return Err("tablet: first frame is not HELLO".into());
    };
    let v = negotiate_version(SUPPORTED_VERSIONS, &tablet_hello).ok_or("no common version")?;
    let peer_max = tablet_hello
        .max_frame_size
        .min(u32::try_from(a.max_frame_size())?);
    assert_eq!(negotiate_version(SUPPORTED_VERSIONS, &phone_hello), Some(v));
    println!("negotiated version {v}; phone may send frames of up to {peer_max} bytes\n");

    // The handshake on channel 1 (the dialer's first odd channel, SPEC section 5).
    let token = Bytes::copy_from_slice(&random::<16>()?);
    let peer = |device: &DeviceId| pb::PeerInfo {
        device_id: device.to_string(),
        bundle_name: "com.example.notes".into(),
        module_name: "entry".into(),
        ability_name: "EntryAbility".into(),
        service_name: "notes-sync".into(),
    };
    let request = Control::ConnectRequest(pb::ConnectRequest {
        token: token.clone(),
        source: Some(peer(&phone_id)),
        target: Some(peer(&tablet_id)),
        options: Some(pb::ConnectOptions {
            need_send_data: Some(true),
            start_options: pb::StartOptionParams::StartInForeground.into(),
            parameters: [("mode".to_string(), "edit".to_string())].into(),
        }),
    });
    send(&*a, "phone", request.encode_frame(v, 1)?).await?;
    let (frame, Some(Control::ConnectRequest(got))) = recv(&*b, &limits, Some(v)).await? else {
        return Err("tablet: expected CONNECT_REQUEST".into());
    };
    println!(
        "tablet: onCollaborate from {}, token {}",
        got.source.as_ref().map_or_else(|| "nobody".into(), app),
        hex(&got.token)
    );
    let response = Control::ConnectResponse(pb::ConnectResponse {
        token: got.token.clone(),
        result: Some(connect_response::Result::Accepted(pb::Accepted {})),
    });
    send(&*b, "tablet", response.encode_frame(v, frame.channel)?).await?;
    let (_, Some(Control::ConnectResponse(answer))) = recv(&*a, &limits, Some(v)).await? else {
        return Err("phone: expected CONNECT_RESPONSE".into());
    };
    if answer.token != token {
        return Err("phone: response answers another token".into());
    }
    println!("phone: connect() -> {{ isConnected: true }}\n");

    // A message and 100 000 bytes of data.
    let text = Control::Message(pb::Message {
        text: "hello from the phone".into(),
    });
    send(&*a, "phone", text.encode_frame(v, 1)?).await?;
    let (_, Some(Control::Message(message))) = recv(&*b, &limits, Some(v)).await? else {
        return Err("tablet: expected MESSAGE".into());
    };
    println!("tablet: receiveMessage {:?}", message.text);

    let data = Bytes::from((0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let fragments = Fragmenter::new(v, 1, 1, data.clone(), peer_max)?;
    println!(
        "phone: sendData of {} bytes in {} DATA frames",
        data.len(),
        fragments.len()
    );
    let mut reassembler = Reassembler::new(limits);
    let mut delivered = None;
    for fragment in fragments {
        send(&*a, "phone", fragment).await?;
        let (frame, _) = recv(&*b, &limits, Some(v)).await?;
        delivered = reassembler.push(DataFragment::parse(&frame)?)?;
    }
    if delivered.as_ref() != Some(&data) {
        return Err("tablet: reassembled data differs".into());
    }
    println!("tablet: receiveData of {} bytes, intact\n", data.len());

    // The phone's app calls disconnect(); then the link is no longer needed.
    let bye = Control::Disconnect(pb::Disconnect {
        reason: pb::DisconnectReason::PeerAppCloseCollaboration.into(),
        error: pb::SessionError::None.into(),
        detail: String::new(),
    });
    send(&*a, "phone", bye.encode_frame(v, 1)?).await?;
    let (_, Some(Control::Disconnect(d))) = recv(&*b, &limits, Some(v)).await? else {
        return Err("tablet: expected DISCONNECT".into());
    };
    println!(
        "tablet: disconnect event, reason {}",
        d.reason().as_str_name()
    );
    let close = Control::LinkClose(pb::LinkClose {
        reason: pb::LinkCloseReason::Normal.into(),
        message: "no sessions left".into(),
    });
    send(&*a, "phone", close.encode_frame(v, 0)?).await?;
    a.close(CloseReason::normal()).await;
    let (_, Some(Control::LinkClose(_))) = recv(&*b, &limits, Some(v)).await? else {
        return Err("tablet: expected LINK_CLOSE".into());
    };
    println!(
        "tablet: link closed: {}",
        b.recv().await.err().ok_or("link still open")?
    );
    println!("\nhandshake round trip: ok");
    Ok(())
}

/// An app as `device/bundle/module/ability`, with its service when it names one.
pub(crate) fn app(peer: &pb::PeerInfo) -> String {
    let names = [
        &peer.device_id,
        &peer.bundle_name,
        &peer.module_name,
        &peer.ability_name,
    ];
    let mut text = names.map(String::as_str).join("/");
    if !peer.service_name.is_empty() {
        text.push_str(&format!(" for service {}", peer.service_name));
    }
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
