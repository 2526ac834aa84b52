//! The app's `[kafka]` table: librdkafka properties passed to every client, and which of them
//! are secrets, so that no `{:?}`, log line or error ever shows a password.

use std::collections::BTreeMap;
use std::fmt;

/// librdkafka properties by name. Its `Debug` hides the values of secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Properties(BTreeMap<String, String>);

impl Properties {
    pub fn new(properties: BTreeMap<String, String>) -> Self {
        Properties(properties)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Every property with its value (secrets included: for configuring clients only).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<const N: usize> From<[(&str, &str); N]> for Properties {
    fn from(pairs: [(&str, &str); N]) -> Self {
        Properties(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(k, v)| (k, if is_secret(k) { HIDDEN } else { v.as_str() })),
            )
            .finish()
    }
}

/// What is shown instead of a secret's value.
pub const HIDDEN: &str = "(hidden)";

/// Whether a property's value is a secret: passwords, passphrases, client secrets, private keys
/// given inline, and the OAUTHBEARER configuration (which may carry any of those). File paths
/// (`ssl.key.location`) are not.
pub fn is_secret(name: &str) -> bool {
    name == "sasl.oauthbearer.config"
        || ["password", "passphrase", "secret", "key.pem", "ssl_key"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_the_passwords_keys_and_client_secrets_not_paths() {
        for secret in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.assertion.private.key.passphrase",
        ] {
            assert!(is_secret(secret), "{secret}");
        }
        for plain in [
            "sasl.username",
            "ssl.key.location",
            "ssl.ca.location",
            "sasl.mechanism",
            "sasl.oauthbearer.token.endpoint.url",
            "linger.ms",
        ] {
            assert!(!is_secret(plain), "{plain}");
        }
    }

    #[test]
    fn debug_hides_the_values_of_secrets_only() {
        let properties =
            Properties::from([("sasl.password", "hunter2"), ("sasl.username", "faust")]);
        let shown = format!("{properties:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("(hidden)") && shown.contains("faust"),
            "{shown}"
        );
    }
}
