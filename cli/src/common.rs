//! What the commands share: the network options, the app's names, output in text or JSON, and
//! errors with their exit codes.

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use acm::transport::DeviceId;
use acm::{Context, Device, DeviceConfig, Event, PeerInfo};
use acm_transport_ble::binding::MAX_ADVERTISED_ID_LEN;
use acm_transport_ble::{BleConfig, BleTransport, HciEndpoint};
use acm_transport_tcp::TcpTransport;
use serde_json::{Value, json};

/// Exit code: the command ran but the outcome is a failure (a case failed, a connect failed or
/// was rejected, a transfer was lost or did not verify).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the command could not run (bad arguments, unreadable files, a transport that
/// cannot start, an unreachable conformance target).
pub const EXIT_CANNOT_RUN: u8 = 2;

/// A command that did not succeed: one sentence, and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub code: u8,
    /// What went wrong, as one sentence.
    pub message: String,
}

impl CliError {
    /// The command could not run (exit code 2).
    pub fn cannot_run(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_CANNOT_RUN,
            message: message.into(),
        }
    }

    /// The command ran and failed (exit code 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

impl From<acm::AcmError> for CliError {
    fn from(err: acm::AcmError) -> Self {
        // The error's text starts with the reference's code.
        Self::failed(err.to_string())
    }
}

/// The transports the commands can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportKind {
    /// TCP (SPEC section 14): `--listen tcp://HOST:PORT`, `--to ID@tcp://HOST:PORT`.
    Tcp,
    /// The in-memory mock: both devices in this process (a demo).
    Mock,
    /// Bluetooth LE (SPEC section 13) through the HCI controller `--hci` names: devices that
    /// listen advertise and are found by scanning, so `--to` is just a device id.
    Ble,
}

/// Options about the network, shared by `devices`, `listen`, `chat` and `send`.
#[derive(Debug, Clone, clap::Args)]
pub struct NetArgs {
    /// The transport.
    #[arg(long, value_enum, default_value = "tcp")]
    pub transport: TransportKind,
    /// Listen for links at tcp://HOST:PORT (port 0 picks a free one; the address is printed).
    #[arg(long)]
    pub listen: Option<String>,
    /// A known device, as ID=tcp://HOST:PORT (repeatable).
    #[arg(long = "peer", value_name = "ID=tcp://HOST:PORT")]
    pub peers: Vec<String>,
    /// This device's id.
    #[arg(long)]
    pub device_id: Option<String>,
    /// The Bluetooth controller, with --transport ble: tcp://HOST:PORT for one that serves HCI
    /// over TCP (a virtual controller such as Rootcanal), serial:/dev/ttyXXX or a plain path for
    /// a serial (UART) one.
    #[arg(long, value_name = "tcp://HOST:PORT|serial:PATH")]
    pub hci: Option<String>,
    /// The largest data transfer this device accepts, in bytes, announced to its peers (default
    /// 100 MiB); `acm send` sends larger files in chunks of at most the receiver's.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_data_size: Option<u64>,
    /// With --transport ble: write every HCI packet between this host and its controller to
    /// FILE, as a btsnoop log (Wireshark and `btmon -r` read it), to see what the connection
    /// asked for and was granted (SPEC section 13.5).
    #[arg(long, value_name = "FILE")]
    pub hci_log: Option<PathBuf>,
    /// The secure layer's options.
    #[command(flatten)]
    pub security: crate::security::SecurityArgs,
}

/// How much received data a command's event stream holds unread before its link stops
/// reading: a few chunks of a file, so that writing one overlaps receiving the next while
/// memory stays bounded.
const STREAM_DATA_BYTES: usize = 16 << 20;

impl NetArgs {
    /// The device's configuration: the secure layer's, with the data limits of these options.
    pub fn device_config(&self) -> Result<DeviceConfig, CliError> {
        let mut config = crate::security::device_config(&self.security)?
            .with_stream_data_bytes(STREAM_DATA_BYTES);
        if let Some(max) = self.max_data_size {
            let limits = &mut config.engine.limits;
            limits.max_data_size = max;
            limits.max_reassembly_bytes = limits.max_reassembly_bytes.max(max);
        }
        Ok(config)
    }

    /// Whether `--peer` gives an address for device `id`.
    pub fn names_peer(&self, id: &DeviceId) -> bool {
        self.peers
            .iter()
            .any(|peer| peer_address(peer).is_ok_and(|(peer, _)| peer == *id))
    }

    /// The largest transfer this device accepts.
    pub fn accepted_data_size(&self) -> u64 {
        self.max_data_size
            .unwrap_or_else(|| DeviceConfig::default().engine.limits.max_data_size)
    }
}

/// `tcp://HOST:PORT` as a socket address.
pub fn tcp_address(text: &str) -> Result<SocketAddr, String> {
    let rest = text
        .strip_prefix("tcp://")
        .ok_or_else(|| format!("{text:?} is not a tcp://HOST:PORT address"))?;
    rest.to_socket_addrs()
        .map_err(|e| format!("{text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} names no address"))
}

/// A device id from text.
pub fn device_id(text: &str) -> Result<DeviceId, CliError> {
    DeviceId::new(text).map_err(|e| CliError::cannot_run(format!("bad device id {text:?}: {e}")))
}

/// `ID=tcp://HOST:PORT` or `ID@tcp://HOST:PORT`: a device and its address.
pub fn peer_address(text: &str) -> Result<(DeviceId, SocketAddr), CliError> {
    let (id, addr) = text
        .split_once('=')
        .or_else(|| text.split_once('@'))
        .ok_or_else(|| CliError::cannot_run(format!("{text:?} is not ID=tcp://HOST:PORT")))?;
    let addr = tcp_address(addr).map_err(CliError::cannot_run)?;
    Ok((device_id(id)?, addr))
}

/// `--to DEVICE` or `--to DEVICE@tcp://HOST:PORT`: the device, and the address to add.
pub fn target(text: &str) -> Result<(DeviceId, Option<SocketAddr>), CliError> {
    if text.contains('@') {
        let (id, addr) = peer_address(text)?;
        Ok((id, Some(addr)))
    } else {
        Ok((device_id(text)?, None))
    }
}

/// `--to DEVICE` over Bluetooth LE: just the device's id, since devices are found by scanning.
pub fn ble_target(text: &str) -> Result<DeviceId, CliError> {
    if text.contains("://") {
        return Err(CliError::cannot_run(format!(
            "--to {text:?} names an address, but over Bluetooth LE --to is just the device id, found by scanning"
        )));
    }
    device_id(text)
}

/// A device on TCP: listening when `--listen` is given, with the known peers added.
pub async fn tcp_device(
    net: &NetArgs,
    default_id: &str,
    extra_peer: Option<(DeviceId, SocketAddr)>,
) -> Result<(Device, Option<SocketAddr>), CliError> {
    if net.hci.is_some() || net.hci_log.is_some() {
        return Err(CliError::cannot_run(
            "--hci and --hci-log go with --transport ble",
        ));
    }
    let id = device_id(net.device_id.as_deref().unwrap_or(default_id))?;
    let transport = match &net.listen {
        Some(listen) => {
            let addr = tcp_address(listen).map_err(CliError::cannot_run)?;
            TcpTransport::bind(id.clone(), addr)
                .await
                .map_err(|e| CliError::cannot_run(cannot_listen(listen, e)))?
        }
        None => TcpTransport::client(id.clone()),
    };
    for peer in &net.peers {
        let (peer, addr) = peer_address(peer)?;
        transport.add_peer(peer, addr);
    }
    if let Some((peer, addr)) = extra_peer {
        transport.add_peer(peer, addr);
    }
    let local = transport.local_addr();
    Ok((Device::new(transport, net.device_config()?), local))
}

/// Why a TCP transport could not listen on `listen`, said once.
pub fn cannot_listen(listen: &str, err: acm_transport_tcp::TcpError) -> String {
    match err {
        acm_transport_tcp::TcpError::Bind { source, .. } => {
            format!("cannot listen on {listen}: {source}")
        }
        other => format!("cannot listen on {listen}: {other}"),
    }
}

/// How long [`probe`] waits for a device to answer.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Which device answers at `address` over TCP: the id its OPEN gives, or why none does (nothing
/// listens there, another service does). The connection is closed at once.
pub async fn probe(address: SocketAddr) -> Result<DeviceId, String> {
    let prober = TcpTransport::client(device_id("acm-probe").map_err(|e| e.message)?);
    let dialed = tokio::time::timeout(PROBE_TIMEOUT, prober.dial_addr(address)).await;
    let link = match dialed {
        Ok(Ok(link)) => link,
        Ok(Err(acm::transport::TransportError::Io(err)))
            if err.kind() == std::io::ErrorKind::InvalidData =>
        {
            return Err(format!(
                "the service at tcp://{address} does not speak acm ({err})"
            ));
        }
        Ok(Err(acm::transport::TransportError::Io(err))) if err.raw_os_error().is_some() => {
            return Err(format!(
                "nothing listens at tcp://{address} ({})",
                err.kind()
            ));
        }
        Ok(Err(err)) => return Err(format!("tcp://{address}: {err}")),
        Err(_) => return Err(format!("nothing answered at tcp://{address} in time")),
    };
    let id = link.peer_device().clone();
    link.close(acm::transport::CloseReason::normal()).await;
    Ok(id)
}

/// `--hci`: `tcp://HOST:PORT`, `serial:PATH` or a plain path.
pub fn hci_endpoint(text: &str) -> Result<HciEndpoint, CliError> {
    if text.starts_with("tcp://") {
        return tcp_address(text)
            .map(HciEndpoint::Tcp)
            .map_err(CliError::cannot_run);
    }
    let path = text.strip_prefix("serial:").unwrap_or(text);
    if path.is_empty() || text.contains("://") {
        return Err(CliError::cannot_run(format!(
            "--hci {text:?} is neither tcp://HOST:PORT nor serial:PATH"
        )));
    }
    Ok(HciEndpoint::Serial(PathBuf::from(path)))
}

/// A device on Bluetooth LE, on the controller `--hci` names. One that `accepts` advertises
/// its id (so the id must fit an advertisement) and accepts links; the others only dial.
pub async fn ble_device(
    net: &NetArgs,
    default_id: &str,
    accepts: bool,
) -> Result<Device, CliError> {
    if net.listen.is_some() || !net.peers.is_empty() {
        return Err(CliError::cannot_run(
            "--listen and --peer go with --transport tcp, as Bluetooth LE devices advertise and are found by scanning",
        ));
    }
    let id = device_id(net.device_id.as_deref().unwrap_or(default_id))?;
    let transport = ble_transport(net.hci.as_deref(), net.hci_log.as_deref(), id, accepts).await?;
    Ok(Device::new(transport, net.device_config()?))
}

/// A Bluetooth LE transport as device `id` on the controller `hci` names (`--hci`), logging
/// HCI to `hci_log` if given. One that `accepts` advertises its id (so the id must fit an
/// advertisement) and accepts links; the others only dial.
pub async fn ble_transport(
    hci: Option<&str>,
    hci_log: Option<&Path>,
    id: DeviceId,
    accepts: bool,
) -> Result<BleTransport, CliError> {
    let hci_text = hci.ok_or_else(|| {
        CliError::cannot_run(
            "--transport ble needs --hci tcp://HOST:PORT or --hci serial:PATH, the Bluetooth controller to use",
        )
    })?;
    let endpoint = hci_endpoint(hci_text)?;
    if accepts && id.as_str().len() > MAX_ADVERTISED_ID_LEN {
        return Err(CliError::cannot_run(format!(
            "device id {:?} is {} bytes long, but a device listening over Bluetooth LE advertises its id, which must then be at most {MAX_ADVERTISED_ID_LEN} bytes",
            id.as_str(),
            id.as_str().len()
        )));
    }
    let mut config = BleConfig::new(id, endpoint).with_accept(accepts);
    if let Some(log) = hci_log {
        config = config.with_hci_log(log);
    }
    BleTransport::start(config).await.map_err(|e| {
        CliError::cannot_run(format!(
            "cannot use the Bluetooth controller at {hci_text}: {e}"
        ))
    })
}

/// `BUNDLE/MODULE/ABILITY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppName {
    /// The bundle.
    pub bundle: String,
    /// The module.
    pub module: String,
    /// The ability.
    pub ability: String,
}

/// The app the commands are by default, on both ends.
pub const DEFAULT_APP: &str = "com.example.acm/entry/EntryAbility";

impl std::str::FromStr for AppName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(b), Some(m), Some(a), None)
                if !b.is_empty() && !m.is_empty() && !a.is_empty() =>
            {
                Ok(Self {
                    bundle: b.into(),
                    module: m.into(),
                    ability: a.into(),
                })
            }
            _ => Err(format!("{text:?} is not BUNDLE/MODULE/ABILITY")),
        }
    }
}

impl AppName {
    /// The app's context on this device.
    pub fn context(&self) -> Context {
        Context::new(&self.bundle, &self.module, &self.ability)
    }

    /// The app on `device`.
    pub fn on(&self, device: &DeviceId) -> PeerInfo {
        PeerInfo::new(device.as_str(), &self.bundle, &self.module, &self.ability)
    }
}

/// Where the commands write: text for people, or one JSON object per line.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// JSON lines instead of text.
    pub json: bool,
}

impl Out {
    /// Writes one line: `text` for people, or `{"event": kind, ...fields}`.
    pub fn line(&self, kind: &str, fields: Value, text: impl FnOnce() -> String) {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            let mut object = json!({ "event": kind });
            if let (Some(object), Value::Object(fields)) = (object.as_object_mut(), fields) {
                object.extend(fields);
            }
            let _ = writeln!(stdout, "{object}");
        } else {
            let _ = writeln!(stdout, "{}", text());
        }
        let _ = stdout.flush();
    }

    /// Writes a session's event.
    pub fn event(&self, peer: &str, event: &Event) {
        match event {
            Event::Connect { session_id } => self.line(
                "connect",
                json!({ "session": session_id.get(), "peer": peer }),
                || format!("connected to {peer} (session {session_id})"),
            ),
            Event::Disconnect { session_id, reason } => self.line(
                "disconnect",
                json!({ "session": session_id.get(), "peer": peer, "reason": reason.name() }),
                || format!("disconnected from {peer}: {}", reason.name()),
            ),
            Event::Message { session_id, msg } => self.line(
                "message",
                json!({ "session": session_id.get(), "peer": peer, "text": msg }),
                || format!("{peer}> {msg}"),
            ),
            Event::Data { session_id, data } => self.line(
                "data",
                json!({ "session": session_id.get(), "peer": peer, "bytes": data.len() }),
                || format!("{peer} sent {} bytes of data", data.len()),
            ),
            Event::Collaborate { session_id, info } => self.line(
                "collaborate",
                json!({
                    "session": session_id.get(),
                    "peer": peer,
                    "type": format!("{:?}", info.event_type),
                    "text": info.event_msg,
                }),
                || format!("{peer} collaboration event {:?}", info.event_type),
            ),
            // Progress is reported by the commands that transfer.
            _ => {}
        }
    }
}

/// Starts tracing logs on stderr (unless a command keeps them: `acm conformance`): `RUST_LOG`
/// when set, else `acm=debug` with `-v`, `warn` otherwise.
pub fn init_logs(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,acm=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::commands::case_logs::LogOutput)
        .with_ansi(false)
        .try_init();
}

/// A runtime on this thread, with a running clock.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::cannot_run(format!("cannot start the runtime: {e}")))
}

/// Ctrl-C, watched from the moment [`Interrupt::watch`] makes it until the command ends: one
/// pressed while the command is busy with something else is kept for the next
/// [`Interrupt::wait`], where a `tokio::signal::ctrl_c()` made afresh on each turn of a loop
/// would miss it (and one pressed before it is first polled would kill the process).
pub struct Interrupt {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Interrupt {
    /// Starts watching for Ctrl-C (needs the runtime).
    pub fn watch() -> Self {
        Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok(),
        }
    }

    /// Waits for Ctrl-C (forever if it cannot be watched). Cancel-safe: a Ctrl-C is not lost
    /// when another branch of a `select!` wins.
    pub async fn wait(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal
            && signal.recv().await.is_some()
        {
            return;
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_ok() {
            return;
        }
        std::future::pending::<()>().await;
    }
}

/// How long a command waits for its links to close before it exits anyway.
pub const CLOSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Closes the device's links gracefully, so that what the command sent (a DISCONNECT, a last
/// message) leaves before the process does; gives up after [`CLOSE_LIMIT`].
pub async fn close_device(device: &Device) {
    if tokio::time::timeout(CLOSE_LIMIT, device.close())
        .await
        .is_err()
    {
        tracing::warn!("the links did not close in time");
        device.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hci_names_a_controller_on_tcp_or_a_serial_port() {
        let tcp = hci_endpoint("tcp://127.0.0.1:6402").unwrap();
        assert_eq!(
            tcp,
            HciEndpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], 6402)))
        );
        let serial = HciEndpoint::Serial(PathBuf::from("/dev/ttyACM0"));
        assert_eq!(hci_endpoint("serial:/dev/ttyACM0").unwrap(), serial);
        assert_eq!(hci_endpoint("/dev/ttyACM0").unwrap(), serial);
        for bad in ["", "serial:", "udp://127.0.0.1:6402", "tcp://nowhere"] {
            let err = hci_endpoint(bad).unwrap_err();
            assert_eq!(err.code, EXIT_CANNOT_RUN, "{bad}");
        }
    }
}
