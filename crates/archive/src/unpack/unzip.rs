//! Reading a zip into an [`Extractor`].
//!
//! A zip's truth is its central directory, at the end: entry sizes when the writer streamed
//! (Go's `archive/zip`, which Argo uses, always writes data descriptors), and the Unix mode that
//! says which entries are symlinks. A zip cannot be read front to back without them, so the stream
//! is first spooled into the staging directory (same file system as the destination, removed with
//! it) and read from there; memory stays bounded, disk use is the archive's size.

use std::fs::OpenOptions;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use zip::ZipArchive;
use zip::extra_fields::ExtraField;

use super::extract::{EntryMeta, Extracted, Extractor};
use super::meter::{Meter, Metered};
use super::staging::Staging;
use crate::{Error, Limits, Refusal, dostime};

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFIFO: u32 = 0o010_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFSOCK: u32 = 0o140_000;

pub(super) fn unzip<R: Read>(
    mut raw: R,
    staging: &Staging,
    limits: &Limits,
) -> Result<Extracted, Error> {
    let spool_path = staging.scratch("archive.zip");
    let mut spool = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&spool_path)
        .map_err(|source| staging.error(source))?;
    let spooled = io::copy(
        &mut (&mut raw).take(limits.max_bytes.saturating_add(1)),
        &mut spool,
    )
    .map_err(|source| Error::ReadArchive { source })?;
    if spooled > limits.max_bytes {
        return Err(Error::check(
            "(zip archive)",
            Refusal::TooLarge {
                limit: limits.max_bytes,
            },
        ));
    }
    spool
        .flush()
        .and_then(|()| spool.seek(SeekFrom::Start(0)))
        .map_err(|source| staging.error(source))?;

    // The ratio is measured against the bytes read back from the spool, as the entries need them.
    let read_back = Rc::new(Meter::default());
    let mut archive = ZipArchive::new(Metered::new(BufReader::new(spool), Rc::clone(&read_back)))
        .map_err(zip_err)?;
    let mut extractor = Extractor::new(staging.root(), limits, read_back)
        .map_err(|source| staging.error(source))?;
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).map_err(zip_err)?;
        let name = file.name().map_err(zip_err)?.into_owned();
        let mode = file.unix_mode();
        let meta = EntryMeta {
            mode: mode.map(|mode| mode & 0o777),
            mtime: mtime(&file),
        };
        if file.encrypted() {
            extractor.refuse(
                &name,
                Refusal::Unsupported {
                    kind: "encrypted zip entry".to_owned(),
                },
            )?;
        }
        match mode.map(|mode| mode & S_IFMT) {
            Some(S_IFLNK) => {
                let mut target = Vec::new();
                (&mut file)
                    .take(4097)
                    .read_to_end(&mut target)
                    .map_err(|source| Error::ExtractEntry {
                        entry: name.clone(),
                        source,
                    })?;
                extractor.symlink(&name, name.as_bytes(), &target, meta)?;
            }
            Some(S_IFDIR) => extractor.dir(&name, name.as_bytes(), meta)?,
            Some(S_IFIFO) => extractor.refuse(&name, Refusal::SpecialFile { kind: "fifo" })?,
            Some(S_IFCHR) => extractor.refuse(
                &name,
                Refusal::SpecialFile {
                    kind: "character device",
                },
            )?,
            Some(S_IFBLK) => extractor.refuse(
                &name,
                Refusal::SpecialFile {
                    kind: "block device",
                },
            )?,
            Some(S_IFSOCK) => extractor.refuse(&name, Refusal::SpecialFile { kind: "socket" })?,
            _ if file.is_dir() => extractor.dir(&name, name.as_bytes(), meta)?,
            _ => {
                let size = Some(file.size());
                extractor.file(&name, name.as_bytes(), meta, size, &mut file)?;
            }
        }
    }
    drop(archive);
    // Free the disk space before the tree moves into place; the staging cleanup would too.
    let _ = std::fs::remove_file(&spool_path);
    extractor.finish()
}

/// The entry's mtime: the extended-timestamp field when present (exact, UTC), else the MS-DOS
/// time, read as UTC.
fn mtime<R: Read>(file: &zip::read::ZipFile<'_, R>) -> Option<i64> {
    let extended = file.extra_data_fields().find_map(|field| match field {
        ExtraField::ExtendedTimestamp(ts) => ts.mod_time(),
        _ => None,
    });
    if let Some(seconds) = extended {
        return Some(i64::from(seconds));
    }
    file.last_modified().map(|dos| dostime::from_dos(&dos))
}

fn zip_err(err: zip::result::ZipError) -> Error {
    let source = match err {
        zip::result::ZipError::Io(err) => err,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    };
    Error::ReadArchive { source }
}
