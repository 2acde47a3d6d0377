//! `pb::PeerInfo` is written out by hand (it decodes each string with one copy); prost generates
//! every other message. It must encode the same bytes as prost's own `PeerInfo`
//! (`bare_pb::PeerInfo`), and decode any bytes, valid or not, as prost's does: the same values,
//! or an error with the same text. Checked here alone and inside a CONNECT_REQUEST, from one
//! piece of memory and from a buffer in two pieces.

use acm_wire::{bare_pb, pb};
use bytes::{Buf, Bytes};
use proptest::prelude::*;
use prost::Message;

fn ours_of(bare: &bare_pb::PeerInfo) -> pb::PeerInfo {
    pb::PeerInfo {
        device_id: bare.device_id.clone(),
        bundle_name: bare.bundle_name.clone(),
        module_name: bare.module_name.clone(),
        ability_name: bare.ability_name.clone(),
        service_name: bare.service_name.clone(),
    }
}

fn same_peer(ours: &pb::PeerInfo, bare: &bare_pb::PeerInfo) -> bool {
    *ours == ours_of(bare)
}

/// Decodes `bytes` as both, from `buf` as each gets it, and checks that they agree.
fn assert_decodes_alike<B: Buf>(bytes: &[u8], buf: impl Fn() -> B) {
    let ours = pb::PeerInfo::decode(buf());
    let bare = bare_pb::PeerInfo::decode(buf());
    match (&ours, &bare) {
        (Ok(ours), Ok(bare)) => assert!(same_peer(ours, bare), "{ours:?} vs {bare:?}"),
        (Err(ours), Err(bare)) => assert_eq!(ours.to_string(), bare.to_string()),
        _ => panic!("{bytes:02x?}: ours {ours:?}, prost {bare:?}"),
    }
    let ours = pb::ConnectRequest::decode(buf());
    let bare = bare_pb::ConnectRequest::decode(buf());
    match (&ours, &bare) {
        (Ok(ours), Ok(bare)) => {
            assert_eq!(ours.token, bare.token);
            assert_eq!(ours.source.is_some(), bare.source.is_some());
            assert_eq!(ours.target.is_some(), bare.target.is_some());
            for (o, b) in [(&ours.source, &bare.source), (&ours.target, &bare.target)] {
                if let (Some(o), Some(b)) = (o, b) {
                    assert!(same_peer(o, b), "{o:?} vs {b:?}");
                }
            }
            assert_eq!(
                ours.options.as_ref().map(Message::encode_to_vec),
                bare.options.as_ref().map(Message::encode_to_vec)
            );
        }
        (Err(ours), Err(bare)) => assert_eq!(ours.to_string(), bare.to_string()),
        _ => panic!("{bytes:02x?}: ours {ours:?}, prost {bare:?}"),
    }
}

/// Both ways: from one slice, and from the same bytes split in two at `split`.
fn assert_both_ways_alike(bytes: &[u8], split: usize) {
    assert_decodes_alike(bytes, || bytes);
    let split = split.min(bytes.len());
    let (head, tail) = bytes.split_at(split);
    assert_decodes_alike(bytes, || {
        Bytes::copy_from_slice(head).chain(Bytes::copy_from_slice(tail))
    });
}

fn bare_peer() -> impl Strategy<Value = bare_pb::PeerInfo> {
    let text = || "[a-zA-Z0-9.é日\\-]{0,24}";
    (text(), text(), text(), text(), text()).prop_map(
        |(device_id, bundle_name, module_name, ability_name, service_name)| bare_pb::PeerInfo {
            device_id,
            bundle_name,
            module_name,
            ability_name,
            service_name,
        },
    )
}

/// Protobuf fields as bytes: each a key of any field number and wire type, then a varint, a
/// length and that many bytes (text, or anything), or a fixed-size value.
fn fields() -> impl Strategy<Value = Vec<u8>> {
    let field = (
        0u32..9,
        0u8..8,
        any::<u64>(),
        prop_oneof![
            "[a-z]{0,6}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..8),
        ],
    )
        .prop_map(|(number, wire_type, varint, bytes)| {
            let mut out = Vec::new();
            prost::encoding::encode_varint(u64::from(number << 3 | u32::from(wire_type)), &mut out);
            match wire_type {
                0 => prost::encoding::encode_varint(varint, &mut out),
                1 => out.extend_from_slice(&varint.to_le_bytes()),
                2 => {
                    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
                    out.extend_from_slice(&bytes);
                }
                5 => out.extend_from_slice(&(varint as u32).to_le_bytes()),
                _ => {}
            }
            out
        });
    proptest::collection::vec(field, 0..8).prop_map(|fields| fields.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encodes_the_bytes_prost_encodes(bare in bare_peer()) {
        let ours = ours_of(&bare);
        prop_assert_eq!(ours.encode_to_vec(), bare.encode_to_vec());
        prop_assert_eq!(ours.encoded_len(), bare.encoded_len());
        let request = |source, target| pb::ConnectRequest {
            token: Bytes::from_static(&[7; 16]),
            source: Some(source),
            target: Some(target),
            options: None,
        };
        let bare_request = bare_pb::ConnectRequest {
            token: Bytes::from_static(&[7; 16]),
            source: Some(bare.clone()),
            target: Some(bare.clone()),
            options: None,
        };
        prop_assert_eq!(
            request(ours.clone(), ours).encode_to_vec(),
            bare_request.encode_to_vec()
        );
    }

    #[test]
    fn decodes_a_valid_encoding_as_prost_does(bare in bare_peer(), split in any::<usize>()) {
        let bytes = bare.encode_to_vec();
        assert_both_ways_alike(&bytes, split);
        let decoded = pb::PeerInfo::decode(&bytes[..]).expect("a valid encoding");
        prop_assert!(same_peer(&decoded, &bare));
    }

    #[test]
    fn decodes_any_fields_as_prost_does(bytes in fields(), split in any::<usize>()) {
        assert_both_ways_alike(&bytes, split);
    }

    #[test]
    fn decodes_any_bytes_as_prost_does(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        split in any::<usize>(),
    ) {
        assert_both_ways_alike(&bytes, split);
    }
}

#[test]
fn long_strings_encode_and_decode_as_prost_does() {
    for len in [1, 127, 128, 255, 256, 300, 16_383, 16_384, 70_000] {
        let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
        let bare = bare_pb::PeerInfo {
            device_id: text.clone(),
            bundle_name: "b".into(),
            module_name: text.clone(),
            ability_name: String::new(),
            service_name: text,
        };
        let ours = ours_of(&bare);
        assert_eq!(ours.encode_to_vec(), bare.encode_to_vec(), "{len}");
        assert_eq!(ours.encoded_len(), bare.encoded_len(), "{len}");
        let bytes = bare.encode_to_vec();
        assert_both_ways_alike(&bytes, len);
        assert_eq!(pb::PeerInfo::decode(&bytes[..]).expect("valid"), ours);
    }
}

#[test]
fn a_field_seen_twice_keeps_its_last_value_and_the_others_stay() {
    let mut bytes = bare_pb::PeerInfo {
        device_id: "phone".into(),
        bundle_name: "com.example".into(),
        ..Default::default()
    }
    .encode_to_vec();
    bytes.extend(
        bare_pb::PeerInfo {
            device_id: "tablet".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let decoded = pb::PeerInfo::decode(&bytes[..]).expect("valid");
    assert_eq!(decoded.device_id, "tablet");
    assert_eq!(decoded.bundle_name, "com.example");
    assert_both_ways_alike(&bytes, 3);
}

#[test]
fn bad_utf8_wrong_wire_types_and_short_strings_fail_as_prost_fails() {
    let cases: [&[u8]; 6] = [
        // device_id: 0xff is not UTF-8.
        &[0x0a, 0x02, b'a', 0xff],
        // bundle_name as a varint.
        &[0x10, 0x05],
        // module_name longer than what follows.
        &[0x1a, 0x05, b'a', b'b'],
        // ability_name whose length is cut short.
        &[0x22, 0x80],
        // An unknown field, skipped, then service_name.
        &[0x30, 0x01, 0x2a, 0x01, b's'],
        // An unknown length-delimited field running past the end.
        &[0x3a, 0x09, 0x00],
    ];
    for bytes in cases {
        for split in 0..=bytes.len() {
            assert_both_ways_alike(bytes, split);
        }
    }
    let err = pb::PeerInfo::decode(&[0x0a, 0x02, b'a', 0xff][..]).unwrap_err();
    assert!(err.to_string().contains("PeerInfo.device_id"), "{err}");
}

#[test]
fn a_decoded_string_takes_no_more_room_than_its_text() {
    let bytes = bare_pb::PeerInfo {
        device_id: "phone-0123456789".into(),
        bundle_name: "com.example.collaborative.notes".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let decoded = pb::PeerInfo::decode(&bytes[..]).expect("valid");
    assert_eq!(decoded.device_id.capacity(), decoded.device_id.len());
    assert_eq!(decoded.bundle_name.capacity(), decoded.bundle_name.len());
    // Nothing is allocated for a field that is not there.
    assert_eq!(decoded.module_name.capacity(), 0);
}

#[test]
fn clear_empties_every_field() {
    let mut peer = pb::PeerInfo {
        device_id: "phone".into(),
        bundle_name: "b".into(),
        module_name: "m".into(),
        ability_name: "a".into(),
        service_name: "s".into(),
    };
    peer.clear();
    assert_eq!(peer, pb::PeerInfo::default());
    assert_eq!(
        format!("{peer:?}"),
        format!("{:?}", bare_pb::PeerInfo::default())
    );
}
