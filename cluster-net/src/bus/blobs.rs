//! The world's blobs (checkpoints and scripts) in its object store bucket.

use async_nats::jetstream::object_store::{self, GetErrorKind};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

use super::{
    BLOB_TIMEOUT, BlobInfo, MAX_BLOB_BYTES, NATS_REQUEST_TIMEOUT, TickBus, validate_blob_name,
};
use crate::error::{BoxError, NetError, Result};

impl TickBus {
    /// Stores `bytes` as blob `name`, replacing any blob of that name.
    pub async fn put_blob(&self, name: &str, bytes: &[u8]) -> Result<()> {
        validate_blob_name(name)?;
        if bytes.len() > MAX_BLOB_BYTES {
            return Err(NetError::BlobTooLarge {
                name: name.to_owned(),
                size: bytes.len(),
                limit: MAX_BLOB_BYTES,
            });
        }
        let mut reader = bytes;
        let put = self.blobs.put(name, &mut reader);
        match timeout(BLOB_TIMEOUT, put).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.blob_error("put", name, e.into())),
            Err(_) => Err(self.blob_timeout("put", name)),
        }
    }

    /// The blob `name`, or `None` if there is none.
    pub async fn get_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        validate_blob_name(name)?;
        let get = async {
            let mut object = match self.blobs.get(name).await {
                Ok(object) => object,
                Err(e) if e.kind() == GetErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(self.blob_error("get", name, e.into())),
            };
            let size = object.info().size;
            if size > MAX_BLOB_BYTES {
                return Err(NetError::BlobTooLarge {
                    name: name.to_owned(),
                    size,
                    limit: MAX_BLOB_BYTES,
                });
            }
            let mut bytes = Vec::with_capacity(size);
            object
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| self.blob_error("read", name, e.into()))?;
            Ok(Some(bytes))
        };
        timeout(BLOB_TIMEOUT, get)
            .await
            .unwrap_or_else(|_| Err(self.blob_timeout("get", name)))
    }

    /// The blobs whose names start with `prefix`, sorted by name.
    pub async fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobInfo>> {
        let list = async {
            let mut list = self
                .blobs
                .list()
                .await
                .map_err(|e| self.blob_error("list", prefix, e.into()))?;
            let mut found = Vec::new();
            while let Some(info) = list.next().await {
                let info = info.map_err(|e| self.blob_error("list", prefix, e.into()))?;
                if !info.deleted && info.name.starts_with(prefix) {
                    found.push(BlobInfo {
                        name: info.name,
                        size: info.size,
                    });
                }
            }
            found.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(found)
        };
        timeout(NATS_REQUEST_TIMEOUT, list)
            .await
            .unwrap_or_else(|_| Err(self.blob_timeout("list", prefix)))
    }

    /// Deletes blob `name`; `false` if there was none.
    pub async fn delete_blob(&self, name: &str) -> Result<bool> {
        validate_blob_name(name)?;
        let delete = async {
            match self.blobs.info(name).await {
                Ok(info) if !info.deleted => {}
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(self.blob_error("delete", name, e.into())),
            }
            self.blobs
                .delete(name)
                .await
                .map_err(|e| self.blob_error("delete", name, e.into()))?;
            Ok(true)
        };
        timeout(NATS_REQUEST_TIMEOUT, delete)
            .await
            .unwrap_or_else(|_| Err(self.blob_timeout("delete", name)))
    }

    fn blob_error(&self, what: &'static str, name: &str, source: BoxError) -> NetError {
        NetError::Blob {
            bucket: self.bucket.clone(),
            what,
            name: name.to_owned(),
            source,
        }
    }

    fn blob_timeout(&self, what: &str, name: &str) -> NetError {
        NetError::NatsTimeout {
            what: format!("{what} of blob {name:?} in {}", self.bucket),
            after: if what == "put" || what == "get" {
                BLOB_TIMEOUT
            } else {
                NATS_REQUEST_TIMEOUT
            },
        }
    }
}
