//! Options from JS, checked once and turned into the core's types. Errors
//! name the JS option at fault.

use crate::convert::packet_data;
use eio_core::engine::{Config, DeflateConfig, WindowBits};
use eio_core::server::native::RouteOptions;
use eio_core::server::tls::{Tls, TlsError, TlsSettings};
use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;
use std::time::Duration;

/// The options the JS facade passes after applying engine.io's defaults.
#[napi(object)]
pub struct BindingOptions {
    /// `pingInterval`, in ms.
    pub ping_interval: f64,
    /// `pingTimeout`, in ms.
    pub ping_timeout: f64,
    /// `upgradeTimeout`, in ms.
    pub upgrade_timeout: f64,
    /// `maxHttpBufferSize`, in bytes.
    pub max_http_buffer_size: f64,
    /// `transports`.
    pub transports: Vec<String>,
    /// `allowUpgrades`.
    pub allow_upgrades: bool,
    /// `allowEIO3`.
    pub allow_eio3: bool,
    /// `initialPacket`.
    pub initial_packet: Option<Either<String, Buffer>>,
    /// The computed request path (`/engine.io/`).
    pub path: String,
    /// `destroyUpgrade`.
    pub destroy_upgrade: bool,
    /// `destroyUpgradeTimeout`, in ms.
    pub destroy_upgrade_timeout: f64,
    /// `httpCompression.threshold`, or none when compression is off.
    pub http_compression_threshold: Option<f64>,
    /// `maxBufferedBytes`, or none for unbounded.
    pub max_buffered_bytes: Option<f64>,
    /// `perMessageDeflate`, or none when it is off.
    pub per_message_deflate: Option<DeflateOptions>,
    /// `requestTimeout`, in ms (0 disables it), or none for Node's default.
    pub request_timeout: Option<f64>,
}

/// Node's `tls` options for `listen()` and `setSecureContext()`, PEM as
/// Buffers (lib/options.js turns strings and arrays into these, and
/// refuses the options eio-rs does not support).
#[napi(object)]
pub struct TlsOptions {
    /// `key`.
    pub key: Vec<Buffer>,
    /// `cert`.
    pub cert: Vec<Buffer>,
    /// `ca`.
    pub ca: Vec<Buffer>,
    /// `requestCert`.
    pub request_cert: bool,
    /// `rejectUnauthorized`.
    pub reject_unauthorized: bool,
    /// `minVersion`.
    pub min_version: Option<String>,
    /// `maxVersion`.
    pub max_version: Option<String>,
    /// `handshakeTimeout`, in ms.
    pub handshake_timeout: Option<f64>,
}

impl TryFrom<&TlsOptions> for Tls {
    type Error = napi::Error;

    fn try_from(o: &TlsOptions) -> napi::Result<Tls> {
        Tls::new(&settings(o)?).map_err(tls_error)
    }
}

/// The core's settings from the JS options.
pub(crate) fn settings(o: &TlsOptions) -> napi::Result<TlsSettings> {
    let pem = |list: &[Buffer]| list.iter().map(|b| b.to_vec()).collect();
    Ok(TlsSettings {
        key: pem(&o.key),
        cert: pem(&o.cert),
        ca: pem(&o.ca),
        request_cert: o.request_cert,
        reject_unauthorized: o.reject_unauthorized,
        min_version: o.min_version.clone(),
        max_version: o.max_version.clone(),
        handshake_timeout: o
            .handshake_timeout
            .map(|ms| millis("handshakeTimeout", ms))
            .transpose()?,
    })
}

/// A TLS option error for JS: `ERR_EIO_TLS_OPTION:<option>:<message>`,
/// which lib/http-server.js turns into an Error with `code` and `option`.
pub(crate) fn tls_error(e: TlsError) -> napi::Error {
    napi::Error::new(
        napi::Status::InvalidArg,
        format!("ERR_EIO_TLS_OPTION:{}:{}", e.option, e.message),
    )
}

/// `perMessageDeflate` (the options of `ws`); window bits `0` stand for
/// `false`.
#[napi(object)]
pub struct DeflateOptions {
    /// `threshold`, in bytes.
    pub threshold: f64,
    /// `serverNoContextTakeover`.
    pub server_no_context_takeover: Option<bool>,
    /// `clientNoContextTakeover`.
    pub client_no_context_takeover: Option<bool>,
    /// `serverMaxWindowBits`.
    pub server_max_window_bits: Option<f64>,
    /// `clientMaxWindowBits`.
    pub client_max_window_bits: Option<f64>,
    /// `zlibDeflateOptions.level`.
    pub level: Option<f64>,
}

fn window_bits(name: &str, v: Option<f64>) -> napi::Result<Option<WindowBits>> {
    match v {
        None => Ok(None),
        Some(0.0) => Ok(Some(WindowBits::Refuse)),
        Some(v) if v.fract() == 0.0 && (8.0..=15.0).contains(&v) => {
            Ok(Some(WindowBits::Bits(v as u8)))
        }
        Some(_) => Err(invalid(name, "false or an integer from 8 to 15")),
    }
}

impl TryFrom<DeflateOptions> for DeflateConfig {
    type Error = napi::Error;

    fn try_from(o: DeflateOptions) -> napi::Result<Self> {
        if !(o.threshold.is_finite() && o.threshold >= 0.0) {
            return Err(invalid(
                "perMessageDeflate.threshold",
                "a non-negative number",
            ));
        }
        let level = match o.level {
            None => None,
            Some(l) if l.fract() == 0.0 && (-1.0..=9.0).contains(&l) => {
                // -1 is zlib's default level.
                (l >= 0.0).then_some(l as u32)
            }
            Some(_) => {
                return Err(invalid(
                    "perMessageDeflate.zlibDeflateOptions.level",
                    "an integer from -1 to 9",
                ))
            }
        };
        Ok(DeflateConfig {
            threshold: o.threshold as usize,
            server_no_context_takeover: o.server_no_context_takeover,
            client_no_context_takeover: o.client_no_context_takeover,
            server_max_window_bits: window_bits(
                "perMessageDeflate.serverMaxWindowBits",
                o.server_max_window_bits,
            )?,
            client_max_window_bits: window_bits(
                "perMessageDeflate.clientMaxWindowBits",
                o.client_max_window_bits,
            )?,
            level,
        })
    }
}

fn millis(name: &str, v: f64) -> napi::Result<Duration> {
    if v.is_finite() && v >= 0.0 {
        Ok(Duration::from_millis(v as u64))
    } else {
        Err(invalid(name, "a non-negative number of milliseconds"))
    }
}

fn invalid(name: &str, what: &str) -> napi::Error {
    napi::Error::new(
        napi::Status::InvalidArg,
        format!("option `{name}` must be {what}"),
    )
}

impl TryFrom<BindingOptions> for (Config, RouteOptions) {
    type Error = napi::Error;

    fn try_from(o: BindingOptions) -> napi::Result<Self> {
        let mut polling = false;
        let mut websocket = false;
        let mut webtransport = false;
        for t in &o.transports {
            match t.as_str() {
                "polling" => polling = true,
                "websocket" => websocket = true,
                "webtransport" => webtransport = true,
                // engine.io accepts names it does not know; they are
                // simply never offered.
                _ => {}
            }
        }
        if !(o.max_http_buffer_size.is_finite() && o.max_http_buffer_size >= 0.0) {
            return Err(invalid("maxHttpBufferSize", "a non-negative number"));
        }
        let initial_packet = o.initial_packet.map(packet_data);
        let config = Config {
            ping_interval: millis("pingInterval", o.ping_interval)?,
            ping_timeout: millis("pingTimeout", o.ping_timeout)?,
            upgrade_timeout: millis("upgradeTimeout", o.upgrade_timeout)?,
            max_http_buffer_size: o.max_http_buffer_size as usize,
            polling,
            websocket,
            webtransport,
            allow_upgrades: o.allow_upgrades,
            allow_eio3: o.allow_eio3,
            initial_packet,
            http_compression: o.http_compression_threshold.map(|t| t.max(0.0) as usize),
            max_buffered_bytes: match o.max_buffered_bytes {
                Some(v) if !(v.is_finite() && v >= 0.0) => {
                    return Err(invalid(
                        "maxBufferedBytes",
                        "a non-negative number of bytes",
                    ))
                }
                v => v.map(|v| v as usize),
            },
            per_message_deflate: o.per_message_deflate.map(TryInto::try_into).transpose()?,
            request_timeout: match o.request_timeout {
                None => Config::default().request_timeout,
                Some(v) => Some(millis("requestTimeout", v)?).filter(|d| !d.is_zero()),
            },
            ..Config::default()
        };
        let routes = RouteOptions {
            path: o.path,
            destroy_upgrade: o.destroy_upgrade,
            destroy_upgrade_timeout: millis("destroyUpgradeTimeout", o.destroy_upgrade_timeout)?,
        };
        Ok((config, routes))
    }
}
