//! A Hugging Face Hub client that shares the standard HF cache with `huggingface_hub` and
//! `transformers`: references like `hf:OWNER/REPO[/SUB/FOLDER][@REVISION]` resolve to a local snapshot
//! folder, downloaded when online and found in the cache offline.
//!
//! Cache layout (as `huggingface_hub` writes it, so either tool reuses the other's downloads):
//! `CACHE/{models|datasets}--OWNER--REPO/refs/REVISION` holds the commit hash a branch or tag pointed at,
//! `snapshots/COMMIT/PATH` are relative symlinks to `blobs/ETAG`, and a blob is named after the file's
//! hash (sha256 for LFS files, the git blob id otherwise). The cache folder is `$HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. `HF_HUB_OFFLINE=1` never touches the network; a
//! network failure falls back to the cache. `HF_TOKEN` (else `$HF_HOME/token`) authenticates, and
//! `HF_ENDPOINT` points at a mirror.
//!
//! ```no_run
//! use runner::hub::{Hub, HubRef, RepoType};
//! let reference = HubRef::parse("hf:onnxruntime/Phi-3-mini-4k-instruct-onnx/cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4", RepoType::Model)?;
//! let folder = Hub::from_env().resolve(&reference, &[])?; // the subfolder inside the snapshot
//! let root = Hub::from_env().snapshot(RepoType::Dataset, "openai/gsm8k", "main", &["main/*.parquet"])?;
//! # Ok::<(), runner::hub::HubError>(())
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The scheme that marks a Hub reference where a path is also accepted.
pub const SCHEME: &str = "hf:";
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
const DEFAULT_REVISION: &str = "main";

/// The kinds of Hub repository runner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoType {
    Model,
    Dataset,
}

impl RepoType {
    /// The plural used in cache folder names and API paths (`models`, `datasets`).
    pub fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
        }
    }

    /// The prefix of `resolve` URLs: models have none, datasets `datasets/`.
    fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("`{text}` is not a Hub reference: expected hf:OWNER/REPO[/SUB/FOLDER][@REVISION] ({problem})")]
    Reference { text: String, problem: &'static str },
    #[error(
        "{kind} {id} at revision `{revision}` is not in the Hugging Face cache {cache} ({why}); {how}",
        kind = .repo_type.plural().trim_end_matches('s'), cache = .cache.display()
    )]
    NotCached { repo_type: RepoType, id: String, revision: String, cache: PathBuf, why: String, how: String },
    #[error(
        "{kind} {id} at revision `{revision}` is cached at {snapshot} but has no file matching {patterns:?}; {how}",
        kind = .repo_type.plural().trim_end_matches('s'), snapshot = .snapshot.display()
    )]
    NoMatchingFiles {
        repo_type: RepoType,
        id: String,
        revision: String,
        snapshot: PathBuf,
        patterns: Vec<String>,
        how: String,
    },
    #[error("{kind} {id} at revision `{revision}` has no file matching {patterns:?} (files: {files})", kind = .repo_type.plural().trim_end_matches('s'))]
    NothingToFetch { repo_type: RepoType, id: String, revision: String, patterns: Vec<String>, files: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: the download's sha256 is {actual}, but the Hub lists {expected}")]
    Checksum { url: String, expected: String, actual: String },
    #[error("{url}: the Hub answered with something runner cannot read: {message}")]
    Api { url: String, message: String },
    #[error("{path}: {source}", path = .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> HubError + '_ {
    move |source| HubError::Io { path: path.to_path_buf(), source }
}

/// A parsed `hf:OWNER/REPO[/SUB/FOLDER][@REVISION]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    pub repo_type: RepoType,
    /// `OWNER/REPO`.
    pub id: String,
    /// A folder inside the repository (`cpu_and_mobile/cpu-int4-...`), when the reference names one.
    pub subfolder: Option<String>,
    /// A branch, tag or commit hash; `main` when the reference names none.
    pub revision: String,
}

impl HubRef {
    /// Whether `text` is meant as a Hub reference rather than a local path.
    pub fn is_hub_ref(text: &str) -> bool {
        text.starts_with(SCHEME)
    }

    /// Parses `hf:OWNER/REPO[/SUB/FOLDER][@REVISION]` as a repository of `repo_type`.
    pub fn parse(text: &str, repo_type: RepoType) -> Result<HubRef, HubError> {
        let bad = |problem| HubError::Reference { text: text.to_string(), problem };
        let rest = text.strip_prefix(SCHEME).ok_or_else(|| bad("it must start with `hf:`"))?;
        let (path, revision) = match rest.split_once('@') {
            Some((path, revision)) if !revision.is_empty() => (path, revision.to_string()),
            Some(_) => return Err(bad("the revision after `@` is empty")),
            None => (rest, DEFAULT_REVISION.to_string()),
        };
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad("it needs an owner and a repository name, and no empty path segments"));
        }
        if parts.iter().any(|p| *p == "." || *p == "..") {
            return Err(bad("`.` and `..` are not allowed in the path"));
        }
        let valid = |p: &str| p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid(parts[0]) || !valid(parts[1]) {
            return Err(bad("owner and repository names use letters, digits, `-`, `_` and `.` only"));
        }
        let subfolder = (parts.len() > 2).then(|| parts[2..].join("/"));
        Ok(HubRef { repo_type, id: format!("{}/{}", parts[0], parts[1]), subfolder, revision })
    }
}

impl std::fmt::Display for HubRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SCHEME}{}", self.id)?;
        if let Some(sub) = &self.subfolder {
            write!(f, "/{sub}")?;
        }
        if self.revision != DEFAULT_REVISION {
            write!(f, "@{}", self.revision)?;
        }
        Ok(())
    }
}

/// A Hub client over one cache folder.
#[derive(Debug, Clone)]
pub struct Hub {
    pub cache_dir: PathBuf,
    /// Never use the network, only the cache.
    pub offline: bool,
    pub token: Option<String>,
    /// `https://huggingface.co` unless `HF_ENDPOINT` says otherwise.
    pub endpoint: String,
}

/// The revision API's answer: the commit and the files in it.
#[derive(Debug, Deserialize)]
struct RepoInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
    #[serde(rename = "blobId")]
    blob_id: Option<String>,
    size: Option<u64>,
    lfs: Option<Lfs>,
}

#[derive(Debug, Deserialize)]
struct Lfs {
    sha256: String,
    size: Option<u64>,
}

fn truthy(value: Option<String>) -> bool {
    value.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

impl Hub {
    /// The cache, token, endpoint and offline switch from the environment, as `huggingface_hub` reads them.
    pub fn from_env() -> Hub {
        Hub::from_vars(|key| std::env::var(key).ok())
    }

    /// [`Hub::from_env`] over any variable lookup (tests pass their own).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Hub {
        let var = |key: &str| var(key).filter(|v| !v.is_empty());
        let cache_home = var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| var("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".cache"));
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| cache_home.join("huggingface"));
        let cache_dir = var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(hf_home.join("token")).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
        });
        Hub {
            cache_dir,
            offline: truthy(var("HF_HUB_OFFLINE")),
            token,
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
        }
    }

    /// A client over `cache_dir` only, without network (tests, air-gapped machines).
    pub fn offline_at(cache_dir: &Path) -> Hub {
        Hub { cache_dir: cache_dir.to_path_buf(), offline: true, token: None, endpoint: DEFAULT_ENDPOINT.to_string() }
    }

    /// `CACHE/models--OWNER--REPO`.
    pub fn repo_dir(&self, repo_type: RepoType, id: &str) -> PathBuf {
        self.cache_dir.join(format!("{}--{}", repo_type.plural(), id.replace('/', "--")))
    }

    /// The local folder of `reference`: its snapshot, or the subfolder inside it. `allow` are glob patterns
    /// relative to the subfolder (`*` matches across `/`, as in `huggingface_hub`); empty means every file
    /// of the subfolder.
    pub fn resolve(&self, reference: &HubRef, allow: &[&str]) -> Result<PathBuf, HubError> {
        let patterns: Vec<String> = match (&reference.subfolder, allow.is_empty()) {
            (Some(sub), true) => vec![format!("{sub}/*")],
            (Some(sub), false) => allow.iter().map(|p| format!("{sub}/{p}")).collect(),
            (None, _) => allow.iter().map(|p| p.to_string()).collect(),
        };
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let snapshot = self.snapshot(reference.repo_type, &reference.id, &reference.revision, &patterns)?;
        Ok(match &reference.subfolder {
            Some(sub) => snapshot.join(sub),
            None => snapshot,
        })
    }

    /// The snapshot folder of `id` at `revision` holding (at least) the files matching `allow` (every file
    /// when empty). Online, missing files are downloaded first; offline, or when the Hub cannot be reached,
    /// the cache must already hold them.
    pub fn snapshot(&self, repo_type: RepoType, id: &str, revision: &str, allow: &[&str]) -> Result<PathBuf, HubError> {
        if self.offline {
            return self.cached_snapshot(repo_type, id, revision, allow, "HF_HUB_OFFLINE is set".to_string());
        }
        match self.download(repo_type, id, revision, allow) {
            Ok(path) => Ok(path),
            // Only an unreachable Hub falls back: a missing repo or file online is a real answer.
            Err(HubError::Http { url, message }) if !message.starts_with("HTTP ") => {
                tracing::warn!("cannot reach the Hub ({url}: {message}); using the local cache");
                self.cached_snapshot(repo_type, id, revision, allow, format!("the Hub is unreachable: {message}"))
            }
            Err(err) => Err(err),
        }
    }

    /// The snapshot the cache holds for `revision`, without the network.
    pub fn cached_snapshot(
        &self,
        repo_type: RepoType,
        id: &str,
        revision: &str,
        allow: &[&str],
        why_offline: String,
    ) -> Result<PathBuf, HubError> {
        let repo_dir = self.repo_dir(repo_type, id);
        let how = format!(
            "fetch it on a machine with network access (`runner` downloads it, or `hf download {}{id} --revision {revision}`) and copy {} here",
            if repo_type == RepoType::Dataset { "--repo-type dataset " } else { "" },
            repo_dir.display()
        );
        let not_cached = |why: String| HubError::NotCached {
            repo_type,
            id: id.to_string(),
            revision: revision.to_string(),
            cache: self.cache_dir.clone(),
            why,
            how: how.clone(),
        };
        let commit = if is_commit_hash(revision) {
            revision.to_string()
        } else {
            let ref_file = repo_dir.join("refs").join(revision);
            match std::fs::read_to_string(&ref_file) {
                Ok(text) => text.trim().to_string(),
                Err(_) => return Err(not_cached(format!("{why_offline}, and {} is missing", ref_file.display()))),
            }
        };
        let snapshot = repo_dir.join("snapshots").join(&commit);
        if !snapshot.is_dir() {
            return Err(not_cached(format!("{why_offline}, and {} is missing", snapshot.display())));
        }
        if !allow.is_empty() {
            let files = list_files(&snapshot).map_err(io_error(&snapshot))?;
            if !files.iter().any(|f| matches_any(f, allow)) {
                return Err(HubError::NoMatchingFiles {
                    repo_type,
                    id: id.to_string(),
                    revision: revision.to_string(),
                    snapshot,
                    patterns: allow.iter().map(|p| p.to_string()).collect(),
                    how,
                });
            }
        }
        Ok(snapshot)
    }

    fn agent(&self) -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .user_agent(concat!("runner/", env!("CARGO_PKG_VERSION")))
            .build();
        ureq::Agent::new_with_config(config)
    }

    fn get(&self, agent: &ureq::Agent, url: &str) -> Result<ureq::http::Response<ureq::Body>, HubError> {
        let mut request = agent.get(url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.call().map_err(|err| HubError::Http {
            url: url.to_string(),
            message: match err {
                ureq::Error::StatusCode(401) => {
                    "HTTP 401: the repository is gated or private; set HF_TOKEN to a token that can read it".into()
                }
                ureq::Error::StatusCode(404) => "HTTP 404: no such repository, revision or file".into(),
                ureq::Error::StatusCode(code) => format!("HTTP {code}"),
                other => other.to_string(),
            },
        })
    }

    /// Lists the revision's files, downloads those matching `allow` that the snapshot lacks, and records the
    /// revision's commit under `refs/`.
    fn download(&self, repo_type: RepoType, id: &str, revision: &str, allow: &[&str]) -> Result<PathBuf, HubError> {
        let agent = self.agent();
        let api = format!(
            "{}/api/{}/{id}/revision/{}?blobs=true",
            self.endpoint,
            repo_type.plural(),
            encode_path_segment(revision)
        );
        let mut response = self.get(&agent, &api)?;
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|err| HubError::Http { url: api.clone(), message: err.to_string() })?;
        let info: RepoInfo =
            serde_json::from_str(&body).map_err(|err| HubError::Api { url: api.clone(), message: err.to_string() })?;
        if !is_commit_hash(&info.sha) {
            return Err(HubError::Api { url: api, message: format!("`{}` is not a commit hash", info.sha) });
        }
        let wanted: Vec<&Sibling> =
            info.siblings.iter().filter(|s| allow.is_empty() || matches_any(&s.rfilename, allow)).collect();
        if wanted.is_empty() {
            let files: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).take(20).collect();
            return Err(HubError::NothingToFetch {
                repo_type,
                id: id.to_string(),
                revision: revision.to_string(),
                patterns: allow.iter().map(|p| p.to_string()).collect(),
                files: files.join(", "),
            });
        }
        let repo_dir = self.repo_dir(repo_type, id);
        for sibling in wanted {
            if !safe_relative_path(&sibling.rfilename) {
                return Err(HubError::Api { url: api, message: format!("unsafe file name `{}`", sibling.rfilename) });
            }
            let target = repo_dir.join("snapshots").join(&info.sha).join(&sibling.rfilename);
            if target.exists() {
                continue;
            }
            let url = format!(
                "{}/{}{id}/resolve/{}/{}",
                self.endpoint,
                repo_type.url_prefix(),
                info.sha,
                sibling.rfilename.split('/').map(encode_path_segment).collect::<Vec<_>>().join("/")
            );
            let (blob_name, expected_sha256) = match (&sibling.lfs, &sibling.blob_id) {
                (Some(lfs), _) => (lfs.sha256.clone(), Some(lfs.sha256.clone())),
                (None, Some(blob)) => (blob.clone(), None),
                (None, None) => {
                    return Err(HubError::Api { url: api, message: format!("no blob id for `{}`", sibling.rfilename) });
                }
            };
            tracing::info!(
                "downloading {url} ({} bytes)",
                sibling.lfs.as_ref().and_then(|l| l.size).or(sibling.size).unwrap_or(0)
            );
            let mut response = self.get(&agent, &url)?;
            let reader = response.body_mut().as_reader();
            store_file(&repo_dir, &info.sha, &sibling.rfilename, &blob_name, reader, expected_sha256.as_deref())
                .map_err(|err| match err {
                    StoreError::Checksum { expected, actual } => {
                        HubError::Checksum { url: url.clone(), expected, actual }
                    }
                    StoreError::Io { path, source } => HubError::Io { path, source },
                    StoreError::Read(source) => HubError::Http { url: url.clone(), message: source.to_string() },
                })?;
        }
        if revision != info.sha {
            let refs = repo_dir.join("refs");
            let ref_file = refs.join(revision);
            if let Some(parent) = ref_file.parent() {
                std::fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            crate::files::write_atomically(&ref_file, info.sha.as_bytes()).map_err(io_error(&ref_file))?;
        }
        Ok(repo_dir.join("snapshots").join(&info.sha))
    }
}

/// Why a download could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the download's sha256 is {actual}, expected {expected}")]
    Checksum { expected: String, actual: String },
    #[error("{path}: {source}", path = .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("reading the download failed: {0}")]
    Read(std::io::Error),
}

/// Stores one file of commit `commit` the way `huggingface_hub` does: the bytes go to
/// `blobs/BLOB.incomplete`, are checked against `expected_sha256` when given, renamed to `blobs/BLOB`, and
/// `snapshots/COMMIT/PATH` becomes a relative symlink to it (a copy where symlinks are not possible).
pub fn store_file(
    repo_dir: &Path,
    commit: &str,
    path: &str,
    blob_name: &str,
    mut bytes: impl Read,
    expected_sha256: Option<&str>,
) -> Result<PathBuf, StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let blobs = repo_dir.join("blobs");
    std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
    let blob = blobs.join(blob_name);
    if !blob.is_file() {
        let partial = blobs.join(format!("{blob_name}.incomplete"));
        let mut file = std::fs::File::create(&partial).map_err(io(&partial))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = bytes.read(&mut buffer).map_err(StoreError::Read)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            file.write_all(&buffer[..n]).map_err(io(&partial))?;
        }
        file.sync_all().map_err(io(&partial))?;
        drop(file);
        let actual = format!("{:x}", hasher.finalize());
        if let Some(expected) = expected_sha256
            && !expected.eq_ignore_ascii_case(&actual)
        {
            let _ = std::fs::remove_file(&partial);
            return Err(StoreError::Checksum { expected: expected.to_string(), actual });
        }
        std::fs::rename(&partial, &blob).map_err(io(&blob))?;
    }
    let link = repo_dir.join("snapshots").join(commit).join(path);
    let parent = link.parent().expect("a snapshot path has a parent");
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let _ = std::fs::remove_file(&link);
    // snapshots/COMMIT/a/b/file -> ../../../blobs/BLOB: one `..` per folder below the repo folder.
    let depth = 2 + path.matches('/').count();
    let target: PathBuf = std::iter::repeat_n("..", depth).collect::<PathBuf>().join("blobs").join(blob_name);
    #[cfg(unix)]
    let linked = std::os::unix::fs::symlink(&target, &link);
    #[cfg(not(unix))]
    let linked: std::io::Result<()> = Err(std::io::Error::other("no symlinks"));
    if linked.is_err() {
        std::fs::copy(&blob, &link).map_err(io(&link))?;
    }
    Ok(link)
}

fn is_commit_hash(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A Hub file name that stays inside the snapshot folder.
fn safe_relative_path(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && path.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
}

/// Percent-encodes a URL path segment (revisions like `refs/pr/1` become one segment).
fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Every file below `root`, as `/`-separated relative paths (symlinks followed).
fn list_files(root: &Path) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let path = entry.path();
            if path.is_dir() {
                pending.push((path, relative));
            } else if path.is_file() {
                files.push(relative);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn matches_any(path: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| glob_match(p.as_bytes(), path.as_bytes()))
}

/// fnmatch as `huggingface_hub` uses it: `*` matches any run of characters (including `/`), `?` one.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests;
