//! Hive (Glue) column type strings, e.g. `map<string,array<struct<a:int,b:decimal(10,2)>>>`.
//!
//! A Glue table describes columns with Hive's type grammar; Firehose converts JSON to whatever
//! those types say. We parse the text once, at configuration time, into [`HiveType`], which keeps
//! what the Arrow type cannot (the `varchar(n)`/`char(n)` length), and map it to Arrow from there.
//!
//! Every column is nullable, as in Hive: a missing JSON key is a null, never an error.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, TimeUnit};

/// Deeper nesting than this is refused when the schema is configured: the parser, the JSON
/// conversion and the array builders all recurse once per level. Glue itself allows types up to
/// 131072 characters, but nothing realistic nests this deep.
pub const TYPE_NESTING_DEPTH_MAX: usize = 32;
/// Hive's bounds for `varchar(n)` and `char(n)`.
const VARCHAR_LENGTH_MAX: usize = 65_535;
const CHAR_LENGTH_MAX: usize = 255;
/// Parquet's DECIMAL in a 16-byte integer (Arrow Decimal128), and Hive's own maximum.
const DECIMAL_PRECISION_MAX: u8 = 38;
/// Hive's `decimal` without arguments.
const DECIMAL_DEFAULT: (u8, i8) = (10, 0);

/// The timezone put on timestamp columns. Any non-empty timezone makes the Parquet writer mark
/// the column `isAdjustedToUTC = true`, which is what the values are: instants in UTC.
pub(crate) const TIMESTAMP_TIMEZONE: &str = "UTC";
/// Element and map entry names from the Parquet format specification (LogicalTypes.md), which
/// Hive, Spark and Athena write themselves.
const LIST_ELEMENT_NAME: &str = "element";
const MAP_ENTRIES_NAME: &str = "key_value";
const MAP_KEY_NAME: &str = "key";
const MAP_VALUE_NAME: &str = "value";

/// A parsed Hive column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HiveType {
    /// `string`, or `varchar(n)`/`char(n)` with `max_chars = Some(n)`: Hive truncates longer
    /// values to `n` characters on write, so we do too.
    String {
        max_chars: Option<usize>,
    },
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Boolean,
    Timestamp,
    Date,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Binary,
    Array(Box<HiveType>),
    /// Hive only allows primitive key types; the parser enforces it.
    Map(Box<HiveType>, Box<HiveType>),
    Struct(Vec<StructField>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StructField {
    pub name: String,
    pub ty: HiveType,
}

impl HiveType {
    /// The Arrow type the column is built with, which decides the Parquet type written:
    /// timestamps become INT64 TIMESTAMP(MILLIS, isAdjustedToUTC = true) (see `TIMESTAMP_TIMEZONE`),
    /// tinyint/smallint INT32 with an INT(8/16) annotation, decimals INT32/INT64/FIXED_LEN_BYTE_ARRAY
    /// by precision.
    pub(crate) fn data_type(&self) -> DataType {
        match self {
            HiveType::String { .. } => DataType::Utf8,
            HiveType::TinyInt => DataType::Int8,
            HiveType::SmallInt => DataType::Int16,
            HiveType::Int => DataType::Int32,
            HiveType::BigInt => DataType::Int64,
            HiveType::Float => DataType::Float32,
            HiveType::Double => DataType::Float64,
            HiveType::Boolean => DataType::Boolean,
            // MILLIS, not MICROS: Athena (Presto/Trino Hive connector) reads timestamps at
            // millisecond precision and Firehose's own clock and `millis` format are millisecond
            // based; Spark reads either. INT96 is deprecated in the Parquet format.
            HiveType::Timestamp => {
                DataType::Timestamp(TimeUnit::Millisecond, Some(TIMESTAMP_TIMEZONE.into()))
            }
            HiveType::Date => DataType::Date32,
            HiveType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            HiveType::Binary => DataType::Binary,
            HiveType::Array(element) => DataType::List(list_element_field(element)),
            HiveType::Map(key, value) => DataType::Map(map_entries_field(key, value), false),
            HiveType::Struct(fields) => DataType::Struct(struct_fields(fields)),
        }
    }

    fn is_primitive(&self) -> bool {
        !matches!(
            self,
            HiveType::Array(_) | HiveType::Map(..) | HiveType::Struct(_)
        )
    }
}

pub(crate) fn list_element_field(element: &HiveType) -> Arc<Field> {
    Arc::new(Field::new(LIST_ELEMENT_NAME, element.data_type(), true))
}

pub(crate) fn map_entries_field(key: &HiveType, value: &HiveType) -> Arc<Field> {
    let entries = DataType::Struct(map_entry_fields(key, value));
    Arc::new(Field::new(MAP_ENTRIES_NAME, entries, false))
}

pub(crate) fn map_entry_fields(key: &HiveType, value: &HiveType) -> Fields {
    Fields::from(vec![
        // Parquet requires map keys to be present.
        Field::new(MAP_KEY_NAME, key.data_type(), false),
        Field::new(MAP_VALUE_NAME, value.data_type(), true),
    ])
}

pub(crate) fn struct_fields(fields: &[StructField]) -> Fields {
    fields
        .iter()
        .map(|field| Field::new(&field.name, field.ty.data_type(), true))
        .collect()
}

/// Parses a Hive type string into the Arrow type its column is written with.
///
/// Type names are case-insensitive and may be surrounded by whitespace; struct field names keep
/// their spelling and may be quoted with backticks.
///
/// # Errors
/// The reason, when the text is not a supported Hive type.
pub fn parse_hive_type(text: &str) -> Result<DataType, String> {
    parse(text).map(|ty| ty.data_type())
}

pub(crate) fn parse(text: &str) -> Result<HiveType, String> {
    let mut parser = Parser { text, position: 0 };
    let ty = parser.parse_type(0)?;
    parser.skip_whitespace();
    if parser.position != text.len() {
        return Err(parser.error("unexpected text after the type"));
    }
    Ok(ty)
}

struct Parser<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Parser<'a> {
    fn parse_type(&mut self, depth: usize) -> Result<HiveType, String> {
        if depth >= TYPE_NESTING_DEPTH_MAX {
            return Err(format!(
                "type nesting deeper than {TYPE_NESTING_DEPTH_MAX} levels"
            ));
        }
        self.skip_whitespace();
        let start = self.position;
        let name = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
        if name.is_empty() {
            return Err(self.error("expected a type name"));
        }
        let ty = match name.to_ascii_lowercase().as_str() {
            "string" => HiveType::String { max_chars: None },
            "varchar" => HiveType::String {
                max_chars: Some(self.parse_length("varchar", VARCHAR_LENGTH_MAX)?),
            },
            "char" => HiveType::String {
                max_chars: Some(self.parse_length("char", CHAR_LENGTH_MAX)?),
            },
            "tinyint" => HiveType::TinyInt,
            "smallint" => HiveType::SmallInt,
            // `integer` is Hive's synonym for `int` since Hive 2.2.
            "int" | "integer" => HiveType::Int,
            "bigint" => HiveType::BigInt,
            "float" => HiveType::Float,
            "double" => HiveType::Double,
            "boolean" => HiveType::Boolean,
            "timestamp" => HiveType::Timestamp,
            "date" => HiveType::Date,
            "decimal" => self.parse_decimal_arguments()?,
            "binary" => HiveType::Binary,
            "array" => {
                self.expect('<')?;
                let element = self.parse_type(depth + 1)?;
                self.expect('>')?;
                HiveType::Array(Box::new(element))
            }
            "map" => {
                self.expect('<')?;
                let key = self.parse_type(depth + 1)?;
                if !key.is_primitive() {
                    return Err(format!(
                        "map keys must be a primitive type in '{}'",
                        self.text
                    ));
                }
                self.expect(',')?;
                let value = self.parse_type(depth + 1)?;
                self.expect('>')?;
                HiveType::Map(Box::new(key), Box::new(value))
            }
            "struct" => self.parse_struct_fields(depth)?,
            _ => {
                return Err(format!(
                    "unsupported type '{}' at offset {start} of '{}'",
                    name, self.text
                ));
            }
        };
        Ok(ty)
    }

    fn parse_length(&mut self, type_name: &str, maximum: usize) -> Result<usize, String> {
        self.expect('(')?;
        let length = self.parse_number()?;
        self.expect(')')?;
        if length == 0 || length > maximum {
            return Err(format!(
                "{type_name}({length}): the length must be 1 to {maximum}"
            ));
        }
        Ok(length)
    }

    fn parse_decimal_arguments(&mut self) -> Result<HiveType, String> {
        self.skip_whitespace();
        if !self.rest().starts_with('(') {
            let (precision, scale) = DECIMAL_DEFAULT;
            return Ok(HiveType::Decimal { precision, scale });
        }
        self.expect('(')?;
        let precision = self.parse_number()?;
        self.skip_whitespace();
        let scale = if self.rest().starts_with(',') {
            self.expect(',')?;
            self.parse_number()?
        } else {
            0
        };
        self.expect(')')?;
        if precision == 0 || precision > usize::from(DECIMAL_PRECISION_MAX) || scale > precision {
            return Err(format!(
                "decimal({precision},{scale}): the precision must be 1 to \
                 {DECIMAL_PRECISION_MAX} and the scale 0 to the precision"
            ));
        }
        let precision = u8::try_from(precision).expect("checked against DECIMAL_PRECISION_MAX");
        let scale = i8::try_from(scale).expect("scale is at most the precision, at most 38");
        Ok(HiveType::Decimal { precision, scale })
    }

    fn parse_struct_fields(&mut self, depth: usize) -> Result<HiveType, String> {
        self.expect('<')?;
        let mut fields: Vec<StructField> = Vec::new();
        loop {
            self.skip_whitespace();
            let name = self.parse_field_name()?;
            if fields
                .iter()
                .any(|field| field.name.eq_ignore_ascii_case(&name))
            {
                return Err(format!(
                    "duplicate struct field '{name}' in '{}'",
                    self.text
                ));
            }
            self.expect(':')?;
            let ty = self.parse_type(depth + 1)?;
            fields.push(StructField { name, ty });
            self.skip_whitespace();
            if self.rest().starts_with(',') {
                self.position += 1;
                continue;
            }
            self.expect('>')?;
            return Ok(HiveType::Struct(fields));
        }
    }

    fn parse_field_name(&mut self) -> Result<String, String> {
        if self.rest().starts_with('`') {
            self.position += 1;
            let name = self.take_while(|c| c != '`').to_owned();
            self.expect('`')?;
            if name.is_empty() {
                return Err(self.error("empty struct field name"));
            }
            return Ok(name);
        }
        let name = self.take_while(|c| c.is_alphanumeric() || c == '_');
        if name.is_empty() {
            return Err(self.error("expected a struct field name"));
        }
        Ok(name.to_owned())
    }

    fn parse_number(&mut self) -> Result<usize, String> {
        self.skip_whitespace();
        let digits = self.take_while(|c| c.is_ascii_digit());
        // More than 9 digits cannot be a valid length, precision or scale anyway.
        if digits.is_empty() || digits.len() > 9 {
            return Err(self.error("expected a number"));
        }
        digits.parse().map_err(|_| self.error("expected a number"))
    }

    fn expect(&mut self, expected: char) -> Result<(), String> {
        self.skip_whitespace();
        if self.rest().starts_with(expected) {
            self.position += expected.len_utf8();
            Ok(())
        } else {
            Err(self.error(&format!("expected '{expected}'")))
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest = &self.text[self.position..];
        let length = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.position += length;
        &rest[..length]
    }

    fn skip_whitespace(&mut self) {
        self.take_while(char::is_whitespace);
    }

    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at offset {} of type '{}'", self.position, self.text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn primitive_types_map_to_their_arrow_types() {
        let cases = [
            ("string", DataType::Utf8),
            ("VARCHAR(10)", DataType::Utf8),
            ("char(3)", DataType::Utf8),
            ("tinyint", DataType::Int8),
            ("smallint", DataType::Int16),
            ("int", DataType::Int32),
            ("integer", DataType::Int32),
            ("bigint", DataType::Int64),
            ("float", DataType::Float32),
            ("double", DataType::Float64),
            ("boolean", DataType::Boolean),
            (
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ),
            ("date", DataType::Date32),
            ("decimal", DataType::Decimal128(10, 0)),
            ("decimal(10,2)", DataType::Decimal128(10, 2)),
            (" decimal ( 38 , 38 ) ", DataType::Decimal128(38, 38)),
            ("decimal(5)", DataType::Decimal128(5, 0)),
            ("binary", DataType::Binary),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_hive_type(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn nested_types_use_parquet_specification_names() {
        let ty = parse_hive_type("map<string,array<struct<lat:double,`Long Name`:int>>>").unwrap();
        let DataType::Map(entries, sorted) = ty else {
            panic!("not a map: {ty:?}")
        };
        assert!(!sorted);
        assert_eq!(entries.name(), "key_value");
        let DataType::Struct(entry_fields) = entries.data_type() else {
            panic!()
        };
        assert_eq!(entry_fields[0].name(), "key");
        assert!(!entry_fields[0].is_nullable());
        assert_eq!(entry_fields[0].data_type(), &DataType::Utf8);
        assert_eq!(entry_fields[1].name(), "value");
        let DataType::List(element) = entry_fields[1].data_type() else {
            panic!()
        };
        assert_eq!(element.name(), "element");
        let DataType::Struct(fields) = element.data_type() else {
            panic!()
        };
        assert_eq!(fields[0].name(), "lat");
        assert_eq!(fields[1].name(), "Long Name");
        assert_eq!(fields[1].data_type(), &DataType::Int32);
    }

    #[test]
    fn invalid_types_are_rejected_with_a_reason() {
        for text in [
            "",
            "str",
            "varchar",
            "varchar(0)",
            "varchar(65536)",
            "char(256)",
            "decimal(0,0)",
            "decimal(39,2)",
            "decimal(5,6)",
            "array<int",
            "array<>",
            "map<string>",
            "map<array<int>,int>",
            "struct<>",
            "struct<a:int,A:string>",
            "struct<a int>",
            "int int",
            "interval",
        ] {
            assert!(parse_hive_type(text).is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}int{}", "array<".repeat(40), ">".repeat(40));
        let error = parse_hive_type(&deep).unwrap_err();
        assert!(error.contains("nesting"), "{error}");
        let ok = format!("{}int{}", "array<".repeat(10), ">".repeat(10));
        assert!(parse_hive_type(&ok).is_ok());
    }
}
