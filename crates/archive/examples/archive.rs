//! Packs or unpacks from the command line and prints the stats and throughput: a benchmark and an
//! interoperability probe (check the output with `tar`, `gzip -t`, `unzip`).
//!
//! ```text
//! cargo run --release -p argoexec-archive --example archive -- pack tgz <src> <out|->
//! cargo run --release -p argoexec-archive --example archive -- unpack <tar|zip|detect|none> <in> <dest>
//! ```

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use argoexec_archive::{Limits, PackFormat, UnpackFormat, pack_to, unpack_from};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let result = match args.as_slice() {
        ["pack", format, src, out] => pack(format, Path::new(src), out),
        ["unpack", format, input, dest] => unpack(format, input, Path::new(dest)),
        _ => {
            eprintln!("usage: archive pack <tgz|tgz0..tgz9|tar|zip|none> <src> <out|->");
            eprintln!("       archive unpack <tar|zip|detect|none> <in|-> <dest>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok((entries, bytes_in, bytes_out)) => {
            let seconds = started.elapsed().as_secs_f64();
            let mib = bytes_in.max(bytes_out) as f64 / f64::from(1 << 20);
            eprintln!(
                "entries={entries} bytes_in={bytes_in} bytes_out={bytes_out} seconds={seconds:.3} MiB/s={:.1}",
                mib / seconds
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn pack(format: &str, src: &Path, out: &str) -> Result<(u64, u64, u64), argoexec_archive::Error> {
    let format = match format {
        "tar" => PackFormat::Tar,
        "zip" => PackFormat::Zip,
        "none" => PackFormat::AsIs,
        "tgz" => PackFormat::default(),
        level => PackFormat::tar_gz(level.strip_prefix("tgz").and_then(|l| l.parse().ok()))?,
    };
    let stats = if out == "-" {
        pack_to(src, &format, BufWriter::new(io::stdout().lock()))?
    } else {
        let file = File::create(out).map_err(|source| argoexec_archive::Error::Pack {
            path: out.into(),
            source,
        })?;
        pack_to(src, &format, BufWriter::new(file))?
    };
    Ok((stats.entries, stats.bytes_in, stats.bytes_out))
}

fn unpack(
    format: &str,
    input: &str,
    dest: &Path,
) -> Result<(u64, u64, u64), argoexec_archive::Error> {
    let format = match format {
        "tar" => UnpackFormat::Tar,
        "zip" => UnpackFormat::Zip,
        "none" => UnpackFormat::AsIs,
        _ => UnpackFormat::Detect,
    };
    let limits = Limits::default();
    let stats = if input == "-" {
        unpack_from(io::stdin().lock(), dest, format, &limits)?
    } else {
        let file =
            File::open(input).map_err(|source| argoexec_archive::Error::ReadArchive { source })?;
        unpack_from(BufReader::new(file), dest, format, &limits)?
    };
    Ok((stats.entries, stats.bytes_in, stats.bytes_out))
}
