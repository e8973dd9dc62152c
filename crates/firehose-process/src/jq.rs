//! The `MetadataExtraction` processor: dynamic-partitioning keys from a jq query.
//!
//! AWS runs `MetadataExtractionQuery` with jq 1.6 (`JsonParsingEngine = JQ-1.6`) on every
//! record; the query must yield one object whose values become `partitionKeyFromQuery` keys, e.g.
//! `{customer_id: .customer_id, year: .ts | strftime("%Y")}`. We use jaq (a jq implementation
//! in Rust), compile the query once when the delivery stream is configured, and only run it per
//! record.
//!
//! Filters that reach outside the record are removed from the library: `env`/`$ENV` would let
//! a query copy the server's environment (credentials included) into S3 keys, and
//! `debug`/`stderr`/`halt` write to the server's log or would stop the run. Queries using them
//! fail to compile, at create time. Module imports are refused by jaq's loader (no file access).
//!
//! Values are stringified like jq 1.6's `tostring`: strings as they are, numbers as jq prints
//! them (`3`, `1.5`, `1e-05`), `true`/`false`, `null` as `"null"`, arrays and objects as compact
//! JSON.

use std::collections::BTreeMap;
use std::fmt;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::{Num, Val};

type Data = data::JustLut<Val>;
type Filter = jaq_core::Filter<Data>;

/// Native library filters a partitioning query may not call (see the module docs).
const BLOCKED_NATIVES: &[&str] = &["env", "halt", "debug_empty", "stderr_empty"];
/// Library definitions built on the blocked natives; they would not compile without them.
const BLOCKED_DEFINITIONS: &[&str] = &["stderr", "debug", "halt", "halt_error"];

/// A compiled `MetadataExtractionQuery`.
pub struct MetadataQuery {
    filter: Filter,
    source: String,
}

impl fmt::Debug for MetadataQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataQuery")
            .field("source", &self.source)
            .finish()
    }
}

impl MetadataQuery {
    /// Parses and compiles `query`.
    ///
    /// # Errors
    /// A message fit for `InvalidArgumentException` when the query does not parse or uses an
    /// unknown (or blocked) filter or variable.
    pub fn compile(query: &str) -> Result<Self, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .filter(|def| !BLOCKED_DEFINITIONS.contains(&def.name));
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .filter(|(name, _, _)| !BLOCKED_NATIVES.contains(name));
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(
                &arena,
                File {
                    code: query,
                    path: (),
                },
            )
            .map_err(|errors| describe_load_errors(query, errors))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| describe_compile_errors(query, errors))?;
        Ok(Self {
            filter,
            source: query.to_owned(),
        })
    }

    /// The query text as configured.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the query on one JSON record and stringifies the resulting object's values.
    ///
    /// # Errors
    /// A message for the error output when the record is not JSON, the query fails, or it does
    /// not produce exactly one object.
    pub fn extract(&self, record: &[u8]) -> Result<BTreeMap<String, String>, String> {
        let input = jaq_json::read::parse_single(record)
            .map_err(|error| format!("record is not valid JSON: {error}"))?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut outputs = self.filter.id.run((ctx, input));
        let first = match outputs.next() {
            None => return Err("the query produced no result".to_owned()),
            Some(result) => result.map_err(describe_exception)?,
        };
        if let Some(second) = outputs.next() {
            // A failing second output is still "more than one" from the user's point of view.
            drop(second);
            return Err("the query produced more than one result".to_owned());
        }
        let Val::Obj(object) = first else {
            return Err(format!(
                "the query result is not an object: {}",
                jq_tostring(&first)
            ));
        };
        Ok(object
            .iter()
            .map(|(key, value)| (jq_tostring(key), jq_tostring(value)))
            .collect())
    }
}

fn describe_exception(exception: jaq_core::Exn<'_, Val>) -> String {
    // Never `jaq_core::unwrap_valr`: on `halt` it exits the process.
    match exception.get_err() {
        Ok(error) => format!("the query failed: {error}"),
        Err(_) => "the query stopped without a result".to_owned(),
    }
}

/// Where `fragment` (a slice of `query` that jaq points at) starts, for error messages.
fn position(query: &str, fragment: &str) -> usize {
    (fragment.as_ptr() as usize)
        .checked_sub(query.as_ptr() as usize)
        .filter(|offset| *offset <= query.len())
        .unwrap_or(0)
}

fn describe_load_errors(query: &str, errors: jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error;
    let mut messages = Vec::new();
    for (_, error) in errors {
        match error {
            Error::Io(items) => {
                messages.extend(
                    items
                        .into_iter()
                        .map(|(path, reason)| format!("cannot load {path}: {reason}")),
                );
            }
            Error::Lex(items) => messages.extend(items.into_iter().map(|(expected, found)| {
                format!(
                    "expected {} at position {}",
                    expected.as_str(),
                    position(query, found)
                )
            })),
            Error::Parse(items) => messages.extend(items.into_iter().map(|(expected, found)| {
                format!(
                    "expected {} at position {}",
                    expected.as_str(),
                    position(query, found)
                )
            })),
        }
    }
    format!("Invalid MetadataExtractionQuery: {}", messages.join("; "))
}

fn describe_compile_errors(query: &str, errors: jaq_core::compile::Errors<&str, ()>) -> String {
    let messages: Vec<String> = errors
        .into_iter()
        .flat_map(|(_, items)| items)
        .map(|(name, undefined)| {
            format!(
                "undefined {} {name} at position {}",
                undefined.as_str(),
                position(query, name)
            )
        })
        .collect();
    format!("Invalid MetadataExtractionQuery: {}", messages.join("; "))
}

/// jq 1.6's `tostring`.
fn jq_tostring(value: &Val) -> String {
    match value {
        Val::TStr(bytes) | Val::BStr(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Val::Null => "null".to_owned(),
        Val::Bool(b) => b.to_string(),
        Val::Num(num) => jq_number(num),
        Val::Arr(_) | Val::Obj(_) => value.to_string(),
    }
}

/// jq 1.6 holds every number as a double, so integers past 2^53 lose digits there too.
fn jq_number(num: &Num) -> String {
    match jaq_std::ValT::as_f64(&Val::Num(num.clone())) {
        Some(x) => format_double(x),
        None => Val::Num(num.clone()).to_string(),
    }
}

/// Formats a double as jq 1.6 prints numbers (its `jvp_dtoa_fmt`, after David Gay's `g_fmt`):
/// the shortest round-trip digits, written plainly unless the decimal point sits 4 or more
/// places left of them or more than 15 places right of them, then as `d.ddde±XX`. NaN prints
/// as `null`; infinities are clamped to the largest double.
fn format_double(x: f64) -> String {
    /// Plain notation carries at most this many zeros past the significant digits.
    const TRAILING_ZEROS_MAX: i32 = 15;
    if x.is_nan() {
        return "null".to_owned();
    }
    let x = x.clamp(f64::MIN, f64::MAX);
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let scientific = format!("{:e}", x.abs()); // shortest digits, e.g. "1.5e-7"
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("LowerExp always writes an exponent");
    let exponent: i32 = exponent
        .parse()
        .expect("LowerExp writes a decimal exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digit_count = i32::try_from(digits.len()).expect("a double has at most 17 digits");
    // Digits before the decimal point: 1.5e2 has digits "15" and the point after 3 of them.
    let point = exponent + 1;
    if point <= -4 || point > digit_count + TRAILING_ZEROS_MAX {
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{exponent_sign}{:02}", exponent.abs());
    }
    let zeros = |count: i32| "0".repeat(usize::try_from(count).unwrap_or(0));
    if point <= 0 {
        format!("{sign}0.{}{digits}", zeros(-point))
    } else if point >= digit_count {
        format!("{sign}{digits}{}", zeros(point - digit_count))
    } else {
        let (whole, fraction) =
            digits.split_at(usize::try_from(point).expect("0 < point < digits"));
        format!("{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn query_is_send_and_sync_so_streams_can_share_it() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MetadataQuery>();
    }

    #[test]
    fn aws_customer_id_example() {
        let query = MetadataQuery::compile("{customer_id:.customer_id}").unwrap();
        assert_eq!(
            query
                .extract(br#"{"customer_id":"1234567890","x":1}"#)
                .unwrap(),
            keys(&[("customer_id", "1234567890")])
        );
    }

    #[test]
    fn aws_device_and_year_example() {
        let query = MetadataQuery::compile(
            r#"{device:.type.device, year:.event_timestamp|strftime("%Y")}"#,
        )
        .unwrap();
        // 1700000000 = 2023-11-14T22:13:20Z
        let record = br#"{"type":{"device":"mobile"},"event_timestamp":1700000000}"#;
        assert_eq!(
            query.extract(record).unwrap(),
            keys(&[("device", "mobile"), ("year", "2023")])
        );
    }

    #[test]
    fn aws_year_month_example_uses_utc() {
        let query =
            MetadataQuery::compile(r#"{year: .ts | strftime("%Y"), month: .ts | strftime("%m")}"#)
                .unwrap();
        // 1704067199 = 2023-12-31T23:59:59Z: a local-time implementation east of UTC says 2024-01.
        assert_eq!(
            query.extract(br#"{"ts":1704067199}"#).unwrap(),
            keys(&[("year", "2023"), ("month", "12")])
        );
        assert_eq!(
            query.extract(br#"{"ts":1704067200.5}"#).unwrap(),
            keys(&[("year", "2024"), ("month", "01")])
        );
    }

    #[test]
    fn date_filters_from_jq_std_are_available() {
        let query = MetadataQuery::compile(
            r#"{iso: (.ts | todate), day: (.ts | gmtime | strftime("%d")), back: (.s | fromdate | tostring),
               hour: (.ts | gmtime | mktime | strftime("%H"))}"#,
        )
        .unwrap();
        assert_eq!(
            query
                .extract(br#"{"ts":1700000000,"s":"2023-11-14T22:13:20Z"}"#)
                .unwrap(),
            keys(&[
                ("iso", "2023-11-14T22:13:20Z"),
                ("day", "14"),
                ("back", "1700000000"),
                ("hour", "22")
            ])
        );
    }

    #[test]
    fn values_are_stringified_like_jq_tostring() {
        let query = MetadataQuery::compile(
            "{s:.s, i:.i, f:.f, big:.big, tiny:.tiny, t:.t, n:.n, missing:.missing, a:.a, o:.o, neg:.neg, whole:.whole}",
        )
        .unwrap();
        let record = br#"{"s":"text","i":42,"f":1.5,"big":1e100,"tiny":0.00001,"t":true,"n":null,
                          "a":[1,"x"],"o":{"k":false},"neg":-7,"whole":3.0}"#;
        assert_eq!(
            query.extract(record).unwrap(),
            keys(&[
                ("s", "text"),
                ("i", "42"),
                ("f", "1.5"),
                ("big", "1e+100"),
                ("tiny", "1e-05"),
                ("t", "true"),
                ("n", "null"),
                ("missing", "null"),
                ("a", "[1,\"x\"]"),
                ("o", "{\"k\":false}"),
                ("neg", "-7"),
                ("whole", "3"),
            ])
        );
    }

    #[test]
    fn number_formatting_matches_jq_1_6() {
        // Expected values printed by jq 1.6 (`echo N | jq tostring`).
        assert_eq!(format_double(0.1), "0.1");
        assert_eq!(format_double(0.0001), "0.0001");
        assert_eq!(format_double(0.00012), "0.00012");
        assert_eq!(format_double(0.00001), "1e-05");
        assert_eq!(format_double(1.5e-7), "1.5e-07");
        assert_eq!(format_double(123456.789), "123456.789");
        assert_eq!(format_double(-42.0), "-42");
        assert_eq!(format_double(0.0), "0");
        assert_eq!(format_double(1e15), "1000000000000000");
        assert_eq!(format_double(1e16), "1e+16");
        assert_eq!(format_double(1e17), "1e+17");
        // Significant digits stretch the plain range: jq 1.6's well-known precision loss.
        assert_eq!(
            format_double(12345678901234567890.0),
            "12345678901234567000"
        );
        assert_eq!(format_double(1e19), "1e+19");
        assert_eq!(format_double(-2.5e20), "-2.5e+20");
        assert_eq!(format_double(-0.0), "-0");
        assert_eq!(format_double(1234567890123456.0), "1234567890123456");
        assert_eq!(format_double(f64::INFINITY), "1.7976931348623157e+308");
        assert_eq!(format_double(f64::NAN), "null");
    }

    #[test]
    fn non_json_records_fail() {
        let query = MetadataQuery::compile("{a:.a}").unwrap();
        let error = query.extract(b"not json").unwrap_err();
        assert!(error.contains("not valid JSON"), "{error}");
        assert!(query.extract(br#"{"a":1} {"a":2}"#).is_err());
    }

    #[test]
    fn results_other_than_one_object_fail() {
        let not_object = MetadataQuery::compile(".a").unwrap();
        assert!(
            not_object
                .extract(br#"{"a":"x"}"#)
                .unwrap_err()
                .contains("not an object")
        );
        let none = MetadataQuery::compile("empty").unwrap();
        assert!(none.extract(b"{}").unwrap_err().contains("no result"));
        let many = MetadataQuery::compile("{a:.a[]}").unwrap();
        assert!(
            many.extract(br#"{"a":[1,2]}"#)
                .unwrap_err()
                .contains("more than one")
        );
        let failing = MetadataQuery::compile(r#"{y:.ts|strftime("%Y")}"#).unwrap();
        assert!(
            failing
                .extract(br#"{"ts":"yesterday"}"#)
                .unwrap_err()
                .contains("query failed")
        );
        let erroring = MetadataQuery::compile(r#"error("custom")"#).unwrap();
        assert!(erroring.extract(b"{}").unwrap_err().contains("custom"));
    }

    #[test]
    fn malformed_queries_fail_to_compile_with_a_reason() {
        let error = MetadataQuery::compile("{customer_id: .customer_id").unwrap_err();
        assert!(
            error.starts_with("Invalid MetadataExtractionQuery: "),
            "{error}"
        );
        let error = MetadataQuery::compile("{a: nosuchfilter}").unwrap_err();
        assert!(error.contains("nosuchfilter"), "{error}");
        assert!(MetadataQuery::compile("").is_err());
    }

    #[test]
    fn filters_reaching_outside_the_record_are_blocked() {
        for query in [
            "{e: env.HOME}",
            "{e: $ENV.HOME}",
            "{h: halt}",
            "{d: (1|debug)}",
            "{s: (1|stderr)}",
            "{i: input}",
        ] {
            assert!(MetadataQuery::compile(query).is_err(), "{query} compiled");
        }
        assert!(MetadataQuery::compile(r#"import "x" as x; {a: 1}"#).is_err());
    }

    #[test]
    fn compiled_query_is_reused_across_records() {
        let query = MetadataQuery::compile("{k: (.id | tostring)}").unwrap();
        for id in 0..1000 {
            let record = format!("{{\"id\":{id}}}");
            assert_eq!(
                query.extract(record.as_bytes()).unwrap(),
                keys(&[("k", &id.to_string())])
            );
        }
    }
}
