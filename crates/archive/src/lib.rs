//! Streaming packing and safe unpacking of Argo artifacts: tar, tar+gzip, zip, or the bytes as
//! they are. Knows nothing of storage: it turns a path into bytes and bytes into a path.
//!
//! # Packing
//! [`pack_to`] is the sync core: it walks the source in sorted order and writes a tar (names
//! `<basename>/<rel>`, a single file as `basename`), tar+gzip (Argo's default, level 6), a zip,
//! or a single file's bytes ([`PackFormat`]). Symlinks stay symlinks; modes, mtimes and empty
//! directories are kept. gzip runs on every core (`gzip` module): blocks become members of a
//! multi-member gzip stream, which every gzip reader accepts. [`pack_stream`] runs the core on a
//! dedicated thread feeding a bounded channel and hands out a [`futures::Stream`] of
//! [`bytes::Bytes`], so memory stays at a few MiB whatever the size.
//!
//! [`repack_to`] and [`repack_stream`] do the same for a path that comes as a tar stream (docker's
//! archive endpoint): gzipped as it is, or its one file's bytes; [`repack_gzip_stream`] takes
//! the tar gzip-compressed (the emissary's staged `.tgz`). [`tar_files`] hands out the files of
//! such a stream one by one, for a directory stored as is.
//!
//! # Unpacking
//! [`unpack_from`] is the sync core, [`unpack`] runs it on a blocking thread behind an
//! `AsyncRead`. The format is declared ([`UnpackFormat`]) or detected the way Argo does: a gzip
//! stream holding a tar is untarred, anything else is kept byte for byte, and a zip is never
//! guessed. When the archive has a single top-level entry, that entry becomes the destination.
//!
//! Safety is by construction (`unpack::extract`): the archive is extracted into a fresh hidden
//! staging directory beside the destination and renamed into place only when complete; every
//! check is made on an in-memory copy of what the archive created, never by letting the file
//! system resolve a path. Absolute names, `..`, entries through symlinks, links leaving the
//! destination, devices and fifos are refused with [`Error::CheckEntry`] naming the entry and
//! the [`Refusal`]; so are archives over the [`Limits`] (entries, bytes, expansion ratio, tar
//! header bytes). A failed unpack leaves nothing behind and the destination as it was.
//!
//! # Modes
//! [`apply_mode`] applies an artifact's `mode` (and `recurseMode`) as Argo means it, except that a
//! directory keeps search permission wherever the mode grants read ([`dir_mode`]), where Argo made
//! directories unsearchable.
//!
//! Nothing here builds a runtime or installs a tracing subscriber.

mod dostime;
mod error;
mod format;
mod gzip;
mod mode;
mod pack;
mod stream;
mod unpack;

pub use error::{Error, Refusal};
pub use format::{ArchiveKind, PackFormat, UnpackFormat};
pub use mode::{apply_mode, dir_mode};
pub use pack::{PackStats, pack_to, repack_to};
pub use stream::{
    PackStream, TarFile, TarFiles, pack_stream, repack_gzip_stream, repack_stream, tar_files,
    unpack,
};
pub use unpack::{Limits, UnpackStats, unpack_from};
