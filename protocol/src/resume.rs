//! Exactly-once across reconnects, server side: the answers of each account session's client
//! instances, kept across connections.
//!
//! A connection's own [`crate::session::ServerSession`] answers a retry on that connection; a
//! client that lost its connection greets the new one with the same instance, authenticates
//! with the same token and re-sends its unanswered requests under their original ids. The
//! server looks each up here by (token, instance, id): answered ones get the stored answer,
//! ones still being carried out get their answer when it is ready (on the new connection),
//! and only new ones are carried out. Bounded in answers per instance, instances in all, and
//! time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use crate::messages::{Response, Token};

/// Bounds on what is remembered for resumption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeLimits {
    /// Answers kept per (session, instance), newest kept.
    pub answers_per_instance: usize,
    /// How long an answer is kept, and how long an instance with no requests is remembered.
    pub keep_for: Duration,
    /// Instances remembered in all; past it the least recently used is forgotten.
    pub max_instances: usize,
}

impl Default for ResumeLimits {
    fn default() -> Self {
        Self {
            answers_per_instance: 64,
            keep_for: Duration::from_secs(600),
            max_instances: 20_000,
        }
    }
}

/// Which client instance of which account session a request came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResumeKey {
    pub token: Token,
    pub instance: u64,
}

/// What to do with a request, from [`ResumeCache::begin`].
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// Never seen: carry it out, then call [`ResumeCache::finish`].
    New,
    /// Carried out before: send this answer again, do nothing else.
    Answered(Response),
    /// Being carried out: its answer goes to the connection that asked last.
    InProgress,
}

#[derive(Debug, Default)]
struct Instance {
    /// (id, answer, answered at), oldest first.
    answered: VecDeque<(u64, Response, Duration)>,
    /// Ids being carried out, with the connection waiting for each.
    in_progress: BTreeMap<u64, u64>,
    last_used: Duration,
}

/// Answers by (session, instance, request id).
#[derive(Debug)]
pub struct ResumeCache {
    limits: ResumeLimits,
    instances: HashMap<ResumeKey, Instance>,
}

impl ResumeCache {
    pub fn new(limits: ResumeLimits) -> Self {
        Self {
            limits,
            instances: HashMap::new(),
        }
    }

    /// Instances remembered now.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// Request `id` of `key` arrived on connection `conn` at `now`.
    pub fn begin(&mut self, key: &ResumeKey, id: u64, conn: u64, now: Duration) -> Begin {
        if !self.instances.contains_key(key) {
            self.make_room();
        }
        let instance = self.instances.entry(key.clone()).or_default();
        instance.last_used = now;
        if let Some((_, answer, _)) = instance.answered.iter().find(|(a, ..)| *a == id) {
            return Begin::Answered(answer.clone());
        }
        if let Some(waiting) = instance.in_progress.get_mut(&id) {
            *waiting = conn;
            return Begin::InProgress;
        }
        instance.in_progress.insert(id, conn);
        Begin::New
    }

    /// Request `id` of `key` was answered: the answer is kept, and the connection waiting for
    /// it is returned (`None`: nothing was waiting here, e.g. the instance was forgotten).
    pub fn finish(
        &mut self,
        key: &ResumeKey,
        id: u64,
        response: &Response,
        now: Duration,
    ) -> Option<u64> {
        let instance = self.instances.get_mut(key)?;
        let waiting = instance.in_progress.remove(&id)?;
        if instance.answered.len() >= self.limits.answers_per_instance {
            instance.answered.pop_front();
        }
        instance.answered.push_back((id, response.clone(), now));
        Some(waiting)
    }

    /// Forgets answers older than `keep_for`, and instances with nothing in progress that
    /// were not used for as long.
    pub fn expire(&mut self, now: Duration) {
        let keep_for = self.limits.keep_for;
        self.instances.retain(|_, instance| {
            while instance
                .answered
                .front()
                .is_some_and(|(_, _, at)| now.saturating_sub(*at) > keep_for)
            {
                instance.answered.pop_front();
            }
            !instance.in_progress.is_empty() || now.saturating_sub(instance.last_used) <= keep_for
        });
    }

    /// At the instance cap: forgets the least recently used instance.
    fn make_room(&mut self) {
        if self.instances.len() < self.limits.max_instances {
            return;
        }
        let oldest = self
            .instances
            .iter()
            .min_by_key(|(_, instance)| instance.last_used)
            .map(|(key, _)| key.clone());
        if let Some(oldest) = oldest {
            self.instances.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(token: &str, instance: u64) -> ResumeKey {
        ResumeKey {
            token: Token(token.into()),
            instance,
        }
    }

    #[test]
    fn a_request_is_carried_out_once_and_its_answer_replayed() {
        let mut cache = ResumeCache::new(ResumeLimits::default());
        let k = key("t", 7);
        assert_eq!(cache.begin(&k, 5, 1, Duration::ZERO), Begin::New);
        // The client reconnected (connection 2) and re-sent before the answer was ready.
        assert_eq!(cache.begin(&k, 5, 2, Duration::ZERO), Begin::InProgress);
        let answer = Response::ShipSpawned { ship: 3 };
        assert_eq!(cache.finish(&k, 5, &answer, Duration::ZERO), Some(2));
        assert_eq!(
            cache.begin(&k, 5, 3, Duration::from_secs(1)),
            Begin::Answered(answer)
        );
        // Another instance of the same session, or another session, is not confused with it.
        assert_eq!(cache.begin(&key("t", 8), 5, 4, Duration::ZERO), Begin::New);
        assert_eq!(cache.begin(&key("u", 7), 5, 4, Duration::ZERO), Begin::New);
    }

    #[test]
    fn memory_is_bounded_in_answers_instances_and_time() {
        let limits = ResumeLimits {
            answers_per_instance: 2,
            keep_for: Duration::from_secs(10),
            max_instances: 2,
        };
        let mut cache = ResumeCache::new(limits);
        let k = key("t", 1);
        for id in 1..=3 {
            cache.begin(&k, id, 1, Duration::ZERO);
            cache.finish(&k, id, &Response::LoggedOut, Duration::ZERO);
        }
        // Only the newest two answers are kept.
        assert_eq!(cache.begin(&k, 1, 1, Duration::ZERO), Begin::New);
        assert_eq!(
            cache.begin(&k, 3, 1, Duration::ZERO),
            Begin::Answered(Response::LoggedOut)
        );
        cache.begin(&key("t", 2), 1, 1, Duration::from_secs(1));
        cache.begin(&key("t", 3), 1, 1, Duration::from_secs(2));
        assert_eq!(cache.len(), 2, "the least recently used instance went");
        cache.finish(
            &key("t", 2),
            1,
            &Response::LoggedOut,
            Duration::from_secs(1),
        );
        cache.finish(
            &key("t", 3),
            1,
            &Response::LoggedOut,
            Duration::from_secs(2),
        );
        cache.expire(Duration::from_secs(60));
        assert!(cache.is_empty(), "idle instances expire");
    }
}
