//! A cache of precompiled scenario components, so loading a scenario costs milliseconds after the first
//! time instead of a full Cranelift compilation.
//!
//! An entry is `COMPONENT_SHA256-ENGINE_KEY.cwasm` in the cache folder: the component's hash and a hash
//! of everything that makes precompiled code loadable (wasmtime's compatibility hash covers its version,
//! target and every compilation setting, e.g. epoch interruption). Loading precompiled code is `unsafe`
//! in wasmtime (it is trusted machine code), so an entry is trusted only if it is exactly what this cache
//! wrote: the file starts with a magic tag and the SHA-256 of the code that follows, and the code is
//! checked against it before it is deserialized, from the bytes that were checked (never re-read). A
//! corrupt, truncated or foreign entry is compiled again and replaced. Entries are written to a
//! temporary file and renamed, so a reader never sees half an entry.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::{compile, hex};

const MAGIC: &[u8; 8] = b"RUNCWASM";
const HEADER: usize = MAGIC.len() + 32;

/// How a scenario's compiled code was obtained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "reason")]
pub enum CacheOutcome {
    /// No cache was used: compiled from the component.
    Uncached,
    /// Not in the cache: compiled and stored.
    Compiled,
    /// Read from the cache; nothing was compiled.
    Hit,
    /// The entry could not be trusted or loaded (the reason); compiled again and replaced.
    Rebuilt(String),
    /// Compiled, but the entry could not be written (the reason); the next load compiles again.
    NotStored(String),
}

/// What loading a scenario did, for logs and tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub cache: CacheOutcome,
    /// Reading, compiling or deserializing, checking and describing the component.
    pub millis: f64,
}

/// A folder of precompiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    pub fn new(dir: impl Into<PathBuf>) -> ComponentCache {
        ComponentCache { dir: dir.into() }
    }

    /// `$RUNNER_CACHE_DIR/components`, else `$XDG_CACHE_HOME/runner/components`, else
    /// `~/.cache/runner/components`: a cache, safe to delete at any time.
    pub fn from_env() -> ComponentCache {
        ComponentCache::new(crate::paths::cache_dir().join("components"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for this component and engine lives.
    pub fn entry_path(&self, engine: &Engine, component_digest: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}-{}.cwasm", hex(component_digest), &engine_key(engine)[..16]))
    }

    /// The compiled component: from the cache when a trustworthy entry exists, else compiled and stored.
    pub(super) fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &[u8; 32],
    ) -> Result<(Component, CacheOutcome), String> {
        let path = self.entry_path(engine, digest);
        let stale = match std::fs::read(&path) {
            Ok(entry) => match load_entry(engine, &entry) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(reason) => Some(reason),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("cannot read {}: {e}", path.display())),
        };
        if let Some(reason) = &stale {
            tracing::warn!("the cached scenario {} is not usable ({reason}); compiling it again", path.display());
        }
        let component = compile(engine, bytes)?;
        let stored = component
            .serialize()
            .map_err(|e| format!("cannot serialize the compiled component: {e:#}"))
            .and_then(|code| store_entry(&path, &code));
        let outcome = match (stored, stale) {
            (Err(reason), _) => {
                tracing::warn!("cannot cache the compiled scenario: {reason}");
                CacheOutcome::NotStored(reason)
            }
            (Ok(()), Some(reason)) => CacheOutcome::Rebuilt(reason),
            (Ok(()), None) => CacheOutcome::Compiled,
        };
        Ok((component, outcome))
    }
}

/// Hex SHA-256 of wasmtime's compatibility hash for this engine.
fn engine_key(engine: &Engine) -> String {
    struct Sha256Hasher(Sha256);
    impl Hasher for Sha256Hasher {
        fn finish(&self) -> u64 {
            unreachable!("only the digest is read")
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = Sha256Hasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hex(&hasher.0.finalize())
}

fn load_entry(engine: &Engine, entry: &[u8]) -> Result<Component, String> {
    if entry.len() < HEADER || &entry[..MAGIC.len()] != MAGIC {
        return Err("not an entry this cache wrote".into());
    }
    let (expected, code) = entry[MAGIC.len()..].split_at(32);
    if Sha256::digest(code).as_slice() != expected {
        return Err("its checksum does not match its contents (corrupt or truncated)".into());
    }
    // SAFETY: `code` is exactly what `Component::serialize` produced in this cache (checked by SHA-256
    // above, on these very bytes), for an engine with the same compatibility hash (part of the name).
    unsafe { Component::deserialize(engine, code) }.map_err(|e| format!("wasmtime refused it: {e:#}"))
}

fn store_entry(path: &Path, code: &[u8]) -> Result<(), String> {
    let dir = path.parent().expect("entries live in the cache folder");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut tmp = tempfile_in(dir)?;
    let digest = Sha256::digest(code);
    tmp.1
        .write_all(MAGIC)
        .and_then(|_| tmp.1.write_all(&digest))
        .and_then(|_| tmp.1.write_all(code))
        .and_then(|_| tmp.1.sync_data())
        .map_err(|e| format!("cannot write {}: {e}", tmp.0.display()))?;
    std::fs::rename(&tmp.0, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp.0);
        format!("cannot rename {} to {}: {e}", tmp.0.display(), path.display())
    })
}

/// A new file in `dir` with a name no other writer uses.
fn tempfile_in(dir: &Path) -> Result<(PathBuf, std::fs::File), String> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let path = dir.join(format!(".tmp-{}-{count}-{nanos}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    Ok((path, file))
}
