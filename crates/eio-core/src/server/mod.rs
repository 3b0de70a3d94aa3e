//! Front ends that own the socket. The native one is a hyper HTTP/1.1
//! listener on the engine's runtime (engine.io's `listen()`).

pub mod native;
