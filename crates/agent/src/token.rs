//! `argoexec agent init`: a token for each executor plugin, which the plugin's sidecar reads to
//! authenticate the agent's calls: `/var/run/argo/<plugin>/token`, 32 random characters, the
//! directory made with mode 0770 (it must not exist yet) and the file with 0440, as Argo's agent
//! writes them.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// The characters of Argo's tokens (Kubernetes' `rand.String`: no vowels, no confusable digits).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Characters in a token.
const TOKEN_LEN: usize = 32;

/// Why a token could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The plugin's name is not a plain file name.
    #[error("plugin name {0:?} is not a plain name (ARGO_PLUGIN_NAMES)")]
    BadName(String),
    /// The directory or file could not be made.
    #[error("write the token of plugin {plugin} to {}", path.display())]
    Write {
        /// The plugin.
        plugin: String,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No random bytes.
    #[error("generate a token: {0}")]
    Random(String),
}

/// The token file of `plugin` under `var_run_argo` (`/var/run/argo` in a pod).
pub fn token_path(var_run_argo: &Path, plugin: &str) -> PathBuf {
    var_run_argo.join(plugin).join("token")
}

/// Writes a fresh token for each plugin; returns the files written.
pub fn write_tokens(var_run_argo: &Path, plugins: &[String]) -> Result<Vec<PathBuf>, TokenError> {
    let mut written = Vec::new();
    for plugin in plugins {
        let plain = !plugin.is_empty() && Path::new(plugin).file_name() == Some(plugin.as_ref());
        if !plain {
            return Err(TokenError::BadName(plugin.clone()));
        }
        let path = token_path(var_run_argo, plugin);
        let failed = |path: &Path| {
            let plugin = plugin.clone();
            let path = path.to_owned();
            move |source| TokenError::Write {
                plugin,
                path,
                source,
            }
        };
        let dir = var_run_argo.join(plugin);
        std::fs::DirBuilder::new()
            .mode(0o770)
            .create(&dir)
            .map_err(failed(&dir))?;
        let token = random_token()?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o440)
            .open(&path)
            .and_then(|mut file| file.write_all(token.as_bytes()))
            .map_err(failed(&path))?;
        tracing::info!(plugin, filename = %path.display(), "creating token file for plugin");
        written.push(path);
    }
    Ok(written)
}

/// 32 characters of [`ALPHABET`] from the system's secure random source (aws-lc-rs, through
/// rustls), each drawn without bias.
fn random_token() -> Result<String, TokenError> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut token = String::with_capacity(TOKEN_LEN);
    // 256 is not a multiple of the alphabet's 27 letters: bytes past the last whole multiple
    // are drawn again, so every letter is equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    let mut buf = [0u8; 64];
    while token.len() < TOKEN_LEN {
        provider
            .secure_random
            .fill(&mut buf)
            .map_err(|e| TokenError::Random(format!("{e:?}")))?;
        for byte in buf {
            if usize::from(byte) < limit && token.len() < TOKEN_LEN {
                token.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn tokens_are_written_as_argo_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["hello".to_owned(), "other".to_owned()];
        let written = write_tokens(dir.path(), &names).unwrap();
        assert_eq!(written.len(), 2);
        let token = std::fs::read_to_string(&written[0]).unwrap();
        assert_eq!(token.len(), 32);
        assert!(token.bytes().all(|b| ALPHABET.contains(&b)), "{token}");
        assert_ne!(token, std::fs::read_to_string(&written[1]).unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&written[0]), 0o440);
        assert_eq!(mode(&dir.path().join("hello")), 0o770 & !umask());
        // As Argo's os.Mkdir: a second init fails.
        assert!(write_tokens(dir.path(), &names[..1]).is_err());
        assert!(matches!(
            write_tokens(dir.path(), &["../x".to_owned()]),
            Err(TokenError::BadName(_))
        ));
    }

    /// The process umask's effect on 0770 (tests may run under 022 or 002).
    fn umask() -> u32 {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::DirBuilder::new()
            .mode(0o777)
            .create(&probe)
            .unwrap();
        0o777 & !(std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777)
    }
}
