//! The server processes' logs (`serve`, `shard`, `leader`, `cluster up`): `tracing` events on
//! stderr, filtered by `--log-level` (or `RUST_LOG`; default `info`), as text or as one JSON
//! object per line. Set up once, in `main`, before the command runs; the other commands set
//! up nothing and keep printing what they print.
//!
//! A JSON line: `{"timestamp":"2025-01-02T03:04:05.678901Z","level":"INFO","target":
//! "astroboids_cluster_net::process::shard","message":"registered","fields":{"member":0}}`.
//! `fields` holds every field of the event but its message, typed as recorded (numbers stay
//! numbers); events of libraries that use the `log` crate come through too (their target is
//! the library's).

use std::fmt;
use std::io::IsTerminal;

use anyhow::{Context, Result};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::{LogArgs, LogFormat};

/// Installs the process's subscriber (and the bridge for the `log` crate). Fails on a filter
/// that does not parse, or when called twice.
pub fn init(args: &LogArgs) -> Result<()> {
    let filter = EnvFilter::builder()
        .parse(&args.log_level)
        .with_context(|| format!("--log-level / RUST_LOG {:?}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match args.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// One JSON object per event, on one line.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        writeln!(writer, "{}", json_line(event, &timestamp))
    }
}

/// The line written for `event` (keys in this order: timestamp, level, target, message,
/// fields).
fn json_line(event: &Event<'_>, timestamp: &str) -> String {
    // Events from the `log` crate carry their real target and place as `log.*` fields.
    let normalized = event.normalized_metadata();
    let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
    let mut fields = JsonFields::default();
    event.record(&mut fields);
    let text = |s: &str| Value::String(s.to_owned()).to_string();
    format!(
        "{{\"timestamp\":{},\"level\":{},\"target\":{},\"message\":{},\"fields\":{}}}",
        text(timestamp),
        text(metadata.level().as_str()),
        text(metadata.target()),
        text(fields.message.as_deref().unwrap_or_default()),
        Value::Object(fields.fields),
    )
}

/// An event's fields as JSON values; `message` apart.
#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else if !name.starts_with("log.") {
            self.fields.insert(name.to_owned(), value);
        }
    }
}

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        // JSON numbers past u64 lose digits in most readers: as text.
        match u64::try_from(value) {
            Ok(v) => self.put(field, Value::from(v)),
            Err(_) => self.put(field, Value::String(value.to_string())),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities are not JSON numbers: as text.
        let value = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.put(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(emit: impl FnOnce()) -> Vec<Value> {
        captured(emit)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
            .collect()
    }

    fn captured(emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("debug"))
            .with_writer(captured.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn an_event_is_one_json_object_with_typed_fields() {
        let peer: std::net::SocketAddr = "127.0.0.1:4433".parse().unwrap();
        let lines = lines(|| {
            tracing::info!(tick = 42u64, epoch = 3u64, ratio = 0.5, leading = true, peer = %peer, "plan received");
            tracing::debug!(member = -1i64, "quoted \"text\"\nand a newline");
        });
        assert_eq!(lines.len(), 2);
        let first = &lines[0];
        assert_eq!(first.as_object().unwrap().len(), 5, "{first}");
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "plan received");
        assert_eq!(first["target"], module_path!());
        assert_eq!(
            first["fields"],
            serde_json::json!({"tick": 42, "epoch": 3, "ratio": 0.5, "leading": true, "peer": "127.0.0.1:4433"})
        );
        let timestamp = first["timestamp"].as_str().unwrap();
        assert!(
            timestamp.len() >= 20 && timestamp.contains('T') && timestamp.ends_with('Z'),
            "{timestamp}"
        );
        assert_eq!(lines[1]["level"], "DEBUG");
        assert_eq!(lines[1]["message"], "quoted \"text\"\nand a newline");
        assert_eq!(lines[1]["fields"]["member"], -1);
    }

    #[test]
    fn the_keys_come_in_a_fixed_order() {
        let text = captured(|| tracing::warn!(tick = 1u64, "late"));
        let line = text.trim_end();
        assert!(line.starts_with("{\"timestamp\":\""), "{line}");
        let rest = &line[line.find("\",\"level\"").expect("level after timestamp")..];
        assert_eq!(
            rest,
            format!(
                "\",\"level\":\"WARN\",\"target\":\"{}\",\"message\":\"late\",\"fields\":{{\"tick\":1}}}}",
                module_path!()
            )
        );
        assert!(!text.trim_end().contains('\n'), "one line per event");
    }

    #[test]
    fn the_filter_drops_finer_events() {
        let lines = lines(|| tracing::trace!("not shown"));
        assert!(lines.is_empty());
    }
}
