//! `acm devices`: the devices a transport can see.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use acm::Device;
use acm::transport::DeviceId;
use serde_json::json;

use crate::common::{
    CliError, Interrupt, NetArgs, Out, TransportKind, ble_device, peer_address, probe, tcp_device,
};

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

/// What a look found of one device: its name and address, and when it does not answer (a
/// configured TCP peer), why.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    name: String,
    address: String,
    problem: Option<String>,
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
    let peers = args
        .net
        .peers
        .iter()
        .map(|peer| peer_address(peer))
        .collect::<Result<Vec<_>, _>>()?;
    let mut known: BTreeMap<String, Seen> = BTreeMap::new();
    loop {
        // A look over Bluetooth LE is a scan of a second or two: Ctrl-C need not wait for it.
        let seen = tokio::select! {
            seen = look(&device, args.net.transport, &peers) => seen?,
            () = interrupt.wait() => break,
        };
        for (id, now) in &seen {
            if known.get(id) != Some(now) {
                show(out, id, now);
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

/// One line of the table: id, name, address, and why it does not answer when it does not.
fn show(out: Out, id: &str, seen: &Seen) {
    let Seen {
        name,
        address,
        problem,
    } = seen;
    out.line(
        "device",
        json!({
            "id": id,
            "name": name,
            "address": address,
            "answers": problem.is_none(),
            "why": problem,
        }),
        || match problem {
            None => format!("{id}\t{name}\t{address}"),
            Some(why) => format!("{id}\t{name}\t{address}\tnot answering: {why}"),
        },
    );
}

/// The devices seen now: over TCP, each peer of `--peer` as it answers (or why it does not);
/// over the other transports, those discovery finds.
async fn look(
    device: &Device,
    transport: TransportKind,
    peers: &[(DeviceId, SocketAddr)],
) -> Result<BTreeMap<String, Seen>, CliError> {
    if transport != TransportKind::Tcp {
        return Ok(device
            .available_devices()
            .await?
            .into_iter()
            .map(|d| {
                let seen = Seen {
                    name: d.name,
                    address: d.address,
                    problem: None,
                };
                (d.id.to_string(), seen)
            })
            .collect());
    }
    let mut probes = tokio::task::JoinSet::new();
    for (id, address) in peers.iter().cloned() {
        probes.spawn(async move { (id, address, probe(address).await) });
    }
    let mut seen = BTreeMap::new();
    while let Some(probed) = probes.join_next().await {
        let Ok((id, address, answer)) = probed else {
            continue;
        };
        let problem = match answer {
            Ok(found) if found == id => None,
            Ok(found) => Some(format!("device {found} answers there")),
            Err(why) => Some(why),
        };
        let seen_now = Seen {
            name: id.to_string(),
            address: format!("tcp://{address}"),
            problem,
        };
        seen.insert(id.to_string(), seen_now);
    }
    Ok(seen)
}
