//! Raw artifacts: the content is in the template (`raw.data`); loading writes it out.

use bytes::Bytes;
use futures::StreamExt as _;

use crate::driver::{ByteStream, Driver, Error};

/// A raw artifact's data.
#[derive(Debug, Clone)]
pub struct Raw {
    data: Bytes,
}

impl Raw {
    /// The driver for `raw.data`.
    pub fn new(data: impl Into<String>) -> Self {
        Self {
            data: Bytes::from(data.into()),
        }
    }
}

impl Driver for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }

    async fn get(&self, _key: &str) -> Result<ByteStream, Error> {
        Ok(futures::stream::once(std::future::ready(Ok(self.data.clone()))).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn yields_the_data_and_refuses_saving() {
        let raw = Raw::new("hello\n");
        let chunks: Vec<_> = raw.get("").await.unwrap().collect().await;
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].as_ref().unwrap().as_ref(), b"hello\n");
        let err = raw
            .put("k", futures::stream::empty().boxed())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "raw artifacts do not support saving");
    }
}
