//! Finds and loads the ONNX Runtime shared library, once per process.
//!
//! The library is chosen as: an explicit path (`--ort-lib`) > `ORT_DYLIB_PATH` > the copy `cargo xtask setup`
//! installs under runner's home. The file is checked before it is opened, because a failed dlopen inside `ort`
//! would otherwise panic, and a library of another ONNX Runtime version is rejected with its version named.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use serde::Serialize;

use crate::paths;

/// The ONNX Runtime release runner is built for (ort's `api-31`); other minor versions are refused.
const REQUIRED_MINOR: &str = "1.31";

/// The ONNX Runtime library this process loaded, for results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrtRuntime {
    pub library: PathBuf,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OrtLibError {
    #[error(
        "ONNX Runtime library not found (tried: {tried}); run `cargo xtask setup`, or pass --ort-lib / set \
         ORT_DYLIB_PATH to libonnxruntime.so.{version} from the PyPI wheel onnxruntime=={version}",
        tried = .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        version = paths::ORT_VERSION
    )]
    NotFound { tried: Vec<PathBuf> },
    #[error(
        "{path} could not be loaded as ONNX Runtime: {reason}; pass --ort-lib / set ORT_DYLIB_PATH to \
         libonnxruntime.so.{version} from the PyPI wheel onnxruntime=={version}",
        path = .path.display(),
        version = paths::ORT_VERSION
    )]
    Load { path: PathBuf, reason: String },
    #[error(
        "{path} is ONNX Runtime {found}, but runner needs {version}; run `cargo xtask setup`, or pass --ort-lib / \
         set ORT_DYLIB_PATH to libonnxruntime.so.{version} from the PyPI wheel onnxruntime=={version}",
        path = .path.display(),
        version = paths::ORT_VERSION
    )]
    WrongVersion { path: PathBuf, found: String },
    #[error("ONNX Runtime is already loaded from {loaded} in this process; cannot also load {requested}",
        loaded = .loaded.display(), requested = .requested.display())]
    AlreadyLoaded { loaded: PathBuf, requested: PathBuf },
    #[error("creating the ONNX Runtime environment failed: {0}")]
    Environment(String),
}

/// The loaded library and the process's one ONNX Runtime environment.
pub(crate) struct LoadedRuntime {
    pub runtime: OrtRuntime,
    pub environment: Environment,
}

static LOADED: Mutex<Option<&'static LoadedRuntime>> = Mutex::new(None);

/// Loads ONNX Runtime (once per process) and returns what was loaded.
pub fn load_runtime(explicit: Option<&Path>, gpu: bool) -> Result<OrtRuntime, OrtLibError> {
    load(explicit, gpu).map(|loaded| loaded.runtime.clone())
}

pub(crate) fn load(explicit: Option<&Path>, gpu: bool) -> Result<&'static LoadedRuntime, OrtLibError> {
    // A bad explicit path is reported as such even when a library is already loaded.
    if let Some(path) = explicit
        && !path.is_file()
    {
        return Err(OrtLibError::NotFound { tried: vec![path.to_path_buf()] });
    }
    // A poisoned lock only means another thread panicked mid-load; the Option is still consistent.
    let mut slot = LOADED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(loaded) = *slot {
        if let Some(requested) = explicit
            && !same_file(requested, &loaded.runtime.library)
        {
            return Err(OrtLibError::AlreadyLoaded {
                loaded: loaded.runtime.library.clone(),
                requested: requested.into(),
            });
        }
        return Ok(loaded);
    }
    let library = locate(explicit, gpu)?;
    preflight(&library)?;
    let builder =
        ort::init_from(&library).map_err(|err| load_error(&library, err))?.with_name("runner").with_telemetry(false);
    let version = runtime_version(&library);
    if !version.starts_with(&format!("{REQUIRED_MINOR}.")) && version != REQUIRED_MINOR {
        return Err(OrtLibError::WrongVersion { path: library, found: version });
    }
    let environment = builder.build().map_err(|err| OrtLibError::Environment(err.to_string()))?;
    let loaded: &'static LoadedRuntime =
        Box::leak(Box::new(LoadedRuntime { runtime: OrtRuntime { library, version }, environment }));
    *slot = Some(loaded);
    Ok(loaded)
}

/// The library file to open, checked to exist.
fn locate(explicit: Option<&Path>, gpu: bool) -> Result<PathBuf, OrtLibError> {
    let candidates: Vec<PathBuf> = if let Some(path) = explicit {
        vec![path.to_path_buf()]
    } else if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        vec![PathBuf::from(path)]
    } else {
        let flavour = if gpu { "gpu" } else { "cpu" };
        vec![paths::ort_dir(flavour).join(paths::ort_lib_name())]
    };
    match candidates.iter().find(|path| path.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(OrtLibError::NotFound { tried: candidates }),
    }
}

/// Opens the library and asks it for the API runner is built for, before `ort` does: `ort` asserts that
/// `OrtGetApiBase` returns a base and `expect`s the API, so a library that exports the symbol but is not a
/// usable ONNX Runtime (a newer release without this API version, a stub) would otherwise panic.
fn preflight(library: &Path) -> Result<(), OrtLibError> {
    use std::ffi::{CStr, CString};
    use std::os::unix::ffi::OsStrExt;

    let refused = |reason: String| OrtLibError::Load { path: library.to_path_buf(), reason };
    let c_path =
        CString::new(library.as_os_str().as_bytes()).map_err(|_| refused("the path holds a NUL byte".into()))?;
    // SAFETY: loading a library runs its initialisers; that is what loading ONNX Runtime means, and `ort`
    // opens the same file right after. The handle stays open, so the functions called below stay mapped.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a NUL-terminated message owned by libc, or null.
        let message = unsafe { libc::dlerror() };
        let reason = if message.is_null() {
            "dlopen failed".to_string()
        } else {
            unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()
        };
        return Err(refused(reason));
    }
    // SAFETY: a plain symbol lookup in the handle just opened.
    let symbol = unsafe { libc::dlsym(handle, c"OrtGetApiBase".as_ptr()) };
    if symbol.is_null() {
        return Err(refused("it does not export `OrtGetApiBase`, so it is not ONNX Runtime".into()));
    }
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release (the C API's stable entry).
    let get_base: unsafe extern "system" fn() -> *const ort::sys::OrtApiBase = unsafe { std::mem::transmute(symbol) };
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err(refused("its `OrtGetApiBase` returned nothing".into()));
    }
    // SAFETY: a non-null base points at the two function pointers of the stable C API.
    let version = unsafe { ((*base).GetVersionString)() };
    let version = if version.is_null() {
        "unknown".into()
    } else {
        unsafe { CStr::from_ptr(version) }.to_string_lossy().into_owned()
    };
    let api = unsafe { ((*base).GetApi)(ort::sys::ORT_API_VERSION) };
    if api.is_null() {
        return Err(OrtLibError::WrongVersion { path: library.to_path_buf(), found: version });
    }
    Ok(())
}

fn load_error(path: &Path, err: ort::LoadDynamicError) -> OrtLibError {
    match err {
        ort::LoadDynamicError::BadVersion { version_str, path } => {
            OrtLibError::WrongVersion { path, found: version_str }
        }
        other => OrtLibError::Load { path: path.to_path_buf(), reason: other.to_string() },
    }
}

/// The loaded library's version, from its build string (`git-branch=rel-1.31.1`), else its file name.
fn runtime_version(library: &Path) -> String {
    let info = ort::info();
    if let Some(start) = info.find("rel-") {
        let version: String = info[start + 4..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        if !version.is_empty() {
            return version;
        }
    }
    let name = library.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.rsplit_once(".so.").map(|(_, v)| v.to_string()).unwrap_or_else(|| "unknown".to_string())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
