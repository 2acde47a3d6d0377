//! A pcapng writer for `acm proxy --pcap`: each TCP connection the proxy carries becomes a TCP
//! flow of raw IP packets (link type 101), a SYN, SYN-ACK and ACK first, then one segment per
//! frame (or binding message, or envelope) with its real bytes, and a FIN for each direction
//! that ends. Wireshark and tshark read it as any capture; the acm dissector finds acm in it by
//! its magic.
//!
//! A frame larger than an IP packet holds (64 KiB) is cut into several segments. Sequence
//! numbers, lengths and checksums are those a real stack would write.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

/// LINKTYPE_RAW: packets begin with an IPv4 or IPv6 header.
const LINKTYPE_RAW: u16 = 101;

/// The most TCP payload one packet carries.
const MAX_SEGMENT: usize = 65_000;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// A pcapng file being written.
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the section header and the one interface; packets follow.
    pub fn new(mut out: W) -> io::Result<Self> {
        // Section Header Block: byte-order magic, version 1.0, section length unknown.
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1A2B_3C4D_u32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        write_block(&mut out, 0x0A0D_0D0A, &shb)?;
        // Interface Description Block: raw IP, no snap length limit; microsecond timestamps.
        let mut idb = Vec::new();
        idb.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&0u32.to_le_bytes());
        write_block(&mut out, 1, &idb)?;
        out.flush()?;
        Ok(Self { out })
    }

    /// Writes one packet captured at `time`.
    fn packet(&mut self, time: SystemTime, data: &[u8]) -> io::Result<()> {
        let micros = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let mut epb = Vec::with_capacity(data.len().saturating_add(24));
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&u32::try_from(micros >> 32).unwrap_or(0).to_le_bytes());
        epb.extend_from_slice(
            &u32::try_from(micros & 0xFFFF_FFFF)
                .unwrap_or(0)
                .to_le_bytes(),
        );
        epb.extend_from_slice(&len.to_le_bytes());
        epb.extend_from_slice(&len.to_le_bytes());
        epb.extend_from_slice(data);
        while epb.len() % 4 != 0 {
            epb.push(0);
        }
        write_block(&mut self.out, 6, &epb)?;
        self.out.flush()
    }
}

fn write_block(out: &mut impl Write, block_type: u32, body: &[u8]) -> io::Result<()> {
    let total = u32::try_from(body.len().saturating_add(12))
        .map_err(|_| io::Error::other("pcapng block too large"))?;
    out.write_all(&block_type.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

/// One TCP connection's flow in a capture: the two endpoints and each direction's next
/// sequence number.
pub struct Flow {
    client: SocketAddr,
    server: SocketAddr,
    /// The next sequence number of the client's bytes, then of the server's.
    seq: [u32; 2],
}

impl Flow {
    /// A flow from `client` to `server`, its handshake written at `time`.
    pub fn open<W: Write>(
        pcap: &mut PcapWriter<W>,
        client: SocketAddr,
        server: SocketAddr,
        time: SystemTime,
    ) -> io::Result<Self> {
        let mut flow = Self {
            client,
            server,
            seq: [1_000, 2_000],
        };
        flow.segment(pcap, true, SYN, &[], time)?;
        flow.seq[0] = flow.seq[0].wrapping_add(1);
        flow.segment(pcap, false, SYN | ACK, &[], time)?;
        flow.seq[1] = flow.seq[1].wrapping_add(1);
        flow.segment(pcap, true, ACK, &[], time)?;
        Ok(flow)
    }

    /// `bytes` sent by the client (`from_client`) or the server, as one segment or as few as
    /// fit.
    pub fn data<W: Write>(
        &mut self,
        pcap: &mut PcapWriter<W>,
        from_client: bool,
        bytes: &[u8],
        time: SystemTime,
    ) -> io::Result<()> {
        for chunk in bytes.chunks(MAX_SEGMENT) {
            self.segment(pcap, from_client, PSH | ACK, chunk, time)?;
            let side = usize::from(!from_client);
            let len = u32::try_from(chunk.len()).unwrap_or(0);
            self.seq[side] = self.seq[side].wrapping_add(len);
        }
        Ok(())
    }

    /// The client's (`from_client`) or the server's direction ended.
    pub fn fin<W: Write>(
        &mut self,
        pcap: &mut PcapWriter<W>,
        from_client: bool,
        time: SystemTime,
    ) -> io::Result<()> {
        self.segment(pcap, from_client, FIN | ACK, &[], time)?;
        let side = usize::from(!from_client);
        self.seq[side] = self.seq[side].wrapping_add(1);
        Ok(())
    }

    fn segment<W: Write>(
        &self,
        pcap: &mut PcapWriter<W>,
        from_client: bool,
        flags: u8,
        payload: &[u8],
        time: SystemTime,
    ) -> io::Result<()> {
        let (src, dst, seq, ack) = if from_client {
            (self.client, self.server, self.seq[0], self.seq[1])
        } else {
            (self.server, self.client, self.seq[1], self.seq[0])
        };
        let ack = if flags == SYN { 0 } else { ack };
        let mut tcp = Vec::with_capacity(payload.len().saturating_add(20));
        tcp.extend_from_slice(&src.port().to_be_bytes());
        tcp.extend_from_slice(&dst.port().to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(flags);
        tcp.extend_from_slice(&65_535u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let packet = ip_packet(src.ip(), dst.ip(), tcp);
        pcap.packet(time, &packet)
    }
}

/// `tcp` (with a zero checksum) in an IP packet from `src` to `dst`, both checksums filled in.
/// Mixed families (an IPv4 client of an IPv6 server) are written as IPv6, the IPv4 address
/// mapped.
fn ip_packet(src: IpAddr, dst: IpAddr, mut tcp: Vec<u8>) -> Vec<u8> {
    let tcp_len = u16::try_from(tcp.len()).unwrap_or(u16::MAX);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut pseudo = Vec::with_capacity(tcp.len().saturating_add(12));
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&tcp_len.to_be_bytes());
            pseudo.extend_from_slice(&tcp);
            let sum = checksum(&pseudo);
            tcp[16..18].copy_from_slice(&sum.to_be_bytes());
            let total = tcp_len.saturating_add(20);
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let sum = checksum(&ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            ip.extend_from_slice(&tcp);
            ip
        }
        _ => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            let (s, d) = (v6(src), v6(dst));
            let mut pseudo = Vec::with_capacity(tcp.len().saturating_add(40));
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&u32::from(tcp_len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 6]);
            pseudo.extend_from_slice(&tcp);
            let sum = checksum(&pseudo);
            tcp[16..18].copy_from_slice(&sum.to_be_bytes());
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&tcp_len.to_be_bytes());
            ip.extend_from_slice(&[6, 64]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            ip.extend_from_slice(&tcp);
            ip
        }
    }
}

/// The Internet checksum of `bytes`.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
        sum = sum.wrapping_add(u32::from(word));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF).wrapping_add(sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(0xFFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_is_blocks_of_whole_words_with_ip_checksums_that_verify() {
        let mut file = Vec::new();
        let mut pcap = PcapWriter::new(&mut file).unwrap();
        let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let server: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let time = SystemTime::now();
        let mut flow = Flow::open(&mut pcap, client, server, time).unwrap();
        flow.data(&mut pcap, true, &[0xAC, 0x4D, 0, 1, 0], time)
            .unwrap();
        flow.fin(&mut pcap, false, time).unwrap();
        assert_eq!(flow.seq, [1_006, 2_002]);
        // Walk the blocks: SHB, IDB, three handshake packets, one data packet, a FIN.
        let mut at = 0;
        let mut types = Vec::new();
        while at < file.len() {
            let ty = u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let end = u32::from_le_bytes(file[at + len - 4..at + len].try_into().unwrap());
            assert_eq!(end as usize, len);
            if ty == 6 {
                let ip = &file[at + 28..at + 28 + 20];
                assert_eq!(checksum(ip), 0, "the IPv4 header checksum verifies");
            }
            types.push(ty);
            at += len;
        }
        assert_eq!(types, [0x0A0D_0D0A, 1, 6, 6, 6, 6, 6]);
    }

    #[test]
    fn large_frames_are_cut_into_segments_that_fit_a_packet() {
        let mut file = Vec::new();
        let mut pcap = PcapWriter::new(&mut file).unwrap();
        let client: SocketAddr = "[::1]:40000".parse().unwrap();
        let server: SocketAddr = "[::1]:7000".parse().unwrap();
        let time = SystemTime::now();
        let mut flow = Flow::open(&mut pcap, client, server, time).unwrap();
        flow.data(&mut pcap, true, &vec![7; 150_000], time).unwrap();
        assert_eq!(flow.seq[0], 1_001 + 150_000);
    }
}
