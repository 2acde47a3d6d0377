//! `acm id` and `acm trust`: this device's identity, and the devices it is paired with
//! (SPEC section 17.3).

use std::path::PathBuf;

use acm::secure::TrustStore;

use crate::common::{CliError, device_id};
use crate::security::{SecurityArgs, folder, identity, trust_store};

/// The options of `acm id`.
#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// The folder of the key and the trust store; default $XDG_CONFIG_HOME/acm, or
    /// ~/.config/acm.
    #[arg(long, value_name = "DIR")]
    identity: Option<PathBuf>,
    /// The device id to show with the fingerprint (the one given to the other commands).
    #[arg(long)]
    device_id: Option<String>,
}

/// The options of `acm trust`.
#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    /// The folder of the key and the trust store; default $XDG_CONFIG_HOME/acm, or
    /// ~/.config/acm.
    #[arg(long, value_name = "DIR", global = true)]
    identity: Option<PathBuf>,
    #[command(subcommand)]
    action: TrustAction,
}

/// What `acm trust` does.
#[derive(Debug, clap::Subcommand)]
enum TrustAction {
    /// Lists the paired devices: id, key fingerprint, key.
    List,
    /// Forgets a paired device: the next link with it pairs anew, comparing codes.
    Remove {
        /// The device's id.
        id: String,
    },
}

fn security(identity: &Option<PathBuf>) -> SecurityArgs {
    SecurityArgs {
        identity: identity.clone(),
        insecure: false,
        yes: false,
    }
}

/// Runs `acm id`: makes the identity if there is none yet, and prints its fingerprint.
pub fn id(args: &IdArgs) -> Result<(), CliError> {
    let security = security(&args.identity);
    let identity = identity(&security)?;
    if let Some(id) = &args.device_id {
        println!("device id:   {}", device_id(id)?);
    }
    println!("fingerprint: {}", identity.fingerprint());
    println!("public key:  {}", identity.public_key());
    println!(
        "key file:    {}",
        folder(&security)?.join("identity").display()
    );
    Ok(())
}

/// Runs `acm trust`.
pub fn trust(args: &TrustArgs) -> Result<(), CliError> {
    let store = trust_store(&security(&args.identity))?;
    match &args.action {
        TrustAction::List => {
            let paired = store.list();
            if paired.is_empty() {
                println!("no paired devices ({})", store.path().display());
            }
            for (id, key) in paired {
                println!("{id}\t{}\t{key}", key.fingerprint());
            }
            Ok(())
        }
        TrustAction::Remove { id } => {
            let id = device_id(id)?;
            let known = store
                .remove(&id)
                .map_err(|e| CliError::cannot_run(e.to_string()))?;
            if known {
                println!("forgot {id}");
                Ok(())
            } else {
                Err(CliError::failed(format!("{id} is not paired")))
            }
        }
    }
}
