//! What a link's LE connection runs with on the air, and the most it can carry.
//!
//! [`AirParameters`] are what the controller reported for a connection: PHY, data length,
//! connection interval, and the event length the central asked for (SPEC section 13.5 says
//! what a side asks for). [`AirParameters::goodput_ceiling`] is the model README's "Goodput
//! model" writes out: a connection event is a series of exchanges, each a data PDU one way and
//! an empty PDU back, 150 µs apart (Core Vol 6 Part B §4.1.1, T_IFS), each PDU's air time given
//! by its PHY's bit rate and framing (Core Vol 6 Part B §2.1 and §2.2); the sender fills PDUs
//! with the L2CAP K-frames of its SDUs (Core Vol 3 Part A §3.4), as fragments no longer than
//! the controller's ACL buffers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use acm_transport::DeviceId;

/// The inter-frame space: from the end of one PDU to the start of the next.
pub const T_IFS: Duration = Duration::from_micros(150);
/// The data length every LE connection starts with: octets per PDU payload, and the air time
/// of such a PDU on the LE 1M PHY (Core Vol 6 Part B §4.5.10).
pub const INITIAL_OCTETS: u16 = 27;
/// The air time [`INITIAL_OCTETS`] take on the LE 1M PHY.
pub const INITIAL_TIME: Duration = Duration::from_micros(328);
/// The largest data length: octets per PDU payload.
pub const MAX_OCTETS: u16 = 251;
/// The air time that [`MAX_OCTETS`] (and a 4-byte MIC) take on the LE 1M PHY: the longest a
/// host asks for when it asks for the largest data length without the coded PHY.
pub const MAX_TIME: Duration = Duration::from_micros(2120);
/// The L2CAP basic header of every K-frame: length and channel id.
pub const KFRAME_HEADER: usize = 4;
/// The SDU length field of an SDU's first K-frame.
pub const SDU_LENGTH_FIELD: usize = 2;

/// The smallest SDU counted when credits are sized to a link: an acm frame header and nothing
/// more (SPEC `BLE-14`).
pub const SMALLEST_SDU: usize = 12;

/// An LE PHY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phy {
    /// LE 1M: 1 Mbit/s, a 1-byte preamble.
    Le1M,
    /// LE 2M: 2 Mbit/s, a 2-byte preamble.
    Le2M,
    /// LE Coded, counted at S=8 (125 kbit/s), the slower coding: HCI reports the PHY, not the
    /// coding.
    LeCoded,
}

impl Phy {
    /// The PHY an HCI event names (1, 2 or 3); `None` for another value.
    pub fn from_hci(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Le1M),
            2 => Some(Self::Le2M),
            3 => Some(Self::LeCoded),
            _ => None,
        }
    }

    /// The name used in logs and reports: `1M`, `2M` or `Coded`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Le1M => "1M",
            Self::Le2M => "2M",
            Self::LeCoded => "Coded",
        }
    }
}

/// The air time of a data channel PDU with `octets` of payload and no MIC: preamble, access
/// address, header, payload and CRC at the PHY's bit rate (Core Vol 6 Part B §2.1, §2.2); on
/// the coded PHY at S=8, with its coding indicator and terminators.
pub fn pdu_time(phy: Phy, octets: u16) -> Duration {
    let octets = u64::from(octets);
    let micros = match phy {
        // 1-byte preamble, 4 access address, 2 header, payload, 3 CRC; 8 µs a byte.
        Phy::Le1M => (1 + 4 + 2 + octets + 3) * 8,
        // 2-byte preamble; 4 µs a byte.
        Phy::Le2M => (2 + 4 + 2 + octets + 3) * 4,
        // 80 µs preamble, 256 access address, 16 CI, 24 TERM1; header, payload and CRC at
        // 64 µs a byte; 24 TERM2.
        Phy::LeCoded => 80 + 256 + 16 + 24 + (2 + octets + 3) * 64 + 24,
    };
    Duration::from_micros(micros)
}

/// The most octets a PDU payload can hold within `time` on `phy` (the data length's time
/// limit), between 27 and 251.
pub fn octets_within(phy: Phy, time: Duration) -> u16 {
    (INITIAL_OCTETS..=MAX_OCTETS)
        .rev()
        .find(|octets| pdu_time(phy, *octets) <= time)
        .unwrap_or(INITIAL_OCTETS)
}

/// How many fragments of at most `fragment` bytes an SDU of `sdu_len` bytes takes when it is
/// sent as K-frames of at most `mps` bytes of payload: each K-frame (its 4-byte header, the
/// first one's 2-byte SDU length, and its share of the SDU) is cut into fragments separately.
pub fn fragments_per_sdu(sdu_len: usize, mps: u16, fragment: u16) -> u64 {
    let mps = usize::from(mps.max(1));
    let fragment = usize::from(fragment.max(1));
    let mut left = sdu_len + SDU_LENGTH_FIELD;
    let mut fragments = 0u64;
    loop {
        let payload = left.min(mps);
        let frame = KFRAME_HEADER + payload;
        fragments += frame.div_ceil(fragment) as u64;
        left -= payload;
        if left == 0 {
            return fragments;
        }
    }
}

/// The credits a receiver grants so that a sender of the smallest SDUs can fill the connection
/// events of a link on `phy` with `interval` while the credits returned for one event are on
/// their way back: twice the SDUs one event carries, each in a PDU of its own, within
/// `least..=most` (SPEC `BLE-14`).
pub fn credits_to_fill(interval: Duration, phy: Phy, least: u16, most: u16) -> u16 {
    let mut air = AirParameters::initial(true, interval, MAX_OCTETS, 1);
    air.tx_phy = phy;
    air.rx_phy = phy;
    // The SDU, its SDU length field and its K-frame header: a few octets, which fit any PDU.
    air.max_tx_octets =
        u16::try_from(KFRAME_HEADER + SDU_LENGTH_FIELD + SMALLEST_SDU).unwrap_or(MAX_OCTETS);
    air.max_tx_time = MAX_TIME;
    let per_event = air.pdus_per_event().saturating_mul(2);
    u16::try_from(per_event)
        .unwrap_or(u16::MAX)
        .clamp(least, most)
}

/// What a link's LE connection runs with, as this side's controller reported it, with the
/// directions seen from this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AirParameters {
    /// Whether this side is the connection's central.
    pub central: bool,
    /// The PHY of what this side sends.
    pub tx_phy: Phy,
    /// The PHY of what this side receives.
    pub rx_phy: Phy,
    /// The most payload octets per PDU this side sends.
    pub max_tx_octets: u16,
    /// The most air time per PDU this side sends.
    pub max_tx_time: Duration,
    /// The most payload octets per PDU this side receives.
    pub max_rx_octets: u16,
    /// The most air time per PDU this side receives.
    pub max_rx_time: Duration,
    /// The connection interval.
    pub interval: Duration,
    /// The peripheral latency, in connection events.
    pub peripheral_latency: u16,
    /// The longest connection event this side asked for (the central asks), if it asked.
    /// Controllers do not report the event length they use; a controller may use less.
    pub event_length: Option<Duration>,
    /// The longest ACL data packet this side's controller takes (LE Read Buffer Size): the
    /// host cuts K-frames into fragments of this size.
    pub acl_packet_length: u16,
    /// How many ACL data packets this side's controller holds at once.
    pub acl_packets: u16,
}

impl AirParameters {
    /// What a new connection runs with: the LE 1M PHY and 27-octet PDUs both ways (Core Vol 6
    /// Part B §4.5.10), the interval it was made with, and this side's controller buffers.
    pub fn initial(
        central: bool,
        interval: Duration,
        acl_packet_length: u16,
        acl_packets: u16,
    ) -> Self {
        Self {
            central,
            tx_phy: Phy::Le1M,
            rx_phy: Phy::Le1M,
            max_tx_octets: INITIAL_OCTETS,
            max_tx_time: INITIAL_TIME,
            max_rx_octets: INITIAL_OCTETS,
            max_rx_time: INITIAL_TIME,
            interval,
            peripheral_latency: 0,
            event_length: None,
            acl_packet_length,
            acl_packets,
        }
    }

    /// The payload octets of each PDU this side sends: the data length in octets and in time,
    /// and no more than one ACL fragment (the model takes each fragment to its own PDU, as a
    /// controller that does not merge fragments sends them).
    pub fn pdu_octets(&self) -> u16 {
        self.max_tx_octets
            .min(octets_within(self.tx_phy, self.max_tx_time))
            .min(self.acl_packet_length.max(1))
    }

    /// The air time of one exchange: a full PDU from this side, an empty one back, and the
    /// inter-frame space after each.
    pub fn exchange_time(&self) -> Duration {
        pdu_time(self.tx_phy, self.pdu_octets()) + T_IFS + pdu_time(self.rx_phy, 0) + T_IFS
    }

    /// The PDUs this side sends per connection event: as many exchanges as fit the event
    /// (the event length asked, or the whole interval), at least one.
    pub fn pdus_per_event(&self) -> u64 {
        let event = self
            .event_length
            .map_or(self.interval, |e| e.min(self.interval));
        let per_exchange = self.exchange_time().as_nanos().max(1);
        u64::try_from(event.as_nanos() / per_exchange)
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The most payload octets per second the link carries from this side.
    pub fn octets_per_second(&self) -> f64 {
        let interval = self.interval.as_secs_f64();
        if interval <= 0.0 {
            return 0.0;
        }
        (self.pdus_per_event() * u64::from(self.pdu_octets())) as f64 / interval
    }

    /// The most SDU bytes per second the link carries from this side when it sends SDUs of
    /// `sdu_len` bytes as K-frames of at most `mps` bytes: the PDUs per second the events give,
    /// over the PDUs each SDU takes.
    pub fn goodput_ceiling(&self, sdu_len: usize, mps: u16) -> f64 {
        let interval = self.interval.as_secs_f64();
        let fragments = fragments_per_sdu(sdu_len, mps, self.pdu_octets());
        if interval <= 0.0 || fragments == 0 {
            return 0.0;
        }
        let pdus_per_second = self.pdus_per_event() as f64 / interval;
        sdu_len as f64 * pdus_per_second / fragments as f64
    }
}

impl std::fmt::Display for AirParameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PHY {}/{}, {} octets ({} µs) out, {} octets in, interval {:.2} ms",
            self.tx_phy.name(),
            self.rx_phy.name(),
            self.max_tx_octets,
            self.max_tx_time.as_micros(),
            self.max_rx_octets,
            self.interval.as_secs_f64() * 1000.0,
        )?;
        match self.event_length {
            Some(event) => write!(f, ", event {:.2} ms", event.as_secs_f64() * 1000.0)?,
            None => write!(f, ", event not asked")?,
        }
        write!(
            f,
            ", ACL buffers {} x {} bytes",
            self.acl_packets, self.acl_packet_length
        )
    }
}

/// What a transport's connections run with, by peer device: a handle that stays usable after
/// the transport has been handed on (to an `acm::Device`, say). From
/// [`BleTransport::air_report`](crate::BleTransport::air_report).
#[derive(Debug, Clone, Default)]
pub struct AirReport {
    peers: Arc<Mutex<HashMap<DeviceId, Weak<Mutex<AirParameters>>>>>,
}

impl AirReport {
    /// What the connection to `peer` runs with now, while there is one.
    pub fn peer(&self, peer: &DeviceId) -> Option<AirParameters> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let air = peers.get(peer)?.upgrade()?;
        let air = *air.lock().unwrap_or_else(|e| e.into_inner());
        Some(air)
    }

    /// Records that `air` is what the connection to `peer` runs with.
    pub(crate) fn insert(&self, peer: DeviceId, air: &Arc<Mutex<AirParameters>>) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|_, air| air.strong_count() > 0);
        peers.insert(peer, Arc::downgrade(air));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(d: Duration) -> u128 {
        d.as_micros()
    }

    #[test]
    fn pdu_times_match_the_core_specifications_limits() {
        // The data length limits of Core Vol 6 Part B §4.5.10 are these times with a MIC.
        assert_eq!(micros(pdu_time(Phy::Le1M, 27)), 328 - 32);
        assert_eq!(micros(pdu_time(Phy::Le1M, 251 + 4)), 2120);
        assert_eq!(micros(pdu_time(Phy::Le2M, 251 + 4)), 1064);
        assert_eq!(micros(pdu_time(Phy::LeCoded, 251 + 4)), 17040);
        assert_eq!(micros(pdu_time(Phy::LeCoded, 27 + 4)), 2704);
        assert_eq!(micros(pdu_time(Phy::Le2M, 0)), 44);
    }

    #[test]
    fn the_time_limit_caps_the_octets() {
        assert_eq!(octets_within(Phy::Le1M, INITIAL_TIME), 31);
        assert_eq!(octets_within(Phy::Le1M, MAX_TIME), 251);
        assert_eq!(octets_within(Phy::LeCoded, MAX_TIME), 27);
        assert_eq!(octets_within(Phy::Le2M, Duration::from_micros(1064)), 251);
    }

    #[test]
    fn fragments_count_each_kframe_on_its_own() {
        // 65535 bytes in K-frames of 65531: 65529 + 2 length bytes, then 6.
        assert_eq!(fragments_per_sdu(65535, 65531, 27), 2428 + 1);
        assert_eq!(fragments_per_sdu(65535, 65531, 251), 262 + 1);
        // MPS 247 fills 251-octet PDUs exactly: one fragment per K-frame.
        assert_eq!(fragments_per_sdu(245, 247, 251), 1);
        assert_eq!(fragments_per_sdu(246, 247, 251), 2);
    }

    #[test]
    fn a_2m_link_with_long_pdus_and_a_full_event_carries_about_1_3_mbit_s() {
        let mut air = AirParameters::initial(true, Duration::from_micros(7500), 251, 8);
        air.tx_phy = Phy::Le2M;
        air.rx_phy = Phy::Le2M;
        air.max_tx_octets = 251;
        air.max_tx_time = MAX_TIME;
        air.event_length = Some(Duration::from_micros(7500));
        assert_eq!(air.pdu_octets(), 251);
        assert_eq!(micros(air.exchange_time()), 1048 + 150 + 44 + 150);
        assert_eq!(air.pdus_per_event(), 5);
        let bits = air.octets_per_second() * 8.0;
        assert!((1_330_000.0..1_340_000.0).contains(&bits), "{bits}");
        let goodput = air.goodput_ceiling(65535, 65531);
        assert!((166_000.0..166_500.0).contains(&goodput), "{goodput}");
    }

    #[test]
    fn a_new_connection_carries_what_27_octets_on_1m_allow() {
        let air = AirParameters::initial(true, Duration::from_micros(7500), 27, 20);
        assert_eq!(air.pdu_octets(), 27);
        assert_eq!(micros(air.exchange_time()), 296 + 150 + 80 + 150);
        assert_eq!(air.pdus_per_event(), 11);
        assert!((air.octets_per_second() - 39_600.0).abs() < 1.0);
    }

    #[test]
    fn credits_cover_two_events_of_the_smallest_sdus() {
        let interval = Duration::from_micros(7500);
        // 18-octet PDUs: on 2M an exchange takes 116 + 150 + 44 + 150 = 460 us, 16 an event.
        assert_eq!(credits_to_fill(interval, Phy::Le2M, 8, 64), 32);
        // On 1M, 224 + 150 + 80 + 150 = 604 us: 12 an event.
        assert_eq!(credits_to_fill(interval, Phy::Le1M, 8, 64), 24);
        // Within the bounds given.
        assert_eq!(credits_to_fill(interval, Phy::Le2M, 8, 16), 16);
        assert_eq!(
            credits_to_fill(Duration::from_micros(1250), Phy::LeCoded, 8, 64),
            8
        );
    }

    #[test]
    fn small_acl_buffers_cap_the_pdus_of_a_long_data_length() {
        let mut air = AirParameters::initial(true, Duration::from_millis(15), 27, 20);
        air.max_tx_octets = 251;
        air.max_tx_time = MAX_TIME;
        assert_eq!(air.pdu_octets(), 27);
    }
}
