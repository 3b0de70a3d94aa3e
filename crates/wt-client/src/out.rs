//! The event sink: events as JSON lines on stdout.

use serde_json::{Map, Value};
use std::io::Write as _;

/// A plain thread writes stdout so that a slow reader never stalls the
/// runtime, and so that the last events are flushed before exit.
#[derive(Clone)]
pub struct Out(std::sync::mpsc::Sender<Option<String>>);

impl Out {
    pub fn start() -> (Out, std::thread::JoinHandle<()>) {
        let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
        let writer = std::thread::spawn(move || {
            let stdout = std::io::stdout();
            let mut stdout = stdout.lock();
            while let Ok(Some(line)) = rx.recv() {
                if stdout.write_all(line.as_bytes()).is_err() {
                    return;
                }
                // Whatever is already queued goes out with the same flush.
                let mut stop = false;
                while let Ok(next) = rx.try_recv() {
                    match next {
                        Some(line) => {
                            if stdout.write_all(line.as_bytes()).is_err() {
                                return;
                            }
                        }
                        None => {
                            stop = true;
                            break;
                        }
                    }
                }
                if stdout.flush().is_err() || stop {
                    return;
                }
            }
        });
        (Out(tx), writer)
    }

    /// Sends the event `ev` with `fields`, echoing the command's `id` if any.
    pub fn emit(&self, ev: &str, id: Option<&Value>, fields: Value) {
        let mut obj = Map::new();
        obj.insert("ev".into(), Value::from(ev));
        if let Value::Object(fields) = fields {
            obj.extend(fields);
        }
        if let Some(id) = id {
            obj.insert("id".into(), id.clone());
        }
        let mut line = Value::Object(obj).to_string();
        line.push('\n');
        let _ = self.0.send(Some(line));
    }

    pub fn error(&self, id: Option<&Value>, mut fields: Value, message: impl Into<String>) {
        if let Value::Object(obj) = &mut fields {
            obj.insert("message".into(), Value::from(message.into()));
        }
        self.emit("error", id, fields);
    }

    /// Answers `ok` to a command that has no other reply, only when asked (an `id`).
    pub fn ok(&self, id: Option<&Value>, op: &str, fields: Value) {
        if id.is_some() {
            let mut fields = fields;
            if let Value::Object(obj) = &mut fields {
                obj.insert("op".into(), Value::from(op));
            }
            self.emit("ok", id, fields);
        }
    }

    pub fn stop(&self) {
        let _ = self.0.send(None);
    }
}
