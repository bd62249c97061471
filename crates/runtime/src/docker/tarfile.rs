//! The one entry of a tar that the archive endpoint gives for a single path.

use std::io::{self, Read as _};
use std::path::PathBuf;

/// What the first entry of an archive is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Entry {
    /// A regular file, with its bytes.
    File(Vec<u8>),
    /// A symbolic link, with its target.
    Link(PathBuf),
    /// Anything else, named for the error message.
    Other(&'static str),
}

/// The first entry of `archive`, a tar held in memory.
pub(super) fn first_entry(archive: &[u8]) -> io::Result<Entry> {
    let mut archive = tar::Archive::new(archive);
    let mut entries = archive.entries()?;
    let mut entry = entries
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the archive is empty"))??;
    let kind = entry.header().entry_type();
    Ok(match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
            entry.read_to_end(&mut bytes)?;
            Entry::File(bytes)
        }
        tar::EntryType::Symlink => Entry::Link(
            entry
                .link_name()?
                .ok_or_else(|| io::Error::other("a symbolic link without a target"))?
                .into_owned(),
        ),
        tar::EntryType::Directory => Entry::Other("directory"),
        _ => Entry::Other("special file"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        builder.into_inner().unwrap()
    }

    #[test]
    fn files_links_and_directories() {
        let file = archive(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_size(5);
            header.set_mode(0o644);
            header.set_cksum();
            b.append_data(&mut header, "x", &b"hello"[..]).unwrap();
        });
        assert_eq!(first_entry(&file).unwrap(), Entry::File(b"hello".to_vec()));

        let link = archive(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            b.append_link(&mut header, "x", "../y").unwrap();
        });
        assert_eq!(first_entry(&link).unwrap(), Entry::Link("../y".into()));

        let dir = archive(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_cksum();
            b.append_data(&mut header, "d/", io::empty()).unwrap();
        });
        assert_eq!(first_entry(&dir).unwrap(), Entry::Other("directory"));
        assert!(first_entry(&archive(|_| {})).is_err());
    }
}
