//! `acm peer`: the reference implementation with the conformance profile, for other suites and
//! stacks to test against, over TCP or Bluetooth LE.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use acm::transport::DeviceId;
use acm::{Device, Security};
use acm_conformance::profile::{self, Timers};
use acm_conformance::wire::{CarriesNoData, runtime};
use acm_transport_tcp::{TcpConfig, TcpTransport};

use super::reach::HciArgs;
use crate::common::tcp_address;

/// The options of `acm peer`.
#[derive(Debug, clap::Args)]
pub struct PeerArgs {
    /// The transport: tcp, listening where --listen says, or ble, on the controller --hci
    /// names, advertising the device id and accepting links (SPEC section 13).
    #[arg(long, value_enum, default_value = "tcp")]
    transport: PeerTransport,
    /// With --transport tcp: where to listen, as tcp://HOST:PORT (port 0 picks a free one; the
    /// address is printed).
    #[arg(long)]
    listen: Option<String>,
    /// The Bluetooth controller, with --transport ble.
    #[command(flatten)]
    hci: HciArgs,
    /// This device's id (over Bluetooth LE, at most 29 bytes: it is advertised).
    #[arg(long, default_value = "acm-reference-peer")]
    device_id: String,
    /// Plain links, without the secure layer (by default the peer is secure, with a random
    /// identity for the run, and trusts every device on first use: SPEC section 15).
    #[arg(long)]
    insecure: bool,
    /// Run with the profile's short timers (SPEC section 15: HELLO wait, OPEN wait and handshake
    /// 1 s, responder 2 s, keepalive 2 s), for runs with `acm conformance --short-timers`.
    #[arg(long)]
    short_timers: bool,
    /// Declare that this device's transport cannot carry data (SESS-3, DATA-8), for runs with
    /// `acm conformance --no-data`.
    #[arg(long)]
    no_data: bool,
    /// Write the peer's memory to FILE every 100 ms (`rss_kib=N peak_kib=N data_bytes=N`), for
    /// `acm conformance --robustness --memory-from FILE`.
    #[arg(long, value_name = "FILE")]
    report_memory: Option<PathBuf>,
}

/// The transports `acm peer` runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PeerTransport {
    /// TCP (SPEC section 14).
    Tcp,
    /// Bluetooth LE (SPEC section 13).
    Ble,
}

/// Runs `acm peer`.
pub fn peer(args: &PeerArgs) -> ExitCode {
    let result = (|| {
        let id = DeviceId::new(args.device_id.clone()).map_err(|e| format!("--device-id: {e}"))?;
        let timers = if args.short_timers {
            Timers::SHORT
        } else {
            Timers::SPEC
        };
        runtime(false)?.block_on(async move {
            let mut settings = profile::device_config(timers);
            if args.insecure {
                settings = settings.with_security(Security::Insecure);
            }
            let (device, place) = match args.transport {
                PeerTransport::Tcp => {
                    args.hci.refuse("--transport ble")?;
                    let listen = args
                        .listen
                        .as_deref()
                        .ok_or("--transport tcp needs --listen tcp://HOST:PORT")?;
                    let addr = tcp_address(listen)?;
                    let config = TcpConfig::new().with_open_timeout(timers.open);
                    let transport = TcpTransport::bind_with(id.clone(), addr, config)
                        .await
                        .map_err(|e| crate::common::cannot_listen(&format!("tcp://{addr}"), e))?;
                    let local = transport
                        .local_addr()
                        .ok_or("the listener has no address")?;
                    let device = profile_device(transport, args.no_data, settings);
                    (device, format!("listening on tcp://{local}"))
                }
                PeerTransport::Ble => {
                    if args.listen.is_some() {
                        return Err("--listen goes with --transport tcp: over Bluetooth LE the peer advertises its device id".into());
                    }
                    let transport = args.hci.start(id.clone(), true).await?;
                    let device = profile_device(transport, args.no_data, settings);
                    (device, "advertising over Bluetooth LE".to_string())
                }
            };
            let _profile = profile::install_with(&device, timers);
            if let Some(path) = &args.report_memory {
                super::robustness::report_memory(&device, path.clone());
            }
            let security = if args.insecure { "plain" } else { "secure" };
            println!("acm peer: device {id} {place} ({security})");
            let _ = std::io::stdout().flush();
            tokio::signal::ctrl_c()
                .await
                .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
            device.shutdown();
            Ok::<(), String>(())
        })
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("acm: {err}");
            ExitCode::from(2)
        }
    }
}

/// The reference implementation on `transport` with the profile's `settings`; declaring that
/// the transport carries no data with `no_data`.
fn profile_device(
    transport: impl acm::transport::Transport + 'static,
    no_data: bool,
    settings: acm::DeviceConfig,
) -> Device {
    if no_data {
        Device::new(CarriesNoData(transport), settings)
    } else {
        Device::new(transport, settings)
    }
}
