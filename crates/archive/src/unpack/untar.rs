//! Reading a tar stream (plain or gzip-decoded) entry by entry into an [`Extractor`].

use std::io::{self, Read};
use std::path::PathBuf;
use std::rc::Rc;

use tar::EntryType;
use tracing::debug;

use super::extract::{EntryMeta, Extracted, Extractor, lossy};
use super::meter::{Meter, Metered};
use crate::{Error, Limits, Refusal};

/// Trailing bytes read after the end-of-archive blocks: the rest of the last tar record, and
/// enough to reach the gzip trailer so its checksum is verified.
const MAX_TRAILER: u64 = 1 << 20;

pub(super) fn untar<R: Read>(
    reader: R,
    root: PathBuf,
    limits: &Limits,
    input: &Rc<Meter>,
) -> Result<Extracted, Error> {
    // The tar crate holds GNU long names and PAX records in memory; this meter caps the bytes it
    // reads between two entries so a huge "long name" cannot exhaust memory.
    let headers = Rc::new(Meter::default());
    let mut archive = tar::Archive::new(Metered::new(reader, Rc::clone(&headers)));
    let mut extractor = Extractor::new(root, limits, Rc::clone(input)).map_err(read_err)?;
    let mut entries = archive.entries().map_err(read_err)?;
    let mut previous = String::new();
    loop {
        headers.set_budget(Some(limits.max_header_bytes));
        let next = entries.next();
        headers.set_budget(None);
        let mut entry = match next {
            None => break,
            Some(Ok(entry)) => entry,
            Some(Err(_)) if headers.exhausted() => {
                return Err(Error::check(
                    format!("(header after {previous:?})"),
                    Refusal::HeaderTooLarge {
                        limit: limits.max_header_bytes,
                    },
                ));
            }
            Some(Err(source)) => return Err(read_err(source)),
        };
        let name = entry.path_bytes().into_owned();
        let shown = lossy(&name);
        let header = entry.header();
        let kind = header.entry_type();
        let meta = EntryMeta {
            // Permission bits only: an artifact must not mint setuid files (init runs as root).
            mode: header.mode().ok().map(|mode| mode & 0o777),
            mtime: header.mtime().ok().and_then(|t| i64::try_from(t).ok()),
        };
        let size = header.size().ok();
        match kind {
            // Old tars mark directories with a regular type and a trailing slash.
            EntryType::Regular | EntryType::Continuous if name.ends_with(b"/") => {
                extractor.dir(&shown, &name, meta)?;
            }
            EntryType::Regular | EntryType::Continuous => {
                extractor.file(&shown, &name, meta, size, &mut entry)?;
            }
            EntryType::Directory => extractor.dir(&shown, &name, meta)?,
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                extractor.symlink(&shown, &name, &target, meta)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                extractor.hardlink(&shown, &name, &target)?;
            }
            EntryType::Char => special(&mut extractor, &shown, "character device")?,
            EntryType::Block => special(&mut extractor, &shown, "block device")?,
            EntryType::Fifo => special(&mut extractor, &shown, "fifo")?,
            EntryType::XGlobalHeader => debug!(entry = %shown, "skipping a PAX global header"),
            EntryType::GNUSparse => unsupported(&mut extractor, &shown, "GNU sparse file")?,
            other => unsupported(
                &mut extractor,
                &shown,
                &format!("tar entry type {:?}", other.as_byte() as char),
            )?,
        }
        // Whatever an entry carries beyond what was used is read here, so the header budget above
        // only ever sees headers.
        extractor.skip(&shown, &mut entry)?;
        previous = shown;
    }
    let mut rest = archive.into_inner().take(MAX_TRAILER);
    io::copy(&mut rest, &mut io::sink()).map_err(read_err)?;
    extractor.finish()
}

fn special(extractor: &mut Extractor<'_>, entry: &str, kind: &'static str) -> Result<(), Error> {
    extractor.refuse(entry, Refusal::SpecialFile { kind })
}

fn unsupported(extractor: &mut Extractor<'_>, entry: &str, kind: &str) -> Result<(), Error> {
    extractor.refuse(
        entry,
        Refusal::Unsupported {
            kind: kind.to_owned(),
        },
    )
}

fn read_err(source: io::Error) -> Error {
    Error::ReadArchive { source }
}
