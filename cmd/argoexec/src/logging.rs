//! Log lines in Argo's shapes: logrus-style `time="..." level=info msg="..." key=value` text, or one
//! JSON object a line with the same keys. Written to stderr, as Argo's executor does.

use std::fmt;

use argoexec_config::{LogFormat, LogLevel};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber. `RUST_LOG`, when set, refines the level per module.
pub(crate) fn init(level: LogLevel, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Our crates at the chosen level; dependencies one notch quieter unless debugging.
        let deps = if level <= LogLevel::Debug {
            "info"
        } else {
            "warn"
        };
        EnvFilter::new(format!("{deps},argoexec={level},argoexec_={level}"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second install (tests) is harmless: the first one stays.
    let _ = match format {
        LogFormat::Text => builder.event_format(ArgoFormat::Text).try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(ArgoFormat::Json)
            .try_init(),
    };
}

#[derive(Clone, Copy)]
enum ArgoFormat {
    Text,
    Json,
}

/// logrus' level names.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warning",
        Level::ERROR => "error",
    }
}

/// Collects an event's fields; `message` separately.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(&'static str, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, serde_json::Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, format!("{value:#}").into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.rest.push((field.name(), value));
        }
    }
}

/// A logfmt value: bare when it is a simple token, else quoted with Go-style escapes.
fn logfmt_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s)
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=') =>
        {
            s.clone()
        }
        serde_json::Value::String(s) => argoexec_template::quote_go(s),
        other => other.to_string(),
    }
}

impl<S, N> FormatEvent<S, N> for ArgoFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let time = format!("{:.3}", jiff::Timestamp::now());
        let level = level_name(event.metadata().level());
        // Span fields, already formatted by the field formatter (logfmt text or JSON objects).
        let spans: Vec<String> = ctx
            .event_scope()
            .into_iter()
            .flat_map(|scope| scope.from_root())
            .filter_map(|span| {
                let ext = span.extensions();
                ext.get::<FormattedFields<N>>()
                    .map(|f| f.fields.clone())
                    .filter(|f| !f.is_empty())
            })
            .collect();
        match self {
            Self::Text => {
                write!(
                    writer,
                    "time=\"{time}\" level={level} msg={}",
                    argoexec_template::quote_go(&fields.message)
                )?;
                for (key, value) in &fields.rest {
                    write!(writer, " {key}={}", logfmt_value(value))?;
                }
                for span in spans {
                    write!(writer, " {span}")?;
                }
                writeln!(writer)
            }
            Self::Json => {
                let mut object = serde_json::Map::new();
                object.insert("time".into(), time.into());
                object.insert("level".into(), level.into());
                object.insert("msg".into(), fields.message.into());
                for span in spans {
                    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&span) {
                        object.extend(map);
                    }
                }
                for (key, value) in fields.rest {
                    object.insert(key.into(), value);
                }
                writeln!(writer, "{}", serde_json::Value::Object(object))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_only_when_needed() {
        assert_eq!(logfmt_value(&"main".into()), "main");
        assert_eq!(logfmt_value(&"two words".into()), "\"two words\"");
        assert_eq!(logfmt_value(&"".into()), "\"\"");
        assert_eq!(logfmt_value(&"a=b".into()), "\"a=b\"");
        assert_eq!(logfmt_value(&5.into()), "5");
    }
}
