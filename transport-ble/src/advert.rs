//! The acceptor's advertisement: what it sends, and how a scanner reads it.

use acm_transport::DeviceId;
use trouble_host::prelude::AdStructure;

use crate::binding::{AD_FLAGS, MAX_ADVERTISED_ID_LEN, service_uuid_le};

/// The longest legacy advertising or scan response payload.
const AD_MAX: usize = 31;

/// The advertising data and scan response of an acceptor with id `device`, or `None` when the
/// id is too long to advertise.
pub(crate) fn encode(device: &DeviceId) -> Option<(Vec<u8>, Vec<u8>)> {
    let id = device.as_str().as_bytes();
    if id.len() > MAX_ADVERTISED_ID_LEN {
        return None;
    }
    let uuids = [service_uuid_le()];
    let mut adv = [0u8; AD_MAX];
    let adv_len = AdStructure::encode_slice(
        &[
            AdStructure::Flags(AD_FLAGS),
            AdStructure::CompleteServiceUuids128(&uuids),
        ],
        &mut adv,
    )
    .ok()?;
    let mut scan = [0u8; AD_MAX];
    let scan_len =
        AdStructure::encode_slice(&[AdStructure::CompleteLocalName(id)], &mut scan).ok()?;
    Some((adv[..adv_len].to_vec(), scan[..scan_len].to_vec()))
}

/// What one advertising report says about its sender.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The report lists the acm service.
    pub(crate) acm: bool,
    /// The report names a device id.
    pub(crate) id: Option<DeviceId>,
}

/// Reads one advertising or scan response payload. Malformed structures end the reading; what
/// was read before them counts.
pub(crate) fn read(data: &[u8]) -> Seen {
    let ours = service_uuid_le();
    let mut seen = Seen::default();
    for item in AdStructure::decode(data) {
        match item {
            Ok(AdStructure::CompleteServiceUuids128(uuids))
            | Ok(AdStructure::IncompleteServiceUuids128(uuids)) => {
                seen.acm |= uuids.contains(&ours);
            }
            Ok(AdStructure::CompleteLocalName(name)) => {
                seen.id = std::str::from_utf8(name)
                    .ok()
                    .and_then(|name| DeviceId::new(name).ok());
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertisement_reads_back_as_acm_with_its_id() {
        let id = DeviceId::new("phone-01").unwrap();
        let (adv, scan) = encode(&id).unwrap();
        assert!(adv.len() <= AD_MAX && scan.len() <= AD_MAX);
        assert_eq!(&adv[..3], &[2, 1, AD_FLAGS]);
        assert_eq!(
            read(&adv),
            Seen {
                acm: true,
                id: None
            }
        );
        assert_eq!(
            read(&scan),
            Seen {
                acm: false,
                id: Some(id)
            }
        );
    }

    #[test]
    fn ids_longer_than_a_scan_response_are_not_advertised() {
        let fits = DeviceId::new("d".repeat(MAX_ADVERTISED_ID_LEN)).unwrap();
        assert!(encode(&fits).is_some());
        let long = DeviceId::new("d".repeat(MAX_ADVERTISED_ID_LEN + 1)).unwrap();
        assert!(encode(&long).is_none());
    }

    #[test]
    fn other_advertisers_and_garbage_are_not_acm() {
        assert_eq!(read(&[2, 1, 6, 3, 3, 0x0F, 0x18]), Seen::default());
        assert_eq!(read(&[0xFF, 0x09, b'a']), Seen::default());
        assert_eq!(read(&[]), Seen::default());
    }
}
