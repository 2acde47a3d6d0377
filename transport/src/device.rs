//! Who is at the other end: device ids, what discovery tells of a device, and what a transport
//! can do.

use std::fmt;

/// The identifier of a device on a transport: 1 to [`DeviceId::MAX_LEN`] bytes of UTF-8 with no
/// control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(String);

/// A string that is not a valid [`DeviceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidDeviceId {
    /// The id is empty.
    #[error("device id is empty")]
    Empty,
    /// The id is longer than [`DeviceId::MAX_LEN`] bytes.
    #[error("device id is {0} bytes long; the maximum is {max}", max = DeviceId::MAX_LEN)]
    TooLong(usize),
    /// The id contains a control character.
    #[error("device id contains a control character")]
    ControlCharacter,
}

impl DeviceId {
    /// The longest device id, in bytes of UTF-8.
    pub const MAX_LEN: usize = 64;

    /// Checks `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidDeviceId> {
        let id = id.into();
        Self::check(&id)?;
        Ok(Self(id))
    }

    /// Checks that `id` is a valid device id, as [`DeviceId::new`] does, without wrapping it.
    pub fn check(id: &str) -> Result<(), InvalidDeviceId> {
        if id.is_empty() {
            return Err(InvalidDeviceId::Empty);
        }
        if id.len() > Self::MAX_LEN {
            return Err(InvalidDeviceId::TooLong(id.len()));
        }
        if id.chars().any(char::is_control) {
            return Err(InvalidDeviceId::ControlCharacter);
        }
        Ok(())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({:?})", self.0)
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for DeviceId {
    type Error = InvalidDeviceId;
    fn try_from(id: &str) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl TryFrom<String> for DeviceId {
    type Error = InvalidDeviceId;
    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

/// A device that a transport can see, as listed by [`Transport::discover`](crate::Transport::discover).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// The device's id, to pass to [`Transport::dial`](crate::Transport::dial).
    pub id: DeviceId,
    /// A name meant for people; may be empty.
    pub name: String,
    /// The device's address on the transport (a socket address, a Bluetooth address, ...).
    pub address: String,
}

impl DeviceInfo {
    /// Describes a device.
    pub fn new(id: DeviceId, name: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            address: address.into(),
        }
    }
}

/// What a transport can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Whether the transport can carry bulk data (`send_data`), not only control traffic and
    /// short messages. A session that asks for `need_send_data` over a transport without it is
    /// refused.
    pub carries_data: bool,
    /// Whether [`Transport::discover`](crate::Transport::discover) can list nearby devices.
    pub discovery: bool,
    /// The largest frame any link of this transport can carry, in bytes.
    pub max_frame_size: usize,
}

impl Capabilities {
    /// A transport that carries data, discovers devices, and carries frames of up to
    /// `max_frame_size` bytes.
    pub const fn new(max_frame_size: usize) -> Self {
        Self {
            carries_data: true,
            discovery: true,
            max_frame_size,
        }
    }

    /// Sets whether the transport carries bulk data.
    #[must_use]
    pub const fn with_carries_data(mut self, carries_data: bool) -> Self {
        self.carries_data = carries_data;
        self
    }

    /// Sets whether the transport can discover devices.
    #[must_use]
    pub const fn with_discovery(mut self, discovery: bool) -> Self {
        self.discovery = discovery;
        self
    }
}
