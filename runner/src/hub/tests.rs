use std::io::Cursor;

use super::*;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const OTHER_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A cache holding `owner/repo` at `main` = COMMIT with a root README and one model subfolder.
fn cache_with_model(cache: &Path) -> Hub {
    let hub = Hub::offline_at(cache);
    let repo = hub.repo_dir(RepoType::Model, "owner/repo");
    for (path, bytes) in [
        ("README.md", b"# readme".as_slice()),
        ("cpu/int4/model.onnx", b"onnx bytes"),
        ("cpu/int4/genai_config.json", b"{}"),
    ] {
        let sha = sha256_hex(bytes);
        store_file(&repo, COMMIT, path, &sha, Cursor::new(bytes), Some(&sha)).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    hub
}

#[test]
fn references_parse_with_subfolder_and_revision() {
    let r = HubRef::parse(
        "hf:onnxruntime/Phi-3-mini-4k-instruct-onnx/cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4",
        RepoType::Model,
    )
    .unwrap();
    assert_eq!(r.id, "onnxruntime/Phi-3-mini-4k-instruct-onnx");
    assert_eq!(r.subfolder.as_deref(), Some("cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4"));
    assert_eq!(r.revision, "main");
    let r = HubRef::parse("hf:openai/gsm8k@refs/convert/parquet", RepoType::Dataset).unwrap();
    assert_eq!(
        (r.id.as_str(), r.subfolder.as_deref(), r.revision.as_str()),
        ("openai/gsm8k", None, "refs/convert/parquet")
    );
    assert_eq!(r.to_string(), "hf:openai/gsm8k@refs/convert/parquet");
    assert!(HubRef::is_hub_ref("hf:a/b") && !HubRef::is_hub_ref("models/a"));
    for bad in ["openai/gsm8k", "hf:gsm8k", "hf:a//b", "hf:a/b@", "hf:a/b/../c", "hf:a b/c"] {
        let err = HubRef::parse(bad, RepoType::Model).unwrap_err();
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[test]
fn offline_resolution_finds_a_subfolder_through_refs_and_symlinks() {
    let cache = tempfile::tempdir().unwrap();
    let hub = cache_with_model(cache.path());
    let r = HubRef::parse("hf:owner/repo/cpu/int4", RepoType::Model).unwrap();
    let folder = hub.resolve(&r, &[]).unwrap();
    assert_eq!(folder, hub.repo_dir(RepoType::Model, "owner/repo").join("snapshots").join(COMMIT).join("cpu/int4"));
    assert_eq!(std::fs::read(folder.join("model.onnx")).unwrap(), b"onnx bytes");
    // The snapshot entry is a relative link into blobs/, as huggingface_hub writes it.
    let link = std::fs::read_link(folder.join("model.onnx")).unwrap();
    assert_eq!(link, Path::new("../../../../blobs").join(sha256_hex(b"onnx bytes")));
    // A commit hash resolves without refs/, and the allow list is checked against the snapshot.
    let pinned = HubRef::parse(&format!("hf:owner/repo@{COMMIT}"), RepoType::Model).unwrap();
    assert!(hub.resolve(&pinned, &["*.md"]).unwrap().join("README.md").is_file());
    let err = hub.resolve(&pinned, &["*.parquet"]).unwrap_err();
    assert!(matches!(err, HubError::NoMatchingFiles { .. }), "{err}");
    assert!(err.to_string().contains("*.parquet") && err.to_string().contains("owner/repo"), "{err}");
}

#[test]
fn uncached_repo_offline_says_which_repo_revision_and_how_to_fetch_it() {
    let cache = tempfile::tempdir().unwrap();
    let hub = cache_with_model(cache.path());
    let r = HubRef::parse("hf:owner/repo@v2", RepoType::Model).unwrap();
    let message = hub.resolve(&r, &[]).unwrap_err().to_string();
    for needle in ["owner/repo", "`v2`", "HF_HUB_OFFLINE", "refs/v2", "hf download owner/repo --revision v2"] {
        assert!(message.contains(needle), "{needle:?} missing from: {message}");
    }
    let r = HubRef::parse(&format!("hf:owner/data@{OTHER_COMMIT}"), RepoType::Dataset).unwrap();
    let message = hub.resolve(&r, &[]).unwrap_err().to_string();
    assert!(message.starts_with("dataset owner/data"), "{message}");
    assert!(message.contains("--repo-type dataset") && message.contains(OTHER_COMMIT), "{message}");
}

#[test]
fn an_unreachable_hub_falls_back_to_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    // Port 9 on loopback: refused at once, no traffic leaves the machine.
    let hub = Hub { offline: false, endpoint: "http://127.0.0.1:9".into(), ..cache_with_model(cache.path()) };
    let r = HubRef::parse("hf:owner/repo/cpu/int4", RepoType::Model).unwrap();
    assert!(hub.resolve(&r, &["*.onnx"]).unwrap().join("model.onnx").is_file());
    let missing = HubRef::parse("hf:owner/other", RepoType::Model).unwrap();
    let message = hub.resolve(&missing, &[]).unwrap_err().to_string();
    assert!(message.contains("the Hub is unreachable") && message.contains("owner/other"), "{message}");
}

#[test]
fn a_corrupt_download_leaves_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    let expected = sha256_hex(b"right");
    let err = store_file(dir.path(), COMMIT, "a/b.bin", &expected, Cursor::new(b"wrong"), Some(&expected)).unwrap_err();
    assert!(matches!(err, StoreError::Checksum { .. }), "{err}");
    assert_eq!(std::fs::read_dir(dir.path().join("blobs")).unwrap().count(), 0);
    assert!(!dir.path().join("snapshots").join(COMMIT).join("a/b.bin").exists());
}

#[test]
fn environment_picks_cache_token_and_offline_like_huggingface_hub() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string())
    };
    let hub = Hub::from_vars(vars(&[("HOME", "/home/u")]));
    assert_eq!(hub.cache_dir, Path::new("/home/u/.cache/huggingface/hub"));
    assert!(!hub.offline && hub.endpoint == "https://huggingface.co");
    let hub = Hub::from_vars(vars(&[("HOME", "/home/u"), ("HF_HOME", "/hf"), ("HF_HUB_OFFLINE", "1")]));
    assert_eq!(hub.cache_dir, Path::new("/hf/hub"));
    assert!(hub.offline);
    let hub =
        Hub::from_vars(vars(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c"), ("HF_TOKEN", "t"), ("HF_HUB_OFFLINE", "0")]));
    assert_eq!((hub.cache_dir.as_path(), hub.token.as_deref(), hub.offline), (Path::new("/c"), Some("t"), false));
}

#[test]
fn globs_match_like_fnmatch() {
    assert!(glob_match(b"cpu/*", b"cpu/int4/model.onnx"));
    assert!(glob_match(b"*.parquet", b"main/test-00000.parquet"));
    assert!(glob_match(b"model.onnx?data", b"model.onnx.data"));
    assert!(!glob_match(b"cpu/*", b"gpu/model.onnx"));
    assert!(!glob_match(b"*.json", b"model.onnx"));
    assert_eq!(encode_path_segment("refs/pr/1"), "refs%2Fpr%2F1");
}
