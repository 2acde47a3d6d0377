//! How a transport reaches its controller and how it behaves on the air.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use acm_transport::DeviceId;

/// Where the HCI controller is: an H4 byte stream over TCP or a serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HciEndpoint {
    /// A controller that serves HCI H4 over TCP (a virtual controller such as Rootcanal or
    /// Bumble, or a bridge to a real one).
    Tcp(SocketAddr),
    /// A serial device speaking HCI H4 (a UART controller, a USB dongle in HCI UART mode). Set
    /// its line speed and raw mode beforehand, for example `stty -F /dev/ttyACM0 1000000 raw`.
    Serial(PathBuf),
}

/// The settings of a [`BleTransport`](crate::BleTransport).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BleConfig {
    /// This device's id. An acceptor's id is advertised, so it is at most
    /// [`MAX_ADVERTISED_ID_LEN`](crate::binding::MAX_ADVERTISED_ID_LEN) bytes.
    pub device: DeviceId,
    /// Where the controller is.
    pub hci: HciEndpoint,
    /// Whether to advertise the acm service and accept links. A device that only dials may
    /// leave it off.
    pub accept: bool,
    /// The static random address to use; `None` picks one at random.
    pub address: Option<[u8; 6]>,
    /// How long [`discover`](acm_transport::Transport::discover) scans.
    pub scan_time: Duration,
    /// How long a dial may take, from the scan for the device to its first SDU.
    pub dial_timeout: Duration,
    /// How long a graceful close waits for the peer to take the link down before it does so
    /// itself.
    pub close_timeout: Duration,
    /// The connection interval a central asks for while links carry data, with connection
    /// events as long as the interval (SPEC `BLE-15`).
    pub connection_interval: Duration,
    /// The longer connection interval a central moves a connection to once its links have been
    /// idle for a while (SPEC `BLE-15`); `None` keeps [`connection_interval`](Self::connection_interval)
    /// throughout.
    pub idle_interval: Option<Duration>,
    /// Whether to ask, once a connection is up, for what makes it fast: the LE 2M PHY, the
    /// largest data length, and the connection interval above (SPEC section 13.5). Without it,
    /// connections keep what they were made with.
    pub tune: bool,
    /// A file to write the HCI traffic to, as a btsnoop log (which Wireshark reads); `None`
    /// writes none.
    pub hci_log: Option<PathBuf>,
}

impl BleConfig {
    /// Settings for device `device` on the controller at `hci`, accepting links, with the
    /// default timings.
    pub fn new(device: DeviceId, hci: HciEndpoint) -> Self {
        Self {
            device,
            hci,
            accept: true,
            address: None,
            scan_time: Duration::from_millis(1500),
            dial_timeout: Duration::from_secs(15),
            close_timeout: Duration::from_secs(5),
            connection_interval: Duration::from_micros(7500),
            idle_interval: Some(Duration::from_millis(100)),
            tune: true,
            hci_log: None,
        }
    }

    /// Sets whether the transport advertises and accepts links.
    #[must_use]
    pub fn with_accept(mut self, accept: bool) -> Self {
        self.accept = accept;
        self
    }

    /// Sets the static random address (its two top bits are forced to `11`).
    #[must_use]
    pub fn with_address(mut self, address: [u8; 6]) -> Self {
        self.address = Some(address);
        self
    }

    /// Sets how long `discover` scans.
    #[must_use]
    pub fn with_scan_time(mut self, scan_time: Duration) -> Self {
        self.scan_time = scan_time;
        self
    }

    /// Sets how long a dial may take.
    #[must_use]
    pub fn with_dial_timeout(mut self, dial_timeout: Duration) -> Self {
        self.dial_timeout = dial_timeout;
        self
    }

    /// Sets how long a graceful close waits for the peer.
    #[must_use]
    pub fn with_close_timeout(mut self, close_timeout: Duration) -> Self {
        self.close_timeout = close_timeout;
        self
    }

    /// Sets the connection interval a central asks for while links carry data.
    #[must_use]
    pub fn with_connection_interval(mut self, connection_interval: Duration) -> Self {
        self.connection_interval = connection_interval;
        self
    }

    /// Sets the interval of idle connections (`None`: connections keep one interval).
    #[must_use]
    pub fn with_idle_interval(mut self, idle_interval: Option<Duration>) -> Self {
        self.idle_interval = idle_interval;
        self
    }

    /// Sets whether to ask for the 2M PHY, the largest data length and paced intervals.
    #[must_use]
    pub fn with_tuning(mut self, tune: bool) -> Self {
        self.tune = tune;
        self
    }

    /// Sets the file the HCI traffic is logged to, as btsnoop.
    #[must_use]
    pub fn with_hci_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.hci_log = Some(path.into());
        self
    }
}
