//! Directory semantics on top of any driver: a key with objects under `key/` is a directory, and
//! its files move with bounded parallelism.

use std::path::{Component, Path, PathBuf};

use futures::{StreamExt as _, TryStreamExt as _};
use tokio::io::AsyncWriteExt as _;

use crate::driver::{ByteStream, Driver, Error};

/// The hidden name beside `dest` that a write stages into before it is renamed into place.
/// Listings skip names of this shape.
pub fn staging_path(dest: &Path, tag: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = dest.parent().unwrap_or(Path::new("/"));
    parent.join(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Writes a stream to `dest` whole or not at all: into a hidden file beside it, synced, then
/// renamed into place. On any failure, the partial file is removed.
pub async fn write_whole(mut body: ByteStream, dest: &Path) -> std::io::Result<()> {
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let partial = staging_path(dest, "partial");
    let result = async {
        let mut file = tokio::fs::File::create(&partial).await?;
        while let Some(chunk) = body.next().await {
            file.write_all(&chunk?).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        tokio::fs::rename(&partial, dest).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result
}

/// Downloads every object under `prefix/` into `dest`, keeping the relative paths, at most
/// `parallelism` at a time. The files are written into a hidden folder beside `dest`, renamed
/// into place only when all arrived: a failure leaves no half-written directory. Returns the
/// number of files.
pub async fn download_dir<D: Driver>(
    driver: &D,
    prefix: &str,
    dest: &Path,
    parallelism: usize,
) -> Result<usize, Error> {
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    let keys = driver.list(&prefix).await?;
    let io = |e| Error::io("write", dest.display().to_string(), e);
    let staging = staging_path(dest, "partial-dir");
    if let Some(parent) = staging.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
    }
    let _ = tokio::fs::remove_dir_all(&staging).await;
    tokio::fs::create_dir_all(&staging).await.map_err(io)?;
    let count = keys.len();
    let result = async {
        futures::stream::iter(keys.into_iter().map(Ok::<_, Error>))
            .try_for_each_concurrent(parallelism.max(1), |key| {
                let staging = &staging;
                let prefix = &prefix;
                async move {
                    let rel = key.strip_prefix(prefix.as_str()).unwrap_or(&key);
                    let target = safe_join(staging, rel).ok_or_else(|| Error::Location {
                        driver: driver.name(),
                        reason: format!("object key {key:?} escapes the directory {prefix:?}"),
                    })?;
                    download_file(driver, &key, &target).await
                }
            })
            .await?;
        let _ = tokio::fs::remove_dir_all(dest).await;
        tokio::fs::rename(&staging, dest).await.map_err(io)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_dir_all(&staging).await;
    }
    result.map(|()| count)
}

/// `base/rel` when `rel` is a plain relative path (no `..`, not absolute, not empty).
fn safe_join(base: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !rel.as_os_str().is_empty()).then(|| base.join(rel))
}

async fn download_file<D: Driver>(driver: &D, key: &str, target: &Path) -> Result<(), Error> {
    let io = |e| Error::io("write", target.display().to_string(), e);
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
    }
    let mut body = driver.get(key).await?;
    let mut file = tokio::fs::File::create(target).await.map_err(io)?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::io("get", key, e))?;
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)
}

/// Uploads every regular file under `src` to `prefix/<relative path>`, at most `parallelism` at a
/// time, each file streamed from disk (no staging). Symlinks to files are followed as Argo's
/// drivers do; other special files are skipped. Returns the keys written, sorted.
pub async fn upload_dir<D: Driver>(
    driver: &D,
    src: &Path,
    prefix: &str,
    parallelism: usize,
) -> Result<Vec<String>, Error> {
    let prefix = prefix.trim_end_matches('/').to_owned();
    let io = |e| Error::io("read", src.display().to_string(), e);
    let root = src.to_owned();
    let files = tokio::task::spawn_blocking(move || list_files(&root))
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
    let mut keys: Vec<String> = futures::stream::iter(files)
        .map(|rel| {
            let key = format!("{prefix}/{rel}");
            let path = src.join(&rel);
            async move {
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| Error::io("read", path.display().to_string(), e))?;
                let body = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).boxed();
                driver.put(&key, body).await?;
                Ok::<_, Error>(key)
            }
        })
        .buffer_unordered(parallelism.max(1))
        .try_collect()
        .await?;
    keys.sort();
    Ok(keys)
}

/// The regular files under `root` (symlinks to files included), as `/`-separated relative paths.
fn list_files(root: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            let meta = std::fs::metadata(entry.path())?;
            if meta.is_dir() && !entry.file_type()?.is_symlink() {
                stack.push(rel);
            } else if meta.is_file() {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalStore;
    use bytes::Bytes;

    fn body(text: &'static str) -> crate::ByteStream {
        futures::stream::iter(vec![Ok(Bytes::from_static(text.as_bytes()))]).boxed()
    }

    #[tokio::test]
    async fn downloads_a_prefix_as_a_directory() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(store_dir.path());
        store.put("wf/out/a.txt", body("a")).await.unwrap();
        store.put("wf/out/sub/b.txt", body("b")).await.unwrap();
        store.put("wf/outside.txt", body("x")).await.unwrap();
        let work = tempfile::tempdir().unwrap();
        let dest = work.path().join("in");
        let n = download_dir(&store, "wf/out", &dest, 2).await.unwrap();
        assert_eq!(n, 2);
        assert_eq!(std::fs::read_to_string(dest.join("a.txt")).unwrap(), "a");
        assert_eq!(
            std::fs::read_to_string(dest.join("sub/b.txt")).unwrap(),
            "b"
        );
        assert!(!dest.join("outside.txt").exists());
        assert_eq!(
            std::fs::read_dir(work.path()).unwrap().count(),
            1,
            "no staging left"
        );
    }

    #[test]
    fn keys_that_escape_are_refused() {
        assert!(safe_join(Path::new("/d"), "../x").is_none());
        assert!(safe_join(Path::new("/d"), "/x").is_none());
        assert!(safe_join(Path::new("/d"), "").is_none());
        assert_eq!(
            safe_join(Path::new("/d"), "a/b"),
            Some(PathBuf::from("/d/a/b"))
        );
    }

    #[tokio::test]
    async fn uploads_a_directory_file_by_file() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("a/b")).unwrap();
        std::fs::write(src.path().join("top.txt"), "t").unwrap();
        std::fs::write(src.path().join("a/b/deep.txt"), "d").unwrap();
        let store_dir = tempfile::tempdir().unwrap();
        let store = crate::LocalStore::new(store_dir.path());
        let keys = upload_dir(&store, src.path(), "wf/out/", 2).await.unwrap();
        assert_eq!(keys, ["wf/out/a/b/deep.txt", "wf/out/top.txt"]);
        let back = std::fs::read_to_string(store_dir.path().join("wf/out/a/b/deep.txt")).unwrap();
        assert_eq!(back, "d");
    }
}
