//! What the differential suite compares: a run's observable outcome as named fields (phase, exit
//! codes, message, outputs, every artifact's location and stored file tree, the WorkflowTaskResult
//! minus names, uids and timestamps), and the table of the differences that are deliberate.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use serde_json::Value;

/// A deliberate difference: `(fixture or "*", field, why)`. Every other difference fails.
pub(crate) type Deliberate = (&'static str, &'static str, &'static str);

/// Why a v3 task result's owner differs.
const V3_OWNER_KIND: &str = "a v3 task result is owned by the pod: ours names its kind Pod, as \
     the API has it; Argo v3.3.8 writes the resource's name, pods (v4 results are owned by the \
     Workflow, alike in both)";

/// Why a secret file ending in a newline differs.
const NEWLINE_SECRET: &str = "a Secret's file ending in a newline (as `kubectl create secret \
     --from-file` of an edited file has it): Argo sends the key with the newline and the upload \
     fails (invalid Authorization header; Error, wait exit 64); ours trims surrounding whitespace \
     from credentials, so the artifact is saved";

/// The differences between Argo's executor (v4.0.5) and ours that are on purpose.
pub(crate) const DELIBERATE: &[Deliberate] = &[
    (
        "*",
        "* sha256",
        "ours records the stored object's SHA-256 with the artifact (an extension: Argo's \
         controller ignores unknown fields and a structural CRD schema prunes them)",
    ),
    (
        "*",
        "* size",
        "ours records the stored object's size with the artifact (same extension as sha256)",
    ),
    (
        "*",
        "* stored modes",
        "Argo's emissary runs the command with umask 0, so what main creates is 0666 (files) and \
         0777 (directories); ours leaves the container's own umask (0022 here) to the command, as \
         the image sets it. Modes set explicitly (0600, 0755) and symlinks are kept alike. In a \
         zip Argo writes neither permission bits nor directory entries; ours writes both",
    ),
    (
        "v4-archives.yaml",
        "artifact zipped stored",
        "Argo zips a base-image path from the directory it untarred the emissary's tarball into, \
         named after the artifact (zipped/z.txt); ours names the root after the path, as Argo \
         itself does for a path on a volume (zipme/z.txt). The files and contents are the same",
    ),
    (
        "output-volume.yaml",
        "taskResult metadata.ownerReferences",
        V3_OWNER_KIND,
    ),
    (
        "hello-world-result.yaml",
        "taskResult metadata.ownerReferences",
        V3_OWNER_KIND,
    ),
    (
        "failing-main.yaml",
        "taskResult metadata.ownerReferences",
        V3_OWNER_KIND,
    ),
    (
        "deadline-exceeded.yaml",
        "taskResult metadata.ownerReferences",
        V3_OWNER_KIND,
    ),
    (
        "v4-large-result.yaml",
        "outputs.result",
        "a script result over 256 KiB: Argo keeps only its last 256 KiB (silently losing the \
         start); ours saves no result and fails the step saying so",
    ),
    (
        "v4-large-result.yaml",
        "phase",
        "the refused result (see outputs.result) is wait's error: Error, where Argo succeeds",
    ),
    (
        "v4-large-result.yaml",
        "exit code of wait",
        "the refused result (see outputs.result) makes wait exit 64",
    ),
    (
        "v4-large-result.yaml",
        "message",
        "the refused result (see outputs.result) is the step's message",
    ),
    (
        "v4-outputs.yaml, secret files ending in a newline",
        "artifact report",
        NEWLINE_SECRET,
    ),
    (
        "v4-outputs.yaml, secret files ending in a newline",
        "artifact report stored",
        NEWLINE_SECRET,
    ),
    (
        "v4-outputs.yaml, secret files ending in a newline",
        "bucket keys",
        NEWLINE_SECRET,
    ),
    (
        "v4-outputs.yaml, secret files ending in a newline",
        "exit code of wait",
        NEWLINE_SECRET,
    ),
    (
        "v4-outputs.yaml, secret files ending in a newline",
        "message",
        NEWLINE_SECRET,
    ),
    (
        "v4-outputs.yaml, secret files ending in a newline",
        "phase",
        NEWLINE_SECRET,
    ),
    (
        "v4-missing-artifact.yaml",
        "message",
        "both fail the step (Error, wait exit 64); ours names the artifact and the path in main, \
         where Argo names the emissary's staging file under /var/run/argo",
    ),
];

/// One run's fields, by name, each rendered as text.
pub(crate) type Fields = BTreeMap<String, String>;

/// The objects of a bucket after a run: key → bytes.
pub(crate) type Objects = BTreeMap<String, Vec<u8>>;

/// The fields of a run: its JSON report (`argoexec run --output json`, with the task result) and
/// what its bucket held after it, the seeded inputs left out.
pub(crate) fn fields(report: &Value, objects: &Objects, seeded: &[&str]) -> Fields {
    let mut out = Fields::new();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    out.insert("phase".into(), text(&report["phase"]));
    out.insert("exitCode".into(), text(&report["exitCode"]));
    out.insert("message".into(), text(&report["message"]));
    for c in report["containers"].as_array().into_iter().flatten() {
        out.insert(
            format!("exit code of {}", text(&c["name"])),
            text(&c["exitCode"]),
        );
    }
    let outputs = &report["outputs"];
    if let Some(map) = outputs.as_object() {
        for (key, value) in map {
            if key != "parameters" && key != "artifacts" {
                out.insert(format!("outputs.{key}"), text(value));
            }
        }
    } else {
        out.insert("outputs".into(), text(outputs));
    }
    for p in outputs["parameters"].as_array().into_iter().flatten() {
        out.insert(format!("parameter {}", text(&p["name"])), p.to_string());
    }
    for a in outputs["artifacts"].as_array().into_iter().flatten() {
        let name = text(&a["name"]);
        let mut a = a.clone();
        for extra in ["sha256", "size"] {
            let value = a.as_object_mut().and_then(|f| f.remove(extra));
            out.insert(
                format!("artifact {name} {extra}"),
                value.map_or_else(|| "-".into(), |v| text(&v)),
            );
        }
        out.insert(format!("artifact {name}"), a.to_string());
        if let Some(key) = a.pointer("/s3/key").and_then(Value::as_str) {
            let (files, modes) = stored(objects, key);
            out.insert(format!("artifact {name} stored"), files);
            out.insert(format!("artifact {name} stored modes"), modes);
        }
    }
    let uploaded: Vec<&str> = objects
        .keys()
        .map(String::as_str)
        .filter(|k| !seeded.iter().any(|s| k.starts_with(s)))
        .collect();
    out.insert("bucket keys".into(), uploaded.join(" "));
    match report.get("taskResult") {
        Some(result) => {
            for (key, value) in task_result(result) {
                out.insert(format!("taskResult {key}"), value);
            }
        }
        None => {
            out.insert("taskResult".into(), "-".into());
        }
    }
    out
}

/// The WorkflowTaskResult by part, its outputs left to the outputs' rows (the report's outputs
/// are read from it) and what names, uids and timestamps the server or run gives removed.
fn task_result(result: &Value) -> BTreeMap<String, String> {
    let mut result = result.clone();
    if let Some(meta) = result["metadata"].as_object_mut() {
        for key in [
            "name",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(key);
        }
    }
    // A pod owner's uid is the run's own (a fixture without one gets a new one each run).
    for owner in result
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if owner["apiVersion"] == "v1" {
            owner["uid"] = Value::from("(the pod's)");
        }
    }
    let mut out = BTreeMap::new();
    for (key, value) in result.as_object().into_iter().flatten() {
        match (key.as_str(), value.as_object()) {
            ("outputs", _) => {}
            ("metadata", Some(meta)) => {
                for (k, v) in meta {
                    out.insert(format!("metadata.{k}"), v.to_string());
                }
            }
            _ => {
                out.insert(key.clone(), value.to_string());
            }
        }
    }
    out
}

/// The object at `key` (or the objects under it, for an unarchived directory) as a file tree:
/// tar, tar.gz and zip archives unpacked, since their bytes differ between writers. Two texts:
/// the files and symlinks with their content, and every entry's permission bits.
fn stored(objects: &Objects, key: &str) -> (String, String) {
    let entries = match objects.get(key) {
        Some(bytes) => tree(bytes),
        None => {
            let prefix = format!("{}/", key.trim_end_matches('/'));
            let under: Vec<Entry> = objects
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(&prefix).map(|rel| Entry {
                        path: rel.to_owned(),
                        mode: "-".into(),
                        what: format!("file {}", content(v)),
                    })
                })
                .collect();
            if under.is_empty() {
                return ("no object".into(), "-".into());
            }
            under
        }
    };
    let files: Vec<String> = entries
        .iter()
        .filter(|e| e.what != "dir")
        .map(|e| format!("{} {}", e.path, e.what))
        .collect();
    let modes: Vec<String> = entries
        .iter()
        .map(|e| format!("{} {}", e.path, e.mode))
        .collect();
    (files.join("; "), modes.join("; "))
}

/// One entry of a stored tree: `what` is `dir`, `file <content>` or `symlink -> <target>`;
/// `mode` the permission bits in octal, `-` when the archive has none.
struct Entry {
    path: String,
    mode: String,
    what: String,
}

/// An archive's entries (sorted; the first names the format), or a raw file's content.
fn tree(bytes: &[u8]) -> Vec<Entry> {
    let format = |name: &str| Entry {
        path: format!("({name})"),
        mode: "-".into(),
        what: name.into(),
    };
    let mut entries = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        if flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .is_err()
        {
            return vec![format("unreadable gzip")];
        }
        let mut entries = tar_entries(&raw);
        entries.insert(0, format("tar.gz"));
        entries
    } else if bytes.starts_with(b"PK\x03\x04") {
        let mut entries = zip_entries(bytes);
        entries.insert(0, format("zip"));
        entries
    } else if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
        let mut entries = tar_entries(bytes);
        entries.insert(0, format("tar"));
        entries
    } else {
        vec![Entry {
            path: "(file)".into(),
            mode: "-".into(),
            what: format!("file {}", content(bytes)),
        }]
    };
    entries[1..].sort_by(|a, b| a.path.cmp(&b.path));
    entries
}

fn unreadable(what: &str) -> Entry {
    Entry {
        path: format!("({what})"),
        mode: "-".into(),
        what: what.into(),
    }
}

fn tar_entries(bytes: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(bytes);
    let Ok(entries) = archive.entries() else {
        return vec![unreadable("unreadable tar")];
    };
    let mut out = Vec::new();
    for entry in entries {
        let Ok(mut entry) = entry else {
            out.push(unreadable("unreadable entry"));
            break;
        };
        let path = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mode = entry.header().mode().unwrap_or_default() & 0o7777;
        let kind = entry.header().entry_type();
        let what = if kind.is_symlink() {
            let target = entry
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            format!("symlink -> {target}")
        } else if kind.is_dir() {
            "dir".into()
        } else {
            let mut data = Vec::new();
            let _ = entry.read_to_end(&mut data);
            format!("file {}", content(&data))
        };
        out.push(Entry {
            path: path.trim_end_matches('/').to_owned(),
            mode: format!("{mode:o}"),
            what,
        });
    }
    out
}

fn zip_entries(bytes: &[u8]) -> Vec<Entry> {
    let Ok(mut archive) = zip::ZipArchive::new(std::io::Cursor::new(bytes)) else {
        return vec![unreadable("unreadable zip")];
    };
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let Ok(mut file) = archive.by_index(i) else {
            out.push(unreadable("unreadable entry"));
            continue;
        };
        let name = file
            .name()
            .map(|n| n.trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let mode = file
            .unix_mode()
            .map_or("-".into(), |m| format!("{:o}", m & 0o7777));
        let what = if file.is_dir() {
            "dir".to_owned()
        } else {
            let mut data = Vec::new();
            let _ = file.read_to_end(&mut data);
            format!("file {}", content(&data))
        };
        out.push(Entry {
            path: name,
            mode,
            what,
        });
    }
    out
}

/// A file's content for the table: its text when short, else its length.
fn content(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.len() <= 80 => format!("{text:?}"),
        _ => format!("<{} bytes>", bytes.len()),
    }
}

/// The objects of `bucket` (a folder of s3s-fs's store), by key.
pub(crate) fn objects(bucket: &Path) -> Objects {
    let mut out = Objects::new();
    let mut stack = vec![bucket.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(bucket) {
                let key = rel.display().to_string();
                // s3s-fs keeps its own metadata next to the objects.
                if !key.starts_with('.') && !key.contains("/.") {
                    out.insert(key, std::fs::read(&path).unwrap_or_default());
                }
            }
        }
    }
    out
}

/// One row of the table.
pub(crate) struct Row {
    pub(crate) field: String,
    pub(crate) argo: String,
    pub(crate) ours: String,
    /// `same`, `deliberate: <why>` or `DIFFERENT`.
    pub(crate) verdict: String,
    /// A difference not in [`DELIBERATE`].
    pub(crate) fails: bool,
}

/// Every field of either run, with its verdict.
pub(crate) fn compare(fixture: &str, argo: &Fields, ours: &Fields) -> Vec<Row> {
    let mut names: Vec<&String> = argo.keys().chain(ours.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|field| {
            let a = argo
                .get(field)
                .cloned()
                .unwrap_or_else(|| "(absent)".into());
            let o = ours
                .get(field)
                .cloned()
                .unwrap_or_else(|| "(absent)".into());
            let deliberate = DELIBERATE.iter().find(|(f, pattern, _)| {
                (*f == "*" || *f == fixture) && matches_field(pattern, field)
            });
            let (verdict, fails) = match deliberate {
                _ if a == o => ("same".to_owned(), false),
                Some((_, _, why)) => (format!("deliberate: {why}"), false),
                None => ("DIFFERENT".to_owned(), true),
            };
            Row {
                field: field.clone(),
                argo: a,
                ours: o,
                verdict,
                fails,
            }
        })
        .collect()
}

/// A field pattern: the field itself, or `*suffix` for every field ending in `suffix`.
fn matches_field(pattern: &str, field: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => field.ends_with(suffix),
        None => pattern == field,
    }
}

/// The table, as printed: `fixture | field | Argo | ours | verdict`.
pub(crate) fn render(fixture: &str, rows: &[Row]) -> String {
    let cell = |text: &str| {
        let text = text.replace('|', "\\|").replace('\n', "\\n");
        match text.char_indices().nth(160) {
            Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
            None => text,
        }
    };
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!(
            "| {fixture} | {} | {} | {} | {} |\n",
            r.field,
            cell(&r.argo),
            cell(&r.ours),
            r.verdict
        ));
    }
    out
}
