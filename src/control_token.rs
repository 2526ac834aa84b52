//! The control token: what a request to a worker's mutating HTTP routes
//! (`POST /leader/stand-down`) must carry, as `Authorization: Bearer TOKEN`. Read-only routes
//! need none. A worker started without a token refuses every mutating request: the control
//! endpoint is locked by default.
//!
//! The threat it answers: anyone who can reach a worker's web port could otherwise move
//! leadership, as often as they like. Anyone who can read the token file or the worker's
//! environment can still do so, so keep both as private as the Kafka credentials.

use std::fmt;
use std::path::Path;

use subtle::ConstantTimeEq;

/// The environment variable that holds the token itself (for Kubernetes Secrets and systemd
/// credentials; `--web-token-file` wins over it).
pub const TOKEN_ENV: &str = "FAUST_RS_WEB_TOKEN";

/// A control token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ControlToken(String);

impl fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlToken(hidden)")
    }
}

impl ControlToken {
    /// The token from `file` (one trailing line end dropped) or else from [`TOKEN_ENV`];
    /// `None` when neither is given. An unreadable file or an empty token is an error.
    pub fn load(file: Option<&Path>) -> Result<Option<ControlToken>, String> {
        let (text, source) = match file {
            Some(path) => (
                std::fs::read_to_string(path)
                    .map_err(|e| format!("--web-token-file {}: {e}", path.display()))?,
                format!("--web-token-file {}", path.display()),
            ),
            None => match std::env::var(TOKEN_ENV) {
                Ok(text) => (text, TOKEN_ENV.to_string()),
                Err(_) => return Ok(None),
            },
        };
        let token = text
            .strip_suffix('\n')
            .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
        if token.is_empty() {
            return Err(format!("{source}: the token is empty"));
        }
        Ok(Some(ControlToken(token.to_string())))
    }

    /// Whether an `Authorization` header value carries this token (compared in constant time,
    /// so that response times do not reveal how much of a guess was right).
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let presented = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        presented.as_bytes().ct_eq(self.0.as_bytes()).into()
    }

    /// The `Authorization` header value that carries this token.
    pub fn header(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bearer_of_the_token_is_admitted_and_debug_hides_it() {
        let path = std::env::temp_dir().join(format!("faust-rs-token-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").unwrap();
        let token = ControlToken::load(Some(&path)).unwrap().unwrap();
        assert!(token.admits(Some("Bearer s3cret")));
        assert!(!token.admits(Some("Bearer s3cre")));
        assert!(!token.admits(Some("s3cret")));
        assert!(!token.admits(None));
        assert!(!format!("{token:?}").contains("s3cret"));
        std::fs::write(&path, "\n").unwrap();
        assert!(
            ControlToken::load(Some(&path))
                .unwrap_err()
                .contains("empty")
        );
        std::fs::remove_file(&path).unwrap();
    }
}
