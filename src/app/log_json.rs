//! JSON log lines (`log_format: json`): one object per line with a stable field set, for log
//! pipelines that index fields. tracing-subscriber's own JSON formatter nests event fields under
//! `fields` and names them `timestamp`/`message`; ours writes the documented names at the top level:
//!
//! `time` (RFC 3339, UTC), `level`, `msg`, then the event's fields in order (a request line has
//! `request_id`, `peer`, `tenant`, `bucket`, `op`, `method`, `path`, `status`, `ms`, `bytes_in`,
//! `bytes_out`), and `target` (the module). Numbers stay numbers; everything else is a string.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as one JSON object.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut obj = Map::new();
        let now = time::OffsetDateTime::now_utc();
        let stamp = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        obj.insert("time".into(), Value::String(stamp));
        obj.insert("level".into(), Value::String(meta.level().as_str().to_ascii_lowercase()));
        obj.insert("msg".into(), Value::String(String::new()));
        let mut fields = Fields(&mut obj);
        event.record(&mut fields);
        obj.insert("target".into(), Value::String(meta.target().to_owned()));
        let line = serde_json::to_string(&Value::Object(obj)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Collects an event's fields; `message` becomes `msg`.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = if field.name() == "message" { "msg" } else { field.name() };
        self.0.insert(name.to_owned(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_one_json_object_with_the_documented_names() {
        let buf = Buffer::default();
        let writer = buf.clone();
        let layer = tracing_subscriber::fmt::layer().event_format(JsonLines).with_writer(move || writer.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(request_id = "r1", status = 200u16, ms = %"1.5", bytes_out = 7u64, "request");
            tracing::warn!("line with \"quotes\"\nand a newline");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["msg"], "request");
        assert_eq!(first["level"], "info");
        assert_eq!(first["request_id"], "r1");
        assert_eq!(first["status"], 200);
        assert_eq!(first["bytes_out"], 7);
        assert_eq!(first["ms"], "1.5");
        assert!(first["time"].as_str().unwrap().ends_with('Z'), "{first}");
        let second: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["level"], "warn");
        assert_eq!(second["msg"], "line with \"quotes\"\nand a newline");
    }
}
