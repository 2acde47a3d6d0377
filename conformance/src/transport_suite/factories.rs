//! Factories for the transports of this repository, for the suite's own runs and the `acm`
//! command.

use acm::segmented::Segmented;
use acm_transport::DeviceId;
use acm_transport_mock::{DeviceOptions, MockNetwork};
use acm_transport_tcp::TcpTransport;
use async_trait::async_trait;

use super::{FactoryError, TransportFactory, TransportPair};

fn id(name: &str) -> Result<DeviceId, FactoryError> {
    Ok(DeviceId::new(name)?)
}

/// Two devices on a fresh in-memory mock network.
#[derive(Debug, Clone, Copy, Default)]
pub struct MockFactory;

#[async_trait]
impl TransportFactory for MockFactory {
    fn name(&self) -> String {
        "acm-transport-mock".into()
    }

    async fn pair(&self) -> Result<TransportPair, FactoryError> {
        let network = MockNetwork::new(0x7A5);
        let phone = network.add_device(id("phone")?)?;
        let tablet = network.add_device(id("tablet")?)?;
        Ok(TransportPair::new(phone, tablet, id("tablet")?))
    }
}

/// Two devices on a fresh mock network whose links carry messages of at most 244 bytes, each
/// transport wrapped in [`Segmented`] (SPEC section 16): frames of up to 64 KiB cross as
/// segments.
#[derive(Debug, Clone, Copy, Default)]
pub struct SegmentedMockFactory;

impl SegmentedMockFactory {
    /// The largest message of the links under the segments.
    pub const MESSAGE_SIZE: usize = 244;
}

#[async_trait]
impl TransportFactory for SegmentedMockFactory {
    fn name(&self) -> String {
        format!(
            "acm-transport-mock with {}-byte messages, segmented",
            Self::MESSAGE_SIZE
        )
    }

    async fn pair(&self) -> Result<TransportPair, FactoryError> {
        let network = MockNetwork::new(0x5E6);
        let small = DeviceOptions::new().max_frame_size(Self::MESSAGE_SIZE);
        let phone = network.add_device_with(id("phone")?, small.clone())?;
        let tablet = network.add_device_with(id("tablet")?, small)?;
        Ok(TransportPair::new(
            Segmented::new(phone),
            Segmented::new(tablet),
            id("tablet")?,
        ))
    }
}

/// Two TCP transports listening on loopback, the first knowing where the second is.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpLoopbackFactory;

#[async_trait]
impl TransportFactory for TcpLoopbackFactory {
    fn name(&self) -> String {
        "acm-transport-tcp on loopback".into()
    }

    async fn pair(&self) -> Result<TransportPair, FactoryError> {
        let loopback = "127.0.0.1:0".parse()?;
        let phone = TcpTransport::bind(id("phone")?, loopback).await?;
        let tablet = TcpTransport::bind(id("tablet")?, loopback).await?;
        let addr = tablet.local_addr().ok_or("the tablet listens")?;
        phone.add_peer(id("tablet")?, addr);
        Ok(TransportPair::new(phone, tablet, id("tablet")?))
    }
}
