//! engine.io's debug logs (`DEBUG=engine*`), written where things happen.
//!
//! The application owns the switch (the `debug` package reads `DEBUG` and
//! `debug.enable()`): it tells the engine which scopes are on with
//! [`set_enabled`], and prints what arrives as [`Event::Log`](super::Event).
//! A log site costs one relaxed load while its scope is off; only an enabled
//! line is formatted. The switch is process-wide, as `debug`'s is.

use crate::protocol::PacketData;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// One of engine.io's `debug` namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Scope {
    /// `engine`: requests, handshakes, upgrades (engine.io's server.ts).
    Engine = 1,
    /// `engine:socket`: a session's packets, heartbeats and close.
    Socket = 2,
    /// `engine:polling`: held GETs and POST bodies.
    Polling = 4,
    /// `engine:ws`: WebSocket frames in and out.
    Ws = 8,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Engine, Scope::Socket, Scope::Polling, Scope::Ws];

    /// The namespace `debug` knows it by.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Engine => "engine",
            Scope::Socket => "engine:socket",
            Scope::Polling => "engine:polling",
            Scope::Ws => "engine:ws",
        }
    }

    /// Its bit in the mask given to [`set_enabled`].
    pub fn bit(self) -> u32 {
        self as u32
    }

    /// The scope of one bit.
    pub fn from_bit(bit: u32) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.bit() == bit)
    }
}

static ENABLED: AtomicU32 = AtomicU32::new(0);

/// Turns on exactly the scopes whose bits are set in `mask`.
pub fn set_enabled(mask: u32) {
    ENABLED.store(mask, Ordering::Relaxed);
}

/// Whether `scope` logs.
#[inline]
pub fn enabled(scope: Scope) -> bool {
    ENABLED.load(Ordering::Relaxed) & scope.bit() != 0
}

/// Packet data as a log line shows it: text as is, binary by its size.
pub struct Shown<'a>(pub &'a PacketData);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            // engine.io logs a packet without data as `(undefined)`.
            PacketData::Empty => f.write_str("undefined"),
            PacketData::Text(s) => f.write_str(s),
            PacketData::Binary(b) => write!(f, "<Buffer {} bytes>", b.len()),
        }
    }
}

/// Logs a line in a scope, formatted only when the scope is on:
/// `debug!(sink, Scope::Socket, "got ping")`, where `sink` has
/// `fn log(&self, Scope, String)` (an engine, a session, the event queue).
macro_rules! debug {
    ($sink:expr, $scope:expr, $($arg:tt)+) => {
        if $crate::engine::log::enabled($scope) {
            $sink.log($scope, format!($($arg)+));
        }
    };
}
pub(crate) use debug;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_have_distinct_bits_and_engine_io_names() {
        let mut seen = 0;
        for s in Scope::ALL {
            assert_eq!(s.bit().count_ones(), 1);
            assert_eq!(seen & s.bit(), 0);
            seen |= s.bit();
            assert_eq!(Scope::from_bit(s.bit()), Some(s));
            assert!(s.name().starts_with("engine"));
        }
        assert_eq!(Scope::from_bit(1 << 20), None);
    }
}
