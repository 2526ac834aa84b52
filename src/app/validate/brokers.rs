//! Faust's broker URL list (`kafka://a:9092;kafka://b:9092`) to librdkafka's `host:port`s.

use super::super::schema::AppSection;

/// Parses Faust's broker URL list into `host:port` entries.
pub(crate) fn parse_brokers(url: &str) -> Result<Vec<String>, String> {
    url.split([';', ','])
        .map(|part| parse_broker(url, part.trim()))
        .collect()
}

/// One entry of the list: `[kafka://]host[:port][/]`.
fn parse_broker(url: &str, part: &str) -> Result<String, String> {
    if part.is_empty() {
        return Err(format!(
            "bad broker URL `{url}`: empty entry (separate brokers with `;` or `,`)"
        ));
    }
    let rest = match part.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("kafka") => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "bad broker URL `{part}`: unsupported scheme `{scheme}://` (faust-rs speaks \
                 Kafka only: write kafka://host:port)"
            ));
        }
        None => part,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = split_host_port(part, rest)?;
    check_host(part, &host)?;
    let port = match port {
        None => AppSection::BROKER_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(format!(
                    "bad broker URL `{part}`: `{p}` is not a port (1-65535)"
                ));
            }
        },
    };
    Ok(format!("{host}:{port}"))
}

/// `host:port`, `host`, `[v6]:port` or `[v6]`; the host keeps its brackets.
fn split_host_port<'a>(part: &str, rest: &'a str) -> Result<(String, Option<&'a str>), String> {
    let Some(v6) = rest.strip_prefix('[') else {
        return Ok(match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (rest.to_owned(), None),
        });
    };
    let Some((host, after)) = v6.split_once(']') else {
        return Err(format!(
            "bad broker URL `{part}`: unclosed `[` in IPv6 address"
        ));
    };
    let port = match after {
        "" => None,
        p => Some(
            p.strip_prefix(':')
                .ok_or_else(|| format!("bad broker URL `{part}`: expected `:port` after `]`"))?,
        ),
    };
    Ok((format!("[{host}]"), port))
}

/// A host name or address; an IPv6 address (it holds `:`) only in brackets.
fn check_host(part: &str, host: &str) -> Result<(), String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    if bare.is_empty() || !bare.chars().all(ok_char) || (bare.contains(':') && host == bare) {
        return Err(format!(
            "bad broker URL `{part}`: `{host}` is not a host name or address"
        ));
    }
    Ok(())
}
