//! Cross-repository blob mounts: `POST /v2/<target>/blobs/uploads/?mount=<digest>&from=<source>`,
//! so that a base image's layers already on the registry are linked, not uploaded again.
//!
//! With basic authentication oci-client's own mount call does it. A token registry, though,
//! mounts only with a token that grants `pull` on the source repository as well as `push` on the
//! target; oci-client asks for the target's scope alone, and the registry then quietly starts an
//! ordinary upload instead (`202`). So for token registries the token is asked for here with both
//! scopes, as docker does, and the mount request is made with it.

use serde::Deserialize;

use super::auth::CredentialKind;
use super::challenge::TokenService;
use super::reference::Reference;
use super::session::Session;

/// A token service's answer; registries use either name.
#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

impl Session {
    /// Mounts `digest` from the repository of `from` into that of `target`. `false` when the
    /// registry would not (the blob is not there, no access to the source, mounts not
    /// supported): the caller uploads the blob instead, so no error is worth more than that.
    pub(crate) async fn mount_blob(
        &self,
        target: &Reference,
        from: &Reference,
        digest: &str,
    ) -> bool {
        match &self.token_service {
            None => self
                .oci
                .mount_blob(&target.to_oci(), &from.to_oci(), digest)
                .await
                .is_ok(),
            Some(token_service) => {
                let token = match &self.credentials.kind {
                    // A ready-made token is all there is: it grants what it grants.
                    CredentialKind::Bearer(token) => token.expose().to_string(),
                    CredentialKind::Basic { .. } | CredentialKind::Anonymous => {
                        let token = self.mount_token(token_service, target, from).await;
                        let Some(token) = token else {
                            return false;
                        };
                        token
                    }
                };
                self.mount_with_token(&token, target, from, digest).await
            }
        }
    }

    /// A token for pushing to `target` and pulling from `from`, with this session's login.
    async fn mount_token(
        &self,
        token_service: &TokenService,
        target: &Reference,
        from: &Reference,
    ) -> Option<String> {
        let mut query = vec![
            (
                "scope",
                format!("repository:{}:pull,push", target.repository()),
            ),
            ("scope", format!("repository:{}:pull", from.repository())),
        ];
        if let Some(service) = &token_service.service {
            query.push(("service", service.clone()));
        }
        let mut request = self.http.get(&token_service.realm).query(&query);
        // The realm was checked when the session opened: HTTPS, or a host trusted with it.
        if let CredentialKind::Basic { username, password } = &self.credentials.kind {
            request = request.basic_auth(username, Some(password.expose()));
        }
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let answer: TokenAnswer = serde_json::from_str(&response.text().await.ok()?).ok()?;
        answer.token.or(answer.access_token)
    }

    async fn mount_with_token(
        &self,
        token: &str,
        target: &Reference,
        from: &Reference,
        digest: &str,
    ) -> bool {
        let url = format!(
            "{}/v2/{}/blobs/uploads/",
            self.base_url,
            target.repository()
        );
        let response = self
            .http
            .post(&url)
            .query(&[("mount", digest), ("from", from.repository())])
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .send()
            .await;
        let Ok(response) = response else {
            return false;
        };
        if response.status() == reqwest::StatusCode::CREATED {
            return true;
        }
        // Not mounted, but an upload session was opened for us: cancel it rather than leave it
        // for the registry to expire.
        if response.status() == reqwest::StatusCode::ACCEPTED
            && let Some(location) = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
        {
            // Only on this registry: the token goes with the request.
            let session_url = if location.starts_with('/') {
                Some(format!("{}{location}", self.base_url))
            } else {
                location
                    .starts_with(&format!("{}/", self.base_url))
                    .then(|| location.to_string())
            };
            if let Some(session_url) = session_url {
                let _ = self
                    .http
                    .delete(session_url)
                    .bearer_auth(token)
                    .send()
                    .await;
            }
        }
        false
    }
}
