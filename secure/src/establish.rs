//! Turning a link fresh from its binding's opening into a [`SecureLink`]: the handshake, the
//! trust decision and the confirmations (SPEC sections 17.5 and 17.6).

use std::time::Duration;

use acm_transport::{DeviceId, Link};

use crate::config::SecureConfig;
use crate::error::{CloseCode, SecureError};
use crate::handshake::{Handshake, prologue};
use crate::identity::PublicKey;
use crate::link::{SecureLink, refuse};
use crate::pairing::{PairingCode, PairingPolicy};

/// The prologue of `link`'s handshake: its ids in the dialer's and acceptor's places, and its
/// binding's opening.
pub fn link_prologue(link: &dyn Link) -> Vec<u8> {
    let (dialer, acceptor) = link
        .role()
        .dialer_first(link.local_device(), link.peer_device());
    prologue(dialer, acceptor, &link.opening())
}

/// Runs the secure layer's opening on `link`, fresh from its binding's opening and before
/// anything else was sent on it: the handshake, the trust decision under `config`'s policy, and
/// the exchange of confirmations. On failure the link is closed with the reason (`SEC-11`),
/// unless the peer closed it first.
pub async fn establish(
    link: Box<dyn Link>,
    config: &SecureConfig,
) -> Result<SecureLink, SecureError> {
    establish_observed(link, config, &|| {}).await
}

/// [`establish`], calling `progress` each time a handshake message of the peer's is read: an
/// acceptor tells openings that move from those that stall.
pub(crate) async fn establish_observed(
    link: Box<dyn Link>,
    config: &SecureConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<SecureLink, SecureError> {
    let prologue = link_prologue(&*link);
    let handshake = match Handshake::new(&config.identity, link.role(), &prologue) {
        Ok(handshake) => handshake,
        Err(e) => {
            refuse(&*link, &e).await;
            return Err(e);
        }
    };
    let established =
        match run_handshake(&*link, handshake, config.handshake_timeout, progress).await {
            Ok(established) => established,
            Err(e) => {
                refuse(&*link, &e).await;
                return Err(e);
            }
        };
    let (key, code) = (established.peer_key, established.code);
    let secure = SecureLink::new(link, established);
    let peer = secure.inner().peer_device().clone();
    let confirmations = async {
        let confirm = async {
            let new = decide(config, &peer, key, code).await?;
            secure.send_confirmation().await?;
            Ok::<bool, SecureError>(new)
        };
        tokio::try_join!(confirm, secure.receive_confirmation())
    };
    let error = match tokio::time::timeout(config.pairing_timeout, confirmations).await {
        Ok(Ok((new, ()))) => match new.then(|| config.trust.insert(&peer, key)) {
            Some(Err(e)) => e,
            _ => return Ok(secure),
        },
        Ok(Err(e)) => e,
        Err(_) => SecureError::refused(
            CloseCode::PairingTimeout,
            format!(
                "the pairing with {peer} was not confirmed on both sides within {:?}",
                config.pairing_timeout
            ),
        ),
    };
    secure.refuse(&error).await;
    Err(error)
}

/// Exchanges the three handshake messages, each awaited for at most `timeout`.
async fn run_handshake(
    link: &dyn Link,
    mut handshake: Handshake,
    timeout: Duration,
    progress: &(dyn Fn() + Sync),
) -> Result<crate::handshake::Established, SecureError> {
    while !handshake.is_finished() {
        if handshake.is_my_turn() {
            link.send(handshake.write_message()?).await?;
        } else {
            let message = tokio::time::timeout(timeout, link.recv())
                .await
                .map_err(|_| {
                    SecureError::refused(
                        CloseCode::HandshakeTimeout,
                        format!("no handshake message within {timeout:?}"),
                    )
                })??;
            handshake.read_message(&message)?;
            progress();
        }
    }
    handshake.finish()
}

/// Whether this side trusts `key` for `peer`: `Ok(false)` when the store has it already,
/// `Ok(true)` when it is new and the policy (or the owner) takes it, a refusal otherwise.
async fn decide(
    config: &SecureConfig,
    peer: &DeviceId,
    key: PublicKey,
    code: PairingCode,
) -> Result<bool, SecureError> {
    match config.trust.get(peer) {
        Some(trusted) if trusted == key => Ok(false),
        Some(trusted) => Err(SecureError::refused(
            CloseCode::Impersonation,
            format!(
                "{peer} is paired with key {} but presented key {}",
                trusted.fingerprint(),
                key.fingerprint()
            ),
        )),
        None => match config.policy {
            PairingPolicy::TrustOnFirstUse => Ok(true),
            PairingPolicy::KnownOnly => Err(SecureError::refused(
                CloseCode::UnknownDevice,
                format!("{peer} is not paired with this device"),
            )),
            PairingPolicy::Confirm => match config.pairing.ask(peer, key, code).await {
                Ok(true) => Ok(true),
                Ok(false) => Err(SecureError::refused(
                    CloseCode::PairingRejected,
                    format!("the owner refused to pair with {peer}"),
                )),
                Err(why) => Err(SecureError::refused(CloseCode::PairingRejected, why)),
            },
        },
    }
}
