//! Subscriptions and watches moved onto channels: a process waits on several of them at once
//! (`tokio::select!`), and a channel's `recv` can be dropped unfinished without losing a
//! message, which a subscription's own `next` does not promise.

use tokio::sync::mpsc;

use crate::bus::{Delivered, Subscription};
use crate::coordination::{KeyChange, KeyWatch, ShardEvent, ShardWatch};
use crate::error::NetError;

/// How many messages wait in a channel before the forwarder waits (the bus holds the rest).
const CHANNEL_DEPTH: usize = 256;

/// Forwards a subscription's messages until it fails or the receiver is dropped; the error
/// that ended it comes last.
pub fn subscription(mut sub: Subscription) -> mpsc::Receiver<Result<Delivered, NetError>> {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(async move {
        loop {
            let next = sub.next().await;
            let failed = next.is_err();
            if tx.send(next).await.is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// Forwards a config key's changes (an undecodable value is passed on and the watch goes on).
pub fn key_watch<T>(mut watch: KeyWatch<T>) -> mpsc::Receiver<Result<KeyChange<T>, NetError>>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(async move {
        loop {
            let next = watch.next().await;
            let ended = matches!(next, Err(ref e) if !matches!(e, NetError::Json { .. }));
            if tx.send(next).await.is_err() || ended {
                return;
            }
        }
    });
    rx
}

/// Forwards shard registration changes.
pub fn shard_watch(mut watch: ShardWatch) -> mpsc::Receiver<Result<ShardEvent, NetError>> {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(async move {
        loop {
            let next = watch.next().await;
            let failed = next.is_err();
            if tx.send(next).await.is_err() || failed {
                return;
            }
        }
    });
    rx
}
