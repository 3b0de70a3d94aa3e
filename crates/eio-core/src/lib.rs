//! The Engine.IO server core of eio-rs, free of Node.
//!
//! Layers, from the wire up (each uses only those above it in this list;
//! the `layers` test checks it, and ARCHITECTURE.md says why):
//! - [`error`]: engine.io's error codes and close reasons, typed once;
//! - [`protocol`]: packet, payload and WebSocket frame codecs (no I/O);
//! - [`http`]: the request and response every front end maps to its own;
//! - [`engine`]: sessions, heartbeats, upgrades and write buffers, with the
//!   events the application sees queued in batches;
//! - [`transport`]: HTTP long-polling and WebSocket, written once for every
//!   front end;
//! - [`server`]: the native front end, a hyper HTTP/1.1 listener.
//!
//! [`alloc`] is the split global allocator the Node binding installs.
//!
//! The Node binding (the `eio-rs` crate) only converts and forwards.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod alloc;
pub mod engine;
pub mod error;
pub mod http;
pub mod protocol;
pub mod server;
pub mod transport;

pub use engine::{CloseReason, Config, Engine, ErrorCode, Event, EventQueue, RequestInfo};

/// The layers may use only the layers below them (ARCHITECTURE.md): this
/// test reads every source file and fails on a `crate::` path that goes
/// up or sideways.
#[cfg(test)]
mod layers {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Each top-level module and the ones it may use.
    const ALLOWED: &[(&str, &[&str])] = &[
        ("alloc", &[]),
        ("error", &[]),
        ("protocol", &[]),
        ("http", &["error"]),
        ("engine", &["error", "http", "protocol"]),
        ("transport", &["error", "http", "protocol", "engine"]),
        (
            "server",
            &["error", "http", "protocol", "engine", "transport"],
        ),
    ];

    /// The top-level modules a file's code (comments left out) names with `crate::`.
    fn uses(source: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for line in source.lines() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let names = group.split('}').next().unwrap_or("");
                    for name in names.split(',') {
                        let name = name.trim().split("::").next().unwrap_or("");
                        if !name.is_empty() {
                            out.insert(name.to_string());
                        }
                    }
                } else {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    out.insert(name);
                }
            }
        }
        out
    }

    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn each_layer_uses_only_the_layers_below() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        let mut checked = 0;
        for path in all {
            let rel = path.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let top = top.trim_end_matches(".rs");
            if top == "lib" {
                continue;
            }
            let allowed = ALLOWED
                .iter()
                .find(|(m, _)| *m == top)
                .unwrap_or_else(|| panic!("{top} has no place in ALLOWED"))
                .1;
            let source = std::fs::read_to_string(&path).unwrap();
            for used in uses(&source) {
                assert!(
                    used == top || allowed.contains(&used.as_str()),
                    "{} uses crate::{used}, which {top} may not use",
                    rel.display()
                );
            }
            checked += 1;
        }
        assert!(checked > 20, "only {checked} files read");
    }

    #[test]
    fn the_reader_finds_grouped_and_plain_paths() {
        let found =
            uses("use crate::{engine::X, http};\nlet a = crate::protocol::Y; // crate::server\n");
        let want: BTreeSet<String> = ["engine", "http", "protocol"].map(String::from).into();
        assert_eq!(found, want);
    }
}
