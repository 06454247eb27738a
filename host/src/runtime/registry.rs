//! The adapters a host serves, keyed by the name their `describe()` returns; a task's
//! `backend` field selects one.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, RwLock},
};

use anyhow::Context;

use crate::runtime::adapter::{Adapter, AdapterRuntime};

#[derive(Default)]
pub struct AdapterRegistry {
    adapters: RwLock<BTreeMap<String, Arc<Adapter>>>,
}

impl AdapterRegistry {
    /// Loads every `*.wasm` file in `dir`. A file that fails to load is logged and
    /// skipped (the others still serve); two files claiming one name is a start-up error.
    pub async fn load_dir(runtime: &AdapterRuntime, dir: &Path) -> anyhow::Result<Self> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading the adapters directory {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
            .collect();
        paths.sort();
        let registry = AdapterRegistry::default();
        for path in paths {
            match runtime.load_file(&path).await {
                Ok(adapter) => {
                    tracing::info!(
                        adapter = %adapter.info.name,
                        version = %adapter.info.version,
                        framework = %adapter.info.framework,
                        digest = %adapter.digest,
                        path = %path.display(),
                        "adapter loaded"
                    );
                    if let Some(previous) = registry.insert(adapter) {
                        anyhow::bail!(
                            "two adapters in {} are named {:?}; rename or remove one",
                            dir.display(),
                            previous.info.name
                        );
                    }
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "adapter rejected");
                }
            }
        }
        Ok(registry)
    }

    /// Adds (or replaces) an adapter; returns the one it replaced.
    pub fn insert(&self, adapter: Adapter) -> Option<Arc<Adapter>> {
        let name = adapter.info.name.clone();
        self.adapters
            .write()
            .expect("registry lock poisoned")
            .insert(name, Arc::new(adapter))
    }

    pub fn get(&self, name: &str) -> Option<Arc<Adapter>> {
        self.adapters
            .read()
            .expect("registry lock poisoned")
            .get(name)
            .cloned()
    }

    /// Names of the loaded adapters, sorted.
    pub fn names(&self) -> Vec<String> {
        self.adapters
            .read()
            .expect("registry lock poisoned")
            .keys()
            .cloned()
            .collect()
    }
}
