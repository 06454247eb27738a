//! On-disk cache of compiled adapters, keyed by the component's sha256 and the
//! engine's compatibility hash, so a restart or a reload of a known adapter skips
//! Cranelift (milliseconds instead of seconds).
//!
//! Trust: a cached artifact is native code that wasmtime loads without re-validating
//! it, so nothing is loaded that this host did not write:
//! - the directory must be owned by the host's user and not writable by group or
//!   others, or the host refuses to start with it (no silent fallback: the operator
//!   asked for a cache and gets a clear error instead);
//! - every artifact carries an HMAC-SHA256 tag over its name (component digest and
//!   engine hash) and its bytes, keyed by `.mac-key` in the directory (32 random bytes,
//!   mode 0600, made on first use). The tag is checked on the bytes in memory, and
//!   exactly those bytes are deserialized. A file with a bad tag (copied in, swapped
//!   from another digest, cut short) is recompiled and overwritten, with a warning.
//!   Whoever can read the key runs as the host's user already, and could tamper with
//!   the host itself; the tag stops everyone else, and mistakes (a shared or restored
//!   directory, a half-written file, an artifact renamed to another digest);
//! - files are opened with `O_NOFOLLOW` (a symlink is removed, never followed), and
//!   written to an unpredictable temporary name created exclusively, then renamed.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    io::{Read, Write},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::{Engine, component::Component};

/// The key file inside the cache directory.
const KEY_FILE: &str = ".mac-key";
/// Bytes of the tag leading every artifact file.
const TAG_BYTES: usize = 32;
/// Domain separation for the tag (bump on a format change).
const TAG_CONTEXT: &[u8] = b"agent-federation compile cache v1\0";

type HmacSha256 = Hmac<Sha256>;

pub struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
}

/// Why a cache directory was refused.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("compile cache {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "compile cache {path} is unsafe: {reason}; it must be a directory owned by the \
         host's user and writable only by it (chmod 700), or unset --compile-cache-dir"
    )]
    Unsafe { path: String, reason: String },
}

impl CompileCache {
    /// A cache in `dir` (created 0700 if missing); refused unless only the host's user
    /// can write it. Makes the MAC key on first use.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| CacheError::Io { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let metadata = std::fs::symlink_metadata(dir).map_err(io(dir))?;
        check_private(dir, &metadata, true)?;
        let key = load_or_make_key(&dir.join(KEY_FILE))?;
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    /// The compiled component for `bytes` (whose sha256 is `digest`), and whether it
    /// came from the cache: from the cache when present and its tag checks, else
    /// compiled now and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        let name = self.name_for(engine, digest);
        let path = self.dir.join(&name);
        match self.read_verified(&path, &name) {
            Ok(Some(artifact)) => {
                // SAFETY: these exact bytes carry this host's tag for this name: they
                // were written by `precompile_component` of an engine with the same
                // compatibility hash (see the module docs for the trust argument).
                match unsafe { Component::deserialize(engine, &artifact) } {
                    Ok(component) => return Ok((component, true)),
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "discarding unusable cached artifact");
                    }
                }
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "cached artifact refused; recompiling and overwriting it");
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Err(error) = self.write(&path, &name, &compiled) {
            tracing::warn!(path = %path.display(), %error, "could not cache a compiled adapter");
        }
        // SAFETY: `compiled` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &compiled) }.map(|c| (c, false))
    }

    fn name_for(&self, engine: &Engine, digest: &str) -> String {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        format!("{digest}-{:016x}.cwasm", hasher.finish())
    }

    fn tag(&self, name: &str, artifact: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(TAG_CONTEXT);
        mac.update(name.as_bytes());
        mac.update(b"\0");
        mac.update(artifact);
        mac
    }

    /// The artifact at `path` if it is there and its tag checks; `None` when there is
    /// none; why it was refused otherwise (a symlink there is removed, not followed).
    fn read_verified(&self, path: &Path, name: &str) -> Result<Option<Vec<u8>>, String> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path);
        let mut file = match file {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                let _ = std::fs::remove_file(path);
                return Err("it is a symlink (removed, not followed)".into());
            }
            Err(error) => return Err(error.to_string()),
        };
        let metadata = file.metadata().map_err(|e| e.to_string())?;
        if !metadata.is_file() {
            return Err("not a regular file".into());
        }
        if metadata.uid() != effective_uid() {
            return Err(format!(
                "owned by uid {}, not the host's user",
                metadata.uid()
            ));
        }
        let mut contents = Vec::with_capacity(metadata.len() as usize);
        file.read_to_end(&mut contents).map_err(|e| e.to_string())?;
        if contents.len() < TAG_BYTES {
            return Err("shorter than its tag".into());
        }
        let artifact = contents.split_off(TAG_BYTES);
        self.tag(name, &artifact)
            .verify_slice(&contents)
            .map_err(|_| "its MAC does not match (tampered, or not written by this host)")?;
        Ok(Some(artifact))
    }

    /// Writes tag + artifact to an exclusively created, randomly named temporary file
    /// in the directory, then renames it over `path`.
    fn write(&self, path: &Path, name: &str, artifact: &[u8]) -> std::io::Result<()> {
        let tag = self.tag(name, artifact).finalize().into_bytes();
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(&self.dir)?;
        tmp.write_all(&tag)?;
        tmp.write_all(artifact)?;
        tmp.as_file().sync_data()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Refuses a path not owned by the host's user, a symlink, or one that group or
/// others may write (`dir`) or read (the key).
fn check_private(path: &Path, metadata: &std::fs::Metadata, dir: bool) -> Result<(), CacheError> {
    let unsafe_because = |reason: String| CacheError::Unsafe {
        path: path.display().to_string(),
        reason,
    };
    if metadata.file_type().is_symlink() {
        return Err(unsafe_because("it is a symlink".into()));
    }
    if dir != metadata.is_dir() {
        return Err(unsafe_because(format!(
            "not a {}",
            if dir { "directory" } else { "regular file" }
        )));
    }
    if metadata.uid() != effective_uid() {
        return Err(unsafe_because(format!(
            "owned by uid {}, the host runs as uid {}",
            metadata.uid(),
            effective_uid()
        )));
    }
    let mode = metadata.mode() & 0o777;
    let (mask, what) = if dir {
        (0o022, "writable by group or others")
    } else {
        (0o077, "readable by group or others")
    };
    if mode & mask != 0 {
        return Err(unsafe_because(format!("{what} (mode {mode:o})")));
    }
    Ok(())
}

/// The MAC key at `path`: read if present (and private), else 32 random bytes written
/// there exclusively with mode 0600.
fn load_or_make_key(path: &Path) -> Result<[u8; 32], CacheError> {
    let io = |source| CacheError::Io {
        path: path.display().to_string(),
        source,
    };
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match created {
        Ok(mut file) => {
            let mut key = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut random| random.read_exact(&mut key))
                .map_err(io)?;
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .map_err(io)?;
            Ok(key)
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(io)?;
            check_private(path, &file.metadata().map_err(io)?, false)?;
            let mut key = [0u8; 32];
            file.read_exact(&mut key).map_err(io)?;
            Ok(key)
        }
        Err(error) => Err(io(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component, and one that differs from it by a custom section.
    const EMPTY: &[u8] = b"\0asm\x0d\0\x01\0";
    const OTHER: &[u8] = b"\0asm\x0d\0\x01\0\0\x05\x04test";

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let dir = private_dir();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = CompileCache::open(dir.path()).err().expect("refused");
        assert!(
            error.to_string().contains("writable by group or others"),
            "{error}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        CompileCache::open(dir.path()).unwrap();
        let key = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(key.mode() & 0o777, 0o600);
    }

    #[test]
    fn a_swapped_or_tampered_artifact_is_recompiled_and_overwritten() {
        let engine = Engine::default();
        let dir = private_dir();
        let cache = CompileCache::open(dir.path()).unwrap();
        let (empty, other) = (crate::digest_of(EMPTY), crate::digest_of(OTHER));
        assert!(!cache.load_or_compile(&engine, &empty, EMPTY).unwrap().1);
        assert!(cache.load_or_compile(&engine, &empty, EMPTY).unwrap().1);
        assert!(!cache.load_or_compile(&engine, &other, OTHER).unwrap().1);

        // One digest's artifact (with its valid tag) planted under another's name.
        let empty_path = dir.path().join(cache.name_for(&engine, &empty));
        let other_path = dir.path().join(cache.name_for(&engine, &other));
        std::fs::copy(&empty_path, &other_path).unwrap();
        assert!(
            !cache.load_or_compile(&engine, &other, OTHER).unwrap().1,
            "swap loaded"
        );
        assert!(
            cache.load_or_compile(&engine, &other, OTHER).unwrap().1,
            "not rewritten"
        );

        // One flipped byte in the code.
        let mut bytes = std::fs::read(&empty_path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&empty_path, bytes).unwrap();
        assert!(
            !cache.load_or_compile(&engine, &empty, EMPTY).unwrap().1,
            "tamper loaded"
        );
        assert!(cache.load_or_compile(&engine, &empty, EMPTY).unwrap().1);

        // A cache made with another key (another host's) is not trusted either.
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let rekeyed = CompileCache::open(dir.path()).unwrap();
        assert!(!rekeyed.load_or_compile(&engine, &empty, EMPTY).unwrap().1);
    }

    #[test]
    fn a_symlinked_artifact_is_not_followed() {
        let engine = Engine::default();
        let dir = private_dir();
        let cache = CompileCache::open(dir.path()).unwrap();
        let digest = crate::digest_of(EMPTY);
        let elsewhere = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(elsewhere.path(), b"not yours").unwrap();
        let path = dir.path().join(cache.name_for(&engine, &digest));
        std::os::unix::fs::symlink(elsewhere.path(), &path).unwrap();
        assert!(!cache.load_or_compile(&engine, &digest, EMPTY).unwrap().1);
        // The link was replaced by a real artifact; its target is untouched.
        assert!(
            !std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(elsewhere.path()).unwrap(), b"not yours");
        // No temporary files left behind.
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
