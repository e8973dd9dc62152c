//! S3 object keys: `Prefix`/`ErrorOutputPrefix` templates and the fixed object-name suffix
//! (reference §7.2, §7.3, §8).
//!
//! A prefix is literal text with `!{namespace:value}` expressions:
//!
//! | expression | evaluates to |
//! |---|---|
//! | `!{timestamp:PATTERN}` | the oldest record's arrival time, Java `DateTimeFormatter` subset, in `CustomTimeZone` |
//! | `!{firehose:random-string}` | 11 lowercase hex characters, a fresh value per occurrence |
//! | `!{firehose:error-output-type}` | e.g. `processing-failed`; `ErrorOutputPrefix` only |
//! | `!{partitionKeyFromQuery:KEY}` / `!{partitionKeyFromLambda:KEY}` | dynamic partitioning keys; `Prefix` only |
//!
//! Templates are parsed (and every pattern letter checked) once, at Create/UpdateDestination
//! time; evaluation per object cannot hit a syntax error. Evaluation is deterministic given the
//! [`PrefixContext`]: `random-string` is derived from a caller-chosen seed, so a batch redelivered
//! after a crash lands under the same key.
//!
//! Error messages are the `InvalidArgumentException` texts AWS returns where we found them
//! (marked "verified"); the rest follow the same shape and are marked `wording unverified`.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, TimeZone, Timelike};
use sha2::{Digest, Sha256};

/// The prefix Firehose uses when `Prefix` is empty, and appends to a prefix without expressions.
pub const DEFAULT_TIME_PREFIX: &str = "!{timestamp:yyyy/MM/dd/HH/}";
/// What Firehose places before [`DEFAULT_TIME_PREFIX`] in the error prefix it derives when
/// `ErrorOutputPrefix` is absent.
const DEFAULT_ERROR_TYPE_PREFIX: &str = "!{firehose:error-output-type}/";
/// "Neither Prefix nor ErrorOutputPrefix can be greater than 512 characters after they're
/// evaluated" (Firehose developer guide, custom prefixes). Counted in UTF-16 code units, as the
/// Java service counts string length.
pub const EVALUATED_PREFIX_CHARS_MAX: usize = 512;
/// Length of one `!{firehose:random-string}` value, per the developer guide.
pub const RANDOM_STRING_LEN: usize = 11;

/// Which field a template came from; decides which namespaces it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixRole {
    Data,
    ErrorOutput,
}

/// A prefix problem. The message is the AWS `InvalidArgumentException` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PrefixError(pub String);

/// AWS's own stem for prefix constraint violations, typo included ("Ths"): verified from a
/// CreateDeliveryStream error quoted in terraform-provider-aws PR 13416 and serverless issue 6015.
const CONSTRAINT_STEM: &str = "Ths supplied prefix(es) do not satisfy the following constraint: ";

fn constraint(rule: &str) -> PrefixError {
    PrefixError(format!("{CONSTRAINT_STEM}{rule}"))
}

/// A parsed `Prefix` or `ErrorOutputPrefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixTemplate {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Timestamp(Vec<TimeToken>),
    RandomString,
    ErrorOutputType,
    QueryKey(String),
    LambdaKey(String),
}

/// Everything evaluation needs besides the template.
#[derive(Debug, Clone, Copy)]
pub struct PrefixContext<'a> {
    /// All `!{timestamp:..}` use this instant: the oldest record's approximate arrival time.
    pub oldest_arrival_ms: i64,
    /// `CustomTimeZone`, default UTC.
    pub time_zone: chrono_tz::Tz,
    pub query_keys: &'a BTreeMap<String, String>,
    pub lambda_keys: &'a BTreeMap<String, String>,
    /// e.g. `processing-failed`; required only by templates using `error-output-type`.
    pub error_output_type: Option<&'a str>,
    /// `!{firehose:random-string}` = 11 characters derived from (seed, occurrence index).
    pub random_seed: u64,
}

impl PrefixTemplate {
    /// Parses a prefix, checking syntax, namespaces, pattern letters and which namespaces `role`
    /// allows. It does not check cross-field rules; see [`validate_prefixes`].
    ///
    /// # Errors
    /// A [`PrefixError`] with the AWS wording for the first problem found.
    pub fn parse(text: &str, role: PrefixRole) -> Result<Self, PrefixError> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("!{") {
            push_literal(&mut segments, &rest[..start]);
            let after_open = &rest[start + 2..];
            let Some(end) = after_open.find('}') else {
                // wording unverified
                return Err(constraint(&format!(
                    "The sequence '!{{' can only appear in !{{namespace:value}} expressions; \
                     '{}' is not closed with '}}'",
                    &rest[start..]
                )));
            };
            segments.push(parse_expression(&after_open[..end], role)?);
            rest = &after_open[end + 1..];
        }
        push_literal(&mut segments, rest);
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn has_expressions(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| !matches!(segment, Segment::Literal(_)))
    }

    /// Whether `!{firehose:error-output-type}` appears.
    pub fn uses_error_output_type(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| matches!(segment, Segment::ErrorOutputType))
    }

    /// Key names used in `!{partitionKeyFromQuery:..}`, in order of first use, without repeats.
    pub fn query_keys(&self) -> Vec<String> {
        self.keys(|segment| match segment {
            Segment::QueryKey(key) => Some(key),
            _ => None,
        })
    }

    /// Key names used in `!{partitionKeyFromLambda:..}`, in order of first use, without repeats.
    pub fn lambda_keys(&self) -> Vec<String> {
        self.keys(|segment| match segment {
            Segment::LambdaKey(key) => Some(key),
            _ => None,
        })
    }

    fn keys(&self, pick: impl Fn(&Segment) -> Option<&String>) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for key in self.segments.iter().filter_map(pick) {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// Evaluates the template for one object.
    ///
    /// # Errors
    /// A partition key or error output type the template needs but `ctx` lacks, an instant
    /// outside the representable range, or a result over [`EVALUATED_PREFIX_CHARS_MAX`]. With
    /// dynamic partitioning these send the record to the error prefix.
    pub fn evaluate(&self, ctx: &PrefixContext<'_>) -> Result<String, PrefixError> {
        let mut out = String::with_capacity(self.text.len() + 16);
        let mut instant = None;
        let mut random_occurrence = 0u64;
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Timestamp(tokens) => {
                    let at = match instant {
                        Some(at) => at,
                        None => {
                            let at = local_instant(ctx.oldest_arrival_ms, ctx.time_zone)
                                .ok_or_else(|| {
                                    // wording unverified
                                    PrefixError(format!(
                                        "Timestamp {} ms is outside the supported date range",
                                        ctx.oldest_arrival_ms
                                    ))
                                })?;
                            *instant.insert(at)
                        }
                    };
                    format_timestamp(tokens, &at, &mut out);
                }
                Segment::RandomString => {
                    out.push_str(&random_string(ctx.random_seed, random_occurrence));
                    random_occurrence += 1;
                }
                Segment::ErrorOutputType => {
                    let error_output_type = ctx.error_output_type.ok_or_else(|| {
                        // wording unverified; a caller bug rather than a user error
                        PrefixError(
                            "!{firehose:error-output-type} needs an error output type to evaluate"
                                .to_owned(),
                        )
                    })?;
                    out.push_str(error_output_type);
                }
                Segment::QueryKey(key) => out.push_str(partition_value(
                    ctx.query_keys,
                    key,
                    "partitionKeyFromQuery",
                )?),
                Segment::LambdaKey(key) => out.push_str(partition_value(
                    ctx.lambda_keys,
                    key,
                    "partitionKeyFromLambda",
                )?),
            }
        }
        let length = out.encode_utf16().count();
        if length > EVALUATED_PREFIX_CHARS_MAX {
            // wording unverified
            return Err(PrefixError(format!(
                "The evaluated prefix is {length} characters long; prefixes cannot be greater \
                 than {EVALUATED_PREFIX_CHARS_MAX} characters after they are evaluated"
            )));
        }
        Ok(out)
    }
}

fn push_literal(segments: &mut Vec<Segment>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Segment::Literal(previous)) = segments.last_mut() {
        previous.push_str(text);
    } else {
        segments.push(Segment::Literal(text.to_owned()));
    }
}

fn parse_expression(inner: &str, role: PrefixRole) -> Result<Segment, PrefixError> {
    let shown = format!("!{{{inner}}}");
    if inner.contains("!{") {
        // wording unverified
        return Err(constraint(&format!(
            "Expressions cannot be nested: '{shown}'"
        )));
    }
    let Some((namespace, value)) = inner.split_once(':') else {
        // wording unverified
        return Err(constraint(&format!(
            "'{shown}' is not a valid expression; expressions have the form !{{namespace:value}}"
        )));
    };
    let segment = match namespace {
        "timestamp" => Segment::Timestamp(parse_time_pattern(value).map_err(|reason| {
            // wording unverified
            constraint(&format!(
                "'{shown}' has an invalid DateTimeFormatter pattern: {reason}"
            ))
        })?),
        "firehose" => match value {
            "random-string" => Segment::RandomString,
            "error-output-type" => Segment::ErrorOutputType,
            // wording unverified
            _ => {
                return Err(constraint(&format!(
                    "'{shown}': the firehose namespace accepts only random-string and \
                     error-output-type"
                )));
            }
        },
        "partitionKeyFromQuery" | "partitionKeyFromLambda" => {
            if value.is_empty() {
                // wording unverified
                return Err(constraint(&format!(
                    "'{shown}' does not name a partition key"
                )));
            }
            if namespace == "partitionKeyFromQuery" {
                Segment::QueryKey(value.to_owned())
            } else {
                Segment::LambdaKey(value.to_owned())
            }
        }
        // wording unverified
        _ => {
            return Err(constraint(&format!(
                "'{shown}' uses unknown namespace '{namespace}'; valid namespaces are firehose, \
                 timestamp, partitionKeyFromQuery and partitionKeyFromLambda"
            )));
        }
    };
    match (role, &segment) {
        (PrefixRole::Data, Segment::ErrorOutputType) => {
            // wording unverified (the developer guide: "Prefix can't contain
            // !{firehose:error-output-type}")
            Err(constraint(
                "Prefix cannot contain !{firehose:error-output-type}",
            ))
        }
        (PrefixRole::ErrorOutput, Segment::QueryKey(_) | Segment::LambdaKey(_)) => {
            // wording unverified
            Err(constraint(
                "ErrorOutputPrefix cannot contain partitionKeyFromQuery or partitionKeyFromLambda \
                 expressions",
            ))
        }
        _ => Ok(segment),
    }
}

fn partition_value<'a>(
    keys: &'a BTreeMap<String, String>,
    key: &str,
    namespace: &str,
) -> Result<&'a str, PrefixError> {
    keys.get(key).map(String::as_str).ok_or_else(|| {
        // wording unverified
        PrefixError(format!(
            "Partition key '{key}' used in !{{{namespace}:{key}}} has no value"
        ))
    })
}

/// The data prefix AWS actually uses: None/"" -> `!{timestamp:yyyy/MM/dd/HH/}`; text without
/// expressions -> text + `!{timestamp:yyyy/MM/dd/HH/}` (plain concatenation, no slash inserted,
/// as the service was observed doing); with expressions -> as is.
///
/// # Errors
/// As [`PrefixTemplate::parse`].
pub fn effective_data_prefix(prefix: Option<&str>) -> Result<PrefixTemplate, PrefixError> {
    let Some(prefix) = non_empty(prefix) else {
        return PrefixTemplate::parse(DEFAULT_TIME_PREFIX, PrefixRole::Data);
    };
    let template = PrefixTemplate::parse(prefix, PrefixRole::Data)?;
    if template.has_expressions() {
        return Ok(template);
    }
    PrefixTemplate::parse(&format!("{prefix}{DEFAULT_TIME_PREFIX}"), PrefixRole::Data)
}

/// `ErrorOutputPrefix` as used: given -> as is; absent -> the (expression-free) `Prefix` text +
/// `!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH/}`.
///
/// # Errors
/// As [`PrefixTemplate::parse`], or the AWS error for an absent `ErrorOutputPrefix` next to a
/// `Prefix` with expressions.
pub fn effective_error_prefix(
    prefix: Option<&str>,
    error_output_prefix: Option<&str>,
) -> Result<PrefixTemplate, PrefixError> {
    if let Some(error_output_prefix) = non_empty(error_output_prefix) {
        return PrefixTemplate::parse(error_output_prefix, PrefixRole::ErrorOutput);
    }
    let prefix = non_empty(prefix).unwrap_or("");
    if PrefixTemplate::parse(prefix, PrefixRole::Data)?.has_expressions() {
        return Err(error_output_prefix_required());
    }
    PrefixTemplate::parse(
        &format!("{prefix}{DEFAULT_ERROR_TYPE_PREFIX}{DEFAULT_TIME_PREFIX}"),
        PrefixRole::ErrorOutput,
    )
}

/// Create/UpdateDestination-time checks of an S3 destination's prefixes (§7.3, §8).
///
/// `ErrorOutputPrefix` must contain `!{firehose:error-output-type}` only when it contains
/// expressions at all: the developer guide's rule is "If you specify an expression for
/// ErrorOutputPrefix, you must include at least one instance of !{firehose:error-output-type}",
/// so a plain `errors/` is accepted.
///
/// # Errors
/// The first violated rule, with AWS's `InvalidArgumentException` message.
pub fn validate_prefixes(
    prefix: Option<&str>,
    error_output_prefix: Option<&str>,
    dynamic_partitioning: bool,
) -> Result<(), PrefixError> {
    let data = non_empty(prefix)
        .map(|text| PrefixTemplate::parse(text, PrefixRole::Data))
        .transpose()?;
    let error = non_empty(error_output_prefix)
        .map(|text| PrefixTemplate::parse(text, PrefixRole::ErrorOutput))
        .transpose()?;

    let data_has_expressions = data.as_ref().is_some_and(PrefixTemplate::has_expressions);
    if data_has_expressions && error.is_none() {
        return Err(error_output_prefix_required());
    }
    if let Some(error) = &error
        && error.has_expressions()
        && !error.uses_error_output_type()
    {
        // wording unverified
        return Err(constraint(
            "ErrorOutputPrefix must contain !{firehose:error-output-type} when it contains \
             expressions",
        ));
    }
    let uses_partition_keys = data
        .as_ref()
        .is_some_and(|data| !data.query_keys().is_empty() || !data.lambda_keys().is_empty());
    if uses_partition_keys && !dynamic_partitioning {
        // wording unverified
        return Err(constraint(
            "partitionKeyFromQuery and partitionKeyFromLambda namespaces can only be used when \
             dynamic partitioning is enabled",
        ));
    }
    if dynamic_partitioning && !uses_partition_keys {
        // wording unverified
        return Err(constraint(
            "When dynamic partitioning is enabled, Prefix must contain at least one \
             partitionKeyFromQuery or partitionKeyFromLambda expression",
        ));
    }
    Ok(())
}

/// Verified wording (see [`CONSTRAINT_STEM`]).
fn error_output_prefix_required() -> PrefixError {
    constraint("ErrorOutputPrefix cannot be null or empty when Prefix contains expressions")
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.filter(|text| !text.is_empty())
}

/// Parses a `CustomTimeZone` IANA name (exact case, as AWS's `[a-zA-Z/_]+` names are).
pub fn parse_time_zone(name: &str) -> Option<chrono_tz::Tz> {
    name.parse().ok()
}

/// `<stream>-<version>-<yyyy>-<MM>-<dd>-<HH>-<mm>-<ss>-<unique_id><extension>`, time fields in
/// `time_zone`. An instant outside chrono's range (±262,000 years) is rendered as the Unix epoch;
/// callers pass wall-clock times.
pub fn object_suffix(
    stream_name: &str,
    version_id: u64,
    at_ms: i64,
    time_zone: chrono_tz::Tz,
    unique_id: &str,
    extension: &str,
) -> String {
    let at = local_instant(at_ms, time_zone)
        .unwrap_or_else(|| DateTime::UNIX_EPOCH.with_timezone(&time_zone));
    format!(
        "{stream_name}-{version_id}-{:04}-{:02}-{:02}-{:02}-{:02}-{:02}-{unique_id}{extension}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
    )
}

/// A UUID-formatted id (version 4 / RFC 4122 variant bits set) derived from `parts` with
/// SHA-256, so redelivering the same batch after a crash produces the same object key. Each
/// part is length-prefixed, so `["ab", "c"]` and `["a", "bc"]` differ.
pub fn deterministic_id(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Lowercase hex, like the developer guide's example (`5abf82daaa5`), from (seed, occurrence).
fn random_string(seed: u64, occurrence: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"firehose:random-string");
    hasher.update(seed.to_be_bytes());
    hasher.update(occurrence.to_be_bytes());
    let mut text = hex::encode(hasher.finalize());
    text.truncate(RANDOM_STRING_LEN);
    text
}

fn local_instant(at_ms: i64, time_zone: chrono_tz::Tz) -> Option<DateTime<chrono_tz::Tz>> {
    time_zone.timestamp_millis_opt(at_ms).single()
}

// ---------------------------------------------------------------------------------------------
// Java DateTimeFormatter subset
// ---------------------------------------------------------------------------------------------

/// One element of a compiled `!{timestamp:..}` pattern. Widths follow `DateTimeFormatter`:
/// a single letter prints without padding, two letters pad to two digits.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TimeToken {
    Literal(String),
    /// `y`: year-of-era padded to `width`; `yy` is the two-digit reduced year.
    Year {
        width: usize,
    },
    YearTwoDigits,
    Month {
        width: usize,
    },
    MonthText(TextStyle),
    Day {
        width: usize,
    },
    DayOfYear {
        width: usize,
    },
    Hour24 {
        width: usize,
    },
    /// `h`: clock-hour-of-am-pm, 1–12.
    Hour12 {
        width: usize,
    },
    Minute {
        width: usize,
    },
    Second {
        width: usize,
    },
    /// `S`…: fraction of second, truncated to `digits`.
    Fraction {
        digits: usize,
    },
    Weekday(TextStyle),
    AmPm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextStyle {
    Short,
    Full,
    Narrow,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn parse_time_pattern(pattern: &str) -> Result<Vec<TimeToken>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                literal.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (None, _) => return Err("unterminated quoted literal".to_owned()),
                    (Some('\''), Some('\'')) => {
                        literal.push('\'');
                        i += 2;
                    }
                    (Some('\''), _) => {
                        i += 1;
                        break;
                    }
                    (Some(&other), _) => {
                        literal.push(other);
                        i += 1;
                    }
                }
            }
        } else if c.is_ascii_alphabetic() {
            let count = chars[i..].iter().take_while(|&&next| next == c).count();
            if !literal.is_empty() {
                tokens.push(TimeToken::Literal(std::mem::take(&mut literal)));
            }
            tokens.push(pattern_letter(c, count)?);
            i += count;
        } else if c == '[' || c == ']' {
            // Optional-section markers: every field is always available, so sections always
            // print and the markers themselves never do.
            i += 1;
        } else if c == '#' || c == '{' || c == '}' {
            return Err(format!("'{c}' is reserved for future use"));
        } else {
            literal.push(c);
            i += 1;
        }
    }
    if !literal.is_empty() {
        tokens.push(TimeToken::Literal(literal));
    }
    Ok(tokens)
}

fn pattern_letter(letter: char, count: usize) -> Result<TimeToken, String> {
    let too_many = || {
        Err(format!(
            "too many pattern letters: {}",
            letter.to_string().repeat(count)
        ))
    };
    let numeric = |width_max: usize, make: fn(usize) -> TimeToken| {
        if count <= width_max {
            Ok(make(count))
        } else {
            too_many()
        }
    };
    let text = |make: fn(TextStyle) -> TimeToken, numeric_form: Option<TimeToken>| match count {
        1 | 2 => numeric_form.map_or(Ok(make(TextStyle::Short)), Ok),
        3 => Ok(make(TextStyle::Short)),
        4 => Ok(make(TextStyle::Full)),
        5 => Ok(make(TextStyle::Narrow)),
        _ => too_many(),
    };
    match letter {
        'y' if count == 2 => Ok(TimeToken::YearTwoDigits),
        'y' => Ok(TimeToken::Year { width: count }),
        'M' => text(
            TimeToken::MonthText,
            (count <= 2).then_some(TimeToken::Month { width: count }),
        ),
        'd' => numeric(2, |width| TimeToken::Day { width }),
        'D' => numeric(3, |width| TimeToken::DayOfYear { width }),
        'H' => numeric(2, |width| TimeToken::Hour24 { width }),
        'h' => numeric(2, |width| TimeToken::Hour12 { width }),
        'm' => numeric(2, |width| TimeToken::Minute { width }),
        's' => numeric(2, |width| TimeToken::Second { width }),
        'S' => numeric(9, |digits| TimeToken::Fraction { digits }),
        'E' => text(TimeToken::Weekday, None),
        'a' => numeric(1, |_| TimeToken::AmPm),
        _ => Err(format!("unsupported pattern letter '{letter}'")),
    }
}

fn format_timestamp<Tz: TimeZone>(tokens: &[TimeToken], at: &DateTime<Tz>, out: &mut String) {
    use std::fmt::Write as _;
    for token in tokens {
        // Writing into a String cannot fail.
        let _ = match *token {
            TimeToken::Literal(ref text) => {
                out.push_str(text);
                Ok(())
            }
            TimeToken::Year { width } => {
                let (_, year_of_era) = at.year_ce();
                // DateTimeFormatter's EXCEEDS_PAD: 4+ letters sign a year wider than the field.
                let sign = if width >= 4 && year_of_era.to_string().len() > width {
                    "+"
                } else {
                    ""
                };
                write!(out, "{sign}{year_of_era:0width$}")
            }
            TimeToken::YearTwoDigits => write!(out, "{:02}", at.year_ce().1 % 100),
            TimeToken::Month { width } => write!(out, "{:0width$}", at.month()),
            TimeToken::MonthText(style) => {
                out.push_str(styled(MONTHS[at.month0() as usize], style));
                Ok(())
            }
            TimeToken::Day { width } => write!(out, "{:0width$}", at.day()),
            TimeToken::DayOfYear { width } => write!(out, "{:0width$}", at.ordinal()),
            TimeToken::Hour24 { width } => write!(out, "{:0width$}", at.hour()),
            TimeToken::Hour12 { width } => write!(out, "{:0width$}", at.hour12().1),
            TimeToken::Minute { width } => write!(out, "{:0width$}", at.minute()),
            TimeToken::Second { width } => write!(out, "{:0width$}", at.second()),
            TimeToken::Fraction { digits } => {
                // chrono encodes a leap second as nanosecond ≥ 1e9; Java has no leap seconds.
                let nanos = at.nanosecond() % 1_000_000_000;
                let all = format!("{nanos:09}");
                out.push_str(&all[..digits]);
                Ok(())
            }
            TimeToken::Weekday(style) => {
                out.push_str(styled(
                    WEEKDAYS[at.weekday().num_days_from_monday() as usize],
                    style,
                ));
                Ok(())
            }
            TimeToken::AmPm => {
                out.push_str(if at.hour12().0 { "PM" } else { "AM" });
                Ok(())
            }
        };
    }
}

/// English (Locale.US) text: short = first three letters, narrow = first letter.
fn styled(full: &'static str, style: TextStyle) -> &'static str {
    match style {
        TextStyle::Full => full,
        TextStyle::Short => &full[..3],
        TextStyle::Narrow => &full[..1],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2018-08-27T10:30:05.123Z, the developer guide's example instant (plus seconds/millis).
    const AUG_27_2018_1030: i64 = 1_535_365_805_123;

    fn ctx<'a>(
        query: &'a BTreeMap<String, String>,
        lambda: &'a BTreeMap<String, String>,
    ) -> PrefixContext<'a> {
        PrefixContext {
            oldest_arrival_ms: AUG_27_2018_1030,
            time_zone: chrono_tz::UTC,
            query_keys: query,
            lambda_keys: lambda,
            error_output_type: Some("processing-failed"),
            random_seed: 7,
        }
    }

    fn eval(text: &str, role: PrefixRole) -> String {
        let empty = BTreeMap::new();
        PrefixTemplate::parse(text, role)
            .unwrap()
            .evaluate(&ctx(&empty, &empty))
            .unwrap()
    }

    fn pattern(pattern: &str) -> String {
        eval(&format!("!{{timestamp:{pattern}}}"), PrefixRole::Data)
    }

    fn pattern_error(pattern: &str) -> String {
        PrefixTemplate::parse(&format!("!{{timestamp:{pattern}}}"), PrefixRole::Data)
            .unwrap_err()
            .0
    }

    #[test]
    fn developer_guide_examples_evaluate_as_documented() {
        let empty = BTreeMap::new();
        let c = ctx(&empty, &empty);
        assert_eq!(
            effective_data_prefix(None).unwrap().evaluate(&c).unwrap(),
            "2018/08/27/10/"
        );
        assert_eq!(
            eval(
                "myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/",
                PrefixRole::Data
            ),
            "myPrefix/year=2018/month=08/"
        );
        assert_eq!(
            eval(
                "err/!{firehose:error-output-type}/!{timestamp:yyyy}/",
                PrefixRole::ErrorOutput
            ),
            "err/processing-failed/2018/"
        );
        assert_eq!(
            eval(
                "myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/\
                 !{firehose:error-output-type}",
                PrefixRole::ErrorOutput
            ),
            "myErrorPrefix/year=2018/month=08/day=27/hour=10/processing-failed"
        );
    }

    #[test]
    fn prefix_without_expressions_gets_the_hour_path_appended_without_a_slash() {
        let empty = BTreeMap::new();
        let c = ctx(&empty, &empty);
        let data = effective_data_prefix(Some("logs")).unwrap();
        assert_eq!(data.as_str(), "logs!{timestamp:yyyy/MM/dd/HH/}");
        assert_eq!(data.evaluate(&c).unwrap(), "logs2018/08/27/10/");
        assert_eq!(
            effective_data_prefix(Some(""))
                .unwrap()
                .evaluate(&c)
                .unwrap(),
            "2018/08/27/10/"
        );
        let expressions = effective_data_prefix(Some("a/!{timestamp:yyyy}/")).unwrap();
        assert_eq!(expressions.evaluate(&c).unwrap(), "a/2018/");
    }

    #[test]
    fn absent_error_prefix_is_derived_from_the_plain_prefix() {
        let empty = BTreeMap::new();
        let c = ctx(&empty, &empty);
        let derived = effective_error_prefix(Some("logs/"), None).unwrap();
        assert_eq!(
            derived.evaluate(&c).unwrap(),
            "logs/processing-failed/2018/08/27/10/"
        );
        let no_prefix = effective_error_prefix(None, Some("")).unwrap();
        assert_eq!(
            no_prefix.evaluate(&c).unwrap(),
            "processing-failed/2018/08/27/10/"
        );
        let given = effective_error_prefix(Some("logs/"), Some("errors/")).unwrap();
        assert_eq!(given.evaluate(&c).unwrap(), "errors/");
        assert_eq!(
            effective_error_prefix(Some("a/!{timestamp:yyyy}/"), None)
                .unwrap_err()
                .0,
            "Ths supplied prefix(es) do not satisfy the following constraint: ErrorOutputPrefix \
             cannot be null or empty when Prefix contains expressions"
        );
    }

    #[test]
    fn java_pattern_letters_format_like_date_time_formatter() {
        // 2018-08-27 is a Monday, day 239 of the year; 10:30:05.123 UTC. Every expectation here
        // and in the next test is what java.time's DateTimeFormatter (Locale.US) prints.
        assert_eq!(pattern("y yy yyy yyyy yyyyy"), "2018 18 2018 2018 02018");
        assert_eq!(pattern("M MM MMM MMMM MMMMM"), "8 08 Aug August A");
        assert_eq!(pattern("d dd D DD DDD"), "27 27 239 239 239");
        assert_eq!(pattern("H HH h hh a"), "10 10 10 10 AM");
        assert_eq!(pattern("m mm s ss"), "30 30 5 05");
        assert_eq!(pattern("S SS SSS SSSSSS"), "1 12 123 123000");
        assert_eq!(pattern("E EEE EEEE EEEEE"), "Mon Mon Monday M");
        assert_eq!(pattern("yyyy-MM-dd'T'HH"), "2018-08-27T10");
        assert_eq!(pattern("'it''s' ''"), "it's '");
        assert_eq!(pattern("[yyyy]"), "2018");
    }

    #[test]
    fn single_digit_fields_are_not_padded_and_afternoon_is_pm() {
        let empty = BTreeMap::new();
        // 2021-01-03T15:04:09Z (a Sunday, day 3).
        let c = PrefixContext {
            oldest_arrival_ms: 1_609_686_249_000,
            ..ctx(&empty, &empty)
        };
        let template =
            PrefixTemplate::parse("!{timestamp:M/d/H/h/m/s/D/DDD/a/EEE/hh}", PrefixRole::Data)
                .unwrap();
        assert_eq!(
            template.evaluate(&c).unwrap(),
            "1/3/15/3/4/9/3/003/PM/Sun/03"
        );
    }

    #[test]
    fn custom_time_zone_shifts_prefix_and_suffix() {
        let empty = BTreeMap::new();
        let tokyo = parse_time_zone("Asia/Tokyo").unwrap();
        let c = PrefixContext {
            time_zone: tokyo,
            ..ctx(&empty, &empty)
        };
        // 10:30 UTC is 19:30 in Tokyo (UTC+9, no DST).
        assert_eq!(
            effective_data_prefix(None).unwrap().evaluate(&c).unwrap(),
            "2018/08/27/19/"
        );
        assert_eq!(
            object_suffix("s", 1, AUG_27_2018_1030, tokyo, "id", ".gz"),
            "s-1-2018-08-27-19-30-05-id.gz"
        );
        assert_eq!(parse_time_zone("asia/tokyo"), None);
        assert_eq!(parse_time_zone("Not/AZone"), None);
        assert_eq!(parse_time_zone("UTC"), Some(chrono_tz::UTC));
    }

    #[test]
    fn unknown_or_overlong_pattern_letters_are_rejected() {
        assert!(pattern_error("yyyy-QQ").contains("unsupported pattern letter 'Q'"));
        assert!(pattern_error("ddd").contains("too many pattern letters: ddd"));
        assert!(pattern_error("aa").contains("too many pattern letters"));
        assert!(pattern_error("EEEEEE").contains("too many pattern letters"));
        assert!(pattern_error("'open").contains("unterminated quoted literal"));
        assert!(pattern_error("yyyy#").contains("reserved"));
    }

    #[test]
    fn malformed_expressions_are_rejected() {
        for text in [
            "a/!{timestamp:yyyy",
            "!{timestamp}",
            "!{bogus:x}",
            "!{firehose:nope}",
            "!{partitionKeyFromQuery:}",
            "!{timestamp:!{timestamp:yyyy}}",
        ] {
            let err = PrefixTemplate::parse(text, PrefixRole::Data).unwrap_err();
            assert!(err.0.starts_with(CONSTRAINT_STEM), "{text}: {err}");
        }
    }

    #[test]
    fn roles_restrict_namespaces() {
        let err = PrefixTemplate::parse("!{firehose:error-output-type}/", PrefixRole::Data);
        assert!(
            err.unwrap_err()
                .0
                .contains("Prefix cannot contain !{firehose:error-output-type}")
        );
        let err = PrefixTemplate::parse(
            "!{firehose:error-output-type}/!{partitionKeyFromQuery:id}/",
            PrefixRole::ErrorOutput,
        );
        assert!(
            err.unwrap_err()
                .0
                .contains("ErrorOutputPrefix cannot contain partitionKey")
        );
    }

    #[test]
    fn partition_keys_are_listed_in_first_use_order_and_substituted() {
        let template = PrefixTemplate::parse(
            "c=!{partitionKeyFromQuery:customer}/d=!{partitionKeyFromLambda:device}/\
             !{partitionKeyFromQuery:year}/!{partitionKeyFromQuery:customer}/",
            PrefixRole::Data,
        )
        .unwrap();
        assert_eq!(template.query_keys(), vec!["customer", "year"]);
        assert_eq!(template.lambda_keys(), vec!["device"]);
        let query: BTreeMap<String, String> = [("customer", "42"), ("year", "2024")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let lambda: BTreeMap<String, String> = [("device".into(), "ios".into())].into();
        assert_eq!(
            template.evaluate(&ctx(&query, &lambda)).unwrap(),
            "c=42/d=ios/2024/42/"
        );
        let missing = template
            .evaluate(&ctx(&query, &BTreeMap::new()))
            .unwrap_err();
        assert!(missing.0.contains("'device'"), "{missing}");
    }

    #[test]
    fn random_strings_are_eleven_hex_chars_fresh_per_occurrence_and_seeded() {
        let template = PrefixTemplate::parse(
            "!{firehose:random-string}/!{firehose:random-string}",
            PrefixRole::Data,
        )
        .unwrap();
        let empty = BTreeMap::new();
        let first = template.evaluate(&ctx(&empty, &empty)).unwrap();
        let (a, b) = first.split_once('/').unwrap();
        assert_eq!(a.len(), RANDOM_STRING_LEN);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
        assert_eq!(template.evaluate(&ctx(&empty, &empty)).unwrap(), first);
        let reseeded = PrefixContext {
            random_seed: 8,
            ..ctx(&empty, &empty)
        };
        assert_ne!(template.evaluate(&reseeded).unwrap(), first);
    }

    #[test]
    fn evaluated_prefixes_over_512_characters_fail() {
        let query: BTreeMap<String, String> = [("k".into(), "x".repeat(500))].into();
        let empty = BTreeMap::new();
        let template =
            PrefixTemplate::parse("0123456789/!{partitionKeyFromQuery:k}/", PrefixRole::Data)
                .unwrap();
        assert!(template.evaluate(&ctx(&query, &empty)).unwrap().len() == 512);
        let longer: BTreeMap<String, String> = [("k".into(), "x".repeat(501))].into();
        let err = template.evaluate(&ctx(&longer, &empty)).unwrap_err();
        assert!(err.0.contains("513 characters"), "{err}");
    }

    #[test]
    fn missing_error_output_type_is_an_evaluation_error() {
        let empty = BTreeMap::new();
        let template = effective_error_prefix(None, None).unwrap();
        let c = PrefixContext {
            error_output_type: None,
            ..ctx(&empty, &empty)
        };
        assert!(template.evaluate(&c).is_err());
    }

    #[test]
    fn validate_accepts_the_documented_valid_combinations() {
        validate_prefixes(None, None, false).unwrap();
        validate_prefixes(Some("logs/"), None, false).unwrap();
        validate_prefixes(
            None,
            Some("myFirehoseFailures/!{firehose:error-output-type}/"),
            false,
        )
        .unwrap();
        validate_prefixes(Some("logs/"), Some("errors/"), false).unwrap();
        validate_prefixes(
            Some("myFirehose/DeliveredYear=!{timestamp:yyyy}/rand=!{firehose:random-string}"),
            Some("myFirehoseFailures/!{firehose:error-output-type}/!{timestamp:yyyy}/"),
            false,
        )
        .unwrap();
        validate_prefixes(
            Some("customer=!{partitionKeyFromQuery:customer_id}/"),
            Some("errors/!{firehose:error-output-type}/"),
            true,
        )
        .unwrap();
    }

    #[test]
    fn validate_rejects_each_rule_violation() {
        let cases: [(Option<&str>, Option<&str>, bool, &str); 7] = [
            (
                Some("!{timestamp:yyyy/MM/dd}"),
                None,
                false,
                "cannot be null or empty",
            ),
            (
                Some("!{timestamp:yyyy}/"),
                Some(""),
                false,
                "cannot be null or empty",
            ),
            (
                Some("a/"),
                Some("err/!{timestamp:yyyy}/"),
                false,
                "must contain",
            ),
            (
                Some("!{firehose:error-output-type}/"),
                Some("e/"),
                false,
                "Prefix cannot contain",
            ),
            (
                Some("!{partitionKeyFromQuery:id}/"),
                Some("e/!{firehose:error-output-type}/"),
                false,
                "only be used when dynamic partitioning is enabled",
            ),
            (
                Some("!{timestamp:yyyy}/"),
                Some("e/!{firehose:error-output-type}/"),
                true,
                "Prefix must contain at least one",
            ),
            (
                Some("!{partitionKeyFromLambda:id}/"),
                None,
                true,
                "cannot be null or empty",
            ),
        ];
        for (prefix, error_prefix, dynamic_partitioning, expected) in cases {
            let err = validate_prefixes(prefix, error_prefix, dynamic_partitioning).unwrap_err();
            assert!(err.0.starts_with(CONSTRAINT_STEM), "{err}");
            assert!(
                err.0.contains(expected),
                "{prefix:?} {error_prefix:?}: {err}"
            );
        }
    }

    #[test]
    fn object_suffix_has_the_fixed_layout() {
        assert_eq!(
            object_suffix("mystream", 1, AUG_27_2018_1030, chrono_tz::UTC, "abc", ""),
            "mystream-1-2018-08-27-10-30-05-abc"
        );
        assert_eq!(
            object_suffix("s", 12, i64::MAX, chrono_tz::UTC, "u", ".gz"),
            "s-12-1970-01-01-00-00-00-u.gz"
        );
    }

    #[test]
    fn deterministic_id_is_a_stable_version_4_uuid() {
        let id = deterministic_id(&[b"stream", b"batch-7"]);
        assert_eq!(id, deterministic_id(&[b"stream", b"batch-7"]));
        assert_ne!(id, deterministic_id(&[b"stream", b"batch-8"]));
        assert_ne!(
            deterministic_id(&[b"ab", b"c"]),
            deterministic_id(&[b"a", b"bc"])
        );
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'));
        assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert!(
            id.chars()
                .all(|c| c == '-' || matches!(c, '0'..='9' | 'a'..='f'))
        );
        // Pinned: ids already written to S3 must not change across releases.
        assert_eq!(
            deterministic_id(&[]),
            "e3b0c442-98fc-4c14-9afb-f4c8996fb924"
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,80}") {
            for role in [PrefixRole::Data, PrefixRole::ErrorOutput] {
                if let Ok(template) = PrefixTemplate::parse(&text, role) {
                    let empty = BTreeMap::new();
                    let _ = template.evaluate(&ctx(&empty, &empty));
                }
            }
        }

        #[test]
        fn expression_free_text_evaluates_to_itself(text in "[a-zA-Z0-9/=_.!{-]{0,60}") {
            prop_assume!(!text.contains("!{"));
            prop_assert_eq!(eval(&text, PrefixRole::Data), text);
        }
    }
}
