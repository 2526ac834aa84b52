//! One blocking connection to one broker: TCP, then TLS and SASL as [`Security`] says, then
//! requests and their responses, each at the highest version both sides speak. Blocking on
//! purpose: it serves rare, small admin requests (on a blocking thread), where a plain
//! request-response loop is the easiest thing to read.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::{
    ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use openssl::ssl::SslStream;
use rsasl::prelude::{Mechname, SASLClient, SASLConfig, State};

use super::security::{Sasl, Security};

/// The largest response accepted: admin answers are small, and a garbage length must not make
/// this allocate gigabytes.
const MAX_RESPONSE: usize = 16 << 20;

enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// An authenticated connection to a broker.
pub struct Connection {
    stream: Stream,
    /// `host:port`, for errors.
    broker: String,
    correlation: i32,
    /// The versions the broker speaks: (API key, min, max).
    versions: Vec<(i16, i16, i16)>,
}

impl Connection {
    /// Connects to `broker` (`host:port`) and authenticates; every step is bounded by `timeout`.
    pub fn open(
        broker: &str,
        security: &Security,
        timeout: Duration,
    ) -> Result<Connection, String> {
        let tcp = connect(broker, timeout)?;
        let stream = match &security.tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let host = broker.rsplit_once(':').map_or(broker, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let mut config = tls
                    .connector
                    .configure()
                    .map_err(|e| format!("{broker}: {e}"))?;
                config.set_verify_hostname(tls.verify_host_name);
                let tls = config
                    .connect(host, tcp)
                    .map_err(|e| format!("{broker}: TLS handshake failed: {e}"))?;
                Stream::Tls(Box::new(tls))
            }
        };
        let mut connection = Connection {
            stream,
            broker: broker.to_string(),
            correlation: 0,
            versions: Vec::new(),
        };
        connection.learn_versions()?;
        if let Some(sasl) = &security.sasl {
            connection.authenticate(sasl)?;
        }
        Ok(connection)
    }

    /// The broker's `host:port`.
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// The highest version of `R` both sides speak.
    pub fn version<R: Request + kafka_protocol::protocol::Message>(&self) -> Result<i16, String> {
        let ours = R::VERSIONS;
        self.versions
            .iter()
            .find(|(key, _, _)| *key == R::KEY)
            .map(|&(_, min, max)| (min.max(ours.min), max.min(ours.max)))
            .filter(|(low, high)| low <= high)
            .map(|(_, high)| high)
            .ok_or_else(|| {
                format!(
                    "{}: does not speak API {} in a version this client knows",
                    self.broker,
                    R::KEY
                )
            })
    }

    /// Sends `request` at `version` and reads its response.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, String> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("faust-rs")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .and_then(|()| request.encode(&mut body, version))
            .map_err(|e| format!("cannot encode API {} v{version}: {e}", R::KEY))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        self.stream
            .write_all(&frame)
            .map_err(|e| self.io_error(e))?;
        let mut response = self.receive()?;
        let header = ResponseHeader::decode(&mut response, R::Response::header_version(version))
            .map_err(|e| format!("{}: bad response header: {e}", self.broker))?;
        if header.correlation_id != self.correlation {
            return Err(format!("{}: answered another request", self.broker));
        }
        R::Response::decode(&mut response, version)
            .map_err(|e| format!("{}: bad response to API {}: {e}", self.broker, R::KEY))
    }

    fn receive(&mut self) -> Result<Bytes, String> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| self.io_error(e))?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_RESPONSE)
            .ok_or_else(|| format!("{}: response of impossible size {size}", self.broker))?;
        let mut body = vec![0; size];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| self.io_error(e))?;
        Ok(Bytes::from(body))
    }

    fn io_error(&self, e: std::io::Error) -> String {
        format!("{}: {e}", self.broker)
    }

    /// ApiVersions (v3: Kafka 2.4 and later), allowed before authentication.
    fn learn_versions(&mut self) -> Result<(), String> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("faust-rs"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = self.send(&request, 3)?;
        if let Some(error) = response.error_code.err() {
            return Err(format!("{}: ApiVersions: {error:?}", self.broker));
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|v| (v.api_key, v.min_version, v.max_version))
            .collect();
        Ok(())
    }

    /// SaslHandshake, then SaslAuthenticate rounds until the mechanism is done.
    fn authenticate(&mut self, sasl: &Sasl) -> Result<(), String> {
        let broker = self.broker.clone();
        let version = self.version::<SaslHandshakeRequest>()?;
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(sasl.mechanism.clone()));
        let answer = self.send(&handshake, version)?;
        if let Some(error) = answer.error_code.err() {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(format!(
                "{broker}: SASL {}: {error:?} (the broker offers {})",
                sasl.mechanism,
                offered.join(", ")
            ));
        }
        let config =
            SASLConfig::with_credentials(None, sasl.username.clone(), sasl.password.clone())
                .map_err(|e| format!("SASL: {e}"))?;
        let mechanism =
            Mechname::parse(sasl.mechanism.as_bytes()).map_err(|e| format!("SASL: {e}"))?;
        let mut session = SASLClient::new(config)
            .start_suggested(&[mechanism])
            .map_err(|e| format!("SASL {}: {e}", sasl.mechanism))?;
        let version = self.version::<SaslAuthenticateRequest>()?;
        let mut challenge: Option<Bytes> = None;
        loop {
            let mut reply = Vec::new();
            let state = session
                .step(challenge.as_deref(), &mut reply)
                .map_err(|e| format!("{broker}: SASL {}: {e}", sasl.mechanism))?;
            if matches!(state, State::Finished(rsasl::prelude::MessageSent::No)) {
                return Ok(());
            }
            let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(reply));
            let answer = self.send(&request, version)?;
            if let Some(error) = answer.error_code.err() {
                let message = answer
                    .error_message
                    .as_deref()
                    .unwrap_or_default()
                    .to_string();
                return Err(format!(
                    "{broker}: SASL {}: {error:?} {message}",
                    sasl.mechanism
                ));
            }
            if state.is_finished() {
                return Ok(());
            }
            challenge = Some(answer.auth_bytes);
        }
    }
}

/// TCP to the first address of `broker` that answers within `timeout`.
fn connect(broker: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addresses = broker
        .to_socket_addrs()
        .map_err(|e| format!("{broker}: {e}"))?;
    let mut last = format!("{broker}: no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                stream
                    .set_read_timeout(Some(timeout))
                    .and_then(|()| stream.set_write_timeout(Some(timeout)))
                    .map_err(|e| format!("{broker}: {e}"))?;
                return Ok(stream);
            }
            Err(e) => last = format!("{broker}: {e}"),
        }
    }
    Err(last)
}
