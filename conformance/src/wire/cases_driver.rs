//! The profile's scenario driver (SPEC section 15.1), checked on its own: the random
//! scenarios depend on it, so a driver that answers wrongly shows here first, by name.

use acm_wire::pb::connect_response;

use super::build::channel_token;
use super::peer::{Peer, Step};
use super::target::WireTarget;
use super::{WireCase, wire_case};
use crate::driver::{DRIVER, OK};
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/PROF-2/malformed-commands",
            ["PROF-2", "PROF-1", "PROF-3"],
            "the scenario driver answers drive:error 401 to unknown and malformed commands and to sessions and requests it does not have, in order, and drive:ok to a reset and a sync",
            malformed_commands
        )
        .breaking("PROF-2"),
    ]
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// Commands the driver must refuse with 401 right after a reset.
const REFUSED: [&str; 9] = [
    "drive:frobnicate 1",
    "drive:connect 0",
    "drive:connect 99",
    "drive:connect x",
    "drive:create 1 notes",
    "drive:create 1 notes ScenarioAbility extra",
    "drive:accept 1 1",
    "drive:reject 77 not now",
    "drive:destroy 4294967296",
];

async fn malformed_commands(target: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(target).await?;
    let token = channel_token(0x44, 1);
    let (channel, response) = peer.ask(peer.request(DRIVER, "driver-case", token)).await?;
    if !matches!(response.result, Some(connect_response::Result::Accepted(_))) {
        return fail(
            "DriverAbility accepts at once (PROF-1)",
            format!("{:?}", response.result),
        );
    }
    // Reports of earlier runs may come first: the reset's answer ends them.
    peer.say(channel, "drive:reset").await?;
    for _ in 0..=crate::driver::MAX_KEPT {
        if peer.expect_message(channel).await? == OK {
            break;
        }
    }
    for command in REFUSED {
        peer.say(channel, command).await?;
        let answer = peer.expect_message(channel).await?;
        if answer != "drive:error 401" {
            return fail(
                format!("drive:error 401 to {command:?} (PROF-2)"),
                format!("{answer:?}"),
            );
        }
    }
    peer.say(channel, "drive:sync").await?;
    let answer = peer.expect_message(channel).await?;
    if answer != OK {
        return fail("drive:ok to drive:sync (PROF-2)", format!("{answer:?}"));
    }
    peer.close().await;
    Ok(())
}
