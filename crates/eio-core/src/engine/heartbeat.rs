//! One timer for every session's heartbeat. A task per session would wake
//! the runtime once per ping and once per pong for each of them; here the
//! deadlines sit in one heap and a single task per engine wakes for the
//! earliest, handling every deadline that falls within the same few
//! milliseconds together.

use super::events::Handle;
use super::EngineInner;
use parking_lot::Mutex;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The most by which a deadline may be handled early, so that deadlines
/// this close together share one wake-up.
const MAX_COALESCE: Duration = Duration::from_millis(10);

/// The heap of heartbeat deadlines: `(when, session, generation)`. A session
/// bumps its generation whenever its deadline moves, so entries left behind
/// are recognised as stale and skipped instead of being removed.
#[derive(Debug)]
pub(crate) struct Heartbeats {
    heap: Mutex<BinaryHeap<Reverse<(Instant, Handle, u64)>>>,
    earlier: Notify,
    stopped: AtomicBool,
    /// How early a deadline may be handled: a hundredth of the shortest
    /// heartbeat period, at most [`MAX_COALESCE`] (about 500 wake-ups a
    /// second fewer with 8000 sessions at a 1 s `pingInterval`, and still
    /// exact for the millisecond periods tests use).
    coalesce: Duration,
}

impl Heartbeats {
    /// The heartbeats of an engine with these `pingInterval` and
    /// `pingTimeout`.
    pub(crate) fn new(ping_interval: Duration, ping_timeout: Duration) -> Self {
        Heartbeats {
            heap: Mutex::default(),
            earlier: Notify::new(),
            stopped: AtomicBool::new(false),
            coalesce: (ping_interval.min(ping_timeout) / 100).min(MAX_COALESCE),
        }
    }

    /// Asks for `session`'s heartbeat to be checked at `when`.
    pub(crate) fn schedule(&self, when: Instant, session: Handle, generation: u64) {
        let mut heap = self.heap.lock();
        let first = heap.peek().is_none_or(|Reverse((t, _, _))| when < *t);
        heap.push(Reverse((when, session, generation)));
        drop(heap);
        if first {
            self.earlier.notify_one();
        }
    }

    /// Ends the task (the engine is gone).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.earlier.notify_one();
    }

    /// Drops the stale entries, once they outnumber the live sessions:
    /// those of sessions that are gone, and those whose deadline moved since
    /// (a pong moves the ping timeout's). Each would otherwise stay in the
    /// heap until it falls due (up to `pingTimeout`), which with many
    /// sessions is memory held, and time spent, for nothing. `current` says
    /// whether an entry is still its session's; afterwards at most one
    /// entry per session is left, so this runs about once per heartbeat
    /// period.
    fn compact(&self, current: impl Fn(Handle, u64) -> bool, live_count: usize) {
        let mut heap = self.heap.lock();
        if heap.len() > 2 * live_count + 1024 {
            heap.retain(|Reverse((_, h, g))| current(*h, *g));
            heap.shrink_to_fit();
        }
    }

    /// Everything due by `now`, and when the next deadline is.
    fn take_due(&self, now: Instant) -> (Vec<(Handle, u64)>, Option<Instant>) {
        let mut heap = self.heap.lock();
        let mut due = Vec::new();
        while let Some(Reverse((t, h, g))) = heap.peek().copied() {
            if t > now + self.coalesce {
                return (due, Some(t));
            }
            heap.pop();
            due.push((h, g));
        }
        (due, None)
    }
}

/// The engine's heartbeat task. It holds the engine weakly and ends when the
/// engine is dropped ([`Heartbeats::stop`]).
pub(crate) async fn run(heartbeats: Arc<Heartbeats>, engine: Weak<EngineInner>) {
    loop {
        let earlier = heartbeats.earlier.notified();
        if heartbeats.stopped.load(Ordering::Acquire) {
            return;
        }
        let (due, next) = heartbeats.take_due(Instant::now());
        if !due.is_empty() {
            let Some(inner) = engine.upgrade() else {
                return;
            };
            // Stale entries are skipped without taking the session's lock.
            let sessions: Vec<_> = {
                let registry = inner.registry.read();
                due.into_iter()
                    .filter_map(|(handle, generation)| {
                        let s = registry.by_handle.get(&handle)?;
                        s.heartbeat_current(generation)
                            .then(|| (s.clone(), generation))
                    })
                    .collect()
            };
            for (session, generation) in sessions {
                session.heartbeat_due(generation);
            }
            let registry = inner.registry.read();
            let sessions = &registry.by_handle;
            heartbeats.compact(
                |h, g| sessions.get(&h).is_some_and(|s| s.heartbeat_current(g)),
                sessions.len(),
            );
        }
        match next {
            Some(t) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(t) => {}
                    _ = earlier => {}
                }
            }
            None => earlier.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_gone_sessions_are_dropped_once_they_dominate() {
        let hb = Heartbeats::new(Duration::from_secs(25), Duration::from_secs(20));
        let later = Instant::now() + Duration::from_secs(30);
        for h in 0..3000u64 {
            hb.schedule(later, h, 0);
        }
        // 10 sessions left: 2990 entries are for sessions that are gone.
        let live = |h: Handle, _| h < 10;
        hb.compact(live, 10);
        assert_eq!(hb.heap.lock().len(), 10);
        // Few stale entries: left alone until they fall due.
        for h in 10..500u64 {
            hb.schedule(later, h, 0);
        }
        hb.compact(live, 10);
        assert_eq!(hb.heap.lock().len(), 500);
    }

    #[test]
    fn moved_deadlines_of_live_sessions_are_dropped_too() {
        let hb = Heartbeats::new(Duration::from_secs(25), Duration::from_secs(20));
        let later = Instant::now() + Duration::from_secs(30);
        // 1000 live sessions whose deadline moved three times (generations
        // 0 to 2 are stale, 3 is current), as pongs leave ping timeouts
        // behind.
        for g in 0..4u64 {
            for h in 0..1000u64 {
                hb.schedule(later, h, g);
            }
        }
        hb.compact(|_, g| g == 3, 1000);
        let heap = hb.heap.lock();
        assert_eq!(heap.len(), 1000);
        assert!(heap.iter().all(|Reverse((_, _, g))| *g == 3));
    }
}
