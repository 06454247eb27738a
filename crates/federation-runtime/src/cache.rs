//! On-disk cache of compiled adapters, keyed by the component's sha256 and the
//! engine's compatibility hash, so a restart or a reload of a known adapter skips
//! Cranelift (milliseconds instead of seconds).
//!
//! Trust: loading a cached artifact runs native code from the cache directory without
//! re-validating it, so the directory must be writable only by the host's user.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
};

use wasmtime::{Engine, component::Component};

pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// A cache in `dir` (created if missing).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(CompileCache {
            dir: dir.to_path_buf(),
        })
    }

    /// The compiled component for `bytes` (whose sha256 is `digest`), and whether it
    /// came from the cache: from the cache when present and loadable, else compiled
    /// now and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.path_for(engine, digest);
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an engine with
            // the same compatibility hash; the directory is trusted (see module docs).
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "discarding unusable cached artifact");
                }
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Err(error) = write_atomically(&path, &compiled) {
            tracing::warn!(path = %path.display(), %error, "could not cache a compiled adapter");
        }
        // SAFETY: `compiled` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &compiled) }.map(|c| (c, false))
    }

    fn path_for(&self, engine: &Engine, digest: &str) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
