//! A resource template's `flags`: Argo passes them to kubectl after the action. The flags users
//! pass in practice are parsed into [`Flags`]; anything else is refused by name, never ignored
//! silently.
//!
//! Accepted: positional `KIND [NAME...]` or `KIND/NAME` (patch, get and delete without a
//! manifest), `-n/--namespace`, `-l/--selector`, `--all`, `--ignore-not-found`, `--wait`,
//! `--timeout`, `--cascade`, `--grace-period`, `--now`, `--validate`, `--field-manager`,
//! `--server-side` and `--force-conflicts` (apply is always server-side and forced),
//! `--subresource`, and `-o/--output` (harmless: Argo puts its own `-o json` after the flags,
//! which wins in kubectl).

use std::time::Duration;

/// How the API server treats unknown or duplicate fields (kubectl's `--validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validation {
    /// Refuse them (kubectl's default, `--validate=strict` or `true`).
    #[default]
    Strict,
    /// Accept with a warning (`--validate=warn`).
    Warn,
    /// Drop them silently (`--validate=false` or `ignore`).
    Ignore,
}

/// What a delete does to the object's dependents (kubectl's `--cascade`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cascade {
    /// Delete them in the background (the default).
    Background,
    /// Delete them before the object.
    Foreground,
    /// Leave them.
    Orphan,
}

/// The template's flags, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    /// Positional arguments: a kind, then names (or `KIND/NAME` words).
    pub args: Vec<String>,
    /// `-n`.
    pub namespace: Option<String>,
    /// `-l`.
    pub selector: Option<String>,
    /// `--all`.
    pub all: bool,
    /// `--ignore-not-found` (Argo always adds it to delete).
    pub ignore_not_found: bool,
    /// `--wait` (delete; default true).
    pub wait: bool,
    /// `--timeout` of the delete's wait.
    pub timeout: Option<Duration>,
    /// `--cascade`.
    pub cascade: Option<Cascade>,
    /// `--grace-period` (`--now` is 1).
    pub grace_period: Option<u32>,
    /// `--validate`.
    pub validate: Validation,
    /// `--field-manager`.
    pub field_manager: Option<String>,
    /// `--subresource` (get, patch, replace).
    pub subresource: Option<String>,
}

impl Default for Flags {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            namespace: None,
            selector: None,
            all: false,
            ignore_not_found: false,
            wait: true,
            timeout: None,
            cascade: None,
            grace_period: None,
            validate: Validation::Strict,
            field_manager: None,
            subresource: None,
        }
    }
}

/// A flag this executor does not support, or a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// Not one of the supported flags.
    #[error(
        "flag {0:?} is not supported by this executor's resource action (supported: -n/--namespace, -l/--selector, --all, --ignore-not-found, --wait, --timeout, --cascade, --grace-period, --now, --validate, --field-manager, --server-side, --force-conflicts, --subresource, -o/--output)"
    )]
    Unsupported(String),
    /// A flag that needs a value got none.
    #[error("flag {0} needs a value")]
    MissingValue(String),
    /// A value that is not one the flag takes.
    #[error("flag {flag}: invalid value {value:?}: expected {expected}")]
    Invalid {
        /// The flag.
        flag: String,
        /// What was given.
        value: String,
        /// What it takes.
        expected: &'static str,
    },
}

impl Flags {
    /// Parses kubectl-style flags.
    pub fn parse<S: AsRef<str>>(flags: &[S]) -> Result<Self, FlagError> {
        let mut out = Self::default();
        let mut words = flags.iter().map(AsRef::as_ref);
        while let Some(word) = words.next() {
            if !word.starts_with('-') || word == "-" {
                out.args.push(word.to_owned());
                continue;
            }
            let (name, inline) = match word.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (word, None),
            };
            // A flag with a value: `--flag=value` or `--flag value`.
            let mut value = |inline: Option<String>| -> Result<String, FlagError> {
                match inline {
                    Some(v) => Ok(v),
                    None => words
                        .next()
                        .map(str::to_owned)
                        .ok_or_else(|| FlagError::MissingValue(name.to_owned())),
                }
            };
            match name {
                "-n" | "--namespace" => out.namespace = Some(value(inline)?),
                "-l" | "--selector" => out.selector = Some(value(inline)?),
                "-o" | "--output" => {
                    let format = value(inline)?;
                    tracing::info!(
                        flag = word,
                        format,
                        "Ignoring the output flag: Argo's own -o json comes after it"
                    );
                }
                "--all" => out.all = boolean(name, inline)?,
                "--ignore-not-found" => out.ignore_not_found = boolean(name, inline)?,
                "--wait" => out.wait = boolean(name, inline)?,
                "--now" => {
                    if boolean(name, inline)? {
                        out.grace_period = Some(1);
                    }
                }
                "--server-side" => {
                    if !boolean(name, inline)? {
                        return Err(FlagError::Unsupported(word.to_owned()));
                    }
                }
                "--force-conflicts" => {
                    boolean(name, inline)?;
                }
                "--timeout" => {
                    let text = value(inline)?;
                    out.timeout = Some(duration(name, &text)?);
                }
                "--grace-period" => {
                    let text = value(inline)?;
                    let seconds: i64 = text.parse().map_err(|_| FlagError::Invalid {
                        flag: name.to_owned(),
                        value: text.clone(),
                        expected: "a whole number of seconds",
                    })?;
                    // kubectl: negative means the object's default, 0 means 1 unless --force.
                    out.grace_period = match seconds {
                        s if s < 0 => None,
                        0 => Some(1),
                        s => Some(u32::try_from(s).unwrap_or(u32::MAX)),
                    };
                }
                "--cascade" => {
                    let text = inline.unwrap_or_else(|| "background".into());
                    out.cascade = Some(match text.as_str() {
                        "background" | "true" => Cascade::Background,
                        "foreground" => Cascade::Foreground,
                        "orphan" | "false" => Cascade::Orphan,
                        _ => {
                            return Err(FlagError::Invalid {
                                flag: name.to_owned(),
                                value: text,
                                expected: "background, foreground or orphan",
                            });
                        }
                    });
                }
                "--validate" => {
                    let text = inline.unwrap_or_else(|| "strict".into());
                    out.validate = match text.as_str() {
                        "strict" | "true" => Validation::Strict,
                        "warn" => Validation::Warn,
                        "ignore" | "false" => Validation::Ignore,
                        _ => {
                            return Err(FlagError::Invalid {
                                flag: name.to_owned(),
                                value: text,
                                expected: "true, strict, warn, ignore or false",
                            });
                        }
                    };
                }
                "--field-manager" => out.field_manager = Some(value(inline)?),
                "--subresource" => out.subresource = Some(value(inline)?),
                _ => return Err(FlagError::Unsupported(word.to_owned())),
            }
        }
        Ok(out)
    }
}

/// A boolean flag: bare means true, or `=true` / `=false`.
fn boolean(name: &str, inline: Option<String>) -> Result<bool, FlagError> {
    match inline.as_deref() {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(FlagError::Invalid {
            flag: name.to_owned(),
            value: other.to_owned(),
            expected: "true or false",
        }),
    }
}

/// A Go duration (`30s`, `1m`), as kubectl's `--timeout` takes it; `0` means none.
fn duration(name: &str, text: &str) -> Result<Duration, FlagError> {
    let invalid = || FlagError::Invalid {
        flag: name.to_owned(),
        value: text.to_owned(),
        expected: "a duration such as 30s or 5m",
    };
    let nanos = go_parse_duration::parse_duration(text).map_err(|_| invalid())?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_argo_users_pass() {
        let f = Flags::parse(&["--validate=false"]).unwrap();
        assert_eq!(f.validate, Validation::Ignore);
        let f = Flags::parse(&["configmap", "--selector", "app=x", "--ignore-not-found"]).unwrap();
        assert_eq!(f.args, ["configmap"]);
        assert_eq!(f.selector.as_deref(), Some("app=x"));
        assert!(f.ignore_not_found);
        let f = Flags::parse(&["pod", "p-1", "-n", "ns", "--wait=false", "-o", "name"]).unwrap();
        assert_eq!(f.args, ["pod", "p-1"]);
        assert_eq!(f.namespace.as_deref(), Some("ns"));
        assert!(!f.wait);
        let f = Flags::parse(&["--server-side", "--force-conflicts", "--timeout=1m"]).unwrap();
        assert_eq!(f.timeout, Some(Duration::from_secs(60)));
        let f = Flags::parse(&["--cascade=orphan", "--grace-period", "0"]).unwrap();
        assert_eq!(f.cascade, Some(Cascade::Orphan));
        assert_eq!(f.grace_period, Some(1));
    }

    #[test]
    fn refuses_the_rest_by_name() {
        let err = Flags::parse(&["--dry-run=server"]).unwrap_err();
        assert_eq!(err, FlagError::Unsupported("--dry-run=server".into()));
        assert!(err.to_string().contains("\"--dry-run=server\""), "{err}");
        assert!(Flags::parse(&["--server-side=false"]).is_err());
        assert!(Flags::parse(&["--validate=maybe"]).is_err());
        assert_eq!(
            Flags::parse(&["-n"]).unwrap_err(),
            FlagError::MissingValue("-n".into())
        );
    }
}
