//! The adapters a host serves, keyed by the name their `describe()` returns; a task's
//! `backend` field selects one.
//!
//! Per name the registry holds the current build (new tasks run on it) and the previous
//! one (one rollback away). A swap replaces a pointer under a lock held for
//! nanoseconds; a task keeps an `Arc` of the build it started on, so in-flight tasks
//! finish on the old build while new ones start on the new.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::SystemTime,
};

use crate::adapter::Adapter;

/// One adapter name's builds.
#[derive(Clone)]
pub struct Slot {
    pub current: Arc<Adapter>,
    /// Since when `current` has been current.
    pub current_since: SystemTime,
    pub previous: Option<Arc<Adapter>>,
    /// Why the latest update of this adapter was rejected (cleared by the next swap).
    pub last_error: Option<String>,
}

/// What [`AdapterRegistry::install`] did.
pub enum Installed {
    /// The name was new.
    Added,
    /// The name's current build was replaced; it is now the previous build.
    Swapped { old: Arc<Adapter> },
    /// The build was already current.
    Unchanged,
}

/// Why a rollback could not happen.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("no adapter named {0:?} is loaded")]
    NotFound(String),
    #[error("adapter {0:?} has no previous version to roll back to")]
    NoPrevious(String),
}

#[derive(Default)]
pub struct AdapterRegistry {
    slots: RwLock<BTreeMap<String, Slot>>,
}

impl AdapterRegistry {
    /// Makes `adapter` the current build of its name.
    pub fn install(&self, adapter: Arc<Adapter>) -> Installed {
        let mut slots = self.slots.write().expect("registry lock poisoned");
        let name = adapter.info.name.clone();
        let now = SystemTime::now();
        match slots.get_mut(&name) {
            None => {
                slots.insert(
                    name,
                    Slot {
                        current: adapter,
                        current_since: now,
                        previous: None,
                        last_error: None,
                    },
                );
                Installed::Added
            }
            Some(slot) => {
                slot.last_error = None;
                if slot.current.is_build(&adapter.digest, &adapter.policy) {
                    return Installed::Unchanged;
                }
                let old = std::mem::replace(&mut slot.current, adapter);
                slot.previous = Some(old.clone());
                slot.current_since = now;
                Installed::Swapped { old }
            }
        }
    }

    /// Swaps the current and previous builds of `name`; returns the new current.
    pub fn rollback(&self, name: &str) -> Result<Arc<Adapter>, RollbackError> {
        let mut slots = self.slots.write().expect("registry lock poisoned");
        let slot = slots
            .get_mut(name)
            .ok_or_else(|| RollbackError::NotFound(name.to_string()))?;
        let previous = slot
            .previous
            .take()
            .ok_or_else(|| RollbackError::NoPrevious(name.to_string()))?;
        let old = std::mem::replace(&mut slot.current, previous);
        slot.previous = Some(old);
        slot.current_since = SystemTime::now();
        slot.last_error = None;
        Ok(slot.current.clone())
    }

    /// Unloads `name` (tasks for it then get NOT_FOUND); returns what it held.
    pub fn remove(&self, name: &str) -> Option<Slot> {
        self.slots
            .write()
            .expect("registry lock poisoned")
            .remove(name)
    }

    /// Notes why the latest update of `name` was rejected (the current build stays).
    pub fn set_last_error(&self, name: &str, error: String) {
        if let Some(slot) = self
            .slots
            .write()
            .expect("registry lock poisoned")
            .get_mut(name)
        {
            slot.last_error = Some(error);
        }
    }

    /// The current build of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Adapter>> {
        self.slots
            .read()
            .expect("registry lock poisoned")
            .get(name)
            .map(|slot| slot.current.clone())
    }

    /// A build already in memory (current or previous of any name) with this component
    /// digest: swapping back to it needs no compile and no validation.
    pub fn find_by_digest(&self, digest: &str) -> Option<Arc<Adapter>> {
        let slots = self.slots.read().expect("registry lock poisoned");
        slots
            .values()
            .flat_map(|slot| std::iter::once(&slot.current).chain(slot.previous.as_ref()))
            .find(|adapter| adapter.digest == digest)
            .cloned()
    }

    /// Names of the loaded adapters, sorted.
    pub fn names(&self) -> Vec<String> {
        self.slots
            .read()
            .expect("registry lock poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// Every slot, sorted by name.
    pub fn snapshot(&self) -> Vec<(String, Slot)> {
        self.slots
            .read()
            .expect("registry lock poisoned")
            .iter()
            .map(|(name, slot)| (name.clone(), slot.clone()))
            .collect()
    }
}
