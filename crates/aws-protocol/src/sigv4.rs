//! SigV4 request authentication: header auth (`Authorization: AWS4-HMAC-SHA256 …`) and
//! presigned query auth (`X-Amz-Algorithm=…`).
//!
//! Two modes. [`Mode::PresenceOnly`] (the default, like every Kinesis emulator) accepts any
//! credentials but rejects missing or incomplete auth with AWS's errors. [`Mode::Strict`] also
//! looks the access key up, checks the clock skew and recomputes the signature.
//!
//! The canonicalisation is written here by hand: `aws-sigv4` signs outgoing requests but
//! offers no verifier, and pulling the SDK runtime into the server for it would not help.
//! Error messages follow AWS's wording (as recorded by kinesalite against AWS).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use http::request::Parts;
use sha2::{Digest, Sha256};

use crate::codec::Protocol;
use crate::error::{EncodedError, MessageKey, encode_error};
use crate::literals::{
    HEADER_AMZ_CONTENT_SHA256, HEADER_AMZ_DATE, HEADER_AMZ_SECURITY_TOKEN, HEADER_AUTHORIZATION,
    HEADER_DATE, QUERY_AMZ_ALGORITHM, QUERY_AMZ_CREDENTIAL, QUERY_AMZ_DATE,
    QUERY_AMZ_SECURITY_TOKEN, QUERY_AMZ_SIGNATURE, QUERY_AMZ_SIGNED_HEADERS, SIGV4_ALGORITHM,
    SIGV4_TERMINATOR, codes,
};

type HmacSha256 = Hmac<Sha256>;

/// `x-amz-content-sha256` value of signers that do not hash the body.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Largest clock difference AWS tolerates between the request date and its own clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Looks up the secret access key for an access key id (strict mode).
pub trait Credentials: Send + Sync {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String>;
}

impl Credentials for HashMap<String, String> {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        self.get(access_key_id).cloned()
    }
}

/// How thoroughly requests are authenticated.
#[derive(Clone, Copy, Default)]
pub enum Mode<'a> {
    /// Auth must be present and well formed; any credentials are accepted.
    #[default]
    PresenceOnly,
    /// Known access key, signature recomputed, clock skew at most [`MAX_CLOCK_SKEW`].
    Strict(&'a dyn Credentials),
}

/// Who signed the request, from the credential scope `AKID/date/region/service/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub access_key_id: String,
    pub region: String,
    pub service: String,
    /// `X-Amz-Security-Token` (header or query) when temporary credentials were used.
    pub security_token: Option<String>,
}

/// An authentication failure, carrying AWS's code and message (sent under `message`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AuthError {
    pub code: &'static str,
    pub message: String,
}

impl AuthError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn signature_mismatch() -> Self {
        Self::new(
            codes::INVALID_SIGNATURE_EXCEPTION,
            "The request signature we calculated does not match the signature you provided. Check your AWS \
             Secret Access Key and signing method. Consult the service documentation for details.",
        )
    }

    /// The full error response (400, `message` key).
    pub fn to_response(&self, protocol: Protocol) -> EncodedError {
        encode_error(protocol, self.code, Some(&self.message), MessageKey::Lower)
    }
}

/// The pieces of `Authorization` / presigned query auth, before verification.
struct Presented {
    credential: String,
    signed_headers: String,
    signature: String,
    /// `yyyymmddThhmmssZ`, as it enters the string to sign.
    amz_date: String,
    presigned: bool,
    security_token: Option<String>,
}

/// Verifies the request's SigV4 authentication.
pub fn verify(
    parts: &Parts,
    body: &[u8],
    now: SystemTime,
    mode: Mode<'_>,
) -> Result<Identity, AuthError> {
    let query = parse_query(parts.uri.query().unwrap_or_default());
    let presented = presented_auth(&parts.headers, &query)?;
    // Exactly five parts; split into an array rather than a `Vec`, as this runs on every
    // request (BENCHMARKS.md, round 8).
    let mut scope_parts = presented.credential.split('/');
    let scope: [Option<&str>; 5] = std::array::from_fn(|_| scope_parts.next());
    let (
        [
            Some(access_key_id),
            Some(date),
            Some(region),
            Some(service),
            Some(terminator),
        ],
        None,
    ) = (scope, scope_parts.next())
    else {
        return Err(AuthError::new(
            codes::INCOMPLETE_SIGNATURE_EXCEPTION,
            format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                scope[2].unwrap_or_default()
            ),
        ));
    };
    if terminator != SIGV4_TERMINATOR {
        return Err(AuthError::new(
            codes::INCOMPLETE_SIGNATURE_EXCEPTION,
            format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
            ),
        ));
    }
    let identity = Identity {
        access_key_id: access_key_id.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        security_token: presented.security_token.clone(),
    };
    let Mode::Strict(credentials) = mode else {
        return Ok(identity);
    };

    let Some(secret) = credentials.secret_access_key(access_key_id) else {
        return Err(AuthError::new(
            codes::UNRECOGNIZED_CLIENT_EXCEPTION,
            "The security token included in the request is invalid.",
        ));
    };
    check_skew(&presented.amz_date, now)?;

    // The signature covers the declared `x-amz-content-sha256`, so the body must match it too
    // (unless the signer opted out with UNSIGNED-PAYLOAD).
    let actual_hash = hex::encode(Sha256::digest(body));
    let declared = parts
        .headers
        .get(HEADER_AMZ_CONTENT_SHA256)
        .and_then(|v| v.to_str().ok());
    let payload_hash = match declared {
        Some(declared) if !presented.presigned => {
            if declared != UNSIGNED_PAYLOAD && !declared.eq_ignore_ascii_case(&actual_hash) {
                return Err(AuthError::signature_mismatch());
            }
            declared.to_owned()
        }
        _ => actual_hash,
    };
    let canonical = canonical_request(parts, &query, &presented, &payload_hash);
    let scope_text = format!("{date}/{region}/{service}/{SIGV4_TERMINATOR}");
    let string_to_sign = format!(
        "{SIGV4_ALGORITHM}\n{}\n{scope_text}\n{}",
        presented.amz_date,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(&secret, date, region, service);
    let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    let Ok(provided) = hex::decode(&presented.signature) else {
        return Err(AuthError::signature_mismatch());
    };
    // Constant-time comparison.
    mac.verify_slice(&provided)
        .map_err(|_| AuthError::signature_mismatch())?;
    Ok(identity)
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn presented_auth(headers: &HeaderMap, query: &[(String, String)]) -> Result<Presented, AuthError> {
    let query_value = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .filter(|v| !v.is_empty())
    };
    let authorization = header_str(headers, HEADER_AUTHORIZATION);
    let query_auth = query.iter().any(|(key, _)| key == QUERY_AMZ_ALGORITHM);
    match (authorization, query_auth) {
        (Some(_), true) => Err(AuthError::new(
            codes::INVALID_SIGNATURE_EXCEPTION,
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
        )),
        (None, false) => Err(AuthError::new(
            codes::MISSING_AUTHENTICATION_TOKEN_EXCEPTION,
            "Missing Authentication Token",
        )),
        (Some(header), false) => {
            // The three parameters read; a repeated one keeps its last value. Slots rather
            // than a map, as this runs on every request (BENCHMARKS.md, round 8).
            let mut params: [(&str, Option<&str>); 3] = [
                ("Credential", None),
                ("Signature", None),
                ("SignedHeaders", None),
            ];
            let mut words = header.split([',', ' ']).filter(|word| !word.is_empty());
            let algorithm = words.next().unwrap_or_default();
            for word in words {
                if let Some((key, value)) = word.trim().split_once('=')
                    && let Some(slot) = params.iter_mut().find(|(name, _)| *name == key)
                {
                    slot.1 = Some(value);
                }
            }
            let mut message = String::new();
            for (name, value) in params {
                if value.is_none_or(str::is_empty) {
                    let _ = write!(
                        message,
                        "Authorization header requires '{name}' parameter. "
                    );
                }
            }
            let amz_date = match header_str(headers, HEADER_AMZ_DATE) {
                Some(date) => Some(date.to_owned()),
                None => header_str(headers, HEADER_DATE)
                    .map(|date| http_date_to_amz(date).unwrap_or_default()),
            };
            if amz_date.is_none() {
                message.push_str(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
                );
            }
            if !message.is_empty() {
                let _ = write!(message, "Authorization={header}");
                return Err(AuthError::new(
                    codes::INCOMPLETE_SIGNATURE_EXCEPTION,
                    message,
                ));
            }
            if algorithm != SIGV4_ALGORITHM {
                return Err(AuthError::new(
                    codes::INCOMPLETE_SIGNATURE_EXCEPTION,
                    format!("Unsupported AWS 'algorithm': '{algorithm}'"),
                ));
            }
            let param = |wanted: &str| {
                params
                    .iter()
                    .find(|(name, _)| *name == wanted)
                    .and_then(|(_, value)| *value)
                    .unwrap_or_default()
                    .to_owned()
            };
            Ok(Presented {
                credential: param("Credential"),
                signed_headers: param("SignedHeaders"),
                signature: param("Signature"),
                amz_date: amz_date.unwrap_or_default(),
                presigned: false,
                security_token: header_str(headers, HEADER_AMZ_SECURITY_TOKEN).map(str::to_owned),
            })
        }
        (None, true) => {
            let mut message = String::new();
            for name in [
                QUERY_AMZ_ALGORITHM,
                QUERY_AMZ_CREDENTIAL,
                QUERY_AMZ_SIGNATURE,
                QUERY_AMZ_SIGNED_HEADERS,
                QUERY_AMZ_DATE,
            ] {
                if query_value(name).is_none() {
                    let _ = write!(
                        message,
                        "AWS query-string parameters must include '{name}'. "
                    );
                }
            }
            if !message.is_empty() {
                message.push_str("Re-examine the query-string parameters.");
                return Err(AuthError::new(
                    codes::INCOMPLETE_SIGNATURE_EXCEPTION,
                    message,
                ));
            }
            let value = |name: &str| query_value(name).unwrap_or_default();
            let algorithm = value(QUERY_AMZ_ALGORITHM);
            if algorithm != SIGV4_ALGORITHM {
                return Err(AuthError::new(
                    codes::INCOMPLETE_SIGNATURE_EXCEPTION,
                    format!("Unsupported AWS 'algorithm': '{algorithm}'"),
                ));
            }
            Ok(Presented {
                credential: value(QUERY_AMZ_CREDENTIAL),
                signed_headers: value(QUERY_AMZ_SIGNED_HEADERS),
                signature: value(QUERY_AMZ_SIGNATURE),
                amz_date: value(QUERY_AMZ_DATE),
                presigned: true,
                security_token: query_value(QUERY_AMZ_SECURITY_TOKEN),
            })
        }
    }
}

fn check_skew(amz_date: &str, now: SystemTime) -> Result<(), AuthError> {
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let Some(signed_secs) = parse_amz_date(amz_date) else {
        return Err(AuthError::new(
            codes::INCOMPLETE_SIGNATURE_EXCEPTION,
            format!(
                "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ),
        ));
    };
    let skew = MAX_CLOCK_SKEW.as_secs() as i64;
    if signed_secs < now_secs - skew {
        return Err(AuthError::new(
            codes::INVALID_SIGNATURE_EXCEPTION,
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
                format_amz_date(now_secs - skew),
                format_amz_date(now_secs)
            ),
        ));
    }
    if signed_secs > now_secs + skew {
        return Err(AuthError::new(
            codes::INVALID_SIGNATURE_EXCEPTION,
            format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
                format_amz_date(now_secs + skew),
                format_amz_date(now_secs)
            ),
        ));
    }
    Ok(())
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let step = |key: &[u8], data: &str| {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let k_date = step(format!("AWS4{secret}").as_bytes(), date);
    let k_region = step(&k_date, region);
    let k_service = step(&k_region, service);
    step(&k_service, SIGV4_TERMINATOR)
}

fn canonical_request(
    parts: &Parts,
    query: &[(String, String)],
    presented: &Presented,
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(parts.method.as_str());
    out.push('\n');
    // Non-S3 services encode the (already encoded) path once more; '/' stays.
    let path = parts.uri.path();
    out.push_str(&uri_encode(if path.is_empty() { "/" } else { path }, false));
    out.push('\n');

    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(key, _)| !(presented.presigned && key == QUERY_AMZ_SIGNATURE))
        .map(|(key, value)| (uri_encode(key, true), uri_encode(value, true)))
        .collect();
    pairs.sort();
    let query_text: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    out.push_str(&query_text.join("&"));
    out.push('\n');

    for name in presented.signed_headers.split(';') {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|value| collapse_spaces(&String::from_utf8_lossy(value.as_bytes())))
            .collect();
        let value = if values.is_empty() && name == "host" {
            // HTTP/2 carries the host in :authority, which `http` exposes on the URI.
            parts
                .uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default()
        } else {
            values.join(",")
        };
        let _ = writeln!(out, "{name}:{value}");
    }
    out.push('\n');
    out.push_str(&presented.signed_headers);
    out.push('\n');
    out.push_str(payload_hash);
    out
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// RFC 3986 percent-encoding of everything but unreserved characters (and '/' in paths).
fn uri_encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex_value = |byte: u8| (byte as char).to_digit(16).map(|digit| digit as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && index + 2 < bytes.len()
            && let (Some(high), Some(low)) =
                (hex_value(bytes[index + 1]), hex_value(bytes[index + 2]))
        {
            out.push(high << 4 | low);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `yyyymmddThhmmssZ` → epoch seconds.
fn parse_amz_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn format_amz_date(epoch_secs: i64) -> String {
    let (year, month, day) = civil_from_days(epoch_secs.div_euclid(86_400));
    let secs = epoch_secs.rem_euclid(86_400);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// RFC 7231 IMF-fixdate (`Thu, 01 Jan 2026 00:00:00 GMT`) → `yyyymmddThhmmssZ`.
fn http_date_to_amz(text: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut words = text.split_whitespace().skip(1);
    let day: i64 = words.next()?.parse().ok()?;
    let month = MONTHS
        .iter()
        .position(|m| Some(*m) == words.next().map(|w| &w[..w.len().min(3)]))?
        as i64
        + 1;
    let year: i64 = words.next()?.parse().ok()?;
    let mut clock = words
        .next()?
        .split(':')
        .map(|part| part.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    Some(format_amz_date(
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_round_trip_through_epoch_seconds() {
        let secs = parse_amz_date("20260101T000000Z").unwrap();
        assert_eq!(secs, 1_767_225_600);
        assert_eq!(format_amz_date(secs), "20260101T000000Z");
        assert_eq!(format_amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(
            http_date_to_amz("Thu, 01 Jan 2026 00:00:00 GMT").as_deref(),
            Some("20260101T000000Z")
        );
        assert_eq!(parse_amz_date("2026-01-01"), None);
    }

    #[test]
    fn query_strings_decode_and_reencode() {
        assert_eq!(
            parse_query("a=b%2Fc&X-Amz-Date=1&empty"),
            vec![
                ("a".into(), "b/c".into()),
                ("X-Amz-Date".into(), "1".into()),
                ("empty".into(), String::new())
            ]
        );
        assert_eq!(uri_encode("a b/c~", true), "a%20b%2Fc~");
        assert_eq!(uri_encode("/a b/", false), "/a%20b/");
    }
}
