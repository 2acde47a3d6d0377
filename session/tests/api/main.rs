//! The abilityConnectionManager API over the mock transport, under tokio's paused clock.

mod calls;
mod flood;
mod handles;
mod harness;
mod progress;
mod reader;
mod scenarios;
