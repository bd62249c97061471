//! sha256 and size of every artifact, computed while its bytes stream past.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use sha2::{Digest as _, Sha256};

/// The digest and size of the bytes that went through a [`Digesting`] stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// `sha256:<hex>`.
    pub sha256: String,
    /// Bytes in all.
    pub size: u64,
}

/// A handle to read the digest of a stream once it has ended.
#[derive(Debug, Clone, Default)]
pub struct DigestHandle(Arc<Mutex<Option<Digest>>>);

impl DigestHandle {
    /// The digest, once the stream has yielded its last item; `None` before that, or when the
    /// stream ended with an error (a partial digest would be a lie).
    pub fn get(&self) -> Option<Digest> {
        self.0.lock().ok().and_then(|d| d.clone())
    }
}

pin_project_lite::pin_project! {
    /// Passes a byte stream through unchanged, hashing it on the way.
    pub struct Digesting<S> {
        #[pin]
        inner: S,
        hasher: Option<Sha256>,
        size: u64,
        handle: DigestHandle,
    }
}

impl<S> Digesting<S> {
    /// Wraps `inner`; the handle yields the digest when `inner` ends cleanly.
    pub fn new(inner: S) -> (Self, DigestHandle) {
        let handle = DigestHandle::default();
        let stream = Self {
            inner,
            hasher: Some(Sha256::new()),
            size: 0,
            handle: handle.clone(),
        };
        (stream, handle)
    }
}

impl<S, E> Stream for Digesting<S>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = futures::ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(chunk)) => {
                if let Some(h) = this.hasher.as_mut() {
                    h.update(chunk);
                }
                *this.size += chunk.len() as u64;
            }
            Some(Err(_)) => *this.hasher = None,
            None => {
                if let Some(h) = this.hasher.take()
                    && let Ok(mut slot) = this.handle.0.lock()
                {
                    *slot = Some(Digest {
                        sha256: format!("sha256:{}", hex(&h.finalize())),
                        size: *this.size,
                    });
                }
            }
        }
        Poll::Ready(item)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

    #[tokio::test]
    async fn digests_what_streams_past() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ];
        let (stream, handle) = Digesting::new(futures::stream::iter(chunks));
        assert_eq!(handle.get(), None);
        let out: Vec<_> = stream.collect().await;
        assert_eq!(out.len(), 2);
        let d = handle.get().unwrap();
        assert_eq!(d.size, 11);
        // sha256("hello world")
        assert_eq!(
            d.sha256,
            "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }

    #[tokio::test]
    async fn an_error_leaves_no_digest() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"partial")),
            Err(std::io::Error::other("reset")),
        ];
        let (stream, handle) = Digesting::new(futures::stream::iter(chunks));
        let _: Vec<_> = stream.collect().await;
        assert_eq!(handle.get(), None);
    }
}
