//! The command line's secure layer (SPEC section 17): where this device's key and trust store
//! live, and how its user answers pairing requests.
//!
//! Keys live in `$XDG_CONFIG_HOME/acm/` (`~/.config/acm/` when unset), or in the folder given by
//! `--identity DIR`: `identity` holds the private key, `trust` the paired devices, both readable
//! by their owner only. A first contact shows the pairing code on both ends and asks to confirm
//! it (`--yes` accepts without asking); `--insecure` turns the secure layer off.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use acm::secure::{
    FileTrustStore, Identity, PairingPolicy, PairingRequest, PairingRequests, SecureConfig,
};
use acm::{Device, DeviceConfig, Security};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::common::{CliError, Out};

/// The options of the secure layer, shared by the commands that make links.
#[derive(Debug, Clone, clap::Args)]
pub struct SecurityArgs {
    /// The folder of this device's key (`identity`) and trust store (`trust`); default
    /// $XDG_CONFIG_HOME/acm, or ~/.config/acm.
    #[arg(long, value_name = "DIR")]
    pub identity: Option<PathBuf>,
    /// Plain links, without the secure layer: anyone on the way can read and change them, and
    /// secure devices refuse them.
    #[arg(long)]
    pub insecure: bool,
    /// Accept every pairing with a new device without asking (its code is still shown): for
    /// scripts that cannot answer.
    #[arg(long)]
    pub yes: bool,
}

/// The folder of the key and the trust store.
pub fn folder(args: &SecurityArgs) -> Result<PathBuf, CliError> {
    if let Some(dir) = &args.identity {
        return Ok(dir.clone());
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })
        .ok_or_else(|| {
            CliError::cannot_run("neither XDG_CONFIG_HOME nor HOME is set: pass --identity DIR")
        })?;
    Ok(config.join("acm"))
}

/// This device's identity, made and saved on first use.
pub fn identity(args: &SecurityArgs) -> Result<Identity, CliError> {
    let path = folder(args)?.join("identity");
    Identity::load_or_generate(&path).map_err(|e| CliError::cannot_run(e.to_string()))
}

/// The trust store.
pub fn trust_store(args: &SecurityArgs) -> Result<FileTrustStore, CliError> {
    let path = folder(args)?.join("trust");
    FileTrustStore::open(path).map_err(|e| CliError::cannot_run(e.to_string()))
}

/// The device configuration the commands use: secure with the stored identity and trust store,
/// confirming new devices, unless `--insecure`.
pub fn device_config(args: &SecurityArgs) -> Result<DeviceConfig, CliError> {
    let security = if args.insecure {
        Security::Insecure
    } else {
        let config = SecureConfig::new(identity(args)?)
            .with_trust_store(Arc::new(trust_store(args)?))
            .with_policy(PairingPolicy::Confirm);
        Security::Configured(config)
    };
    Ok(DeviceConfig::default().with_security(security))
}

/// The user's side of pairing: shows each request and takes the answer from a typed line (or
/// accepts at once under `--yes`).
pub struct Pairing {
    requests: Option<PairingRequests>,
    waiting: Option<PairingRequest>,
    yes: bool,
    out: Out,
}

impl Pairing {
    /// The pairing requests of `device`.
    pub fn new(device: &Device, args: &SecurityArgs, out: Out) -> Self {
        Self {
            requests: device.pairing_requests(),
            waiting: None,
            yes: args.yes,
            out,
        }
    }

    /// Whether a request waits for a typed answer.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Waits for the next request and shows it; under `--yes` accepts it. Never returns when
    /// there are no requests to wait for.
    pub async fn next(&mut self) {
        let request = match self.requests.as_mut() {
            Some(requests) => requests.next().await,
            None => None,
        };
        let Some(request) = request else {
            self.requests = None;
            return std::future::pending().await;
        };
        let (peer, code, fingerprint) = (
            request.peer().to_string(),
            request.code().to_string(),
            request.fingerprint().to_string(),
        );
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        self.out.line(
            "pairing",
            json!({ "peer": peer, "code": code, "fingerprint": fingerprint }),
            || {
                format!(
                    "pairing with {peer} (key {fingerprint}) for the first time: code {spaced}\n\
                     does {peer} show the same code? [y/N]{}",
                    if self.yes { " y (--yes)" } else { "" }
                )
            },
        );
        if self.yes {
            request.accept();
        } else if let Some(old) = self.waiting.replace(request) {
            old.reject();
        }
    }

    /// Answers the waiting request with a typed line: `y` or `yes` accepts, anything else
    /// refuses. Returns whether the line was an answer.
    pub fn answer(&mut self, line: &str) -> bool {
        let Some(request) = self.waiting.take() else {
            return false;
        };
        let peer = request.peer().to_string();
        let yes = matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes");
        if yes {
            request.accept();
        } else {
            request.reject();
        }
        self.out.line(
            "pairing-answer",
            json!({ "peer": peer, "accepted": yes }),
            || {
                if yes {
                    format!("accepted {peer}; waiting for {peer} to confirm too")
                } else {
                    format!("refused to pair with {peer}")
                }
            },
        );
        true
    }

    /// Runs `work` (a connect) while answering pairing requests from the terminal.
    pub async fn during<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut stdin_open = true;
        loop {
            tokio::select! {
                done = &mut work => return done,
                () = self.next() => {}
                line = lines.next_line(), if stdin_open && self.is_waiting() => match line {
                    Ok(Some(line)) => {
                        self.answer(&line);
                    }
                    _ => stdin_open = false,
                },
            }
        }
    }
}
