//! A directory used as an object store: the embedded default repository of `argoexec run`, and a
//! reference driver for tests. Keys are paths relative to the root; `..` and absolute keys are
//! refused. A put writes a hidden partial file and renames it into place, so readers never see a
//! half-written object.

use std::path::{Component, Path, PathBuf};

use futures::StreamExt as _;

use crate::driver::{ByteStream, Driver, Error};
use crate::transfer::write_whole;

/// A directory as an object store.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl AsRef<Path>) -> Self {
        Self {
            root: root.as_ref().to_owned(),
        }
    }

    /// The file a key maps to.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, Error> {
        let rel = Path::new(key.trim_start_matches('/'));
        let safe = rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !safe || key.is_empty() {
            return Err(Error::Location {
                driver: "local",
                reason: format!("key {key:?} must be a relative path without '..'"),
            });
        }
        Ok(self.root.join(rel))
    }
}

impl Driver for LocalStore {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        let path = self.path_of(key)?;
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).boxed()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound {
                driver: "local",
                key: key.to_owned(),
            }),
            Err(e) => Err(Error::io("open", key, e)),
        }
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<(), Error> {
        let path = self.path_of(key)?;
        write_whole(body, &path)
            .await
            .map_err(|e| Error::io("write", key, e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let base = self.path_of(prefix)?;
        let mut keys = Vec::new();
        let mut stack = vec![base];
        while let Some(dir) = stack.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
                Err(e) => return Err(Error::io("list", prefix, e)),
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| Error::io("list", prefix, e))?
            {
                let path = entry.path();
                let kind = entry
                    .file_type()
                    .await
                    .map_err(|e| Error::io("list", prefix, e))?;
                if kind.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    let key = rel.to_string_lossy().into_owned();
                    if !key
                        .rsplit('/')
                        .next()
                        .is_some_and(|n| n.contains(".partial"))
                    {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn is_dir(&self, key: &str) -> Result<bool, Error> {
        let path = self.path_of(key)?;
        Ok(tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()))
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound {
                driver: "local",
                key: key.to_owned(),
            }),
            Err(e) => Err(Error::io("delete", key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        let chunks: Vec<std::io::Result<Bytes>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        futures::stream::iter(chunks).boxed()
    }

    async fn read(store: &LocalStore, key: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = store.get(key).await.unwrap();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        store
            .put("wf/pod/a.tgz", body(&[b"ab", b"c"]))
            .await
            .unwrap();
        store.put("wf/pod/d/e.txt", body(&[b""])).await.unwrap();
        assert_eq!(read(&store, "wf/pod/a.tgz").await, b"abc");
        assert_eq!(read(&store, "wf/pod/d/e.txt").await, b"");
        assert_eq!(
            store.list("wf").await.unwrap(),
            ["wf/pod/a.tgz", "wf/pod/d/e.txt"]
        );
        assert!(store.is_dir("wf/pod").await.unwrap());
        assert!(!store.is_dir("wf/pod/a.tgz").await.unwrap());
        store.delete("wf/pod/a.tgz").await.unwrap();
        assert!(
            store
                .get("wf/pod/a.tgz")
                .await
                .err()
                .unwrap()
                .is_not_found()
        );
        assert!(store.list("nothing/here").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_put_leaves_no_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let broken: ByteStream = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"half")),
            Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        ])
        .boxed();
        let err = store.put("k", broken).await.unwrap_err();
        assert!(crate::Retryable::is_transient(&err), "{err}");
        assert!(store.get("k").await.err().unwrap().is_not_found());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn refuses_keys_that_escape() {
        let store = LocalStore::new("/tmp/x");
        for key in ["../etc/passwd", "a/../../b", ""] {
            assert!(
                matches!(store.path_of(key), Err(Error::Location { .. })),
                "{key}"
            );
        }
        assert_eq!(
            store.path_of("/abs/key").unwrap(),
            Path::new("/tmp/x/abs/key")
        );
    }
}
