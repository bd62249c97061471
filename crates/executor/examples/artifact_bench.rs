//! The artifact benchmark: a directory saved to S3 as tar.gz and loaded back, ours against what
//! Argo's executor effectively does, on one local s3s-fs server shared by both.
//!
//! - ours, out: `argoexec_archive::pack_stream` (tar.gz, level 6) streamed into the S3 driver's
//!   multipart put; no temp file.
//! - ours, in: the S3 driver's get streamed into `argoexec_archive::unpack`.
//! - argo, out: `tar czf T DIR` then `aws s3 cp T s3://...` (awscli v1).
//! - argo, in: `aws s3 cp s3://... T` then `tar xzf T`.
//!
//! Each of ours runs in a child process of this program, which reports its own peak RSS (VmHWM);
//! each baseline command runs under `/usr/bin/time -v` (the max of its "Maximum resident set
//! size"). Temp disk is the peak size of the temp folder each case is given (`TMPDIR` for ours,
//! the folder of `T` for Argo's), sampled every 20 ms. Every load is checked byte for byte
//! against the source; a failure anywhere fails the benchmark, a slow number never does.
//!
//! Over 700 lines on purpose: a benchmark reads best as one program, cases then measurement then
//! report, with nothing of it shared by anything else.
//!
//! ```text
//! cargo build --release -p argoexec-executor --example artifact_bench
//! target/release/examples/artifact_bench --size 64MiB [--work DIR] [--runs N]
//! ```
//!
//! `tests/bench` installs awscli and runs it.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use argoexec_archive::{Limits, PackFormat, UnpackFormat, pack_stream, unpack};
use argoexec_storage::{AnyDriver, Driver as _, MountedSecrets, StorageOptions};
use argoexec_template::ArtifactLocation;
use clap::{Parser, Subcommand};
use futures::StreamExt as _;

// The launcher the integration tests use; it panics on a broken install, which is what a
// benchmark wants too.
use argoexec_testsupport::s3s;

const BUCKET: &str = "bench";
const SECRET_NAME: &str = "s3";
const MIB: f64 = 1024.0 * 1024.0;
/// Bumped when the generated content changes, so a cached source tree is made anew.
const DATA_VERSION: &str = "1";

#[derive(Parser)]
#[command(about = "Artifact save/load benchmark: ours (streaming) against tar + aws s3 cp")]
struct Cli {
    #[command(subcommand)]
    step: Option<Step>,
    /// Size of the source directory: bytes, or with a KiB/MiB/GiB suffix.
    #[arg(long, env = "ARGOEXEC_BENCH_SIZE", default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// Where the source tree (kept between runs), the server's store, temp files and loaded
    /// copies go; a fresh temp folder, removed at the end, when unset.
    #[arg(long, env = "ARGOEXEC_BENCH_DIR")]
    work: Option<PathBuf>,
    /// Rounds of the four cases; with more than one, the table shows medians.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Only ours (no awscli needed).
    #[arg(long)]
    no_baseline: bool,
}

/// One of ours, run in a child process so that its peak RSS is its own.
#[derive(Subcommand)]
enum Step {
    /// Pack `src` as tar.gz into an S3 put.
    #[command(hide = true)]
    Put {
        #[command(flatten)]
        object: Object,
        #[arg(long)]
        src: PathBuf,
    },
    /// Unpack an S3 get into `dest`.
    #[command(hide = true)]
    Get {
        #[command(flatten)]
        object: Object,
        #[arg(long)]
        dest: PathBuf,
    },
}

/// The object a step works on: server port, secrets folder, key.
#[derive(clap::Args)]
struct Object {
    #[arg(long)]
    port: u16,
    #[arg(long)]
    secrets: PathBuf,
    #[arg(long)]
    key: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.step {
        Some(step) => child(step),
        None => bench(&cli),
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number of bytes, KiB, MiB or GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(format!("{text:?}: expected a unit of KiB, MiB or GiB")),
    };
    Ok(number << shift)
}

// ---- ours, in a child process ----

fn child(step: Step) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match step {
            Step::Put { object, src } => {
                let stream = pack_stream(src, PackFormat::default());
                driver(&object)
                    .await?
                    .put(&object.key, stream.boxed())
                    .await?;
            }
            Step::Get { object, dest } => {
                let body = driver(&object).await?.get(&object.key).await?;
                let reader = tokio_util::io::StreamReader::new(body);
                unpack(reader, dest, UnpackFormat::Detect, Limits::default()).await?;
            }
        }
        anyhow::Ok(())
    })?;
    println!("vmhwm_kib={}", vm_hwm_kib()?);
    Ok(())
}

async fn driver(object: &Object) -> anyhow::Result<AnyDriver> {
    let location: ArtifactLocation = serde_json::from_value(serde_json::json!({"s3": {
        "endpoint": format!("127.0.0.1:{}", object.port),
        "insecure": true,
        "bucket": BUCKET,
        "accessKeySecret": {"name": SECRET_NAME, "key": "accesskey"},
        "secretKeySecret": {"name": SECRET_NAME, "key": "secretkey"},
    }}))?;
    let secrets = MountedSecrets::new(&object.secrets);
    let (driver, _) =
        AnyDriver::for_location(&location, &secrets, &StorageOptions::default()).await?;
    Ok(driver)
}

/// This process's peak resident set size.
fn vm_hwm_kib() -> anyhow::Result<u64> {
    let status = fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .context("no VmHWM in /proc/self/status")?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

// ---- the benchmark ----

/// One measured case (or a step of one).
#[derive(Debug, Clone)]
struct Row {
    name: String,
    wall: Duration,
    rss_kib: u64,
    temp_bytes: u64,
    object_bytes: u64,
}

fn bench(cli: &Cli) -> anyhow::Result<()> {
    let scratch;
    let work = match &cli.work {
        Some(dir) => dir.clone(),
        None => {
            scratch = tempfile::tempdir()?;
            scratch.path().to_owned()
        }
    };
    fs::create_dir_all(&work)?;
    let work = fs::canonicalize(&work)?;
    let src = work.join(format!("src-{}", cli.size));
    let (files, text, random) = ensure_source(&src, cli.size)?;
    let server = s3s::S3Server::start_in(&work);
    fs::create_dir_all(server.data.path().join(BUCKET))?;
    let secrets = work.join("secrets");
    server.write_secrets(&secrets, SECRET_NAME);
    let aws = (!cli.no_baseline)
        .then(|| Aws::new(&work, server.port))
        .transpose()?;
    let exe = std::env::current_exe()?;

    let mut rounds = Vec::new();
    for round in 1..=cli.runs {
        eprintln!("round {round} of {}", cli.runs);
        let mut rows = Vec::new();
        for put in [true, false] {
            rows.push(ours(&exe, &work, &server, &secrets, &src, put)?);
        }
        if let Some(aws) = &aws {
            rows.extend(argo_put(aws, &work, &server, &src)?);
            rows.extend(argo_get(aws, &work, &src)?);
        }
        rounds.push(rows);
    }
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "\nartifact benchmark: {:.0} MiB in {files} files ({:.0}% text, {:.0}% random bytes), \
         {cpus} cores, {} build, {} round(s){}",
        cli.size as f64 / MIB,
        100.0 * text as f64 / cli.size as f64,
        100.0 * random as f64 / cli.size as f64,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        cli.runs,
        if cli.runs > 1 { ", medians" } else { "" },
    );
    print_table(&median(&rounds), cli.size);
    Ok(())
}

fn print_table(rows: &[Row], size: u64) {
    println!(
        "{:<34} {:>8} {:>8} {:>13} {:>15} {:>11}",
        "case", "wall s", "MiB/s", "peak RSS MiB", "temp disk MiB", "object MiB"
    );
    for row in rows {
        let seconds = row.wall.as_secs_f64();
        println!(
            "{:<34} {:>8.2} {:>8.1} {:>13.1} {:>15.1} {:>11.1}",
            row.name,
            seconds,
            size as f64 / MIB / seconds,
            row.rss_kib as f64 / 1024.0,
            row.temp_bytes as f64 / MIB,
            row.object_bytes as f64 / MIB,
        );
    }
}

/// Per row, the round with the median wall time.
fn median(rounds: &[Vec<Row>]) -> Vec<Row> {
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    (0..first.len())
        .filter_map(|i| {
            let mut all: Vec<&Row> = rounds.iter().filter_map(|r| r.get(i)).collect();
            all.sort_by_key(|r| r.wall);
            all.get(all.len() / 2).map(|r| (*r).clone())
        })
        .collect()
}

/// One of ours: the put packs the source into `ours.tgz`; the get loads it into a fresh folder,
/// checked against the source. The child gets `TMPDIR` set to an empty folder that is watched.
fn ours(
    exe: &Path,
    work: &Path,
    server: &s3s::S3Server,
    secrets: &Path,
    src: &Path,
    put: bool,
) -> anyhow::Result<Row> {
    let temp = fresh_dir(&work.join("tmp"))?;
    let out = work.join("out");
    // The archive's one top-level folder becomes the destination.
    let dest = out.join("loaded");
    let (name, step, path) = if put {
        ("ours: pack | S3 put", ["put", "--src"], src)
    } else {
        fresh_dir(&out)?;
        ("ours: S3 get | unpack", ["get", "--dest"], dest.as_path())
    };
    let mut cmd = Command::new(exe);
    cmd.args([step[0], "--port", &server.port.to_string(), "--secrets"])
        .arg(secrets)
        .args(["--key", "ours.tgz", step[1]])
        .arg(path)
        .env("TMPDIR", &temp);
    let (wall, rss_kib, temp_bytes) = run_ours(cmd, &temp)?;
    if !put {
        same_tree(src, &dest)?;
        fs::remove_dir_all(&out)?;
    }
    Ok(Row {
        name: name.into(),
        wall,
        rss_kib,
        temp_bytes,
        object_bytes: fs::metadata(server.data.path().join(BUCKET).join("ours.tgz"))?.len(),
    })
}

/// Runs one of ours; its wall time, its own peak RSS, and the peak size of `temp`.
fn run_ours(mut cmd: Command, temp: &Path) -> anyhow::Result<(Duration, u64, u64)> {
    let watch = TempWatch::start(temp);
    let started = Instant::now();
    let out = cmd.stderr(Stdio::inherit()).output()?;
    let wall = started.elapsed();
    let temp_bytes = watch.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {stdout}",
        out.status
    );
    let rss = stdout
        .lines()
        .find_map(|l| l.strip_prefix("vmhwm_kib="))
        .context("the child did not report its VmHWM")?
        .parse()?;
    Ok((wall, rss, temp_bytes))
}

/// awscli, configured for the local server and nothing else.
struct Aws {
    env: Vec<(&'static str, String)>,
    endpoint: String,
}

impl Aws {
    fn new(work: &Path, port: u16) -> anyhow::Result<Self> {
        let config = work.join("aws-config");
        fs::write(
            &config,
            "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n",
        )?;
        let env = vec![
            ("AWS_CONFIG_FILE", config.display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                work.join("no-credentials").display().to_string(),
            ),
            ("AWS_ACCESS_KEY_ID", s3s::ACCESS.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", s3s::SECRET.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            // botocore 1.36+ sends CRC checksums by default, which S3-compatible servers may store
            // verbatim; older versions ignore these.
            (
                "AWS_REQUEST_CHECKSUM_CALCULATION",
                "when_required".to_owned(),
            ),
            (
                "AWS_RESPONSE_CHECKSUM_VALIDATION",
                "when_required".to_owned(),
            ),
        ];
        let aws = Self {
            env,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let version = Command::new("aws")
            .arg("--version")
            .envs(aws.env.iter().map(|(k, v)| (k, v)))
            .output()
            .context("aws (awscli) is not installed: run tests/bench, which installs it")?;
        ensure!(version.status.success(), "aws --version failed");
        eprintln!(
            "baseline: {}",
            String::from_utf8_lossy(&version.stdout).trim()
        );
        ensure!(
            Path::new(TIME).is_file(),
            "{TIME} is missing: install Debian's `time` (tests/bench does)"
        );
        Ok(aws)
    }

    fn cp(&self, from: &str, to: &str) -> Command {
        let mut cmd = Command::new("aws");
        cmd.args(["s3", "cp", "--only-show-errors", "--endpoint-url"])
            .arg(&self.endpoint)
            .args([from, to])
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

const TIME: &str = "/usr/bin/time";

/// Runs `cmd` under `/usr/bin/time -v`; its wall time and maximum resident set size.
fn timed(cmd: &Command, report: &Path) -> anyhow::Result<(Duration, u64)> {
    let mut timed = Command::new(TIME);
    timed
        .arg("-v")
        .arg("-o")
        .arg(report)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        );
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let started = Instant::now();
    let out = timed.stdout(Stdio::null()).output()?;
    let wall = started.elapsed();
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(report)?;
    let rss = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .context("no maximum resident set size in /usr/bin/time's report")?
        .trim()
        .parse()?;
    Ok((wall, rss))
}

/// A case made of steps: each step a row, then the whole (summed wall, max RSS and temp).
fn steps(name: &str, parts: Vec<Row>) -> Vec<Row> {
    let whole = Row {
        name: name.to_owned(),
        wall: parts.iter().map(|r| r.wall).sum(),
        rss_kib: parts.iter().map(|r| r.rss_kib).max().unwrap_or(0),
        temp_bytes: parts.iter().map(|r| r.temp_bytes).max().unwrap_or(0),
        object_bytes: parts.iter().map(|r| r.object_bytes).max().unwrap_or(0),
    };
    std::iter::once(whole).chain(parts).collect()
}

fn argo_put(
    aws: &Aws,
    work: &Path,
    server: &s3s::S3Server,
    src: &Path,
) -> anyhow::Result<Vec<Row>> {
    let temp = fresh_dir(&work.join("tmp"))?;
    let tgz = temp.join("x.tgz");
    let report = work.join("time.txt");
    let (parent, name) = split(src)?;
    let watch = TempWatch::start(&temp);
    let mut tar = Command::new("tar");
    tar.arg("czf").arg(&tgz).arg("-C").arg(parent).arg(name);
    let (tar_wall, tar_rss) = timed(&tar, &report)?;
    let url = format!("s3://{BUCKET}/argo.tgz");
    let (cp_wall, cp_rss) = timed(&aws.cp(&tgz.display().to_string(), &url), &report)?;
    let temp_bytes = watch.stop();
    fs::remove_dir_all(&temp)?;
    let object_bytes = fs::metadata(server.data.path().join(BUCKET).join("argo.tgz"))?.len();
    Ok(steps(
        "argo: tar czf, aws s3 cp up",
        vec![
            Row {
                name: "  tar czf".into(),
                wall: tar_wall,
                rss_kib: tar_rss,
                temp_bytes,
                object_bytes: 0,
            },
            Row {
                name: "  aws s3 cp up".into(),
                wall: cp_wall,
                rss_kib: cp_rss,
                temp_bytes,
                object_bytes,
            },
        ],
    ))
}

fn argo_get(aws: &Aws, work: &Path, src: &Path) -> anyhow::Result<Vec<Row>> {
    let temp = fresh_dir(&work.join("tmp"))?;
    let out = fresh_dir(&work.join("out"))?;
    let tgz = temp.join("x.tgz");
    let report = work.join("time.txt");
    let watch = TempWatch::start(&temp);
    let url = format!("s3://{BUCKET}/argo.tgz");
    let (cp_wall, cp_rss) = timed(&aws.cp(&url, &tgz.display().to_string()), &report)?;
    let object_bytes = fs::metadata(&tgz)?.len();
    let mut tar = Command::new("tar");
    tar.arg("xzf").arg(&tgz).arg("-C").arg(&out);
    let (tar_wall, tar_rss) = timed(&tar, &report)?;
    let temp_bytes = watch.stop();
    let (_, name) = split(src)?;
    same_tree(src, &out.join(name))?;
    fs::remove_dir_all(&temp)?;
    fs::remove_dir_all(&out)?;
    Ok(steps(
        "argo: aws s3 cp down, tar xzf",
        vec![
            Row {
                name: "  aws s3 cp down".into(),
                wall: cp_wall,
                rss_kib: cp_rss,
                temp_bytes,
                object_bytes,
            },
            Row {
                name: "  tar xzf".into(),
                wall: tar_wall,
                rss_kib: tar_rss,
                temp_bytes,
                object_bytes: 0,
            },
        ],
    ))
}

fn split(path: &Path) -> anyhow::Result<(&Path, &std::ffi::OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => bail!("{} has no parent folder", path.display()),
    }
}

/// An empty folder at `path`, whatever was there.
fn fresh_dir(path: &Path) -> anyhow::Result<PathBuf> {
    if path.exists() {
        fs::remove_dir_all(path)?;
    }
    fs::create_dir_all(path)?;
    Ok(path.to_owned())
}

/// Samples the total size of the files under a folder until stopped; keeps the peak.
struct TempWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
}

impl TempWatch {
    fn start(dir: &Path) -> Self {
        let (stop, peak) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let thread = std::thread::spawn({
            let (stop, peak, dir) = (Arc::clone(&stop), Arc::clone(&peak), dir.to_owned());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(du(&dir), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Self {
            stop,
            peak,
            thread: Some(thread),
            dir: dir.to_owned(),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // What is left at the end counts too, however short the run.
        self.peak.load(Ordering::Relaxed).max(du(&self.dir))
    }
}

/// Bytes in the files under `dir` (files vanish while it walks: those are skipped).
fn du(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

// ---- the source tree and its check ----

/// Makes the source tree once per size (kept in the work folder); its files and bytes of text
/// and of random content.
fn ensure_source(dir: &Path, size: u64) -> anyhow::Result<(u64, u64, u64)> {
    let marker = dir.join(".complete");
    if let Ok(recorded) = fs::read_to_string(&marker) {
        let numbers: Vec<u64> = recorded
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect();
        if recorded.split_whitespace().next() == Some(DATA_VERSION)
            && let [files, text, random] = numbers[..]
        {
            return Ok((files, text, random));
        }
    }
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    eprintln!(
        "generating {:.0} MiB under {}",
        size as f64 / MIB,
        dir.display()
    );
    let started = Instant::now();
    let stats = generate(dir, size)?;
    fs::write(
        &marker,
        format!("{DATA_VERSION} {} {} {}\n", stats.0, stats.1, stats.2),
    )?;
    eprintln!("generated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(stats)
}

/// The vocabulary of the generated text, split on spaces.
const WORDS: &str = "\
    request response worker artifact upload download cache miss hit retry timeout connect \
    session user order invoice payment shipping token refresh queue batch commit rollback \
    index shard replica leader follower snapshot compaction checkpoint metric gauge counter \
    histogram span trace error warning debug the a of and to in for with on";
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];

/// Writes a deterministic mix: 40% large text files (logs and CSV), 40% large random files
/// (already compressed media, model weights), 20% many small files (source-like text, a few
/// binaries), in nested folders.
fn generate(dir: &Path, size: u64) -> anyhow::Result<(u64, u64, u64)> {
    let mut rng = fastrand::Rng::with_seed(0x00A5_60EC);
    let large = (size / 32).clamp(64 << 10, 32 << 20);
    let (mut files, mut text, mut random) = (0u64, 0u64, 0u64);
    let mut left = size;
    let mut budget = |share: u64| {
        let n = (size / 10 * share).min(left);
        left -= n;
        n
    };
    let (text_budget, random_budget) = (budget(4), budget(4));
    let small_budget = left;

    let mut written = 0;
    while written < text_budget {
        let len = (large / 2 + rng.u64(..large)).min(text_budget - written);
        let path = if files.is_multiple_of(2) {
            dir.join(format!("logs/{:02}/app-{files:04}.log", files % 7))
        } else {
            dir.join(format!("tables/part-{files:04}.csv"))
        };
        write_text(&path, len, &mut rng, files.is_multiple_of(2))?;
        written += len;
        files += 1;
    }
    text += written;

    written = 0;
    while written < random_budget {
        let len = (large / 2 + rng.u64(..large)).min(random_budget - written);
        let path = dir.join(format!("blobs/{:02}/blob-{files:04}.bin", files % 5));
        write_random(&path, len, &mut rng)?;
        written += len;
        files += 1;
    }
    random += written;

    written = 0;
    let mut small = 0u64;
    while written < small_budget {
        let len = (512 + rng.u64(..32 << 10)).min(small_budget - written);
        let path = dir.join(format!(
            "src/pkg{:02}/mod{:03}/file{small:05}.{}",
            small % 17,
            small / 100,
            if small % 10 == 9 { "png" } else { "txt" }
        ));
        if small % 10 == 9 {
            write_random(&path, len, &mut rng)?;
            random += len;
        } else {
            write_text(&path, len, &mut rng, small.is_multiple_of(2))?;
            text += len;
        }
        written += len;
        small += 1;
        files += 1;
    }
    // Empty folders are part of real trees too.
    fs::create_dir_all(dir.join("src/empty/also-empty"))?;
    Ok((files, text, random))
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    Ok(BufWriter::with_capacity(1 << 20, File::create(path)?))
}

/// Text of exactly `len` bytes: log lines, or CSV rows.
fn write_text(path: &Path, len: u64, rng: &mut fastrand::Rng, log: bool) -> anyhow::Result<()> {
    let mut out = create(path)?;
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut line = String::with_capacity(256);
    let mut left = usize::try_from(len)?;
    let mut n = 0u64;
    while left > 0 {
        line.clear();
        n += 1;
        if log {
            use std::fmt::Write as _;
            let _ = write!(
                line,
                "2024-05-{:02}T{:02}:{:02}:{:02}.{:03}Z {:<5} worker-{} req={:012x} ",
                1 + n / 2_000_000 % 28,
                n / 80_000 % 24,
                n / 1_300 % 60,
                n / 22 % 60,
                rng.u32(..1000),
                LEVELS[rng.usize(..LEVELS.len())],
                rng.u8(..16),
                rng.u64(..1 << 48),
            );
            for _ in 0..rng.usize(3..12) {
                line.push_str(words[rng.usize(..words.len())]);
                line.push(' ');
            }
            let _ = writeln!(
                line,
                "status={} took={}ms",
                [200, 200, 200, 201, 404, 500][rng.usize(..6)],
                rng.u32(..2000)
            );
        } else {
            use std::fmt::Write as _;
            let _ = writeln!(
                line,
                "{n},{},{},{:.4},{:.2},{}",
                1_714_521_600 + n * 15,
                words[rng.usize(..words.len())],
                rng.f64() * 100.0,
                rng.f64() * 1e4,
                rng.bool()
            );
        }
        let take = line.len().min(left);
        out.write_all(&line.as_bytes()[..take])?;
        left -= take;
    }
    out.flush()?;
    Ok(())
}

fn write_random(path: &Path, len: u64, rng: &mut fastrand::Rng) -> anyhow::Result<()> {
    let mut out = create(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = usize::try_from(len)?;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n;
    }
    out.flush()?;
    Ok(())
}

/// Checks that `copy` holds the same folders, files (byte for byte) and links as `src`.
fn same_tree(src: &Path, copy: &Path) -> anyhow::Result<()> {
    let names = |dir: &Path| -> anyhow::Result<Vec<_>> {
        let mut names = fs::read_dir(dir)
            .with_context(|| format!("read {}", dir.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<Vec<_>, _>>()?;
        names.sort();
        Ok(names)
    };
    let (a, b) = (names(src)?, names(copy)?);
    ensure!(
        a == b,
        "{} and {} list different entries",
        src.display(),
        copy.display()
    );
    for name in a {
        let (x, y) = (src.join(&name), copy.join(&name));
        let (tx, ty) = (fs::symlink_metadata(&x)?, fs::symlink_metadata(&y)?);
        if tx.is_dir() {
            ensure!(ty.is_dir(), "{} is not a folder", y.display());
            same_tree(&x, &y)?;
        } else if tx.file_type().is_symlink() {
            ensure!(
                fs::read_link(&x)? == fs::read_link(&y)?,
                "{} links elsewhere",
                y.display()
            );
        } else {
            ensure!(
                ty.is_file() && tx.len() == ty.len() && same_bytes(&x, &y)?,
                "{} differs from {}",
                y.display(),
                x.display()
            );
        }
    }
    Ok(())
}

fn same_bytes(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let (mut a, mut b) = (File::open(a)?, File::open(b)?);
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut a, &mut x)?;
        let m = read_full(&mut b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
