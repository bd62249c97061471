//! The local report of `argoexec run`: the report as JSON in a file, whole or not at all.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt as _;

use crate::reporter::{ReportError, Reporter, StepReport};

/// Writes the report as JSON to a file, whole or not at all (`ARGOEXEC_REPORT_FILE`, set by
/// `argoexec run`): into a hidden file beside it, synced, then renamed into place, so a reader
/// never sees half a report.
#[derive(Debug, Clone)]
pub struct FileReporter {
    path: PathBuf,
}

impl FileReporter {
    /// A reporter writing to `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
        }
    }

    /// The hidden file the report is written to before it is renamed into place.
    fn partial(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = self.path.parent().unwrap_or(Path::new("/"));
        parent.join(format!(".{name}.partial-{}", std::process::id()))
    }
}

impl Reporter for FileReporter {
    async fn report(&self, report: &StepReport) -> Result<(), ReportError> {
        let json = serde_json::to_vec_pretty(report).map_err(ReportError::Serialise)?;
        let partial = self.partial();
        let written = async {
            if let Some(parent) = self.path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let mut file = tokio::fs::File::create(&partial).await?;
            file.write_all(&json).await?;
            file.sync_all().await?;
            tokio::fs::rename(&partial, &self.path).await
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        written.map_err(|source| ReportError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_the_whole_report_and_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/report.json");
        let reporter = FileReporter::new(&path);
        let report = StepReport {
            message: Some("failed".into()),
            ..StepReport::default()
        };
        reporter.report(&report).await.unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(written["message"], "failed");
        assert!(written.get("progress").is_none());
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["report.json"]);
    }

    #[tokio::test]
    async fn a_report_that_cannot_be_written_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the report's directory should be.
        std::fs::write(dir.path().join("file"), "").unwrap();
        let path = dir.path().join("file/report.json");
        let error = FileReporter::new(&path)
            .report(&StepReport::default())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("report.json"), "{error}");
    }
}
