//! Ctrl-C (SIGINT) and SIGTERM, how a user and process managers ask a long-running command to
//! stop.
//!
//! tokio installs a signal's handler the first time it is listened for, and from then on a
//! signal wakes only the listeners that exist when it arrives. A listener made anew on each
//! pass of a loop therefore loses a signal that lands between passes: the process ignores that
//! Ctrl-C and runs on. [`StopSignals`] listens from its creation until it is dropped and keeps a
//! signal that arrives while nobody awaits it for the next [`StopSignals::recv`].

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};

pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Starts listening; call it inside the runtime that will await it, before telling anyone
    /// how to stop the process (a signal before then would end it without its shutdown).
    pub fn listen() -> Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// The next Ctrl-C or SIGTERM (also one that came since the last call). Cancel-safe: a
    /// `select!` may drop it and call it again without losing a signal.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
