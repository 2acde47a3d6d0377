//! A target reached through any transport that dials devices by id: how the suite tests an
//! implementation over Bluetooth LE (SPEC section 13), where devices are found by scanning.

use std::sync::Arc;
use std::time::Duration;

use acm::secure::SecureConfig;
use acm_transport::{CloseReason, DeviceId, Link, Transport, TransportError};
use async_trait::async_trait;

use super::{Needs, WireTarget};
use crate::profile::Timers;

/// How many times a refused dial is tried again, and the pause before each.
const REFUSED_TRIES: u32 = 4;
const REFUSED_PAUSE: Duration = Duration::from_millis(500);

/// An implementation under test, running the profile (SPEC section 15), reached by dialing its
/// device id over the suite's own transport.
///
/// The transport may run tasks on the runtime it was started on (a Bluetooth host does): each
/// dial runs on that runtime, whose handle the target keeps, so that the suite may open links
/// from any other runtime (each random scenario runs its own). That runtime must outlive the
/// target.
pub struct DialTarget {
    transport: Arc<dyn Transport>,
    runtime: tokio::runtime::Handle,
    iut: DeviceId,
    security: Option<SecureConfig>,
    carries_data: bool,
    timers: Timers,
    what: String,
    case_limit: Duration,
    close_allowance: Duration,
    settle: Duration,
}

impl DialTarget {
    /// Reaches device `iut` through `transport`, whose tasks run on `runtime`. With `security`,
    /// the suite runs the secure layer as that identity on every link; without, links are
    /// plain. `what` names the transport in reports ("Bluetooth LE").
    pub fn new(
        transport: Arc<dyn Transport>,
        runtime: tokio::runtime::Handle,
        iut: DeviceId,
        security: Option<SecureConfig>,
        what: &str,
    ) -> Self {
        Self {
            transport,
            runtime,
            iut,
            security,
            carries_data: true,
            timers: Timers::SPEC,
            what: what.to_string(),
            case_limit: super::CASE_LIMIT,
            close_allowance: Duration::ZERO,
            settle: Duration::ZERO,
        }
    }

    /// The same target, whose transport carries data or not (`SESS-3`).
    #[must_use]
    pub fn carrying_data(mut self, carries_data: bool) -> Self {
        self.carries_data = carries_data;
        self
    }

    /// The same target, running with `timers`.
    #[must_use]
    pub fn with_timers(mut self, timers: Timers) -> Self {
        self.timers = timers;
        self
    }

    /// The same target, whose cases may take up to `limit` each: a slow transport needs more
    /// than [`super::CASE_LIMIT`] for the cases that make a thousand requests.
    #[must_use]
    pub fn with_case_limit(mut self, limit: Duration) -> Self {
        self.case_limit = limit;
        self
    }

    /// The same target, whose binding may take `allowance` to end a link it closes while the
    /// suite reads nothing ([`WireTarget::close_allowance`]).
    #[must_use]
    pub fn with_close_allowance(mut self, allowance: Duration) -> Self {
        self.close_allowance = allowance;
        self
    }

    /// The same target, the suite waiting `settle` after each case ([`WireTarget::settle`]).
    #[must_use]
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Opens one link and closes it: whether the implementation answers at all, said once,
    /// before any case runs.
    pub async fn probe(&self) -> Result<(), TransportError> {
        let link = self.open_raw().await?;
        link.close(CloseReason::normal()).await;
        Ok(())
    }
}

#[async_trait]
impl WireTarget for DialTarget {
    fn describe(&self) -> String {
        format!("{} over {}", self.iut, self.what)
    }

    // A device holds few channels (the reference eight), and those of the last case's links
    // may still be going down as the next case dials: a refusal is tried again a few times.
    async fn open_raw(&self) -> Result<Box<dyn Link>, TransportError> {
        let mut tries = 0;
        loop {
            let transport = self.transport.clone();
            let iut = self.iut.clone();
            let dialed = self
                .runtime
                .spawn(async move { transport.dial(&iut).await })
                .await
                .map_err(|e| TransportError::Io(std::io::Error::other(e.to_string())))?;
            match dialed {
                Err(TransportError::Refused(_)) if tries < REFUSED_TRIES => {
                    tries += 1;
                    tokio::time::sleep(REFUSED_PAUSE).await;
                }
                other => return other,
            }
        }
    }

    fn security(&self) -> Option<&SecureConfig> {
        self.security.as_ref()
    }

    fn device_id(&self) -> String {
        self.iut.to_string()
    }

    fn suite_device_id(&self) -> String {
        self.transport.local_device().to_string()
    }

    fn frames_are_messages(&self) -> bool {
        true
    }

    fn carries_data(&self) -> bool {
        self.carries_data
    }

    fn timers(&self) -> Timers {
        self.timers
    }

    fn case_limit(&self) -> Duration {
        self.case_limit
    }

    fn close_allowance(&self) -> Duration {
        self.close_allowance
    }

    fn settle(&self) -> Duration {
        self.settle
    }

    // A close behind frames the suite left unread has no room for its reason on a transport of
    // messages with flow control, and none over TCP.
    fn unread_close_is_lost(&self) -> bool {
        true
    }

    // Each link message is one frame, but a transport of messages such as Bluetooth LE keeps
    // the version-0 frames for its own signalling (SPEC section 13) and does not hand them to
    // acm; and neither raw TCP nor raw segments reach the implementation through it.
    fn has(&self, needs: Needs) -> bool {
        match needs {
            Needs::Nothing => true,
            Needs::Data => self.carries_data,
            Needs::NoData => !self.carries_data,
            Needs::Secure => self.security.is_some(),
            Needs::Plain => self.security.is_none(),
            Needs::Messages => true,
            Needs::VersionZero | Needs::RawTcp | Needs::Segments | Needs::Tcp => false,
        }
    }
}
