//! The trust store: which key each known device id is paired with (SPEC section 17.3).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use acm_transport::DeviceId;

use crate::SecureError;
use crate::files;
use crate::identity::PublicKey;

/// Maps device ids to the public keys paired with them. A link whose peer claims a known id
/// with another key is refused (`SEC-7`); an unknown id pairs first (`SEC-8`).
pub trait TrustStore: Send + Sync + fmt::Debug {
    /// The key trusted for `device`, if any.
    fn get(&self, device: &DeviceId) -> Option<PublicKey>;

    /// Trusts `key` for `device`, replacing any key trusted for it before.
    fn insert(&self, device: &DeviceId, key: PublicKey) -> Result<(), SecureError>;

    /// Forgets `device`; says whether it was known.
    fn remove(&self, device: &DeviceId) -> Result<bool, SecureError>;

    /// Every trusted device and its key, ordered by id.
    fn list(&self) -> Vec<(DeviceId, PublicKey)>;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A trust store in memory: forgotten when dropped.
#[derive(Debug, Default)]
pub struct MemoryTrustStore {
    keys: Mutex<BTreeMap<DeviceId, PublicKey>>,
}

impl MemoryTrustStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TrustStore for MemoryTrustStore {
    fn get(&self, device: &DeviceId) -> Option<PublicKey> {
        lock(&self.keys).get(device).copied()
    }

    fn insert(&self, device: &DeviceId, key: PublicKey) -> Result<(), SecureError> {
        lock(&self.keys).insert(device.clone(), key);
        Ok(())
    }

    fn remove(&self, device: &DeviceId) -> Result<bool, SecureError> {
        Ok(lock(&self.keys).remove(device).is_some())
    }

    fn list(&self) -> Vec<(DeviceId, PublicKey)> {
        lock(&self.keys)
            .iter()
            .map(|(id, key)| (id.clone(), *key))
            .collect()
    }
}

/// A trust store kept in a text file, one device a line: the device id, a tab, and its key in
/// 64 hexadecimal digits. Every change rewrites the file, applied to what it holds then (stores
/// of several processes may share it: their changes are made one at a time, under an exclusive
/// lock on `PATH.lock` beside it), readable by its owner only (mode 0600
/// on Unix).
#[derive(Debug)]
pub struct FileTrustStore {
    path: PathBuf,
    keys: Mutex<BTreeMap<DeviceId, PublicKey>>,
}

impl FileTrustStore {
    /// Opens the store at `path`; a missing file is an empty store (made at the first change).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, SecureError> {
        let path = path.into();
        let keys = if path.exists() {
            parse(&path, &files::read(&path)?)?
        } else {
            BTreeMap::new()
        };
        Ok(Self {
            path,
            keys: Mutex::new(keys),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes the file with `change`, applied to what the file holds now (which another
    /// process sharing it may have changed), under the lock of its writers; returns what it
    /// then holds.
    fn update(
        &self,
        change: impl FnOnce(&mut BTreeMap<DeviceId, PublicKey>),
    ) -> Result<BTreeMap<DeviceId, PublicKey>, SecureError> {
        let _lock = files::lock_for_writing(&self.path)?;
        let mut keys = if self.path.exists() {
            parse(&self.path, &files::read(&self.path)?)?
        } else {
            BTreeMap::new()
        };
        change(&mut keys);
        self.save(&keys)?;
        Ok(keys)
    }

    fn save(&self, keys: &BTreeMap<DeviceId, PublicKey>) -> Result<(), SecureError> {
        let mut text = String::new();
        for (id, key) in keys {
            text.push_str(id.as_str());
            text.push('\t');
            text.push_str(&key.to_hex());
            text.push('\n');
        }
        files::write_private(&self.path, &text)
    }
}

fn parse(path: &Path, text: &str) -> Result<BTreeMap<DeviceId, PublicKey>, SecureError> {
    let mut keys = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |detail: &str| SecureError::BadFile {
            path: path.display().to_string(),
            detail: format!("line {}: {detail}", number + 1),
        };
        let (id, key) = line
            .split_once('\t')
            .ok_or_else(|| bad("no tab between the device id and the key"))?;
        let id = DeviceId::new(id).map_err(|e| bad(&e.to_string()))?;
        let key = PublicKey::from_hex(key.trim_end())
            .ok_or_else(|| bad("the key is not 64 hexadecimal digits"))?;
        keys.insert(id, key);
    }
    Ok(keys)
}

impl TrustStore for FileTrustStore {
    fn get(&self, device: &DeviceId) -> Option<PublicKey> {
        lock(&self.keys).get(device).copied()
    }

    fn insert(&self, device: &DeviceId, key: PublicKey) -> Result<(), SecureError> {
        let mut keys = lock(&self.keys);
        *keys = self.update(|keys| {
            keys.insert(device.clone(), key);
        })?;
        Ok(())
    }

    fn remove(&self, device: &DeviceId) -> Result<bool, SecureError> {
        let mut keys = lock(&self.keys);
        let mut removed = false;
        *keys = self.update(|keys| removed = keys.remove(device).is_some())?;
        Ok(removed)
    }

    fn list(&self) -> Vec<(DeviceId, PublicKey)> {
        lock(&self.keys)
            .iter()
            .map(|(id, key)| (id.clone(), *key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> DeviceId {
        DeviceId::new(name).unwrap()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "acm-secure-{name}-{}-{:x}",
            std::process::id(),
            rand_u64()
        ));
        dir.join("trust")
    }

    fn rand_u64() -> u64 {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        u64::from_le_bytes(bytes)
    }

    #[test]
    fn memory_store_inserts_replaces_lists_and_removes() {
        let store = MemoryTrustStore::new();
        let (a, b) = (
            PublicKey::from_bytes([1; 32]),
            PublicKey::from_bytes([2; 32]),
        );
        assert_eq!(store.get(&id("tablet")), None);
        store.insert(&id("tablet"), a).unwrap();
        store.insert(&id("phone"), a).unwrap();
        store.insert(&id("tablet"), b).unwrap();
        assert_eq!(store.get(&id("tablet")), Some(b));
        assert_eq!(store.list(), vec![(id("phone"), a), (id("tablet"), b)]);
        assert!(store.remove(&id("phone")).unwrap());
        assert!(!store.remove(&id("phone")).unwrap());
        assert_eq!(store.list().len(), 1);
    }

    #[test]
    fn stores_sharing_a_file_and_its_missing_folder_lose_no_change() {
        let path = scratch("shared");
        let writers: Vec<_> = (0..8u8)
            .map(|n| {
                let path = path.clone();
                std::thread::spawn(move || {
                    // Each its own store on the same file, as processes sharing a folder have.
                    let store = FileTrustStore::open(&path).unwrap();
                    for round in 0..5u8 {
                        let device = id(&format!("device-{n}-{round}"));
                        store
                            .insert(&device, PublicKey::from_bytes([n; 32]))
                            .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let store = FileTrustStore::open(&path).unwrap();
        assert_eq!(store.list().len(), 40);
        assert!(store.remove(&id("device-3-4")).unwrap());
        assert_eq!(FileTrustStore::open(&path).unwrap().list().len(), 39);
        let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["trust", "trust.lock"], "no file left half-made");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn file_store_survives_reopening_and_is_private() {
        let path = scratch("trust");
        let store = FileTrustStore::open(&path).unwrap();
        assert!(store.list().is_empty());
        let key = PublicKey::from_bytes([7; 32]);
        store.insert(&id("my tablet"), key).unwrap();
        store.insert(&id("phone"), key).unwrap();
        assert!(store.remove(&id("phone")).unwrap());
        let reopened = FileTrustStore::open(&path).unwrap();
        assert_eq!(reopened.list(), vec![(id("my tablet"), key)]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir = std::fs::metadata(path.parent().unwrap()).unwrap();
            assert_eq!(dir.permissions().mode() & 0o777, 0o700);
        }
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn file_store_refuses_a_file_it_did_not_write() {
        let path = scratch("bad");
        files::write_private(&path, "phone 0123\n").unwrap();
        let err = FileTrustStore::open(&path).unwrap_err();
        assert!(err.to_string().contains("line 1: no tab"), "{err}");
        files::write_private(&path, "phone\tabcd\n").unwrap();
        let err = FileTrustStore::open(&path).unwrap_err();
        assert!(err.to_string().contains("64 hexadecimal digits"), "{err}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
