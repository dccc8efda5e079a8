//! Credentials read from files (Kubernetes Secret mounts:
//! `access_key_id_file`, `secret_access_key_file`, `session_token_file`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, error::CredentialsError, future};
use aws_sdk_s3::config::Credentials;

use super::error::S3Error;

/// Credentials read from files, re-read whenever the SDK's identity cache
/// expires them (every 5 minutes), so rotation needs no restart.
#[derive(Debug, Clone)]
pub(super) struct FileCredentials {
    /// The file holding the access key id.
    pub(super) access_key_id: PathBuf,
    /// The file holding the secret access key.
    pub(super) secret_access_key: PathBuf,
    /// The file holding a session token, if any.
    pub(super) session_token: Option<PathBuf>,
}

/// How long credentials read from files are used before they are read again.
const REREAD_AFTER: Duration = Duration::from_secs(300);

impl FileCredentials {
    fn read(path: &Path) -> Result<String, S3Error> {
        let text = std::fs::read_to_string(path).map_err(|e| S3Error::Credentials {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(text.trim().to_string())
    }

    fn load(&self) -> Result<Credentials, S3Error> {
        let token = self.session_token.as_deref().map(Self::read).transpose()?;
        Ok(Credentials::new(
            Self::read(&self.access_key_id)?,
            Self::read(&self.secret_access_key)?,
            token,
            Some(SystemTime::now() + REREAD_AFTER),
            "barman-cloud-exporter-files",
        ))
    }
}

impl ProvideCredentials for FileCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(self.load().map_err(CredentialsError::not_loaded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_trimmed_files_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let (ak, sk) = (dir.path().join("ak"), dir.path().join("sk"));
        std::fs::write(&ak, "AKID\n").unwrap();
        std::fs::write(&sk, " secret \n").unwrap();
        let files = FileCredentials {
            access_key_id: ak,
            secret_access_key: sk,
            session_token: None,
        };
        let c = files.load().unwrap();
        assert_eq!((c.access_key_id(), c.secret_access_key()), ("AKID", "secret"));
        let missing = FileCredentials {
            session_token: Some(dir.path().join("nope")),
            ..files
        };
        let e = missing.load().unwrap_err();
        assert!(
            matches!(e, S3Error::Credentials { .. }) && e.to_string().contains("nope"),
            "{e}"
        );
    }
}
