//! Front ends. The native one is a hyper HTTP/1.1 listener on the engine's
//! runtime (engine.io's `listen()`), over TLS when given a certificate
//! ([`tls`]); the bridge serves requests and upgrades that another HTTP
//! server (Node's) parsed.

pub mod bridge;
pub mod h3;
pub mod native;
pub mod tls;
pub mod webtransport;
