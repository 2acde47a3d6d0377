//! The abilityConnectionManager API over the mock transport, under tokio's paused clock.

mod calls;
mod handles;
mod harness;
mod progress;
mod reader;
mod scenarios;
