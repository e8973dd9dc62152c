//! DescribeDeliveryStream's destination descriptions, derived from the stored configuration
//! document: AWS echoes the configuration with defaults filled in, nested configurations
//! renamed to descriptions, and secrets (passwords, access keys) left out.

use serde_json::{Map, Value, json};

use crate::convert::DESTINATIONS;

/// Fills the members AWS always reports for an S3-shaped configuration.
fn s3_defaults(object: &mut Map<String, Value>) {
    let hints = object.entry("BufferingHints").or_insert_with(|| json!({}));
    if let Some(hints) = hints.as_object_mut() {
        hints.entry("SizeInMBs").or_insert(json!(5));
        hints.entry("IntervalInSeconds").or_insert(json!(300));
    }
    object
        .entry("CompressionFormat")
        .or_insert(json!("UNCOMPRESSED"));
    object
        .entry("EncryptionConfiguration")
        .or_insert(json!({ "NoEncryptionConfig": "NoEncryption" }));
    object
        .entry("CloudWatchLoggingOptions")
        .or_insert(json!({ "Enabled": false }));
}

fn describe_s3(document: &Value) -> Value {
    let mut object = document.as_object().cloned().unwrap_or_default();
    s3_defaults(&mut object);
    Value::Object(object)
}

/// The plain S3 view AWS adds next to an extended S3 description.
fn plain_s3_view(extended: &Map<String, Value>) -> Value {
    let mut plain = Map::new();
    for member in [
        "RoleARN",
        "BucketARN",
        "Prefix",
        "ErrorOutputPrefix",
        "BufferingHints",
        "CompressionFormat",
        "EncryptionConfiguration",
        "CloudWatchLoggingOptions",
    ] {
        if let Some(value) = extended.get(member) {
            plain.insert(member.to_string(), value.clone());
        }
    }
    Value::Object(plain)
}

/// The `DestinationDescription` members for a stored destination.
pub(crate) fn destination_description(kind: &str, document: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let mut object = document.as_object().cloned().unwrap_or_default();
    for (from, to) in [
        ("S3Configuration", "S3DestinationDescription"),
        ("S3BackupConfiguration", "S3BackupDescription"),
    ] {
        if let Some(nested) = object.remove(from) {
            object.insert(to.to_string(), describe_s3(&nested));
        }
    }
    match kind {
        "S3DestinationConfiguration" | "ExtendedS3DestinationConfiguration" => {
            s3_defaults(&mut object);
            object.entry("S3BackupMode").or_insert(json!("Disabled"));
            out.insert(
                "S3DestinationDescription".to_string(),
                plain_s3_view(&object),
            );
            out.insert(
                "ExtendedS3DestinationDescription".to_string(),
                Value::Object(object),
            );
            return out;
        }
        "RedshiftDestinationConfiguration" => {
            object.remove("Password");
            object.entry("S3BackupMode").or_insert(json!("Disabled"));
        }
        "HttpEndpointDestinationConfiguration" => {
            if let Some(endpoint) = object
                .get_mut("EndpointConfiguration")
                .and_then(Value::as_object_mut)
            {
                endpoint.remove("AccessKey");
            }
            if let Some(endpoint) = object.remove("EndpointConfiguration") {
                object.insert("EndpointConfiguration".to_string(), endpoint);
            }
            let hints = object.entry("BufferingHints").or_insert_with(|| json!({}));
            if let Some(hints) = hints.as_object_mut() {
                hints.entry("SizeInMBs").or_insert(json!(5));
                hints.entry("IntervalInSeconds").or_insert(json!(300));
            }
            object
                .entry("RetryOptions")
                .or_insert(json!({ "DurationInSeconds": 300 }));
            object
                .entry("S3BackupMode")
                .or_insert(json!("FailedDataOnly"));
        }
        _ => {}
    }
    let description_member = DESTINATIONS
        .iter()
        .find(|(config, _, _)| *config == kind)
        .map(|(_, description, _)| *description)
        .unwrap_or("ExtendedS3DestinationDescription");
    out.insert(description_member.to_string(), Value::Object(object));
    out
}
