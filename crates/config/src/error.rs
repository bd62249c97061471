//! The crate's error.

/// A configuration that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable has a value that does not parse.
    #[error("invalid {var}={value:?}: expected {expected}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value as set.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// A variable is set to bytes that are not UTF-8.
    #[error("invalid {var}: value is not UTF-8")]
    NotUtf8 {
        /// The variable.
        var: &'static str,
    },
    /// A required variable is not set.
    #[error("unable to determine {what} from environment variable {var}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What it names.
        what: &'static str,
    },
}
