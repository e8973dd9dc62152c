//! Converts JSON records and reads the produced bytes back with the Parquet crate's Arrow reader,
//! checking the file's schema, metadata and values.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimestampMillisecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use millstream_firehose_parquet::{
    Column, Conversion, Converter, Deserializer, MALFORMED_DATA_CODE, PARSE_ERROR_CODE,
    ParquetCompression, ParquetOptions,
};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, Encoding, LogicalType, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;

fn columns(pairs: &[(&str, &str)]) -> Vec<Column> {
    pairs
        .iter()
        .map(|(name, ty)| Column {
            name: (*name).to_owned(),
            hive_type: (*ty).to_owned(),
        })
        .collect()
}

fn convert(converter: &Converter, records: &[&str]) -> Conversion {
    let records: Vec<&[u8]> = records.iter().map(|record| record.as_bytes()).collect();
    converter.convert(&records)
}

fn openx(pairs: &[(&str, &str)]) -> Converter {
    Converter::new(
        &columns(pairs),
        Deserializer::default(),
        ParquetOptions::default(),
    )
    .unwrap()
}

fn hive(pairs: &[(&str, &str)], timestamp_formats: &[&str]) -> Converter {
    let deserializer = Deserializer::Hive {
        timestamp_formats: timestamp_formats.iter().map(|f| (*f).to_owned()).collect(),
    };
    Converter::new(&columns(pairs), deserializer, ParquetOptions::default()).unwrap()
}

/// The file's single batch, read back using the embedded Arrow schema.
fn read(parquet: &[u8]) -> (RecordBatch, std::sync::Arc<ParquetMetaData>) {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(Bytes::copy_from_slice(parquet)).unwrap();
    let metadata = builder.metadata().clone();
    let mut batches: Vec<RecordBatch> = builder
        .with_batch_size(1 << 20)
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches.len(), 1);
    (batches.remove(0), metadata)
}

/// The file's single batch, typed from the Parquet schema alone, as a reader without Arrow
/// metadata (Athena, Spark) sees it.
fn read_without_arrow_hints(parquet: &[u8]) -> RecordBatch {
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
        Bytes::copy_from_slice(parquet),
        options,
    )
    .unwrap();
    let mut batches: Vec<RecordBatch> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 1);
    batches.remove(0)
}

fn strings(array: &dyn Array) -> Vec<Option<String>> {
    array
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect()
}

fn int32s(array: &dyn Array) -> Vec<Option<i32>> {
    array.as_primitive::<Int32Type>().iter().collect()
}

fn timestamps(batch: &RecordBatch, column: &str) -> Vec<Option<i64>> {
    batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<TimestampMillisecondType>()
        .iter()
        .collect()
}

const ALL_TYPES: &[(&str, &str)] = &[
    ("s", "string"),
    ("vc", "varchar(3)"),
    ("ch", "char(2)"),
    ("ti", "tinyint"),
    ("si", "smallint"),
    ("i", "int"),
    ("bi", "bigint"),
    ("f", "float"),
    ("d", "double"),
    ("b", "boolean"),
    ("ts", "timestamp"),
    ("dt", "date"),
    ("price", "decimal(10,2)"),
    ("big", "decimal(38,4)"),
    ("bin", "binary"),
    ("tags", "array<string>"),
    ("attrs", "map<string,int>"),
    ("geo", "struct<lat:double,lon:double>"),
    (
        "nested",
        "array<struct<name:string,scores:array<int>,flags:map<int,boolean>>>",
    ),
];

const FULL_RECORD: &str = r#"{
    "s": "hello", "vc": "abcdef", "ch": "xyz", "ti": -128, "si": 32767, "i": -2147483648,
    "bi": 9223372036854775807, "f": 1.5, "d": 2.25, "b": true, "ts": "2018-02-07T19:58:48.123Z",
    "dt": "2018-02-07", "price": 12.345, "big": "-12345678901234567890123456789012.3456",
    "bin": "AAEC/w==", "tags": ["a", null, "c"], "attrs": {"one": 1, "none": null},
    "geo": {"lat": 52.5, "lon": 13.4},
    "nested": [{"name": "n1", "scores": [1, 2], "flags": {"7": true}}, null, {"name": "n3"}]
}"#;

#[test]
fn every_supported_type_round_trips_with_its_schema() {
    let converter = openx(ALL_TYPES);
    // The second record has every column missing; the third sets them to null explicitly.
    let conversion = convert(
        &converter,
        &[FULL_RECORD, "{}", r#"{"s": null, "geo": null}"#],
    );
    assert_eq!(conversion.failures, vec![]);
    assert_eq!(conversion.rows, 3);

    let (batch, metadata) = read(&conversion.parquet);
    assert_eq!(batch.num_rows(), 3);
    assert_eq!(metadata.file_metadata().num_rows(), 3);

    // Schema: names in order, every column nullable, types as parse_hive_type says.
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let expected_names: Vec<&str> = ALL_TYPES.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, expected_names);
    for (field, (_, ty)) in schema.fields().iter().zip(ALL_TYPES) {
        assert!(field.is_nullable(), "{} is not nullable", field.name());
        assert_eq!(
            field.data_type(),
            &millstream_firehose_parquet::parse_hive_type(ty).unwrap(),
            "{}",
            field.name()
        );
    }
    assert_eq!(schema.as_ref(), converter.schema().as_ref());

    let column = |name: &str| batch.column_by_name(name).unwrap().clone();
    assert_eq!(strings(&column("s")), [Some("hello".into()), None, None]);
    assert_eq!(strings(&column("vc")), [Some("abc".into()), None, None]);
    assert_eq!(strings(&column("ch")), [Some("xy".into()), None, None]);
    assert_eq!(
        column("ti")
            .as_primitive::<Int8Type>()
            .iter()
            .collect::<Vec<_>>(),
        [Some(-128), None, None]
    );
    assert_eq!(column("si").as_primitive::<Int16Type>().value(0), 32767);
    assert_eq!(int32s(&column("i")), [Some(i32::MIN), None, None]);
    assert_eq!(column("bi").as_primitive::<Int64Type>().value(0), i64::MAX);
    assert_eq!(column("f").as_primitive::<Float32Type>().value(0), 1.5);
    assert_eq!(column("d").as_primitive::<Float64Type>().value(0), 2.25);
    assert!(column("b").as_boolean().value(0));
    assert!(column("b").is_null(1));
    assert_eq!(
        timestamps(&batch, "ts"),
        [Some(1_518_033_528_123), None, None]
    );
    assert_eq!(column("dt").as_primitive::<Date32Type>().value(0), 17_569);
    // 12.345 rounds half-up to 12.35.
    assert_eq!(
        column("price").as_primitive::<Decimal128Type>().value(0),
        1235
    );
    assert_eq!(
        column("big").as_primitive::<Decimal128Type>().value(0),
        -123_456_789_012_345_678_901_234_567_890_123_456
    );
    assert_eq!(column("bin").as_binary::<i32>().value(0), [0, 1, 2, 255]);
    assert!(column("bin").is_null(1));

    let tags = column("tags");
    let tags = tags.as_list::<i32>();
    assert_eq!(
        strings(tags.value(0).as_ref()),
        [Some("a".into()), None, Some("c".into())]
    );
    assert!(tags.is_null(1) && tags.is_null(2));

    let attrs = column("attrs");
    let attrs = attrs.as_map();
    let entries = attrs.value(0);
    // serde_json keeps object members sorted by key.
    assert_eq!(
        strings(entries.column(0).as_ref()),
        [Some("none".into()), Some("one".into())]
    );
    assert_eq!(int32s(entries.column(1).as_ref()), [None, Some(1)]);
    assert!(attrs.is_null(1));

    let geo = column("geo");
    let geo = geo.as_struct();
    assert_eq!(
        geo.column_by_name("lat")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0),
        52.5
    );
    assert_eq!(
        geo.column_by_name("lon")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0),
        13.4
    );
    assert!(geo.is_null(1) && geo.is_null(2));

    let nested = column("nested");
    let nested = nested.as_list::<i32>();
    let items = nested.value(0);
    let items = items.as_struct();
    assert_eq!(items.len(), 3);
    assert!(items.is_valid(0) && items.is_null(1) && items.is_valid(2));
    assert_eq!(
        strings(items.column(0).as_ref()),
        [Some("n1".into()), None, Some("n3".into())]
    );
    let scores = items.column(1).as_list::<i32>();
    assert_eq!(int32s(scores.value(0).as_ref()), [Some(1), Some(2)]);
    assert!(scores.is_null(2));
    let flags = items.column(2).as_map();
    assert_eq!(int32s(flags.value(0).column(0).as_ref()), [Some(7)]);
    assert!(flags.value(0).column(1).as_boolean().value(0));
    assert!(nested.is_null(1));
}

#[test]
fn the_parquet_schema_itself_carries_the_types_athena_and_spark_read() {
    let conversion = convert(&openx(ALL_TYPES), &[FULL_RECORD]);
    let (_, metadata) = read(&conversion.parquet);
    let parquet_schema = metadata.file_metadata().schema_descr();
    let leaf = |path: &str| {
        (0..parquet_schema.num_columns())
            .map(|i| parquet_schema.column(i))
            .find(|c| c.path().string() == path)
            .unwrap_or_else(|| panic!("no leaf {path}"))
    };
    let ts = leaf("ts");
    assert_eq!(ts.physical_type(), PhysicalType::INT64);
    assert_eq!(
        ts.logical_type_ref(),
        Some(&LogicalType::timestamp(
            true,
            parquet::basic::TimeUnit::MILLIS
        ))
    );
    assert_eq!(leaf("dt").logical_type_ref(), Some(&LogicalType::Date));
    assert_eq!(leaf("s").logical_type_ref(), Some(&LogicalType::String));
    assert_eq!(
        leaf("ti").logical_type_ref(),
        Some(&LogicalType::integer(8, true))
    );
    assert_eq!(
        leaf("price").logical_type_ref(),
        Some(&LogicalType::decimal(2, 10))
    );
    assert_eq!(
        leaf("big").physical_type(),
        PhysicalType::FIXED_LEN_BYTE_ARRAY
    );
    // Three-level lists and maps with the specification's names.
    leaf("tags.list.element");
    leaf("attrs.key_value.key");
    leaf("attrs.key_value.value");
    leaf("nested.list.element.scores.list.element");

    // Typed from the Parquet schema alone, the values read the same.
    let batch = read_without_arrow_hints(&conversion.parquet);
    let ts = batch.column_by_name("ts").unwrap();
    let DataType::Timestamp(TimeUnit::Millisecond, Some(zone)) = ts.data_type() else {
        panic!("{:?}", ts.data_type())
    };
    assert_eq!(zone.as_ref(), "UTC"); // what isAdjustedToUTC = true reads as
    assert_eq!(
        ts.as_primitive::<TimestampMillisecondType>().value(0),
        1_518_033_528_123
    );
    assert_eq!(
        batch.column_by_name("price").unwrap().data_type(),
        &DataType::Decimal128(10, 2)
    );
}

#[test]
fn failures_are_isolated_by_index_with_firehose_codes() {
    let converter = openx(&[("id", "int"), ("name", "string")]);
    let conversion = convert(
        &converter,
        &[
            r#"{"id": 1, "name": "first"}"#,
            r#"{"id": 2, "name": "unterminated"#,
            r#"{"id": "not a number"}"#,
            "  \n ",
            "42",
            r#"[{"id": 5}]"#,
            r#"{"id": 6, "name": "last"}"#,
            r#"{"id": 7}{"id": 8.5}"#,
        ],
    );
    let failed: Vec<(usize, &str)> = conversion
        .failures
        .iter()
        .map(|f| (f.index, f.code))
        .collect();
    assert_eq!(
        failed,
        [
            (1, PARSE_ERROR_CODE),
            (2, MALFORMED_DATA_CODE),
            (3, MALFORMED_DATA_CODE),
            (4, MALFORMED_DATA_CODE),
            (5, MALFORMED_DATA_CODE),
            (7, MALFORMED_DATA_CODE),
        ]
    );
    let message = |index: usize| {
        conversion
            .failures
            .iter()
            .find(|f| f.index == index)
            .unwrap()
            .message
            .as_str()
    };
    assert!(
        message(1).starts_with("Encountered malformed JSON. "),
        "{}",
        message(1)
    );
    assert_eq!(
        message(2),
        r#"Data does not match the schema. id: value "not a number" cannot be converted to int"#
    );
    assert_eq!(
        message(3),
        "The record was empty or contained only whitespace."
    );
    assert!(
        message(4).contains("primitive at the top level"),
        "{}",
        message(4)
    );
    // A record fails whole: the good first object of record 7 is not written either.
    assert_eq!(
        message(7),
        "Data does not match the schema. id: value 8.5 cannot be converted to int"
    );

    assert_eq!(conversion.rows, 2);
    let (batch, _) = read(&conversion.parquet);
    assert_eq!(int32s(batch.column(0).as_ref()), [Some(1), Some(6)]);
    assert_eq!(
        strings(batch.column(1).as_ref()),
        [Some("first".into()), Some("last".into())]
    );
}

#[test]
fn nothing_converted_gives_an_empty_file() {
    let conversion = convert(&openx(&[("id", "int")]), &["nope", r#"{"id": true}"#]);
    assert!(conversion.parquet.is_empty());
    assert_eq!(conversion.rows, 0);
    assert_eq!(conversion.failures.len(), 2);
    let conversion = openx(&[("id", "int")]).convert(&[]);
    assert!(conversion.parquet.is_empty() && conversion.failures.is_empty());
}

#[test]
fn concatenated_objects_in_one_record_become_rows() {
    let converter = openx(&[("a", "int")]);
    let conversion = convert(
        &converter,
        &[r#"{"a":1}{"a":2}"#, "{\"a\":3}\n{\"a\":4}\n", r#"{"a":5}"#],
    );
    assert_eq!(conversion.failures, vec![]);
    assert_eq!(conversion.rows, 5);
    let (batch, _) = read(&conversion.parquet);
    assert_eq!(
        int32s(batch.column(0).as_ref()),
        [Some(1), Some(2), Some(3), Some(4), Some(5)]
    );
}

#[test]
fn missing_keys_are_null_and_extra_keys_are_ignored() {
    let converter = openx(&[("a", "int"), ("b", "string")]);
    let conversion = convert(
        &converter,
        &[r#"{"b": "x", "extra": {"deep": [1]}, "c": 3}"#],
    );
    assert_eq!(conversion.failures, vec![]);
    let (batch, _) = read(&conversion.parquet);
    assert_eq!(batch.num_columns(), 2);
    assert_eq!(int32s(batch.column(0).as_ref()), [None]);
    assert_eq!(strings(batch.column(1).as_ref()), [Some("x".into())]);
}

#[test]
fn openx_matches_keys_case_insensitively_by_default() {
    let pairs = [("userid", "int"), ("geo", "struct<lat:double>")];
    let record = r#"{"UserId": 7, "GEO": {"Lat": 1.5}}"#;
    let (batch, _) = read(&convert(&openx(&pairs), &[record]).parquet);
    assert_eq!(int32s(batch.column(0).as_ref()), [Some(7)]);
    let geo = batch.column(1).as_struct();
    assert_eq!(geo.column(0).as_primitive::<Float64Type>().value(0), 1.5);

    let case_sensitive = Deserializer::OpenX {
        case_insensitive: false,
        convert_dots_in_json_keys_to_underscores: false,
        column_to_json_key_mappings: BTreeMap::new(),
    };
    let converter =
        Converter::new(&columns(&pairs), case_sensitive, ParquetOptions::default()).unwrap();
    let (batch, _) = read(&convert(&converter, &[record]).parquet);
    assert!(batch.column(0).is_null(0));
    assert!(batch.column(1).is_null(0));
}

#[test]
fn openx_turns_dots_into_underscores_and_follows_column_mappings() {
    let deserializer = Deserializer::OpenX {
        case_insensitive: true,
        convert_dots_in_json_keys_to_underscores: true,
        column_to_json_key_mappings: BTreeMap::from([("ts".to_owned(), "timestamp".to_owned())]),
    };
    let converter = Converter::new(
        &columns(&[
            ("user_name", "string"),
            ("ts", "bigint"),
            ("meta", "struct<a_b:int>"),
        ]),
        deserializer,
        ParquetOptions::default(),
    )
    .unwrap();
    let conversion = convert(
        &converter,
        &[r#"{"User.Name": "ann", "timestamp": 5, "ts": 9, "meta": {"a.b": 3}}"#],
    );
    assert_eq!(conversion.failures, vec![]);
    let (batch, _) = read(&conversion.parquet);
    assert_eq!(strings(batch.column(0).as_ref()), [Some("ann".into())]);
    // The mapping replaces the column's own name: "ts" in the JSON is ignored.
    assert_eq!(batch.column(1).as_primitive::<Int64Type>().value(0), 5);
    assert_eq!(
        int32s(batch.column(2).as_struct().column(0).as_ref()),
        [Some(3)]
    );

    // Without the option, a dotted key matches nothing.
    let (batch, _) = read(
        &convert(
            &openx(&[("user_name", "string")]),
            &[r#"{"user.name": "x"}"#],
        )
        .parquet,
    );
    assert!(batch.column(0).is_null(0));
}

#[test]
fn hive_matches_exactly_and_refuses_what_openx_coerces() {
    let pairs = [("name", "string"), ("count", "int")];
    let converter = hive(&pairs, &[]);
    let conversion = convert(
        &converter,
        &[
            r#"{"Name": "x", "count": 1}"#,
            r#"{"name": 5, "count": 2}"#,
            r#"{"count": "3"}"#,
            r#"{"name": {"nested": true}}"#,
        ],
    );
    let failed: Vec<usize> = conversion.failures.iter().map(|f| f.index).collect();
    assert_eq!(failed, [2, 3]);
    let (batch, _) = read(&conversion.parquet);
    // "Name" does not match "name"; a number in a string column becomes its text.
    assert_eq!(strings(batch.column(0).as_ref()), [None, Some("5".into())]);
    assert_eq!(int32s(batch.column(1).as_ref()), [Some(1), Some(2)]);

    let lenient = convert(
        &openx(&pairs),
        &[r#"{"count": "3", "name": {"nested": true}}"#],
    );
    assert_eq!(lenient.failures, vec![]);
    let (batch, _) = read(&lenient.parquet);
    assert_eq!(
        strings(batch.column(0).as_ref()),
        [Some(r#"{"nested":true}"#.into())]
    );
    assert_eq!(int32s(batch.column(1).as_ref()), [Some(3)]);
}

#[test]
fn timestamps_accept_every_default_form() {
    let converter = openx(&[("ts", "timestamp")]);
    let records = [
        r#"{"ts": "2018-02-07T19:58:48.123Z"}"#,
        r#"{"ts": "2018-02-07T19:58:48Z"}"#,
        r#"{"ts": "2018-2-7 19:58:48.123456"}"#,
        r#"{"ts": "2018-02-07 19:58:48"}"#,
        r#"{"ts": 1518033528}"#,
        r#"{"ts": 1518033528123}"#,
        r#"{"ts": 1518033528.123}"#,
        r#"{"ts": "2018-02-07T19:58:48+01:00"}"#,
        r#"{"ts": "07/02/2018"}"#,
    ];
    let conversion = convert(&converter, &records);
    let failed: Vec<usize> = conversion.failures.iter().map(|f| f.index).collect();
    assert_eq!(failed, [7, 8]);
    let (batch, _) = read(&conversion.parquet);
    let base = 1_518_033_528_000;
    assert_eq!(
        timestamps(&batch, "ts"),
        [
            Some(base + 123),
            Some(base),
            Some(base + 123),
            Some(base),
            Some(base),
            Some(base + 123),
            Some(base + 123),
        ]
    );
}

#[test]
fn hive_timestamp_formats_add_joda_patterns_and_millis() {
    let converter = hive(
        &[("ts", "timestamp")],
        &["dd/MM/yyyy HH:mm:ss.SSS", "millis"],
    );
    let conversion = convert(
        &converter,
        &[
            r#"{"ts": "07/02/2018 19:58:48.123"}"#,
            r#"{"ts": 1518033528}"#,
            r#"{"ts": "2018-02-07 19:58:48"}"#,
            r#"{"ts": "07-02-2018"}"#,
        ],
    );
    let failed: Vec<usize> = conversion.failures.iter().map(|f| f.index).collect();
    assert_eq!(failed, [3]);
    let (batch, _) = read(&conversion.parquet);
    // With "millis", an integer is always milliseconds, whatever its magnitude.
    assert_eq!(
        timestamps(&batch, "ts"),
        [
            Some(1_518_033_528_123),
            Some(1_518_033_528),
            Some(1_518_033_528_000)
        ]
    );
}

#[test]
fn options_are_recorded_in_the_file_metadata() {
    let pairs = [("city", "string")];
    let records = [
        r#"{"city": "Berlin"}"#,
        r#"{"city": "Berlin"}"#,
        r#"{"city": "Paris"}"#,
    ];
    for (option, expected) in [
        (ParquetCompression::Snappy, Compression::SNAPPY),
        (
            ParquetCompression::Gzip,
            Compression::GZIP(Default::default()),
        ),
        (ParquetCompression::Uncompressed, Compression::UNCOMPRESSED),
    ] {
        let options = ParquetOptions {
            compression: option,
            ..ParquetOptions::default()
        };
        let converter = Converter::new(&columns(&pairs), Deserializer::default(), options).unwrap();
        let (batch, metadata) = read(&convert(&converter, &records).parquet);
        assert_eq!(batch.num_rows(), 3);
        let chunk = metadata.row_group(0).column(0);
        // The codec is stored without its level, so compare the codec kind.
        assert_eq!(
            std::mem::discriminant(&chunk.compression()),
            std::mem::discriminant(&expected),
            "{option:?}"
        );
        assert_eq!(metadata.file_metadata().version(), 1);
        assert!(
            !chunk
                .encodings()
                .any(|e| e == Encoding::RLE_DICTIONARY || e == Encoding::PLAIN_DICTIONARY)
        );
    }

    let options = ParquetOptions {
        enable_dictionary_compression: true,
        writer_version_v2: true,
        ..ParquetOptions::default()
    };
    let converter = Converter::new(&columns(&pairs), Deserializer::default(), options).unwrap();
    let (_, metadata) = read(&convert(&converter, &records).parquet);
    assert_eq!(metadata.file_metadata().version(), 2);
    assert!(
        metadata
            .row_group(0)
            .column(0)
            .encodings()
            .any(|e| e == Encoding::RLE_DICTIONARY)
    );
}

#[test]
fn invalid_configuration_is_rejected() {
    let default = || (Deserializer::default(), ParquetOptions::default());
    let attempt = |pairs: &[(&str, &str)], deserializer, options| {
        Converter::new(&columns(pairs), deserializer, options).unwrap_err()
    };
    let (d, o) = default();
    assert!(attempt(&[], d, o).contains("no columns"));
    let (d, o) = default();
    assert!(attempt(&[("a", "int"), ("b", "interval")], d, o).contains("column 'b'"));
    let (d, o) = default();
    // Case-insensitive matching makes these two columns read the same key.
    assert!(attempt(&[("a", "int"), ("A", "int")], d, o).contains("both read"));
    let hive = Deserializer::Hive {
        timestamp_formats: vec!["yyyy-ww".to_owned()],
    };
    assert!(attempt(&[("a", "int")], hive, ParquetOptions::default()).contains("'w'"));
    let small_block = ParquetOptions {
        block_size_bytes: 1024,
        ..ParquetOptions::default()
    };
    assert!(
        attempt(&[("a", "int")], Deserializer::default(), small_block).contains("BlockSizeBytes")
    );
    let small_page = ParquetOptions {
        page_size_bytes: 1024,
        ..ParquetOptions::default()
    };
    assert!(
        attempt(&[("a", "int")], Deserializer::default(), small_page).contains("PageSizeBytes")
    );
}

#[test]
fn column_serde_uses_the_type_key() {
    let column: Column =
        serde_json::from_str(r#"{"name": "price", "type": "decimal(10,2)"}"#).unwrap();
    assert_eq!(
        column,
        Column {
            name: "price".to_owned(),
            hive_type: "decimal(10,2)".to_owned()
        }
    );
    assert_eq!(
        serde_json::to_string(&column).unwrap(),
        r#"{"name":"price","type":"decimal(10,2)"}"#
    );
}
