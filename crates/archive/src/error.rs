//! The crate's one error type and the reasons an archive entry is refused.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A failed pack, unpack or mode change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a source file or writing the archive failed.
    #[error("pack {}", path.display())]
    Pack {
        /// The file or directory being added when it failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A directory was asked to be packed without an archive format.
    #[error(
        "pack {}: a directory needs an archive format (tar or zip); storing a directory as is is the storage driver's job",
        path.display()
    )]
    PackDirectoryAsIs {
        /// The directory.
        path: PathBuf,
    },
    /// A gzip compression level outside what gzip knows.
    #[error("parse gzip compression level {level}: expected -1 (default) or 0 to 9")]
    ParseLevel {
        /// The level as given.
        level: i32,
    },
    /// Reading or decoding the archive stream failed.
    #[error("read archive")]
    ReadArchive {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry is unsafe or over a limit; nothing was left behind.
    #[error("check archive entry {entry:?}: {reason}")]
    CheckEntry {
        /// The entry's name as the archive spells it.
        entry: String,
        /// Why it was refused.
        reason: Refusal,
    },
    /// Writing an entry to disk failed.
    #[error("extract archive entry {entry:?}")]
    ExtractEntry {
        /// The entry's name as the archive spells it.
        entry: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Creating or cleaning the staging directory beside the destination failed.
    #[error("stage unpacking at {}", path.display())]
    Stage {
        /// The path being staged.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Moving the unpacked tree into place failed.
    #[error("move unpacked archive into place at {}", path.display())]
    Replace {
        /// The destination.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Changing a mode failed.
    #[error("apply mode {mode:o} to {}", path.display())]
    ApplyMode {
        /// The path whose mode could not be changed.
        path: PathBuf,
        /// The mode asked for.
        mode: u32,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The blocking task that ran the work panicked or was cancelled.
    #[error("run archive task")]
    RunTask {
        /// The cause.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Error {
    /// Why an entry was refused, when this error is a refusal (unsafe entry or limit).
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Error::CheckEntry { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub(crate) fn check(entry: impl Into<String>, reason: Refusal) -> Self {
        Error::CheckEntry {
            entry: entry.into(),
            reason,
        }
    }
}

/// Why an archive entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The name starts with `/`.
    AbsolutePath,
    /// The name has a `..` component.
    ParentDirectory,
    /// The name is empty or not a valid file name (NUL byte).
    InvalidName,
    /// The name goes through a symlink the archive created.
    ThroughSymlink {
        /// The symlink, relative to the destination.
        link: String,
    },
    /// The name goes through a file the archive created.
    NotADirectory {
        /// The file, relative to the destination.
        parent: String,
    },
    /// A later entry would replace a directory with something else.
    ReplacesDirectory,
    /// A symlink whose target resolves outside the destination.
    SymlinkEscapes {
        /// The link's target as the archive spells it.
        target: String,
    },
    /// A symlink whose target is empty, too long or loops.
    InvalidSymlink {
        /// The link's target as the archive spells it.
        target: String,
    },
    /// A hard link whose target is outside the destination.
    HardlinkEscapes {
        /// The link's target as the archive spells it.
        target: String,
    },
    /// A hard link whose target is not a regular file extracted earlier.
    HardlinkTarget {
        /// The link's target as the archive spells it.
        target: String,
    },
    /// A device, fifo or socket.
    SpecialFile {
        /// What kind of node.
        kind: &'static str,
    },
    /// An entry type this crate does not extract (sparse, multi-volume, encrypted, ...).
    Unsupported {
        /// What it is.
        kind: String,
    },
    /// More entries than [`Limits::max_entries`](crate::Limits::max_entries).
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// More unpacked bytes than [`Limits::max_bytes`](crate::Limits::max_bytes).
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Unpacked bytes over archive bytes read above [`Limits::max_ratio`](crate::Limits::max_ratio).
    RatioExceeded {
        /// The limit.
        limit: u64,
    },
    /// Tar extension headers (long names, PAX records) over
    /// [`Limits::max_header_bytes`](crate::Limits::max_header_bytes).
    HeaderTooLarge {
        /// The limit.
        limit: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::AbsolutePath => f.write_str("absolute path"),
            Refusal::ParentDirectory => f.write_str("path has a `..` component"),
            Refusal::InvalidName => f.write_str("empty or invalid name"),
            Refusal::ThroughSymlink { link } => {
                write!(f, "path goes through symlink {link:?}")
            }
            Refusal::NotADirectory { parent } => write!(f, "parent {parent:?} is not a directory"),
            Refusal::ReplacesDirectory => f.write_str("would replace a directory"),
            Refusal::SymlinkEscapes { target } => {
                write!(
                    f,
                    "symlink target {target:?} resolves outside the destination"
                )
            }
            Refusal::InvalidSymlink { target } => {
                write!(f, "symlink target {target:?} is empty, too long or loops")
            }
            Refusal::HardlinkEscapes { target } => {
                write!(f, "hard link target {target:?} is outside the destination")
            }
            Refusal::HardlinkTarget { target } => {
                write!(
                    f,
                    "hard link target {target:?} is not a regular file earlier in the archive"
                )
            }
            Refusal::SpecialFile { kind } => write!(f, "{kind} entries are not extracted"),
            Refusal::Unsupported { kind } => write!(f, "unsupported entry: {kind}"),
            Refusal::TooManyEntries { limit } => write!(f, "more than {limit} entries"),
            Refusal::TooLarge { limit } => write!(f, "unpacked size over {limit} bytes"),
            Refusal::RatioExceeded { limit } => {
                write!(f, "unpacked size over {limit} times the archive bytes read")
            }
            Refusal::HeaderTooLarge { limit } => {
                write!(f, "tar extension headers over {limit} bytes")
            }
        }
    }
}
