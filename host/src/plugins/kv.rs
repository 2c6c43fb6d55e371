//! The per-plugin key-value store (tokens, cursors): in memory, written
//! through to one JSON file per plugin so it survives restarts. Shared by all
//! versions of a plugin, private to it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 256;

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("{0}")]
    Quota(String),
    #[error("could not persist: {0}")]
    Io(String),
}

/// One plugin's store.
pub struct KvStore {
    path: Option<PathBuf>,
    data: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Serialises file writes so a slower older snapshot never lands last.
    write: tokio::sync::Mutex<()>,
}

impl KvStore {
    /// A store kept only in memory (tests, dry runs).
    pub fn in_memory() -> KvStore {
        KvStore { path: None, data: Mutex::default(), write: Default::default() }
    }

    /// Opens (or creates) the store persisted at `path`.
    pub fn open(path: PathBuf) -> std::io::Result<KvStore> {
        let data = match std::fs::read(&path) {
            Ok(bytes) => {
                let hexed: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
                })?;
                hexed.into_iter().filter_map(|(k, v)| hex::decode(v).ok().map(|v| (k, v))).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(KvStore { path: Some(path), data: Mutex::new(data), write: Default::default() })
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.data.lock().ok()?.get(key).cloned()
    }

    /// Sets `key`, enforcing the plugin's quotas, and persists.
    pub async fn set(&self, key: String, value: Vec<u8>, max_keys: u32, max_value: u64) -> Result<(), KvError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(KvError::Quota(format!("key must be 1-{MAX_KEY_BYTES} bytes, got {}", key.len())));
        }
        if value.len() as u64 > max_value {
            return Err(KvError::Quota(format!("value of `{key}` is {} bytes; the limit is {max_value}", value.len())));
        }
        {
            let mut data = self.data.lock().map_err(|_| KvError::Io("store poisoned".into()))?;
            if !data.contains_key(&key) && data.len() as u64 >= u64::from(max_keys) {
                return Err(KvError::Quota(format!("the store already holds {max_keys} keys")));
            }
            data.insert(key, value);
        }
        self.persist().await
    }

    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        let removed = self.data.lock().map_err(|_| KvError::Io("store poisoned".into()))?.remove(key).is_some();
        if removed { self.persist().await } else { Ok(()) }
    }

    async fn persist(&self) -> Result<(), KvError> {
        let Some(path) = &self.path else { return Ok(()) };
        let _guard = self.write.lock().await;
        let snapshot: BTreeMap<String, String> = self
            .data
            .lock()
            .map_err(|_| KvError::Io("store poisoned".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), hex::encode(v)))
            .collect();
        let bytes = serde_json::to_vec(&snapshot).map_err(|e| KvError::Io(e.to_string()))?;
        crate::util::write_atomic(path, &bytes).await.map_err(|e| KvError::Io(e.to_string()))
    }
}
