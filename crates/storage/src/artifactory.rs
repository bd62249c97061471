//! Files in Artifactory: fetched with GET, saved with PUT, with basic auth from two secrets. The
//! key is the file's URL. Artifactory speaks plain HTTP for single files, so this is the
//! [`Http`](crate::Http) driver with fixed credentials and its own name in messages.

use argoexec_template::ArtifactoryArtifact;

use crate::driver::{ByteStream, Driver, Error, Secrets};
use crate::http::Http;

/// A file in Artifactory.
#[derive(Debug, Clone)]
pub struct Artifactory {
    http: Http,
}

impl Artifactory {
    /// The driver for an Artifactory location; the user name and password are read now.
    pub async fn from_location<S: Secrets>(
        location: &ArtifactoryArtifact,
        secrets: &S,
    ) -> Result<Self, Error> {
        let (Some(user), Some(password)) = (&location.username_secret, &location.password_secret)
        else {
            return Err(Error::Location {
                driver: "artifactory",
                reason: "usernameSecret and passwordSecret must both be set".into(),
            });
        };
        let read = async |name: &str, key: &str| -> Result<String, Error> {
            let bytes = secrets.get(name, key).await?;
            Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
        };
        let username = read(&user.name, &user.key).await?;
        let password = read(&password.name, &password.key).await?;
        Ok(Self {
            http: Http::with_basic_auth("artifactory", username, Some(password))?,
        })
    }
}

impl Driver for Artifactory {
    fn name(&self) -> &'static str {
        "artifactory"
    }

    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        self.http.get(key).await
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<(), Error> {
        self.http.put(key, body).await
    }
}
