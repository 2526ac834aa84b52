//! How a wire connection authenticates, read from the same librdkafka properties the worker's
//! clients use (`security.protocol`, `ssl.*`, `sasl.*`), so that it reaches the brokers they
//! reach. What it cannot speak is refused up front with the reason, never half-applied: a
//! connection that skipped a setting (a CRL, say) could be less safe than the clients'.

use std::path::{Path, PathBuf};

use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::X509;

use crate::kafka::Properties;

/// A connection's security, checked and ready to use.
pub struct Security {
    /// `None`: plaintext.
    pub tls: Option<Tls>,
    /// `None`: no SASL.
    pub sasl: Option<Sasl>,
}

pub struct Tls {
    pub connector: SslConnector,
    /// Whether the broker's certificate must name the host connected to
    /// (`ssl.endpoint.identification.algorithm=https`, librdkafka's default).
    pub verify_host_name: bool,
}

/// SASL with a user name and password.
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

/// The mechanisms [`Sasl`] speaks.
const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// The `ssl.*` and `sasl.*` properties read here; any other one set makes the configuration
/// unsupported (see the module documentation).
const UNDERSTOOD: [&str; 18] = [
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.certificate.pem",
    "ssl.key.location",
    "ssl.key.pem",
    "ssl.key.password",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.endpoint.identification.algorithm",
    "ssl.cipher.suites",
    "ssl.curves.list",
    "ssl.sigalgs.list",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    // Only read by librdkafka under OAUTHBEARER or GSSAPI, which are refused anyway.
    "sasl.kerberos.service.name",
];

impl Security {
    /// Reads the security settings; `Err` names what this connection cannot do. Relative file
    /// names are read from the working directory, as librdkafka reads them.
    pub fn from_properties(properties: &Properties) -> Result<Security, String> {
        let protocol = properties
            .get("security.protocol")
            .unwrap_or("plaintext")
            .to_ascii_lowercase();
        let (tls, sasl) = match protocol.as_str() {
            "plaintext" => (false, false),
            "ssl" => (true, false),
            "sasl_plaintext" => (false, true),
            "sasl_ssl" => (true, true),
            other => return Err(format!("security.protocol {other:?} is not supported")),
        };
        if let Some(name) = properties
            .names()
            .filter(|n| n.starts_with("ssl.") || n.starts_with("sasl."))
            .find(|n| !UNDERSTOOD.contains(n))
        {
            return Err(format!("{name} is not supported"));
        }
        Ok(Security {
            tls: tls.then(|| tls_settings(properties)).transpose()?,
            sasl: sasl.then(|| sasl_settings(properties)).transpose()?,
        })
    }
}

fn sasl_settings(properties: &Properties) -> Result<Sasl, String> {
    let mechanism = properties
        .get("sasl.mechanism")
        .or_else(|| properties.get("sasl.mechanisms"))
        .unwrap_or("GSSAPI")
        .to_ascii_uppercase();
    if !MECHANISMS.contains(&mechanism.as_str()) {
        return Err(format!("SASL mechanism {mechanism} is not supported"));
    }
    let get = |name: &str| properties.get(name).unwrap_or_default().to_string();
    Ok(Sasl {
        mechanism,
        username: get("sasl.username"),
        password: get("sasl.password"),
    })
}

fn tls_settings(properties: &Properties) -> Result<Tls, String> {
    let get = |name: &str| properties.get(name);
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(tls_error)?;
    match (get("ssl.ca.location"), get("ssl.ca.pem")) {
        (_, Some(pem)) => {
            for ca in X509::stack_from_pem(pem.as_bytes()).map_err(tls_error)? {
                builder.cert_store_mut().add_cert(ca).map_err(tls_error)?;
            }
        }
        (Some(location), None) if location != "probe" => {
            let path = Path::new(location);
            if path.is_dir() {
                builder.load_verify_locations(None, Some(path))
            } else {
                builder.load_verify_locations(Some(path), None)
            }
            .map_err(|e| format!("ssl.ca.location {location}: {e}"))?;
        }
        // As librdkafka does with a static OpenSSL: the system's usual CA places.
        _ => {
            let found = openssl_probe::probe();
            builder
                .load_verify_locations(found.cert_file.as_deref(), found.cert_dir.as_deref())
                .map_err(tls_error)?;
        }
    }
    client_identity(&mut builder, properties)?;
    let listed = |name: &str, e: openssl::error::ErrorStack| format!("{name}: {e}");
    if let Some(list) = get("ssl.cipher.suites") {
        builder
            .set_cipher_list(list)
            .map_err(|e| listed("ssl.cipher.suites", e))?;
    }
    if let Some(list) = get("ssl.curves.list") {
        builder
            .set_groups_list(list)
            .map_err(|e| listed("ssl.curves.list", e))?;
    }
    if let Some(list) = get("ssl.sigalgs.list") {
        builder
            .set_sigalgs_list(list)
            .map_err(|e| listed("ssl.sigalgs.list", e))?;
    }
    // As librdkafka: the broker's certificate is verified unless the app turns that off.
    let verify =
        get("enable.ssl.certificate.verification").is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    builder.set_verify(if verify {
        SslVerifyMode::PEER
    } else {
        SslVerifyMode::NONE
    });
    let verify_host_name = get("ssl.endpoint.identification.algorithm")
        .is_none_or(|algorithm| algorithm.eq_ignore_ascii_case("https"));
    Ok(Tls {
        connector: builder.build(),
        verify_host_name,
    })
}

/// The client certificate and key (mTLS), from PEM files, inline PEM or a PKCS#12 keystore.
fn client_identity(
    builder: &mut openssl::ssl::SslConnectorBuilder,
    properties: &Properties,
) -> Result<(), String> {
    let get = |name: &str| properties.get(name);
    if let Some(keystore) = get("ssl.keystore.location") {
        let der = read(keystore)?;
        let password = get("ssl.keystore.password").unwrap_or_default();
        let parsed = Pkcs12::from_der(&der)
            .and_then(|p| p.parse2(password))
            .map_err(|e| format!("ssl.keystore.location {keystore}: {e}"))?;
        if let (Some(cert), Some(key)) = (parsed.cert, parsed.pkey) {
            builder.set_certificate(&cert).map_err(tls_error)?;
            builder.set_private_key(&key).map_err(tls_error)?;
        }
        for ca in parsed.ca.into_iter().flatten() {
            builder.add_extra_chain_cert(ca).map_err(tls_error)?;
        }
        return Ok(());
    }
    match (get("ssl.certificate.location"), get("ssl.certificate.pem")) {
        (Some(path), _) => builder
            .set_certificate_chain_file(path)
            .map_err(|e| format!("ssl.certificate.location {path}: {e}"))?,
        (None, Some(pem)) => {
            let mut chain = X509::stack_from_pem(pem.as_bytes()).map_err(tls_error)?;
            if chain.is_empty() {
                return Err("ssl.certificate.pem holds no certificate".into());
            }
            builder
                .set_certificate(&chain.remove(0))
                .map_err(tls_error)?;
            for extra in chain {
                builder.add_extra_chain_cert(extra).map_err(tls_error)?;
            }
        }
        (None, None) => {}
    }
    let password = get("ssl.key.password").unwrap_or_default().as_bytes();
    let key = match (get("ssl.key.location"), get("ssl.key.pem")) {
        (Some(path), _) if password.is_empty() => {
            return builder
                .set_private_key_file(path, SslFiletype::PEM)
                .map_err(|e| format!("ssl.key.location {path}: {e}"));
        }
        (Some(path), _) => read(path)?,
        (None, Some(pem)) => pem.as_bytes().to_vec(),
        (None, None) => return Ok(()),
    };
    // A failure to decrypt names the key's property, never its content or password.
    let key = PKey::private_key_from_pem_passphrase(&key, password)
        .map_err(|_| "cannot read the private key (ssl.key.*): wrong format or password")?;
    builder.set_private_key(&key).map_err(tls_error)
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(PathBuf::from(path)).map_err(|e| format!("{path}: {e}"))
}

fn tls_error(e: openssl::error::ErrorStack) -> String {
    format!("TLS setup: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(pairs: &[(&str, &str)]) -> String {
        let properties = Properties::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        match Security::from_properties(&properties) {
            Ok(_) => String::new(),
            Err(why) => why,
        }
    }

    #[test]
    fn what_it_cannot_speak_is_refused_with_the_reason() {
        assert_eq!(refusal(&[]), "");
        assert_eq!(
            refusal(&[
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "scram-sha-512")
            ]),
            ""
        );
        assert_eq!(
            refusal(&[
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "OAUTHBEARER")
            ]),
            "SASL mechanism OAUTHBEARER is not supported"
        );
        // librdkafka's default mechanism.
        assert_eq!(
            refusal(&[("security.protocol", "sasl_plaintext")]),
            "SASL mechanism GSSAPI is not supported"
        );
        assert_eq!(
            refusal(&[("security.protocol", "SSL"), ("ssl.crl.location", "/x")]),
            "ssl.crl.location is not supported"
        );
        assert_eq!(
            refusal(&[("security.protocol", "carrier-pigeon")]),
            "security.protocol \"carrier-pigeon\" is not supported"
        );
    }

    #[test]
    fn a_wrong_key_password_is_named_without_the_password() {
        let key = openssl::rsa::Rsa::generate(2048).unwrap();
        let cipher = openssl::symm::Cipher::aes_128_cbc();
        let pem = key
            .private_key_to_pem_passphrase(cipher, b"right-one")
            .unwrap();
        let pem = String::from_utf8(pem).unwrap();
        let why = refusal(&[
            ("security.protocol", "SSL"),
            ("ssl.key.pem", &pem),
            ("ssl.key.password", "wrong-one"),
        ]);
        assert!(why.contains("ssl.key"), "{why}");
        assert!(
            !why.contains("wrong-one") && !why.contains("PRIVATE KEY"),
            "{why}"
        );
    }
}
