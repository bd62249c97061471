//! The formats an artifact is packed into and unpacked from, and how an undeclared one is detected.

use std::io::{self, Read};

use crate::Error;

/// How to pack an output artifact (Argo's `archive` strategy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackFormat {
    /// tar compressed with gzip at `level` (0 to 9); Argo's default.
    TarGz {
        /// The gzip level.
        level: u32,
    },
    /// tar without compression. Argo has no such strategy (its `tar` always gzips, level 0
    /// included); this is for callers that want a bare tar.
    Tar,
    /// zip with deflate (`archive.zip`).
    Zip,
    /// The single file's bytes as they are (`archive.none`). A directory is refused: uploading a
    /// directory as is is the storage driver's job.
    AsIs,
}

impl PackFormat {
    /// gzip's default level, which Argo uses when `compressionLevel` is unset.
    pub const DEFAULT_LEVEL: u32 = 6;

    /// tar+gzip at Argo's `archive.tar.compressionLevel`: unset or -1 means the default (6).
    pub fn tar_gz(level: Option<i32>) -> Result<Self, Error> {
        match level {
            None | Some(-1) => Ok(PackFormat::TarGz {
                level: Self::DEFAULT_LEVEL,
            }),
            Some(level @ 0..=9) => Ok(PackFormat::TarGz {
                level: level.unsigned_abs(),
            }),
            Some(level) => Err(Error::ParseLevel { level }),
        }
    }
}

impl Default for PackFormat {
    fn default() -> Self {
        PackFormat::TarGz {
            level: Self::DEFAULT_LEVEL,
        }
    }
}

/// How to unpack an input artifact (Argo's declared `archive` strategy, if any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnpackFormat {
    /// Nothing declared: a gzip stream whose content is a tar is untarred; anything else, a plain
    /// tar and a zip included, is kept as is, byte for byte. Argo never guesses zip.
    #[default]
    Detect,
    /// `archive.none`: keep the bytes as they are.
    AsIs,
    /// `archive.tar`: untar, gzip-compressed or not.
    Tar,
    /// `archive.zip`: unzip.
    Zip,
}

/// What an unpack found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// Kept as is.
    AsIs,
    /// A plain tar, untarred.
    Tar,
    /// A gzip-compressed tar (one member or many), untarred.
    TarGz,
    /// A zip, unzipped.
    Zip,
}

pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Whether `block` is a tar header: a full 512-byte block whose checksum matches (the test Go's
/// `tar.Reader.Next` makes, which is what Argo's `isTarball` relies on). An all-zero block, the end
/// of an empty archive, is not a header.
pub(crate) fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 || block[..512].iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| (b'0'..=b'7').contains(&b))
        .collect();
    let Ok(text) = std::str::from_utf8(&digits) else {
        return false;
    };
    let Ok(stored) = u32::from_str_radix(text, 8) else {
        return false;
    };
    let sum = |signed: bool| -> i64 {
        block[..512]
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    i64::from(b' ')
                } else if signed {
                    i64::from(b as i8)
                } else {
                    i64::from(b)
                }
            })
            .sum()
    };
    // Old tars computed the checksum over signed bytes; Go accepts either.
    i64::from(stored) == sum(false) || i64::from(stored) == sum(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_gz_levels_follow_argo() {
        assert_eq!(
            PackFormat::tar_gz(None).ok(),
            Some(PackFormat::TarGz { level: 6 })
        );
        assert_eq!(
            PackFormat::tar_gz(Some(-1)).ok(),
            Some(PackFormat::TarGz { level: 6 })
        );
        assert_eq!(
            PackFormat::tar_gz(Some(0)).ok(),
            Some(PackFormat::TarGz { level: 0 })
        );
        assert_eq!(
            PackFormat::tar_gz(Some(9)).ok(),
            Some(PackFormat::TarGz { level: 9 })
        );
        assert!(PackFormat::tar_gz(Some(10)).is_err());
        assert!(PackFormat::tar_gz(Some(-2)).is_err());
    }

    #[test]
    fn tar_header_needs_a_valid_checksum() {
        let mut header = tar::Header::new_gnu();
        header.set_path("a.txt").unwrap();
        header.set_size(0);
        header.set_cksum();
        assert!(is_tar_header(header.as_bytes()));
        let mut broken = *header.as_bytes();
        broken[0] = b'b';
        assert!(!is_tar_header(&broken));
        assert!(!is_tar_header(&[0; 512]));
        assert!(!is_tar_header(b"hello"));
    }
}
