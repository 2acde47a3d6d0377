//! What the black-box suite tests: an implementation reached over a link.

use acm::secure::{SecureConfig, establish};
use acm::{Device, DeviceConfig, Security};
use acm_transport::{DeviceId, Link, Transport, TransportError};
use acm_transport_mock::{DeviceOptions, MockNetwork, MockTransport};
use acm_transport_tcp::{TcpConfig, TcpTransport};
use async_trait::async_trait;
use std::net::SocketAddr;

use crate::profile::{self, Profile};

/// An implementation under test, running the conformance profile (SPEC section 15), that the
/// suite reaches by opening links to it.
#[async_trait]
pub trait WireTarget: Send + Sync {
    /// What is tested, for reports.
    fn describe(&self) -> String;

    /// Opens a new link to the implementation as its binding makes it: the secure layer has
    /// not run on it yet.
    async fn open_raw(&self) -> Result<Box<dyn Link>, TransportError>;

    /// The suite's secure layer (SPEC section 17) for this target: its identity, and the trust
    /// on first use it pairs with; `None` for a target tested without the secure layer.
    fn security(&self) -> Option<&SecureConfig> {
        None
    }

    /// Opens a new link to the implementation on which frames travel: a secure link, paired
    /// and up, for a secure target.
    async fn open(&self) -> Result<Box<dyn Link>, TransportError> {
        let link = self.open_raw().await?;
        match self.security() {
            None => Ok(link),
            Some(config) => Ok(Box::new(establish(link, config).await?)),
        }
    }

    /// The implementation's device id.
    fn device_id(&self) -> String;

    /// The suite's own device id, as the implementation sees it.
    fn suite_device_id(&self) -> String;

    /// Whether each link message carries exactly one frame (`FRAME-9`); false for byte streams,
    /// except under the secure layer, where each record holds one frame.
    fn frames_are_messages(&self) -> bool;

    /// Whether the implementation's transport carries data (`SESS-3`).
    fn carries_data(&self) -> bool {
        true
    }
}

/// The reference implementation with the profile installed, on the in-memory mock network.
pub struct MockTarget {
    suite: MockTransport,
    security: Option<SecureConfig>,
    iut: DeviceId,
    _device: Device,
    _profile: Profile,
    _network: MockNetwork,
}

impl MockTarget {
    /// Starts the reference implementation as device `iut` on a new mock network, beside the
    /// suite's device `suite`. Needs a tokio runtime. The suite runs the secure layer unless
    /// `config` makes the implementation insecure; the suite's device carries frames of up to
    /// 1 MiB, so that it can send frames larger than the implementation accepts (`FRAME-5`).
    pub fn start(config: DeviceConfig) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Self::start_with(config, |transport| Box::new(transport))
    }

    /// As [`MockTarget::start`] with plain links, the implementation carrying `mutation`'s
    /// defect ([`crate::mutant`]; its rewrites need the frames in the clear).
    pub fn start_mutated(
        mutation: crate::mutant::Mutation,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let plain = DeviceConfig::default().with_security(Security::Insecure);
        Self::start_with(plain, |transport| {
            Box::new(crate::mutant::Mutant::new(transport, mutation))
        })
    }

    /// As [`MockTarget::start`], the implementation's transport made by `transport` from the
    /// mock's.
    fn start_with(
        config: DeviceConfig,
        transport: impl FnOnce(MockTransport) -> Box<dyn Transport>,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let network = MockNetwork::new(0xACC0);
        let iut = DeviceId::new("iut")?;
        let large = DeviceOptions::new().max_frame_size(1 << 20);
        let suite = network.add_device_with(DeviceId::new("suite")?, large)?;
        let security = match config.security {
            Security::Insecure => None,
            _ => Some(SecureConfig::ephemeral()?),
        };
        let device = Device::new(transport(network.add_device(iut.clone())?), config);
        let profile = profile::install(&device);
        Ok(Self {
            suite,
            security,
            iut,
            _device: device,
            _profile: profile,
            _network: network,
        })
    }
}

#[async_trait]
impl WireTarget for MockTarget {
    fn describe(&self) -> String {
        "the reference implementation over transport-mock".into()
    }

    async fn open_raw(&self) -> Result<Box<dyn Link>, TransportError> {
        self.suite.dial(&self.iut).await
    }

    fn security(&self) -> Option<&SecureConfig> {
        self.security.as_ref()
    }

    fn device_id(&self) -> String {
        self.iut.to_string()
    }

    fn suite_device_id(&self) -> String {
        self.suite.local_device().to_string()
    }

    fn frames_are_messages(&self) -> bool {
        true
    }
}

/// An implementation under test reached over TCP (SPEC section 14), running the profile.
pub struct TcpTarget {
    client: TcpTransport,
    security: Option<SecureConfig>,
    addr: SocketAddr,
    iut: String,
    carries_data: bool,
}

impl TcpTarget {
    /// Reaches the implementation at `addr`, as the suite's device `suite_id`: one link is
    /// opened and closed to learn the implementation's device id from its OPEN. With
    /// `security`, the suite runs the secure layer as that identity on every link (the target
    /// trusts it on first use, SPEC section 15); without, links are plain.
    pub async fn connect(
        addr: SocketAddr,
        suite_id: DeviceId,
        carries_data: bool,
        security: Option<SecureConfig>,
    ) -> Result<Self, TransportError> {
        let mut target = Self::known(addr, suite_id, "", carries_data, security)?;
        let probe = target.client.dial_addr(addr).await?;
        target.iut = probe.peer_device().to_string();
        probe.close(acm_transport::CloseReason::normal()).await;
        Ok(target)
    }

    /// Reaches the implementation at `addr`, whose device id is `iut`, as the suite's device
    /// `suite_id`, as [`TcpTarget::connect`] does but without opening a link first.
    pub fn known(
        addr: SocketAddr,
        suite_id: DeviceId,
        iut: &str,
        carries_data: bool,
        security: Option<SecureConfig>,
    ) -> Result<Self, TransportError> {
        // The suite must be able to send frames larger than the target accepts (FRAME-5).
        let config = TcpConfig::new().with_max_frame_size(1 << 20);
        let client = TcpTransport::client_with(suite_id, config)
            .map_err(|e| TransportError::Io(std::io::Error::other(e.to_string())))?;
        Ok(Self {
            client,
            security,
            addr,
            iut: iut.to_string(),
            carries_data,
        })
    }
}

#[async_trait]
impl WireTarget for TcpTarget {
    fn describe(&self) -> String {
        format!("{} at tcp://{}", self.iut, self.addr)
    }

    async fn open_raw(&self) -> Result<Box<dyn Link>, TransportError> {
        self.client.dial_addr(self.addr).await
    }

    fn security(&self) -> Option<&SecureConfig> {
        self.security.as_ref()
    }

    fn device_id(&self) -> String {
        self.iut.clone()
    }

    fn suite_device_id(&self) -> String {
        self.client.local_device().to_string()
    }

    fn frames_are_messages(&self) -> bool {
        self.security.is_some()
    }

    fn carries_data(&self) -> bool {
        self.carries_data
    }
}
