//! Arguments read from the input: texts, requests, channels and data, each from a selector byte
//! and what follows it (fuzz/README.md describes the layouts).

use std::collections::BTreeMap;

use crate::Input;
use acm_wire::pb;
use bytes::Bytes;

use acm_engine::OutgoingRequest;

/// Bundles, services and modules the apps of a request are made of: few, so that sessions
/// collide (SESS-3, SESS-7).
const BUNDLES: [&str; 2] = ["com.example.notes", "com.example.draw"];
const SERVICES: [&str; 2] = ["notes", "sync"];

/// A text: a selector byte, then, for short texts, their bytes (read as UTF-8, lossily).
/// Selector 0x00-0x7F: that many bytes of input; 0x80-0xBF: 992 to 1055 bytes around the
/// 1024-byte limit; 0xC0-0xFF: a varint length (at most 4096) of a repeated two-byte character.
pub(super) fn text(input: &mut Input<'_>) -> String {
    let selector = input.byte();
    match selector >> 6 {
        0 | 1 => String::from_utf8_lossy(input.bytes(usize::from(selector))).into_owned(),
        2 => "a".repeat(992 + usize::from(selector & 0x3F)),
        _ => {
            let len = usize::try_from(input.varint().min(4096)).unwrap_or(0);
            "é".repeat(len / 2) + &"a".repeat(len % 2)
        }
    }
}

fn peer_info(device: &str, bundle: &str, service: &str) -> pb::PeerInfo {
    pb::PeerInfo {
        device_id: device.into(),
        bundle_name: bundle.into(),
        module_name: "entry".into(),
        ability_name: "EntryAbility".into(),
        service_name: service.into(),
    }
}

/// A request from an app on `source` to one on `target`: a selector byte and a token byte.
/// Selector bits: 0 and 1 the source's and the target's bundle, 2 the service, 3-4
/// `need_send_data` (unset, true, false, unset), 5 one parameter, 6 the target on another
/// device, 7 an empty module name (invalid, `SESS-2`; only when `may_be_invalid`: the apps'
/// calls are checked before they reach the engine). The token is 16 copies of its byte.
pub(super) fn request(
    input: &mut Input<'_>,
    source: &str,
    target: &str,
    may_be_invalid: bool,
) -> OutgoingRequest {
    let selector = input.byte();
    let token = [input.byte(); 16];
    let bit = |n: u8| usize::from((selector >> n) & 1);
    let service = SERVICES[bit(2)];
    let target_device = if bit(6) == 1 { "watch" } else { target };
    let mut target = peer_info(target_device, BUNDLES[bit(1)], service);
    if bit(7) == 1 && may_be_invalid {
        target.module_name.clear();
    }
    let need_send_data = match (selector >> 3) & 3 {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    };
    let parameters = if bit(5) == 1 {
        BTreeMap::from([("mode".to_string(), "edit".to_string())])
    } else {
        BTreeMap::new()
    };
    OutgoingRequest {
        token,
        source: peer_info(source, BUNDLES[bit(0)], ""),
        target,
        options: pb::ConnectOptions {
            need_send_data,
            start_options: pb::StartOptionParams::StartInForeground.into(),
            parameters,
        },
    }
}

/// A channel: a selector byte. 0x00-0x7F: one of `known` (or 1 when there is none);
/// 0x80-0xBF: the selector's low six bits; 0xC0-0xFF: a varint, cut to 32 bits.
pub(super) fn channel(input: &mut Input<'_>, known: &[u32]) -> u32 {
    let selector = input.byte();
    match selector >> 6 {
        0 | 1 => match known.len() {
            0 => 1,
            n => known[usize::from(selector) % n],
        },
        2 => u32::from(selector & 0x3F),
        _ => u32::try_from(input.varint() & u64::from(u32::MAX)).unwrap_or(0),
    }
}

/// A data length: a selector byte. 0x00-0x3F: that many bytes; 0x40-0x7F: 37 times the low
/// six bits; 0x80-0xBF: around `limit` (one less, equal, one more, when it is small); 0xC0-0xFF:
/// a varint, at most 20 000.
pub(super) fn data_len(input: &mut Input<'_>, limit: u64) -> usize {
    let selector = input.byte();
    let low = usize::from(selector & 0x3F);
    match selector >> 6 {
        0 => low,
        1 => low * 37,
        2 if limit <= 20_000 => (usize::try_from(limit).unwrap_or(0) + low % 3).saturating_sub(1),
        2 => low,
        _ => usize::try_from(input.varint().min(20_000)).unwrap_or(0),
    }
}

/// `len` bytes of a pattern that differs between transfers.
pub(super) fn data(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// Bytes of the input: a length byte, then that many bytes.
pub(super) fn chunk(input: &mut Input<'_>) -> Bytes {
    let len = input.byte();
    Bytes::copy_from_slice(input.bytes(usize::from(len)))
}
