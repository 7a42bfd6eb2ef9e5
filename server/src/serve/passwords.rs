//! Threads that hash and verify passwords (argon2: tens of milliseconds each, which the tick
//! thread cannot spare: 1,000 bots logging in held ticks back by seconds when it did this).
//! The core bounds how many jobs are out; results go back to the tick thread as
//! [`Event::PasswordChecked`].

use std::net::IpAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::tick_thread::TickEvent;
use crate::accounts::prepare_stand_in_hash;
use crate::core::{ConnId, Event};
use crate::requests::PasswordJob;

/// A job: (connection, its address, request id, the job).
type PasswordTask = (ConnId, IpAddr, u64, PasswordJob);

pub(super) struct PasswordWorkers {
    jobs: mpsc::Sender<PasswordTask>,
}

impl PasswordWorkers {
    /// Half the cores (at least one): the other half stays with the tick thread and scripts.
    pub(super) fn start(tick_tx: &mpsc::Sender<TickEvent>) -> Self {
        // Unbounded as a channel, bounded in use: the core refuses jobs past its queue limit.
        let (jobs, queue) = mpsc::channel::<PasswordTask>();
        let queue = Arc::new(Mutex::new(queue));
        let workers = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
        for worker in 0..workers {
            let queue = Arc::clone(&queue);
            let tick_tx = tick_tx.clone();
            // Ends when the tick thread (the only sender) is gone.
            std::thread::Builder::new()
                .name("astroboids-passwords".into())
                .spawn(move || {
                    if worker == 0 {
                        prepare_stand_in_hash();
                    }
                    loop {
                        let next = queue.lock().expect("not poisoned").recv();
                        let Ok((conn, ip, id, job)) = next else { break };
                        let checked = job.run();
                        let done = TickEvent::Core(Event::PasswordChecked {
                            conn,
                            ip,
                            id,
                            checked,
                        });
                        if tick_tx.send(done).is_err() {
                            break;
                        }
                    }
                })
                .expect("the OS starts a password worker thread");
        }
        Self { jobs }
    }

    pub(super) fn submit(&self, conn: ConnId, ip: IpAddr, id: u64, job: PasswordJob) {
        // Fails only when every worker is gone, which ends the server anyway.
        let _ = self.jobs.send((conn, ip, id, job));
    }
}
