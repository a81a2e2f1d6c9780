//! Registry flags shared by `st2pack build`, `merge`, `base-image` and `inspect`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::registry::{Credentials, Reference, RegistryClient, RegistryOptions};

#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Allow plain HTTP (and send credentials over it) to the registries this command names:
    /// --tag, --base, --runtime-image, --cache-from, and the images merged; registries on this
    /// machine (localhost, 127.0.0.0/8) always may.
    #[arg(long)]
    pub insecure: bool,

    /// PEM file with extra CA certificates to trust for registries.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Registry user name; the password is read from stdin (--password-stdin)
    /// [default: credentials from $DOCKER_CONFIG/config.json or ~/.docker/config.json]
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the registry password (or token) for --username from stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,

    /// Seconds a registry may stay silent (connecting, in the TLS handshake, or in the middle of
    /// a request or transfer) before the attempt fails; connecting waits at most 10. Failed
    /// attempts are retried only within twice this time, so a hung registry fails after about
    /// twice SECS.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub registry_timeout: u64,
}

impl RegistryArgs {
    /// A client for `references`: `--insecure` applies to their registries, and the
    /// `--username` credentials to the first one's (the push target).
    pub fn client(&self, references: &[&Reference]) -> Result<RegistryClient, String> {
        let timeout = Duration::from_secs(self.registry_timeout);
        let defaults = RegistryOptions::default();
        let options = RegistryOptions {
            insecure_registries: if self.insecure {
                references
                    .iter()
                    .map(|r| r.registry().to_string())
                    .collect()
            } else {
                Vec::new()
            },
            ca_file: self.ca_file.clone(),
            read_timeout: timeout,
            connect_timeout: defaults.connect_timeout.min(timeout),
            ..defaults
        };
        let mut client = RegistryClient::new(options).map_err(|e| e.to_string())?;
        if let (Some(username), Some(target)) = (&self.username, references.first()) {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .map_err(|e| {
                    format!("--password-stdin: cannot read the password from stdin: {e}")
                })?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            if password.is_empty() {
                return Err("--password-stdin: stdin was empty; pipe the password in, e.g. `echo \"$TOKEN\" | st2pack build --username USER --password-stdin ...`".to_string());
            }
            client.set_credentials(target.registry(), Credentials::from_cli(username, password));
        }
        Ok(client)
    }
}
