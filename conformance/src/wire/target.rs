//! What the black-box suite tests: an implementation reached over a link, and what it can do.

use acm::secure::{SecureConfig, establish};
use acm::segmented::{Segmented, SegmentedLink};
use acm::{Device, DeviceConfig, Security};
use acm_transport::{DeviceId, Link, Transport, TransportError};
use acm_transport_mock::{DeviceOptions, MockNetwork, MockTransport};
use acm_transport_tcp::{TcpConfig, TcpTransport};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::time::Duration;

use crate::profile::{self, Profile, Timers};

/// What a case needs of the target beyond the profile (SPEC section 15). A target that lacks it
/// reports the case unsupported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing more.
    Nothing,
    /// A transport that carries data (`DATA-8`).
    Data,
    /// A transport that cannot carry data (`SESS-3`, `DATA-8`).
    NoData,
    /// A transport that carries each frame as one message (`FRAME-9`).
    Messages,
    /// A transport of messages that hands version-0 frames to acm (`FRAME-3`): not one whose
    /// binding keeps them for its own signalling, as Bluetooth LE's does (section 13).
    VersionZero,
    /// A TCP connection the suite can write raw bytes to (section 14).
    RawTcp,
    /// A segmented link whose segments the suite can write raw (section 16).
    Segments,
    /// A target tested with the secure layer (section 17).
    Secure,
    /// A target tested without the secure layer, for frames a secure record cannot carry
    /// (larger than 65 519 bytes, `SEC-9`).
    Plain,
    /// A target reached over the TCP binding (section 14), for the binding's own rules.
    Tcp,
}

impl Needs {
    /// What a target lacking it is told.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Nothing => "nothing",
            Self::Data => "a transport that carries data",
            Self::NoData => "a transport that cannot carry data",
            Self::Messages => "a transport that carries one frame per message",
            Self::VersionZero => "a transport that hands version-0 frames to acm",
            Self::RawTcp => "a TCP connection written byte by byte",
            Self::Segments => "a segmented link written segment by segment",
            Self::Secure => "the secure layer",
            Self::Plain => "links without the secure layer",
            Self::Tcp => "the TCP binding",
        }
    }
}

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

    /// Opens a link below the segmentation, for [`Needs::Segments`].
    async fn open_segments(&self) -> Result<Box<dyn Link>, TransportError> {
        Err(TransportError::Unsupported(
            "the target's links are not segmented",
        ))
    }

    /// Where a raw TCP connection reaches the implementation, for [`Needs::RawTcp`].
    fn tcp_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// The implementation's device id.
    fn device_id(&self) -> String;

    /// The suite's own device id, as the implementation sees it.
    fn suite_device_id(&self) -> String;

    /// Whether each link message carries exactly one frame (`FRAME-9`); false for byte streams.
    fn frames_are_messages(&self) -> bool;

    /// Whether the implementation's transport carries data (`SESS-3`).
    fn carries_data(&self) -> bool {
        true
    }

    /// Whether [`WireTarget::open_segments`] works.
    fn segmented(&self) -> bool {
        false
    }

    /// The timers the implementation runs with.
    fn timers(&self) -> Timers {
        Timers::SPEC
    }

    /// How long the suite waits after each case before the next: on a slow transport the links
    /// a case drops take a moment to go down on the implementation's side, and their sessions
    /// would otherwise still stand when the next case asks for one like them (`SESS-3`).
    fn settle(&self) -> Duration {
        Duration::ZERO
    }

    /// How long one case may take before it counts as hung.
    fn case_limit(&self) -> Duration {
        super::CASE_LIMIT
    }

    /// How long the implementation's binding may take to end a link it closes while the suite
    /// reads nothing, beyond the close itself: the time its CLOSE waits for room that never
    /// comes, and for the suite to take the link down (SPEC `BLE-6`). Nothing for TCP, whose
    /// close does not wait on the peer.
    fn close_allowance(&self) -> Duration {
        Duration::ZERO
    }

    /// Whether a link the implementation closes behind frames the suite never read ends, on
    /// the suite's side, as lost rather than with the implementation's reason: over TCP a
    /// socket closed with unread bytes is reset, and over a transport of credits the CLOSE
    /// never gets one. The mock transport delivers the reason.
    fn unread_close_is_lost(&self) -> bool {
        self.tcp_addr().is_some()
    }

    /// Whether the target has what a case needs. Raw TCP connections and raw segments carry
    /// frames in the clear, so that a secure target has neither.
    fn has(&self, needs: Needs) -> bool {
        let plain = self.security().is_none();
        match needs {
            Needs::Nothing => true,
            Needs::Data => self.carries_data(),
            Needs::NoData => !self.carries_data(),
            Needs::Messages | Needs::VersionZero => self.frames_are_messages() && !self.segmented(),
            Needs::RawTcp => plain && self.tcp_addr().is_some(),
            Needs::Segments => plain && self.segmented(),
            Needs::Secure => !plain,
            Needs::Plain => plain,
            Needs::Tcp => self.tcp_addr().is_some(),
        }
    }
}

/// The kinds of reference targets over the mock transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockKind {
    /// A transport that carries data, one frame per message.
    Plain,
    /// A transport that cannot carry data.
    NoData,
    /// Frames carried as segments of [`SEGMENT_MESSAGE`] bytes (SPEC section 16).
    Segmented,
}

/// The largest message of the other mock targets' links: more than the implementation's
/// largest frame.
pub const LARGE_MESSAGE: usize = 1 << 20;

/// The largest message of the segmented mock target's links.
pub const SEGMENT_MESSAGE: usize = 244;

/// The reference implementation with the profile installed, on the in-memory mock network.
pub struct MockTarget {
    suite: MockTransport,
    security: Option<SecureConfig>,
    iut: DeviceId,
    kind: MockKind,
    timers: Timers,
    _device: Device,
    _profile: Profile,
    _network: MockNetwork,
}

impl MockTarget {
    /// Starts the reference implementation as device `iut` on a new mock network, beside the
    /// suite's device `suite`, with `config`. Needs a tokio runtime. The suite runs the secure
    /// layer unless `config` makes the implementation insecure.
    pub fn start(config: DeviceConfig) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Self::start_kind(config, MockKind::Plain, |transport| Box::new(transport))
    }

    /// Starts the reference implementation with the profile's settings (SPEC section 15) on a
    /// mock transport of `kind`: secure, except the segmented one, whose cases write frames
    /// segment by segment in the clear. Needs a tokio runtime.
    pub fn profile(kind: MockKind) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Self::profile_with(kind, false)
    }

    /// As [`MockTarget::profile`], plain whatever the kind when `insecure` is set.
    pub fn profile_with(
        kind: MockKind,
        insecure: bool,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let mut config = profile::device_config(Timers::SPEC);
        if insecure || kind == MockKind::Segmented {
            config = config.with_security(Security::Insecure);
        }
        Self::start_kind(config, kind, |transport| Box::new(transport))
    }

    /// As [`MockTarget::profile`] with plain links, the implementation carrying `mutation`'s
    /// defect ([`crate::mutant`]; its rewrites need the frames in the clear).
    pub fn start_mutated(
        mutation: crate::mutant::Mutation,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let plain = profile::device_config(Timers::SPEC).with_security(Security::Insecure);
        Self::start_kind(plain, MockKind::Plain, |transport| {
            Box::new(crate::mutant::Mutant::new(transport, mutation))
        })
    }

    /// The same target, declaring that it runs with `timers` (whatever it runs with): for
    /// checking that the suite's timer cases catch an implementation whose timers are not the
    /// ones it declares.
    #[must_use]
    pub fn declaring(mut self, timers: Timers) -> Self {
        self.timers = timers;
        self
    }

    /// Starts the reference implementation with `config` on a mock transport of `kind`, made
    /// into its transport by `transport`.
    fn start_kind(
        config: DeviceConfig,
        kind: MockKind,
        transport: impl FnOnce(MockTransport) -> Box<dyn Transport>,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let network = MockNetwork::new(0xACC0);
        let iut = DeviceId::new("iut")?;
        // Links that carry frames larger than the implementation announces, so that the suite
        // can send one (FRAME-5, LINK-5); segmented links of small messages.
        let message = match kind {
            MockKind::Segmented => SEGMENT_MESSAGE,
            _ => LARGE_MESSAGE,
        };
        let suite_options = DeviceOptions::new().max_frame_size(message);
        let options = suite_options.clone().carries_data(kind != MockKind::NoData);
        let suite = network.add_device_with(DeviceId::new("suite")?, suite_options)?;
        let security = match config.security {
            Security::Insecure => None,
            _ => Some(SecureConfig::ephemeral()?),
        };
        let transport = transport(network.add_device_with(iut.clone(), options)?);
        let device = match kind {
            MockKind::Segmented => Device::new(Segmented::new(transport), config),
            _ => Device::new(transport, config),
        };
        let profile = profile::install(&device);
        Ok(Self {
            suite,
            security,
            iut,
            kind,
            timers: Timers::SPEC,
            _device: device,
            _profile: profile,
            _network: network,
        })
    }
}

#[async_trait]
impl WireTarget for MockTarget {
    fn describe(&self) -> String {
        match self.kind {
            MockKind::Plain => "the reference implementation over transport-mock".into(),
            MockKind::NoData => {
                "the reference implementation over transport-mock, carrying no data".into()
            }
            MockKind::Segmented => {
                "the reference implementation over a segmented transport-mock".into()
            }
        }
    }

    async fn open_raw(&self) -> Result<Box<dyn Link>, TransportError> {
        match self.kind {
            MockKind::Segmented => {
                let link = self.suite.dial(&self.iut).await?;
                let max = acm::segmented::DEFAULT_MAX_FRAME_SIZE;
                Ok(Box::new(SegmentedLink::new(link, max)))
            }
            _ => self.suite.dial(&self.iut).await,
        }
    }

    async fn open_segments(&self) -> Result<Box<dyn Link>, TransportError> {
        if self.kind != MockKind::Segmented {
            return Err(TransportError::Unsupported("not segmented"));
        }
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

    fn carries_data(&self) -> bool {
        self.kind != MockKind::NoData
    }

    fn segmented(&self) -> bool {
        self.kind == MockKind::Segmented
    }

    fn timers(&self) -> Timers {
        self.timers
    }
}

/// An implementation under test reached over TCP (SPEC section 14), running the profile.
pub struct TcpTarget {
    client: TcpTransport,
    security: Option<SecureConfig>,
    addr: SocketAddr,
    iut: String,
    carries_data: bool,
    timers: Timers,
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
        Self::connect_with(addr, suite_id, carries_data, security, Timers::SPEC).await
    }

    /// As [`TcpTarget::connect`], for an implementation that runs with `timers`.
    pub async fn connect_with(
        addr: SocketAddr,
        suite_id: DeviceId,
        carries_data: bool,
        security: Option<SecureConfig>,
        timers: Timers,
    ) -> Result<Self, TransportError> {
        let mut target = Self::known(addr, suite_id, "", carries_data, security)?;
        target.timers = timers;
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
            timers: Timers::SPEC,
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

    fn tcp_addr(&self) -> Option<SocketAddr> {
        Some(self.addr)
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

    fn timers(&self) -> Timers {
        self.timers
    }
}

/// The reference implementation with the profile, listening on TCP on loopback with the
/// profile's short timers, and the suite's way to it: the main job's target for the cases that
/// need a raw TCP connection. Needs a tokio runtime with a running clock.
pub struct ReferenceTcpTarget {
    target: TcpTarget,
    _device: Device,
    _profile: Profile,
}

impl ReferenceTcpTarget {
    /// Starts the reference implementation on 127.0.0.1, plain (its cases write frames in the
    /// clear), and reaches it.
    pub async fn start() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let timers = Timers::SHORT;
        let config = TcpConfig::new().with_open_timeout(timers.open);
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let transport =
            TcpTransport::bind_with(DeviceId::new("acm-reference-peer")?, loopback, config).await?;
        let addr = transport
            .local_addr()
            .ok_or("the listener has no address")?;
        let settings = profile::device_config(timers).with_security(Security::Insecure);
        let device = Device::new(transport, settings);
        let installed = profile::install_with(&device, timers);
        let suite = DeviceId::new("acm-conformance-suite")?;
        let target = TcpTarget::connect_with(addr, suite, true, None, timers).await?;
        Ok(Self {
            target,
            _device: device,
            _profile: installed,
        })
    }
}

#[async_trait]
impl WireTarget for ReferenceTcpTarget {
    fn describe(&self) -> String {
        format!(
            "the reference implementation over TCP ({})",
            self.target.describe()
        )
    }

    async fn open_raw(&self) -> Result<Box<dyn Link>, TransportError> {
        self.target.open_raw().await
    }

    fn tcp_addr(&self) -> Option<SocketAddr> {
        self.target.tcp_addr()
    }

    fn device_id(&self) -> String {
        self.target.device_id()
    }

    fn suite_device_id(&self) -> String {
        self.target.suite_device_id()
    }

    fn frames_are_messages(&self) -> bool {
        false
    }

    fn timers(&self) -> Timers {
        self.target.timers()
    }
}

/// A transport whose capabilities say it cannot carry data (SPEC `SESS-3`, `DATA-8`), over one
/// that can: the device under test of `acm peer --no-data`.
#[derive(Debug)]
pub struct CarriesNoData<T>(pub T);

#[async_trait]
impl<T: Transport> Transport for CarriesNoData<T> {
    fn local_device(&self) -> &DeviceId {
        self.0.local_device()
    }

    fn capabilities(&self) -> acm_transport::Capabilities {
        self.0.capabilities().with_carries_data(false)
    }

    async fn discover(&self) -> Result<Vec<acm_transport::DeviceInfo>, TransportError> {
        self.0.discover().await
    }

    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        self.0.dial(device).await
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        self.0.accept().await
    }
}
