//! The async runtime: a device that owns a transport and one task set per link, each driving a
//! [`crate::engine::LinkEngine`].

pub(crate) mod device;
pub(crate) mod link_task;
pub(crate) mod progress;
pub(crate) mod receive;

pub use device::{DEFAULT_STREAM_DATA_BYTES, Device, DeviceConfig};
