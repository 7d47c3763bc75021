//! Docker credential helpers (`credsStore`, `credHelpers` in config.json): after
//! `docker login` with a helper configured, the secret lives in the helper's store
//! (pass, secretservice, ecr-login, gcloud, ...) and config.json only names the helper.
//! Protocol: run `docker-credential-<name> get`, write the server URL on its stdin, read
//! `{"ServerURL","Username","Secret"}` from its stdout; a non-zero exit whose output says
//! "credentials not found" means no credentials for that server.

use std::io::Write;
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::auth::Credentials;
use super::wire::Creds;

/// What a helper answered.
#[derive(Debug, Deserialize)]
struct HelperReply {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The user name with which helpers mark an identity token (an OAuth2 refresh token,
/// exchanged by [`super::identity_token`]).
const IDENTITY_TOKEN_USER: &str = "<token>";

/// The server URL helpers are asked about: docker's historical URL for Docker Hub, the
/// `host[:port]` for any other registry.
pub fn server_url(registry: &str) -> String {
    if registry == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

fn program(name: &str) -> String {
    format!("docker-credential-{name}")
}

/// Runs `docker-credential-NAME ACTION` with `input` on its stdin. The outer error: it
/// could not run (named); the inner result: its stdout when it succeeded, else what it
/// said (its stdout and stderr, or its exit status when it said nothing).
fn call(name: &str, action: &str, input: &[u8]) -> Result<Result<String, String>, String> {
    let program = program(name);
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("credential helper {program} is not in PATH"),
            _ => format!("cannot run credential helper {program}: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its exit status below.
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("credential helper {program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(Ok(stdout));
    }
    let said = format!(
        "{} {}",
        stdout.trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let said = said.trim();
    Ok(Err(if said.is_empty() {
        out.status.to_string()
    } else {
        said.to_string()
    }))
}

/// The first line of what a failed helper said, for a one-line error.
fn first_line(said: &str) -> &str {
    said.lines().next().unwrap_or(said)
}

/// Stores `user`/`secret` for `registry` (normalized host) in helper `name`.
pub fn store(name: &str, registry: &str, user: &str, secret: &str) -> Result<(), String> {
    let input = serde_json::json!({
        "ServerURL": server_url(registry),
        "Username": user,
        "Secret": secret,
    });
    call(name, "store", input.to_string().as_bytes())?
        .map(drop)
        .map_err(|said| {
            format!(
                "credential helper {} store failed: {}",
                program(name),
                first_line(&said)
            )
        })
}

/// Removes the credentials of `registry` from helper `name` (absent ones are fine).
pub fn erase(name: &str, registry: &str) -> Result<(), String> {
    match call(name, "erase", server_url(registry).as_bytes())? {
        Err(said) if said.to_ascii_lowercase().contains("not found") => Ok(()),
        Err(said) => Err(format!(
            "credential helper {} erase failed: {}",
            program(name),
            first_line(&said)
        )),
        Ok(_) => Ok(()),
    }
}

/// Asks helper `name` for the credentials of `registry` (normalized host). Errors are
/// one-line messages naming the helper.
pub fn get(name: &str, registry: &str) -> Result<Option<Credentials>, String> {
    let program = program(name);
    let stdout = match call(name, "get", server_url(registry).as_bytes())? {
        Ok(stdout) => stdout,
        Err(said) if said.to_ascii_lowercase().contains("credentials not found") => {
            return Ok(None)
        }
        Err(said) => {
            return Err(format!(
                "credential helper {program} failed for {registry}: {}",
                first_line(&said)
            ))
        }
    };
    let reply: HelperReply = serde_json::from_str(stdout.trim()).map_err(|e| {
        format!("credential helper {program} answered for {registry} with invalid JSON: {e}")
    })?;
    if reply.username == IDENTITY_TOKEN_USER {
        return Ok(Some(Credentials::IdentityToken(reply.secret)));
    }
    if reply.username.is_empty() && reply.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::Auth(Creds::Basic {
        user: reply.username,
        password: reply.secret,
    })))
}
