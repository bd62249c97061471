//! What this binary needs of this machine to run inside an image that has nothing but its own
//! files (the executor's image is `FROM scratch`): its ELF interpreter and the shared libraries it
//! has loaded. The sandbox runs this binary's `__pause` that way, so the executor's image needs
//! neither the local runner nor a C library. A static binary needs none of them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::Error;

/// Read-only binds (`SOURCE:TARGET:ro`) that let this binary, bound into an empty image, start:
/// its interpreter at the path the binary asks for, and every shared library it has loaded at
/// its own path; and the library search path that finds them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Runtime {
    pub(crate) binds: Vec<String>,
    /// `LD_LIBRARY_PATH` for the container: the directories of the libraries, in case the
    /// loader's built-in search path does not name them (it has no `ld.so.cache` there).
    pub(crate) library_path: Option<String>,
}

/// The running binary's interpreter and loaded libraries, from `/proc/self`.
pub(crate) fn runtime_of_this_binary() -> Result<Runtime, Error> {
    let exe = Path::new("/proc/self/exe");
    let elf = std::fs::read(exe).map_err(Error::io("read", exe))?;
    let maps_path = Path::new("/proc/self/maps");
    let maps = std::fs::read_to_string(maps_path).map_err(Error::io("read", maps_path))?;
    Ok(runtime(interpreter(&elf), &maps))
}

fn runtime(interpreter: Option<String>, maps: &str) -> Runtime {
    let libraries = loaded_libraries(maps);
    let mut binds: Vec<String> = interpreter
        .iter()
        .map(|path| format!("{path}:{path}:ro"))
        .collect();
    let mut dirs = BTreeSet::new();
    for lib in &libraries {
        let path = lib.display();
        binds.push(format!("{path}:{path}:ro"));
        if let Some(dir) = lib.parent() {
            dirs.insert(dir.display().to_string());
        }
    }
    binds.dedup();
    let library_path = (!dirs.is_empty()).then(|| dirs.into_iter().collect::<Vec<_>>().join(":"));
    Runtime {
        binds,
        library_path,
    }
}

/// The shared objects mapped into this process (`/proc/self/maps`), each once.
fn loaded_libraries(maps: &str) -> BTreeSet<PathBuf> {
    maps.lines()
        // address perms offset dev inode path: the path is the sixth field, when there is one.
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with('/'))
        .map(PathBuf::from)
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().contains(".so"))
        })
        .collect()
}

/// The program interpreter an ELF64 little-endian executable names (`PT_INTERP`); none for a
/// static binary or what cannot be read as one.
fn interpreter(elf: &[u8]) -> Option<String> {
    const PT_INTERP: u32 = 3;
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| {
        let value = u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?);
        usize::try_from(value).ok()
    };
    let phoff = u64_at(0x20)?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    (0..phnum).find_map(|i| {
        let header = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(header)? != PT_INTERP {
            return None;
        }
        let (offset, size) = (u64_at(header + 0x08)?, u64_at(header + 0x20)?);
        let bytes = elf.get(offset..offset.checked_add(size)?)?;
        let path = bytes.split(|b| *b == 0).next()?;
        Some(String::from_utf8_lossy(path).into_owned())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1234 /work/target/debug/argoexec
7f00aa000000-7f00aa028000 r--p 00000000 fd:01 2345 /usr/lib/x86_64-linux-gnu/libc.so.6
7f00aa028000-7f00aa1bd000 r-xp 00028000 fd:01 2345 /usr/lib/x86_64-linux-gnu/libc.so.6
7f00ab000000-7f00ab001000 r--p 00000000 fd:01 3456 /usr/lib/locale/C.utf8/LC_CTYPE
7f00ab100000-7f00ab101000 r--p 00000000 fd:01 4567 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0 [vdso]
7f00ac000000-7f00ac001000 rw-p 00000000 00:00 0
";

    #[test]
    fn the_libraries_are_the_mapped_shared_objects_each_once() {
        let libs: Vec<String> = loaded_libraries(MAPS)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            libs,
            [
                "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "/usr/lib/x86_64-linux-gnu/libc.so.6"
            ]
        );
    }

    #[test]
    fn the_interpreter_is_bound_where_the_binary_asks_for_it() {
        let got = runtime(Some("/lib64/ld-linux-x86-64.so.2".into()), MAPS);
        assert_eq!(
            got.binds[0],
            "/lib64/ld-linux-x86-64.so.2:/lib64/ld-linux-x86-64.so.2:ro"
        );
        assert!(got.binds.contains(
            &"/usr/lib/x86_64-linux-gnu/libc.so.6:/usr/lib/x86_64-linux-gnu/libc.so.6:ro".into()
        ));
        assert_eq!(
            got.library_path.as_deref(),
            Some("/usr/lib/x86_64-linux-gnu")
        );
        // A static binary: nothing to bind.
        assert_eq!(runtime(None, ""), Runtime::default());
    }

    #[test]
    fn this_test_binary_has_the_interpreter_its_libraries_need() {
        let elf = std::fs::read("/proc/self/exe").unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        match interpreter(&elf) {
            // Dynamically linked (the usual gnu build): the loader is among the mapped objects.
            Some(interp) => {
                let real = std::fs::canonicalize(&interp).unwrap();
                assert!(loaded_libraries(&maps).contains(&real), "{interp}");
            }
            // Static (musl): nothing is loaded.
            None => assert!(loaded_libraries(&maps).is_empty()),
        }
        assert_eq!(interpreter(b"#!/bin/sh\n"), None);
    }
}
