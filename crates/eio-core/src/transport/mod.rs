//! The transports, written once for every front end: a front end turns its
//! request into a [`RequestInfo`](crate::http::RequestInfo) and a body, and
//! turns the [`HttpResponse`] back into its own response type.

pub mod polling;
mod upgrade;
pub mod websocket;
pub mod webtransport;
pub mod ws;

pub use crate::http::{Header, Headers, HttpResponse};
