//! Reading variables through a lookup function, and parsing their values as Argo's Go code does.

use std::time::Duration;

use crate::error::ConfigError;

/// A whole number above zero.
pub(crate) fn positive(s: &str) -> Option<u64> {
    s.parse::<u64>().ok().filter(|n| *n >= 1)
}

/// Reads one variable through the lookup, as UTF-8.
pub(crate) struct Reader<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<std::ffi::OsString>> Reader<F> {
    /// Reads through `lookup`, which answers a variable's value.
    pub(crate) fn new(lookup: F) -> Self {
        Self { lookup }
    }

    pub(crate) fn string(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        match (self.lookup)(var) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|_| ConfigError::NotUtf8 { var }),
        }
    }

    pub(crate) fn set(&self, var: &'static str) -> bool {
        (self.lookup)(var).is_some()
    }

    pub(crate) fn parsed<T>(
        &self,
        var: &'static str,
        expected: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.string(var)? else {
            return Ok(None);
        };
        parse(value.trim()).map(Some).ok_or(ConfigError::Invalid {
            var,
            value,
            expected,
        })
    }

    pub(crate) fn duration(&self, var: &'static str) -> Result<Option<Duration>, ConfigError> {
        self.parsed(
            var,
            "a Go duration such as 30s, 1m30s or 500ms, not negative",
            parse_go_duration,
        )
    }

    pub(crate) fn boolean(&self, var: &'static str) -> Result<Option<bool>, ConfigError> {
        self.parsed(var, "true or false", parse_go_bool)
    }
}

/// Parses a Go duration (`time.ParseDuration`); negative durations are refused.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let nanos = go_parse_duration::parse_duration(text).ok()?;
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// Parses a boolean as Go's `strconv.ParseBool` does.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses an RFC 3339 time; Go's zero time (year 1) means "no deadline".
pub(crate) fn parse_deadline(text: &str) -> Option<Option<jiff::Timestamp>> {
    let ts: jiff::Timestamp = text.parse().ok()?;
    let zero: jiff::Timestamp = "0001-01-01T00:00:00Z".parse().ok()?;
    Some((ts > zero).then_some(ts))
}
