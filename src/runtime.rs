//! The tokio runtime shared by every engine in the process (and its worker
//! threads). Its threads are native, so they never keep Node alive.

use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};

/// The process-wide runtime, started on first use. `EIO_RS_WORKER_THREADS`
/// sets its size (default: one thread per CPU).
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let threads = std::env::var("EIO_RS_WORKER_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .or_else(|| std::thread::available_parallelism().map(|n| n.get()).ok())
            .unwrap_or(1);
        Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("eio-rs")
            .enable_all()
            .build()
            .expect("the eio-rs runtime could not start")
    })
}
