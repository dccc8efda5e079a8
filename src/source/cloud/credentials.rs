//! Azure credentials as CloudNativePG's `azureCredentials` and barman give
//! them: a connection string, a shared key or a SAS token, from a file (a
//! Secret mount, re-read every 5 minutes so rotation needs no restart) or
//! from the environment names barman reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::CredentialProvider;
use object_store::azure::{AzureAccessKey, AzureCredential, split_sas};
use thiserror::Error;

/// How long a credential read from a file is used before it is read again.
pub const REREAD_AFTER: Duration = Duration::from_secs(300);

/// A credential file could not be used. Names the file, never its content.
#[derive(Debug, Clone, Error)]
#[error("credentials file {}: {message}", path.display())]
pub struct CredentialFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// The fields of an Azure Storage connection string
/// (`Key=Value;Key=Value`, keys case-insensitive, as Azure's SDKs read it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionString {
    fields: BTreeMap<String, String>,
}

impl ConnectionString {
    /// Parses `s`; empty segments are skipped, a value keeps any `=` after
    /// the first.
    ///
    /// # Errors
    /// A segment without `=` (the message names its key part, never a value).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut fields = BTreeMap::new();
        for part in s.trim().split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err("a connection string segment has no '='".to_string());
            };
            fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        Ok(Self { fields })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The Blob service endpoint: `BlobEndpoint`, else
    /// `<DefaultEndpointsProtocol>://<AccountName>.blob.<EndpointSuffix>`
    /// (https, `core.windows.net` by default); `None` without an account.
    pub fn blob_endpoint(&self) -> Option<String> {
        if let Some(e) = self.get("BlobEndpoint") {
            return Some(e.trim_end_matches('/').to_string());
        }
        let account = self.get("AccountName")?;
        let proto = self.get("DefaultEndpointsProtocol").unwrap_or("https");
        let suffix = self.get("EndpointSuffix").unwrap_or("core.windows.net");
        Some(format!("{proto}://{account}.blob.{suffix}"))
    }

    /// The account name, if given.
    pub fn account(&self) -> Option<&str> {
        self.get("AccountName")
    }

    /// The credential: `AccountKey` (shared key) or `SharedAccessSignature`.
    ///
    /// # Errors
    /// Neither is present, or the key is not base64, or the SAS does not parse.
    pub fn credential(&self) -> Result<AzureCredential, String> {
        if let Some(key) = self.get("AccountKey") {
            return access_key(key);
        }
        if let Some(sas) = self.get("SharedAccessSignature") {
            return sas_token(sas);
        }
        Err("the connection string has neither AccountKey nor SharedAccessSignature".to_string())
    }
}

/// A shared key credential.
///
/// # Errors
/// The key is not base64 (the message does not echo it).
pub fn access_key(key: &str) -> Result<AzureCredential, String> {
    AzureAccessKey::try_new(key.trim())
        .map(AzureCredential::AccessKey)
        .map_err(|_| "the account key is not valid base64".to_string())
}

/// A SAS token credential (with or without a leading `?`).
///
/// # Errors
/// The token does not parse as a query string.
pub fn sas_token(token: &str) -> Result<AzureCredential, String> {
    split_sas(token.trim().trim_start_matches('?'))
        .map(AzureCredential::SASToken)
        .map_err(|_| "the SAS token does not parse".to_string())
}

/// What a credential file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A connection string (`azure_connection_string_file`).
    ConnectionString,
    /// A shared key (`azure_storage_key_file`).
    Key,
    /// A SAS token (`azure_sas_token_file`).
    Sas,
}

/// An Azure credential read from a file, cached for [`REREAD_AFTER`].
#[derive(Debug)]
pub struct FileCredential {
    path: PathBuf,
    kind: FileKind,
    cached: Mutex<Option<(Instant, Arc<AzureCredential>)>>,
}

impl FileCredential {
    /// A provider reading `path` as `kind`.
    pub fn new(path: PathBuf, kind: FileKind) -> Self {
        Self {
            path,
            kind,
            cached: Mutex::new(None),
        }
    }

    /// Reads the file now.
    ///
    /// # Errors
    /// The file cannot be read or its content is not a credential of its kind.
    pub fn load(&self) -> Result<AzureCredential, CredentialFileError> {
        let err = |message: String| CredentialFileError {
            path: self.path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&self.path).map_err(|e| err(e.to_string()))?;
        match self.kind {
            FileKind::ConnectionString => ConnectionString::parse(&text).and_then(|c| c.credential()),
            FileKind::Key => access_key(&text),
            FileKind::Sas => sas_token(&text),
        }
        .map_err(err)
    }
}

#[async_trait::async_trait]
impl CredentialProvider for FileCredential {
    type Credential = AzureCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AzureCredential>> {
        if let Ok(c) = self.cached.lock()
            && let Some((at, cred)) = c.as_ref()
            && at.elapsed() < REREAD_AFTER
        {
            return Ok(cred.clone());
        }
        let cred = Arc::new(self.load().map_err(|e| object_store::Error::Generic {
            store: "MicrosoftAzure",
            source: Box::new(e),
        })?);
        if let Ok(mut c) = self.cached.lock() {
            *c = Some((Instant::now(), cred.clone()));
        }
        Ok(cred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn connection_strings_as_azure_sdks_read_them() {
        let azurite = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
        );
        let c = ConnectionString::parse(&azurite).unwrap();
        assert_eq!(
            c.blob_endpoint().as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        assert_eq!(c.account(), Some("devstoreaccount1"));
        assert!(matches!(c.credential(), Ok(AzureCredential::AccessKey(_))));
        let cloud = ConnectionString::parse(
            "accountname=acct;endpointsuffix=core.chinacloudapi.cn;SharedAccessSignature=sv=2024&sig=abc%3D",
        )
        .unwrap();
        assert_eq!(
            cloud.blob_endpoint().as_deref(),
            Some("https://acct.blob.core.chinacloudapi.cn")
        );
        match cloud.credential() {
            Ok(AzureCredential::SASToken(pairs)) => assert!(pairs.contains(&("sig".into(), "abc=".into()))),
            other => panic!("{other:?}"),
        }
        assert!(ConnectionString::parse("AccountName=a;junk").is_err());
        let none = ConnectionString::parse("AccountName=a")
            .unwrap()
            .credential()
            .unwrap_err();
        assert!(none.contains("neither"), "{none}");
    }

    #[test]
    fn files_are_read_and_errors_never_echo_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, format!("{KEY}\n")).unwrap();
        assert!(matches!(
            FileCredential::new(key.clone(), FileKind::Key).load(),
            Ok(AzureCredential::AccessKey(_))
        ));
        std::fs::write(&key, "not-base64-s3cr3t!").unwrap();
        let e = FileCredential::new(key, FileKind::Key).load().unwrap_err().to_string();
        assert!(e.contains("base64") && !e.contains("s3cr3t"), "{e}");
        let sas = dir.path().join("sas");
        std::fs::write(&sas, "?sv=2024-01-01&sp=rl&sig=x%2By").unwrap();
        assert!(matches!(
            FileCredential::new(sas, FileKind::Sas).load(),
            Ok(AzureCredential::SASToken(p)) if p.len() == 3
        ));
        let missing = FileCredential::new(dir.path().join("nope"), FileKind::ConnectionString)
            .load()
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope"), "{missing}");
    }
}
