//! What an operator reads about an engine: counters kept as things happen
//! (handshakes, upgrades, closes, refusals, messages and bytes by
//! transport) and gauges taken at read time (open sessions, bytes held for
//! clients). [`Stats::prometheus`] writes them in Prometheus' text format.
//!
//! Counting must cost nothing measurable on the message path, which runs on
//! every runtime worker and the JS thread at once: each thread adds to its
//! own shard of counters (a cache line of its own, so threads never contend
//! for one), and a read sums the shards.

use super::TransportKind;
use crate::error::{CloseReason, ErrorCode};
use crate::protocol::Protocol;
use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// A session opened.
    Handshake,
    /// A WebSocket began the upgrade of a polling session.
    UpgradeStarted,
    /// A session moved to WebSocket.
    UpgradeDone,
    /// An upgrade attempt ended without moving the session (refused,
    /// failed or timed out).
    UpgradeFailed,
    /// A session closed, for this reason.
    Close(CloseReason),
    /// A request was refused with this code.
    Refused(ErrorCode),
    /// A `message` packet arrived over this transport.
    MessageIn(TransportKind),
    /// A `message` packet went to this transport.
    MessageOut(TransportKind),
    /// Bytes read from clients over this transport (bodies, frames).
    BytesIn(TransportKind),
    /// Bytes written to clients over this transport (bodies, frames).
    BytesOut(TransportKind),
}

const CLOSES: usize = 4;
const REFUSED: usize = CLOSES + CloseReason::ALL.len();
const BY_TRANSPORT: usize = REFUSED + ErrorCode::ALL.len();
const COUNTERS: usize = BY_TRANSPORT + 4 * TransportKind::ALL.len();

impl Counter {
    fn index(self) -> usize {
        let t = |k: TransportKind| k as usize;
        const N: usize = TransportKind::ALL.len();
        match self {
            Counter::Handshake => 0,
            Counter::UpgradeStarted => 1,
            Counter::UpgradeDone => 2,
            Counter::UpgradeFailed => 3,
            Counter::Close(r) => CLOSES + r as usize,
            Counter::Refused(c) => REFUSED + c as usize,
            Counter::MessageIn(k) => BY_TRANSPORT + t(k),
            Counter::MessageOut(k) => BY_TRANSPORT + N + t(k),
            Counter::BytesIn(k) => BY_TRANSPORT + 2 * N + t(k),
            Counter::BytesOut(k) => BY_TRANSPORT + 3 * N + t(k),
        }
    }
}

/// Shards per engine: more than the threads that count at once (the
/// runtime's workers and the JS thread) on most machines; threads beyond
/// that share, which is still correct.
const SHARDS: usize = 16;

/// One thread's counters, on cache lines no other shard uses.
#[repr(align(128))]
struct Shard([AtomicU64; COUNTERS]);

/// An engine's counters.
pub struct Counters {
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            shards: (0..SHARDS)
                .map(|_| Shard(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }
}

/// The calling thread's shard, handed out in turn as threads first count.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(i);
        }
        i
    })
}

impl Counters {
    /// Adds `n` to `counter`.
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        self.shards[shard()].0[counter.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// The current total of `counter`.
    pub fn get(&self, counter: Counter) -> u64 {
        let i = counter.index();
        self.shards
            .iter()
            .map(|s| s.0[i].load(Ordering::Relaxed))
            .sum()
    }
}

/// An engine's figures at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Open sessions: `(transport, protocol, count)` for every pair.
    pub sessions: Vec<(TransportKind, Protocol, u64)>,
    /// Sessions opened.
    pub handshakes: u64,
    /// Upgrades begun.
    pub upgrades_started: u64,
    /// Upgrades completed.
    pub upgrades_done: u64,
    /// Upgrade attempts that did not move their session.
    pub upgrades_failed: u64,
    /// Sessions closed, by reason (every reason listed).
    pub closes: Vec<(CloseReason, u64)>,
    /// Requests refused, by code (every code listed).
    pub refused: Vec<(ErrorCode, u64)>,
    /// `(transport, in, out)` message counts.
    pub messages: Vec<(TransportKind, u64, u64)>,
    /// `(transport, in, out)` byte counts.
    pub bytes: Vec<(TransportKind, u64, u64)>,
    /// Bytes sessions hold for clients that have not taken them yet.
    pub buffered_bytes: u64,
    /// The runtime's worker threads.
    pub runtime_threads: u64,
    /// Whether the engine refuses new sessions (see `Engine::drain`).
    pub draining: bool,
}

impl Stats {
    /// Reads `counters`; the gauges come from the caller.
    pub(crate) fn read(counters: &Counters) -> Stats {
        let by_transport = |inc: fn(TransportKind) -> Counter,
                            outc: fn(TransportKind) -> Counter| {
            TransportKind::ALL
                .iter()
                .map(|&k| (k, counters.get(inc(k)), counters.get(outc(k))))
                .collect()
        };
        Stats {
            sessions: Vec::new(),
            handshakes: counters.get(Counter::Handshake),
            upgrades_started: counters.get(Counter::UpgradeStarted),
            upgrades_done: counters.get(Counter::UpgradeDone),
            upgrades_failed: counters.get(Counter::UpgradeFailed),
            closes: CloseReason::ALL
                .iter()
                .map(|&r| (r, counters.get(Counter::Close(r))))
                .collect(),
            refused: ErrorCode::ALL
                .iter()
                .map(|&c| (c, counters.get(Counter::Refused(c))))
                .collect(),
            messages: by_transport(Counter::MessageIn, Counter::MessageOut),
            bytes: by_transport(Counter::BytesIn, Counter::BytesOut),
            buffered_bytes: 0,
            runtime_threads: 0,
            draining: false,
        }
    }

    /// The figures in Prometheus' text exposition format (version 0.0.4):
    /// `eio_` names, `_total` counters, gauges, labels by transport,
    /// protocol, reason and code.
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP eio_sessions Open sessions, by transport and protocol revision.\n# TYPE eio_sessions gauge"
        );
        for (t, p, c) in &self.sessions {
            let _ = writeln!(
                out,
                "eio_sessions{{transport=\"{}\",protocol=\"{}\"}} {c}",
                t.name(),
                p.number()
            );
        }
        let simple: [(&str, &str, &str, u64); 7] = [
            (
                "eio_handshakes_total",
                "counter",
                "Sessions opened.",
                self.handshakes,
            ),
            (
                "eio_upgrades_started_total",
                "counter",
                "Transport upgrades begun.",
                self.upgrades_started,
            ),
            (
                "eio_upgrades_completed_total",
                "counter",
                "Transport upgrades completed.",
                self.upgrades_done,
            ),
            (
                "eio_upgrades_failed_total",
                "counter",
                "Transport upgrade attempts that did not complete.",
                self.upgrades_failed,
            ),
            (
                "eio_buffered_bytes",
                "gauge",
                "Bytes held for clients that have not taken them yet.",
                self.buffered_bytes,
            ),
            (
                "eio_runtime_threads",
                "gauge",
                "Worker threads of the native runtime.",
                self.runtime_threads,
            ),
            (
                "eio_draining",
                "gauge",
                "1 while the engine refuses new sessions.",
                u64::from(self.draining),
            ),
        ];
        for (name, kind, help, v) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP eio_closes_total Sessions closed, by reason.\n# TYPE eio_closes_total counter"
        );
        for (r, c) in &self.closes {
            let _ = writeln!(out, "eio_closes_total{{reason=\"{}\"}} {c}", r.as_str());
        }
        let _ = writeln!(
            out,
            "# HELP eio_refused_requests_total Requests refused, by engine.io error code.\n# TYPE eio_refused_requests_total counter"
        );
        for (e, c) in &self.refused {
            let _ = writeln!(
                out,
                "eio_refused_requests_total{{code=\"{}\",name=\"{}\"}} {c}",
                e.code(),
                e.name()
            );
        }
        for (what, rows, help) in [
            ("messages", &self.messages, "Engine.IO messages"),
            ("bytes", &self.bytes, "Bytes"),
        ] {
            for (dir, help_dir) in [("received", "from"), ("sent", "to")] {
                let name = format!("eio_{what}_{dir}_total");
                let _ = writeln!(
                    out,
                    "# HELP {name} {help} {dir} {help_dir} clients, by transport.\n# TYPE {name} counter"
                );
                for (t, i, o) in rows.iter() {
                    let v = if dir == "received" { i } else { o };
                    let _ = writeln!(out, "{name}{{transport=\"{}\"}} {v}", t.name());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_its_own_slot() {
        let mut all = vec![
            Counter::Handshake,
            Counter::UpgradeStarted,
            Counter::UpgradeDone,
            Counter::UpgradeFailed,
        ];
        all.extend(CloseReason::ALL.map(Counter::Close));
        all.extend(ErrorCode::ALL.map(Counter::Refused));
        for k in TransportKind::ALL {
            all.extend([
                Counter::MessageIn(k),
                Counter::MessageOut(k),
                Counter::BytesIn(k),
                Counter::BytesOut(k),
            ]);
        }
        let mut seen: Vec<usize> = all.iter().map(|c| c.index()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..COUNTERS).collect::<Vec<_>>());
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let c = std::sync::Arc::new(Counters::default());
        let threads: Vec<_> = (0..40)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(Counter::MessageIn(TransportKind::WebSocket), 1);
                        c.add(Counter::BytesIn(TransportKind::WebSocket), 3);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(Counter::MessageIn(TransportKind::WebSocket)), 40_000);
        assert_eq!(c.get(Counter::BytesIn(TransportKind::WebSocket)), 120_000);
        assert_eq!(c.get(Counter::MessageIn(TransportKind::Polling)), 0);
    }

    #[test]
    fn prometheus_text_is_well_formed() {
        let c = Counters::default();
        c.add(Counter::Close(CloseReason::PingTimeout), 2);
        c.add(Counter::Refused(ErrorCode::UnknownSid), 5);
        let mut s = Stats::read(&c);
        s.sessions = vec![(TransportKind::WebSocket, Protocol::V4, 7)];
        let text = s.prometheus();
        assert!(text.contains("eio_sessions{transport=\"websocket\",protocol=\"4\"} 7\n"));
        assert!(text.contains("eio_closes_total{reason=\"ping timeout\"} 2\n"));
        assert!(text.contains("eio_refused_requests_total{code=\"1\",name=\"UNKNOWN_SID\"} 5\n"));
        assert!(text.contains("eio_messages_sent_total{transport=\"polling\"} 0\n"));
        // Every sample belongs to the family declared just before it.
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_string();
                assert!(rest.ends_with(" counter") == family.ends_with("_total"));
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(name, family, "{line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<u64>().is_ok(), "{line}");
            }
        }
    }
}
