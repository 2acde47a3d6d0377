//! `acm devices`: the devices a transport can see.

use std::collections::BTreeMap;
use std::time::Duration;

use acm::Device;
use serde_json::json;

use crate::common::{CliError, Interrupt, NetArgs, Out, TransportKind, ble_device, tcp_device};

/// The options of `acm devices`.
#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Keep looking, printing devices as they appear and disappear, until Ctrl-C (over Bluetooth
    /// LE, each look is a scan of about 1.5 s).
    #[arg(long)]
    watch: bool,
    /// Seconds between looks with --watch.
    #[arg(long, default_value_t = 2)]
    interval: u64,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// Runs `acm devices`.
pub async fn run(args: &DevicesArgs) -> Result<(), CliError> {
    let mut interrupt = Interrupt::watch();
    let out = Out { json: args.json };
    let (device, _network) = match args.net.transport {
        TransportKind::Tcp => (tcp_device(&args.net, "acm-devices", None).await?.0, None),
        TransportKind::Mock => {
            let (network, device) = super::mock::demo_network("acm-devices")?;
            (device, Some(network))
        }
        TransportKind::Ble => (ble_device(&args.net, "acm-devices", false).await?, None),
    };
    let mut known = BTreeMap::new();
    loop {
        // A look over Bluetooth LE is a scan of a second or two: Ctrl-C need not wait for it.
        let seen = tokio::select! {
            seen = look(&device) => seen?,
            () = interrupt.wait() => break,
        };
        for (id, (name, address)) in &seen {
            if !known.contains_key(id) {
                out.line(
                    "device",
                    json!({ "id": id, "name": name, "address": address }),
                    || format!("{id}\t{name}\t{address}"),
                );
            }
        }
        for id in known.keys() {
            if args.watch && !seen.contains_key(id) {
                out.line("device-gone", json!({ "id": id }), || format!("{id}\tgone"));
            }
        }
        if !args.watch {
            if seen.is_empty() {
                out.line("none", json!({}), || "no devices seen".into());
            }
            break;
        }
        known = seen;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(args.interval.max(1))) => {}
            () = interrupt.wait() => break,
        }
    }
    device.shutdown();
    Ok(())
}

async fn look(device: &Device) -> Result<BTreeMap<String, (String, String)>, CliError> {
    Ok(device
        .available_devices()
        .await?
        .into_iter()
        .map(|d| (d.id.to_string(), (d.name, d.address)))
        .collect())
}
