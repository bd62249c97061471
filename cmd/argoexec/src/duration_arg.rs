//! The duration flags' parser (`--request-timeout`, `run --timeout`), shared by `cli` and `run_cmd`.

use std::time::Duration;

/// Plain seconds (`30`) or a Go duration (`30s`, `1m30s`), as kubectl takes `--request-timeout`.
pub(crate) fn parse_request_timeout(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    argoexec_config::parse_go_duration(text).ok_or_else(|| {
        format!("invalid duration {text:?}: expected seconds or a Go duration such as 30s")
    })
}
