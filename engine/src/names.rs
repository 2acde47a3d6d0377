//! Keys made of names (a service, apps, a device), as maps of sessions use them: all the names
//! in one shared buffer, and their hash worked out once, when the key is made. A map then
//! copies a key by counting a reference and finds it without hashing the names again.

use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, OnceLock};

/// A sequence of names, compared name by name.
#[derive(Clone)]
pub struct NameKey {
    /// The keyed hash of `names`.
    hash: u64,
    /// Each name preceded by its length in bytes (4 bytes, little-endian), in order.
    names: Arc<[u8]>,
}

/// The keyed hash of name keys: random for each run of the program, as the crate's maps' own
/// (see [`crate::HashMap`]), since names come from peers.
fn key_hasher() -> &'static foldhash::quality::RandomState {
    static HASHER: OnceLock<foldhash::quality::RandomState> = OnceLock::new();
    HASHER.get_or_init(foldhash::quality::RandomState::default)
}

impl NameKey {
    /// The key of `names`, in this order.
    pub fn new<const N: usize>(names: [&str; N]) -> Self {
        let len = names.iter().fold(0usize, |len, name| {
            len.saturating_add(4).saturating_add(name.len())
        });
        // Made at its length in one allocation (from an exact-size iterator), then filled in.
        let mut bytes: Arc<[u8]> = std::iter::repeat_n(0, len).collect();
        if let Some(mut rest) = Arc::get_mut(&mut bytes) {
            for name in names {
                // Names are far shorter than 4 GiB (the API and SPEC limit them to 256 bytes).
                let name_len = u32::try_from(name.len()).unwrap_or(u32::MAX);
                for part in [&name_len.to_le_bytes()[..], name.as_bytes()] {
                    let (into, tail) = rest.split_at_mut(part.len());
                    into.copy_from_slice(part);
                    rest = tail;
                }
            }
        }
        Self {
            hash: key_hasher().hash_one(&*bytes),
            names: bytes,
        }
    }

    /// Whether the key holds as many names as `names` gives, each equal to the one given where
    /// one is given (`None` matches any name): as comparing with a key of them, without making
    /// one.
    pub fn holds_where<'a>(&self, names: impl IntoIterator<Item = Option<&'a str>>) -> bool {
        let mut rest: &[u8] = &self.names;
        for name in names {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return false;
            };
            let Ok(len) = usize::try_from(u32::from_le_bytes(*len)) else {
                return false;
            };
            let Some((held, tail)) = tail.split_at_checked(len) else {
                return false;
            };
            if name.is_some_and(|name| held != name.as_bytes()) {
                return false;
            }
            rest = tail;
        }
        rest.is_empty()
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut rest: &[u8] = &self.names;
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
            let (name, tail) = tail.split_at_checked(len)?;
            rest = tail;
            std::str::from_utf8(name).ok()
        })
    }
}

impl PartialEq for NameKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.names == other.names
    }
}

impl Eq for NameKey {}

impl Hash for NameKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl fmt::Debug for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// An app's device, bundle, module and ability, in the API's form or the wire's.
pub trait AppNames {
    fn app_names(&self) -> [&str; 4];
}

impl AppNames for acm_wire::pb::PeerInfo {
    fn app_names(&self) -> [&str; 4] {
        [
            &self.device_id,
            &self.bundle_name,
            &self.module_name,
            &self.ability_name,
        ]
    }
}

impl AppNames for [&str; 4] {
    fn app_names(&self) -> [&str; 4] {
        *self
    }
}

/// What makes two sessions "the same" (SPEC `SESS-3`, `SESS-7`): the service, this device's
/// app, and the peer's app on its device. A link's channels, the device's requests awaiting
/// their answer, and the requests awaiting an app all use it: a session's key is made once on
/// each side and shared from then on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey(NameKey);

impl SessionKey {
    /// What each name of a key is, in order.
    const PARTS: [&'static str; 8] = [
        "service", "bundle", "module", "ability", "device", "bundle", "module", "ability",
    ];

    /// The key of the session of `local` (this device's app) with `remote` for `service`.
    pub fn new(service: &str, local: &impl AppNames, remote: &impl AppNames) -> Self {
        let [_, bundle, module, ability] = local.app_names();
        let [device, peer_bundle, peer_module, peer_ability] = remote.app_names();
        Self(NameKey::new([
            service,
            bundle,
            module,
            ability,
            device,
            peer_bundle,
            peer_module,
            peer_ability,
        ]))
    }

    /// The key of a request the peer sends.
    pub fn incoming(source: &acm_wire::pb::PeerInfo, target: &acm_wire::pb::PeerInfo) -> Self {
        Self::new(&target.service_name, target, source)
    }

    /// Whether the key is of a session with `remote` for `service`, whichever app of this
    /// device it is for. If not, the part that differs first, of the device, bundle, module,
    /// ability and service, in this order.
    pub fn with_remote(&self, service: &str, remote: &impl AppNames) -> Result<(), &'static str> {
        let [device, bundle, module, ability] = remote.app_names();
        let wanted = [
            Some(service),
            None,
            None,
            None,
            Some(device),
            Some(bundle),
            Some(module),
            Some(ability),
        ];
        if self.0.holds_where(wanted) {
            return Ok(());
        }
        let differs = |at: usize| self.0.names().nth(at) != wanted[at];
        Err([4, 5, 6, 7, 0]
            .into_iter()
            .find(|at| differs(*at))
            .map_or("app", |at| Self::PARTS[at]))
    }
}

/// The hasher of maps keyed by [`NameKey`]s (or types that hash as one): the key's hash is
/// keyed already, so it is taken as it is.
pub type KeyHashed = BuildHasherDefault<PassThrough>;

/// Takes the one `u64` a [`NameKey`] writes as the hash.
#[derive(Debug, Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by name keys; anything else hashed this way still gets every byte counted.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_the_same_names_are_equal_and_hash_alike_and_others_differ() {
        let key = NameKey::new(["chat", "com.example", "entry"]);
        let same = NameKey::new(["chat", "com.example", "entry"]);
        assert_eq!(key, same);
        let hasher = KeyHashed::default();
        assert_eq!(hasher.hash_one(&key), hasher.hash_one(&same));
        assert_ne!(key, NameKey::new(["chat", "com.example", "other"]));
        // Where one name ends and the next begins counts.
        assert_ne!(key, NameKey::new(["chatcom.example", "", "entry"]));
        assert_ne!(
            NameKey::new(["ab", "c"]),
            NameKey::new(["a", "bc"]),
            "names are told apart by their lengths"
        );
    }

    #[test]
    fn keys_of_any_length_keep_their_names() {
        for len in [0, 1, 100, 300, 1000] {
            let long = "x".repeat(len);
            let key = NameKey::new(["chat", &long, "entry"]);
            assert_eq!(key.names().collect::<Vec<_>>(), ["chat", &long, "entry"]);
            assert_eq!(key, NameKey::new(["chat", &long, "entry"]));
            assert_ne!(key, NameKey::new(["chat", &long, "entr"]));
        }
    }

    #[test]
    fn a_key_holds_its_names_and_no_others() {
        let holds = |key: &NameKey, names: &[&str]| key.holds_where(names.iter().map(|n| Some(*n)));
        let key = NameKey::new(["chat", "", "entry"]);
        assert!(holds(&key, &["chat", "", "entry"]));
        for other in [
            &["chat", "", "entr"][..],
            &["chat", "", "entry", ""],
            &["chat", ""],
            &["chat", "entry", ""],
            &["chatentry", "", ""],
            &[],
        ] {
            assert!(!holds(&key, other), "{other:?}");
        }
        // A name not given matches any name, but it must be there.
        assert!(key.holds_where([Some("chat"), None, Some("entry")]));
        assert!(key.holds_where([None, None, None]));
        assert!(!key.holds_where([None, None]));
        assert!(!key.holds_where([None, None, None, None]));
        assert!(!key.holds_where([None, Some("x"), None]));
    }

    #[test]
    fn a_session_key_names_the_first_part_of_the_remote_app_that_differs() {
        let app =
            |device: &str, bundle: &str, module: &str, ability: &str| acm_wire::pb::PeerInfo {
                device_id: device.into(),
                bundle_name: bundle.into(),
                module_name: module.into(),
                ability_name: ability.into(),
                service_name: String::new(),
            };
        let (phone, tablet) = (app("phone", "b", "m", "a"), app("tablet", "b", "m", "a"));
        let key = SessionKey::new("chat", &tablet, &phone);
        assert_eq!(key.with_remote("chat", &phone), Ok(()));
        // The local app is not compared.
        let key_of_other_local = SessionKey::new("chat", &app("tablet", "x", "y", "z"), &phone);
        assert_eq!(key_of_other_local.with_remote("chat", &phone), Ok(()));
        for (other, part) in [
            (app("laptop", "b", "m", "a"), "device"),
            (app("phone", "c", "m", "a"), "bundle"),
            (app("phone", "b", "n", "a"), "module"),
            (app("phone", "b", "m", "b"), "ability"),
        ] {
            assert_eq!(key.with_remote("chat", &other), Err(part));
        }
        assert_eq!(key.with_remote("files", &phone), Err("service"));
        assert_eq!(
            key.with_remote("files", &app("laptop", "b", "m", "a")),
            Err("device")
        );
    }

    #[test]
    fn a_key_shows_its_names() {
        let key = NameKey::new(["chat", "", "entry"]);
        assert_eq!(format!("{key:?}"), r#"["chat", "", "entry"]"#);
    }
}
