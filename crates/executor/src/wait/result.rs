//! The script result (`outputs.result`): main's standard output, whole or refused.

use argoexec_runtime::{ContainerRuntime, LogStream};
use argoexec_storage::Secrets;
use argoexec_template::{Template, TemplateKind};
use futures::StreamExt as _;

use super::error::WaitError;
use super::step::Step;

/// The most bytes `outputs.result` may hold: Argo's annotation-size limit. Argo keeps the last
/// 256 KiB silently; we refuse and say so.
pub const MAX_RESULT_BYTES: usize = 256 * 1024;

/// Whether the template runs a container whose stdout can be a result (Argo's `HasOutput`).
pub(super) fn has_output(template: &Template) -> bool {
    matches!(
        template.kind(),
        Some(
            TemplateKind::Container
                | TemplateKind::ContainerSet
                | TemplateKind::Script
                | TemplateKind::Data
        )
    )
}

/// Main's standard output, one trailing newline stripped; refused over [`MAX_RESULT_BYTES`].
pub(super) async fn capture_result<R: ContainerRuntime, S: Secrets>(
    step: &Step<'_, R, S>,
) -> Result<String, WaitError> {
    tracing::info!("Capturing script output");
    let mut stream = step
        .runtime
        .logs(step.main(), LogStream::Stdout)
        .await
        .map_err(WaitError::CaptureResult)?;
    // Keep at most the limit plus a newline; count the rest, so the error can say how big it was.
    let mut kept = Vec::new();
    let mut size: u64 = 0;
    let mut last = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(WaitError::ReadResult)?;
        size += chunk.len() as u64;
        last = chunk.last().copied().or(last);
        let room = (MAX_RESULT_BYTES + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    if last == Some(b'\n') {
        size -= 1;
        if kept.len() as u64 > size {
            kept.pop();
        }
    }
    if size > MAX_RESULT_BYTES as u64 {
        return Err(WaitError::ResultTooLarge {
            size,
            limit: MAX_RESULT_BYTES,
        });
    }
    Ok(String::from_utf8_lossy(&kept).into_owned())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Pod, script};
    use super::*;

    #[tokio::test]
    async fn an_oversized_result_is_refused_not_truncated() {
        let big = "x".repeat(MAX_RESULT_BYTES + 1) + "\n";
        let pod = Pod::new(&big);
        pod.runtime.exit("main", 0);
        let outcome = pod
            .wait(script(serde_json::json!({})), &pod.options())
            .await;
        assert!(outcome.report.outputs.result.is_none());
        let message = outcome.report.message.unwrap();
        assert!(message.contains("262145 bytes"), "{message}");
        // Exactly at the limit (plus the stripped newline) is fine.
        let pod = Pod::new(&("y".repeat(MAX_RESULT_BYTES) + "\n"));
        pod.runtime.exit("main", 0);
        let outcome = pod
            .wait(script(serde_json::json!({})), &pod.options())
            .await;
        assert_eq!(
            outcome.report.outputs.result.map(|r| r.len()),
            Some(MAX_RESULT_BYTES)
        );
    }
}
