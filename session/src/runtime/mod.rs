//! The async runtime: a device that owns a transport and the sans-IO
//! [`DeviceEngine`](acm_engine::device::DeviceEngine) behind one lock, and one driver task per
//! link.
//!
//! The shape is quinn's. An app's call locks the device's state, calls the engine, gets its
//! result at once, wakes the driver of the link that has frames to send, and returns; a call
//! that must wait (for its connect's answer, for room on the link, for a transfer to leave)
//! leaves its waker in the state, where the driver finds it. Each link's driver is the only
//! task that does the link's I/O: it receives the link's frames and hands them to the engine,
//! takes the engine's frames and sends them, wakes the engine on time, and hands the link's
//! events to the apps: callbacks, `onCollaborate` handlers and event streams, always with the
//! lock let go, in the order of the link's frames.
//!
//! One lock for the device rather than one per link keeps the rules that span links (a request
//! checked against sessions on every link, a token routed to its link) in one place, the
//! engine, with nothing to keep in step between locks; what is done under it is the engine's
//! work for one batch of frames or one call, bounded and without any wait.

pub(crate) mod app;
pub(crate) mod device;
mod driver;
pub(crate) mod state;
mod turns;

pub use device::{DEFAULT_MEMORY_BUDGET, DEFAULT_STREAM_DATA_BYTES, Device, DeviceConfig};

#[cfg(test)]
mod tests;
