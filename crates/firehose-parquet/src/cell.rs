//! JSON values to typed cells, following the configured deserializer's rules.
//!
//! A record is converted completely into cells before anything reaches an Arrow array, so a value
//! that fails half-way through a record cannot leave a partial row behind: the record is dropped
//! as a whole and reported, and the rest of the batch still converts.
//!
//! Rules shared by both SerDes: JSON `null` and missing keys are nulls; keys not in the schema are
//! ignored; integers must be JSON integers in the column's range; timestamps and dates follow
//! `timestamp.rs`; binary is base64 text. The OpenX SerDe is lenient the way its Java original
//! is: numbers and booleans written as strings convert, and an object or array in a `string`
//! column is kept as its JSON text. The Hive SerDe refuses both (reference §13).

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::hive_type::{HiveType, StructField};
use crate::timestamp::{self, TimestampFormat};

/// One converted value. Integers of every width are held as `i64` after their range check.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    TimestampMillis(i64),
    Date(i32),
    Decimal(i128),
    List(Vec<Cell>),
    Map(Vec<(Cell, Cell)>),
    Struct(Vec<Cell>),
}

/// How JSON keys are matched to column and struct field names, and how strictly values convert.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub lenient: bool,
    pub lowercase_keys: bool,
    pub dots_to_underscores: bool,
    pub timestamp_formats: Vec<TimestampFormat>,
}

impl Rules {
    /// The form a JSON key, column name or struct field name is compared in.
    pub(crate) fn normalize_key<'a>(&self, key: &'a str) -> Cow<'a, str> {
        let mut key = Cow::Borrowed(key);
        if self.lowercase_keys && key.chars().any(char::is_uppercase) {
            key = Cow::Owned(key.to_lowercase());
        }
        if self.dots_to_underscores && key.contains('.') {
            key = Cow::Owned(key.replace('.', "_"));
        }
        key
    }

    /// The object's values by normalized key. When two keys normalize alike (`"A"` and `"a"`),
    /// the one that sorts last wins, deterministically.
    pub(crate) fn index_object<'a>(
        &self,
        object: &'a Map<String, Value>,
    ) -> HashMap<Cow<'a, str>, &'a Value> {
        object
            .iter()
            .map(|(key, value)| (self.normalize_key(key), value))
            .collect()
    }
}

/// Why a value did not convert, with the path to it (`geo.lat`, `tags[2]`).
#[derive(Debug)]
pub(crate) struct Mismatch {
    pub path: String,
    pub reason: String,
}

impl Mismatch {
    fn new(reason: String) -> Self {
        Mismatch {
            path: String::new(),
            reason,
        }
    }

    /// Prepends a parent path segment while the error travels up.
    pub(crate) fn within(mut self, segment: &str) -> Self {
        if self.path.is_empty() || self.path.starts_with('[') {
            self.path = format!("{segment}{}", self.path);
        } else {
            self.path = format!("{segment}.{}", self.path);
        }
        self
    }
}

type Converted = Result<Cell, Mismatch>;

pub(crate) fn convert(value: &Value, ty: &HiveType, rules: &Rules) -> Converted {
    if value.is_null() {
        return Ok(Cell::Null);
    }
    match ty {
        HiveType::String { max_chars } => convert_string(value, *max_chars, rules),
        HiveType::TinyInt => {
            convert_integer(value, ty, i64::from(i8::MIN), i64::from(i8::MAX), rules)
        }
        HiveType::SmallInt => {
            convert_integer(value, ty, i64::from(i16::MIN), i64::from(i16::MAX), rules)
        }
        HiveType::Int => {
            convert_integer(value, ty, i64::from(i32::MIN), i64::from(i32::MAX), rules)
        }
        HiveType::BigInt => convert_integer(value, ty, i64::MIN, i64::MAX, rules),
        HiveType::Float | HiveType::Double => convert_float(value, ty, rules),
        HiveType::Boolean => match value {
            Value::Bool(flag) => Ok(Cell::Boolean(*flag)),
            Value::String(text) if rules.lenient && text.eq_ignore_ascii_case("true") => {
                Ok(Cell::Boolean(true))
            }
            Value::String(text) if rules.lenient && text.eq_ignore_ascii_case("false") => {
                Ok(Cell::Boolean(false))
            }
            _ => Err(mismatch(value, ty)),
        },
        HiveType::Timestamp => {
            let millis = match value {
                Value::Number(number) => {
                    timestamp::timestamp_from_number(number, &rules.timestamp_formats)
                }
                Value::String(text) => {
                    timestamp::timestamp_from_text(text, &rules.timestamp_formats)
                }
                _ => None,
            };
            millis
                .map(Cell::TimestampMillis)
                .ok_or_else(|| mismatch(value, ty))
        }
        HiveType::Date => match value {
            Value::String(text) => timestamp::date_from_text(text)
                .map(Cell::Date)
                .ok_or_else(|| mismatch(value, ty)),
            _ => Err(mismatch(value, ty)),
        },
        HiveType::Decimal { precision, scale } => {
            let text = match value {
                // serde_json prints integers exactly and floats in their shortest round-trip
                // form, so `0.1` arrives as "0.1", not as the binary double's expansion.
                Value::Number(number) => number.to_string(),
                Value::String(text) if rules.lenient => text.trim().to_owned(),
                _ => return Err(mismatch(value, ty)),
            };
            parse_decimal(&text, *precision, *scale)
                .map(Cell::Decimal)
                .ok_or_else(|| mismatch(value, ty))
        }
        HiveType::Binary => match value {
            Value::String(text) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Cell::Bytes)
                .map_err(|_| {
                    Mismatch::new(format!("{} is not base64 for binary", describe(value)))
                }),
            _ => Err(mismatch(value, ty)),
        },
        HiveType::Array(element) => match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    convert(item, element, rules).map_err(|e| e.within(&format!("[{index}]")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Cell::List),
            _ => Err(mismatch(value, ty)),
        },
        HiveType::Map(key_type, value_type) => match value {
            Value::Object(object) => object
                .iter()
                .map(|(key, item)| {
                    let key_cell = convert_map_key(key, key_type)
                        .map_err(|e| e.within(&format!("[{key:?}]")))?;
                    let value_cell = convert(item, value_type, rules)
                        .map_err(|e| e.within(&format!("[{key:?}]")))?;
                    Ok((key_cell, value_cell))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Cell::Map),
            _ => Err(mismatch(value, ty)),
        },
        HiveType::Struct(fields) => match value {
            Value::Object(object) => convert_struct(object, fields, rules),
            _ => Err(mismatch(value, ty)),
        },
    }
}

fn convert_struct(object: &Map<String, Value>, fields: &[StructField], rules: &Rules) -> Converted {
    let by_key = rules.index_object(object);
    fields
        .iter()
        .map(
            |field| match by_key.get(&rules.normalize_key(&field.name)) {
                Some(value) => convert(value, &field.ty, rules).map_err(|e| e.within(&field.name)),
                None => Ok(Cell::Null),
            },
        )
        .collect::<Result<Vec<_>, _>>()
        .map(Cell::Struct)
}

/// JSON object keys are always strings, so a `map<int,…>` key is parsed from its text whatever
/// the SerDe. Keys are kept as written: case-insensitivity applies to names, not to data.
fn convert_map_key(key: &str, key_type: &HiveType) -> Converted {
    let lenient = Rules {
        lenient: true,
        lowercase_keys: false,
        dots_to_underscores: false,
        timestamp_formats: Vec::new(),
    };
    convert(&Value::String(key.to_owned()), key_type, &lenient)
}

fn convert_string(value: &Value, max_chars: Option<usize>, rules: &Rules) -> Converted {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Array(_) | Value::Object(_) if rules.lenient => value.to_string(),
        _ => return Err(mismatch(value, &HiveType::String { max_chars })),
    };
    Ok(Cell::Text(match max_chars {
        Some(limit) => match text.char_indices().nth(limit) {
            Some((cut, _)) => text[..cut].to_owned(),
            None => text,
        },
        None => text,
    }))
}

fn convert_integer(
    value: &Value,
    ty: &HiveType,
    least: i64,
    most: i64,
    rules: &Rules,
) -> Converted {
    let integer = match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) if rules.lenient => text.trim().parse::<i64>().ok(),
        _ => None,
    };
    match integer {
        Some(integer) if (least..=most).contains(&integer) => Ok(Cell::Integer(integer)),
        _ => Err(mismatch(value, ty)),
    }
}

fn convert_float(value: &Value, ty: &HiveType, rules: &Rules) -> Converted {
    let float = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) if rules.lenient => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    match float {
        // A finite double that overflows `float` would silently become infinity.
        Some(float)
            if *ty == HiveType::Float && float.is_finite() && !(float as f32).is_finite() =>
        {
            Err(mismatch(value, ty))
        }
        Some(float) => Ok(Cell::Float(float)),
        None => Err(mismatch(value, ty)),
    }
}

/// Longest decimal literal we look at: 38 significant digits plus sign, point, exponent and
/// some leading zeros. Anything longer is refused rather than scanned.
const DECIMAL_TEXT_LENGTH_MAX: usize = 128;
/// Exponents beyond this cannot produce a representable decimal(38,s) value other than 0.
const DECIMAL_EXPONENT_MAX: i64 = 1_000;

/// Parses `[-+]digits[.digits][e[-+]digits]` into an integer scaled by `scale`, rounding
/// half-up (away from zero) as Hive's HiveDecimal does. `None` when it is not a number or does
/// not fit `precision` digits.
pub(crate) fn parse_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    if text.is_empty() || text.len() > DECIMAL_TEXT_LENGTH_MAX {
        return None;
    }
    let (negative, unsigned) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
        || exponent.unsigned_abs() > DECIMAL_EXPONENT_MAX.unsigned_abs()
    {
        return None;
    }
    // value = digits × 10^(exponent − fraction.len()); we want round(value × 10^scale).
    let digits: String = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let shift = exponent - i64::try_from(fraction.len()).ok()? + i64::from(scale);
    let magnitude: i128 = if digits.is_empty() {
        0
    } else if shift >= 0 {
        let shift = u32::try_from(shift).ok()?;
        let base: i128 = digits_value(digits)?;
        base.checked_mul(10i128.checked_pow(shift)?)?
    } else {
        let dropped = usize::try_from(-shift).ok()?;
        if dropped > digits.len() {
            0
        } else {
            let (kept, rest) = digits.split_at(digits.len() - dropped);
            let kept = if kept.is_empty() {
                0
            } else {
                digits_value(kept)?
            };
            let round_up = rest.as_bytes().first().is_some_and(|digit| *digit >= b'5');
            kept.checked_add(i128::from(round_up))?
        }
    };
    if magnitude >= 10i128.checked_pow(u32::from(precision))? {
        return None;
    }
    Some(if negative { -magnitude } else { magnitude })
}

/// A run of ASCII digits as an integer, `None` past 38 digits.
fn digits_value(digits: &str) -> Option<i128> {
    if digits.len() > 38 {
        return None;
    }
    digits.parse().ok()
}

fn mismatch(value: &Value, ty: &HiveType) -> Mismatch {
    Mismatch::new(format!(
        "{} cannot be converted to {}",
        describe(value),
        type_name(ty)
    ))
}

/// Length cap for a JSON value quoted in an error message.
const QUOTED_VALUE_CHARS_MAX: usize = 100;

fn describe(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(QUOTED_VALUE_CHARS_MAX) {
        Some((cut, _)) => format!("value {}…", &text[..cut]),
        None => format!("value {text}"),
    }
}

fn type_name(ty: &HiveType) -> String {
    match ty {
        HiveType::String { max_chars: None } => "string".to_owned(),
        HiveType::String {
            max_chars: Some(length),
        } => format!("varchar({length})"),
        HiveType::TinyInt => "tinyint".to_owned(),
        HiveType::SmallInt => "smallint".to_owned(),
        HiveType::Int => "int".to_owned(),
        HiveType::BigInt => "bigint".to_owned(),
        HiveType::Float => "float".to_owned(),
        HiveType::Double => "double".to_owned(),
        HiveType::Boolean => "boolean".to_owned(),
        HiveType::Timestamp => "timestamp".to_owned(),
        HiveType::Date => "date".to_owned(),
        HiveType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        HiveType::Binary => "binary".to_owned(),
        HiveType::Array(_) => "array".to_owned(),
        HiveType::Map(..) => "map".to_owned(),
        HiveType::Struct(_) => "struct".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hive_type;

    fn openx() -> Rules {
        Rules {
            lenient: true,
            lowercase_keys: true,
            dots_to_underscores: false,
            timestamp_formats: Vec::new(),
        }
    }

    fn hive() -> Rules {
        Rules {
            lenient: false,
            lowercase_keys: false,
            ..openx()
        }
    }

    fn convert_as(value: Value, ty: &str, rules: &Rules) -> Result<Cell, String> {
        convert(&value, &hive_type::parse(ty).unwrap(), rules)
            .map_err(|e| format!("{}: {}", e.path, e.reason))
    }

    #[test]
    fn decimals_scale_and_round_half_up() {
        assert_eq!(parse_decimal("12.345", 10, 2), Some(1235));
        assert_eq!(parse_decimal("-12.345", 10, 2), Some(-1235));
        assert_eq!(parse_decimal("12.344", 10, 2), Some(1234));
        assert_eq!(parse_decimal("12", 10, 2), Some(1200));
        assert_eq!(parse_decimal("+0.5", 1, 0), Some(1));
        assert_eq!(parse_decimal(".5", 3, 1), Some(5));
        assert_eq!(parse_decimal("1.5e2", 5, 1), Some(1500));
        assert_eq!(parse_decimal("15E-3", 5, 2), Some(2));
        assert_eq!(parse_decimal("0.0001", 5, 2), Some(0));
        assert_eq!(parse_decimal("000123", 3, 0), Some(123));
        assert_eq!(
            parse_decimal("99999999999999999999999999999999999999", 38, 0),
            Some(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        for (text, precision, scale) in [
            ("1000", 3, 0),
            ("999.995", 5, 2),
            ("", 5, 0),
            ("-", 5, 0),
            (".", 5, 0),
            ("1.2.3", 5, 0),
            ("12a", 5, 0),
            ("1e99999", 38, 0),
            ("1e30", 38, 10),
        ] {
            assert_eq!(parse_decimal(text, precision, scale), None, "{text}");
        }
    }

    #[test]
    fn openx_coerces_strings_and_hive_does_not() {
        assert_eq!(
            convert_as(json!("42"), "int", &openx()),
            Ok(Cell::Integer(42))
        );
        assert!(convert_as(json!("42"), "int", &hive()).is_err());
        assert_eq!(
            convert_as(json!("TRUE"), "boolean", &openx()),
            Ok(Cell::Boolean(true))
        );
        assert!(convert_as(json!("true"), "boolean", &hive()).is_err());
        assert_eq!(
            convert_as(json!({"a": [1]}), "string", &openx()),
            Ok(Cell::Text(r#"{"a":[1]}"#.to_owned()))
        );
        assert!(convert_as(json!({"a": 1}), "string", &hive()).is_err());
        // Scalars become text under both.
        assert_eq!(
            convert_as(json!(1.5), "string", &hive()),
            Ok(Cell::Text("1.5".to_owned()))
        );
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(
            convert_as(json!(-128), "tinyint", &hive()),
            Ok(Cell::Integer(-128))
        );
        assert!(convert_as(json!(128), "tinyint", &hive()).is_err());
        assert!(convert_as(json!(32768), "smallint", &hive()).is_err());
        assert!(convert_as(json!(2_147_483_648_i64), "int", &hive()).is_err());
        assert!(convert_as(json!(9_223_372_036_854_775_808_u64), "bigint", &hive()).is_err());
        assert!(convert_as(json!(1.5), "bigint", &hive()).is_err());
        assert!(convert_as(json!(1e300), "float", &hive()).is_err());
        assert_eq!(
            convert_as(json!(3), "double", &hive()),
            Ok(Cell::Float(3.0))
        );
    }

    #[test]
    fn varchar_truncates_by_characters() {
        assert_eq!(
            convert_as(json!("héllo wörld"), "varchar(5)", &hive()),
            Ok(Cell::Text("héllo".to_owned()))
        );
        assert_eq!(
            convert_as(json!("hé"), "char(5)", &hive()),
            Ok(Cell::Text("hé".to_owned()))
        );
    }

    #[test]
    fn mismatches_name_the_nested_path() {
        let error = convert_as(
            json!({"geo": {"pts": [1, "x"]}}),
            "struct<geo:struct<pts:array<int>>>",
            &hive(),
        )
        .unwrap_err();
        assert_eq!(error, "geo.pts[1]: value \"x\" cannot be converted to int");
        let error = convert_as(json!({"k": "v"}), "map<int,string>", &hive()).unwrap_err();
        assert!(error.starts_with("[\"k\"]: "), "{error}");
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let error = convert_as(json!("x".repeat(500)), "int", &hive()).unwrap_err();
        assert!(error.len() < 200, "{error}");
    }
}
