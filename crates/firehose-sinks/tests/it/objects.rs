//! Object targets: the embedded directory tree and moto's S3.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use millstream_firehose_sinks::{ObjectBackend, ObjectTarget, SinkError};

use crate::external::MotoS3;

#[tokio::test]
async fn embedded_objects_are_files_under_the_bucket_directory() {
    let root = tempfile::tempdir().unwrap();
    let target = ObjectTarget::new(
        ObjectBackend::Embedded {
            root: root.path().into(),
        },
        "logs-bucket",
    )
    .unwrap();

    let key = "2024/05/20/19/orders-1-2024-05-20-19-42-11-abc.gz";
    target
        .put(key, Bytes::from_static(b"first"), Some("gzip"))
        .await
        .unwrap();
    // Same key again overwrites, as an idempotent retry must.
    target
        .put(key, Bytes::from_static(b"second body"), Some("gzip"))
        .await
        .unwrap();
    target
        .put("2024/05/20-other", Bytes::from_static(b"o"), None)
        .await
        .unwrap();
    target
        .put("2023/12/31/23/late", Bytes::from_static(b"l"), None)
        .await
        .unwrap();

    let on_disk = std::fs::read(root.path().join("logs-bucket").join(key)).unwrap();
    assert_eq!(on_disk, b"second body");
    assert_eq!(
        target.get(key).await.unwrap(),
        Bytes::from_static(b"second body")
    );
    assert_eq!(target.head(key).await.unwrap().size_bytes, 11);
    assert_eq!(
        target.list("2024/05/20").await.unwrap(),
        vec!["2024/05/20-other".to_owned(), key.to_owned()]
    );
    assert_eq!(target.list("").await.unwrap().len(), 3);
    assert!(target.list("2025").await.unwrap().is_empty());
    let missing = target.get("2024/none").await.unwrap_err();
    assert!(
        matches!(missing, SinkError::ObjectNotFound { .. }),
        "{missing}"
    );
}

#[tokio::test]
async fn embedded_puts_never_expose_a_partial_object() {
    const OBJECT_BYTES: usize = 4 * 1024 * 1024;
    let root = tempfile::tempdir().unwrap();
    let target = ObjectTarget::new(
        ObjectBackend::Embedded {
            root: root.path().into(),
        },
        "atomic",
    )
    .unwrap();
    let key = "dir/object";
    let file = root.path().join("atomic").join(key);
    target
        .put(key, Bytes::from(vec![b'a'; OBJECT_BYTES]), None)
        .await
        .unwrap();

    // Deterministic part: a reader that opened the old object keeps reading the old object,
    // which holds only if the new one was written elsewhere and renamed over the key. An
    // in-place write (truncate, then write) would change what this handle reads.
    let mut old_handle = std::fs::File::open(&file).unwrap();
    target
        .put(key, Bytes::from(vec![b'z'; OBJECT_BYTES / 2]), None)
        .await
        .unwrap();
    let mut old_content = Vec::new();
    std::io::Read::read_to_end(&mut old_handle, &mut old_content).unwrap();
    assert!(old_content.len() == OBJECT_BYTES && old_content.iter().all(|&byte| byte == b'a'));
    assert_eq!(std::fs::read(&file).unwrap(), vec![b'z'; OBJECT_BYTES / 2]);
    target
        .put(key, Bytes::from(vec![b'a'; OBJECT_BYTES]), None)
        .await
        .unwrap();

    // A reader thread keeps reading the file while objects of different content replace it.
    // With temp file + rename every read sees one whole object; an in-place write would show a
    // short file or mixed bytes.
    let writing = Arc::new(AtomicBool::new(true));
    let reader = {
        let writing = Arc::clone(&writing);
        let file = file.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            while writing.load(Ordering::Relaxed) {
                let content = std::fs::read(&file).unwrap();
                assert_eq!(content.len(), OBJECT_BYTES, "partial object visible");
                let first = content[0];
                assert!(
                    content.iter().all(|&byte| byte == first),
                    "mixed object visible"
                );
                reads += 1;
            }
            reads
        })
    };
    for round in 0..30_u8 {
        let fill = if round % 2 == 0 { b'b' } else { b'c' };
        target
            .put(key, Bytes::from(vec![fill; OBJECT_BYTES]), None)
            .await
            .unwrap();
    }
    writing.store(false, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);

    // No staging files are left beside the object.
    let names: Vec<String> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["object".to_owned()]);
    assert_eq!(target.list("dir/").await.unwrap(), vec![key.to_owned()]);
}

fn moto_env(endpoint: &str) -> impl Fn(&str) -> Option<String> {
    let endpoint = endpoint.to_owned();
    move |name| match name {
        "AWS_ENDPOINT_URL_S3" => Some(endpoint.clone()),
        "AWS_ACCESS_KEY_ID" => Some("testing".to_owned()),
        "AWS_SECRET_ACCESS_KEY" => Some("testing".to_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn s3_objects_round_trip_through_moto_with_their_content_encoding() {
    let moto = MotoS3::start();
    moto.create_bucket("delivery-bucket");
    // The explicit endpoint points nowhere: AWS_ENDPOINT_URL_S3 must take precedence over it.
    let backend = ObjectBackend::S3 {
        endpoint: Some("http://127.0.0.1:9".to_owned()),
        region: "us-east-1".to_owned(),
    };
    let target =
        ObjectTarget::with_env(backend, "delivery-bucket", moto_env(&moto.endpoint)).unwrap();

    let key = "logs/2024/05/20/19/orders-1-2024-05-20-19-42-11-1ab2.gz";
    let body = Bytes::from((0..=255_u8).cycle().take(70_000).collect::<Vec<u8>>());
    target.put(key, body.clone(), Some("gzip")).await.unwrap();
    target.put(key, body.clone(), Some("gzip")).await.unwrap();
    target
        .put(
            "logs/2024/05/20/20/plain",
            Bytes::from_static(b"plain"),
            None,
        )
        .await
        .unwrap();
    target
        .put("logs2024/no-slash", Bytes::from_static(b"n"), None)
        .await
        .unwrap();

    assert_eq!(target.get(key).await.unwrap(), body);
    let head = target.head(key).await.unwrap();
    assert_eq!(head.size_bytes, 70_000);
    assert_eq!(head.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(
        head.content_type.as_deref(),
        Some("application/octet-stream")
    );
    let plain = target.head("logs/2024/05/20/20/plain").await.unwrap();
    assert_eq!(plain.content_encoding, None);

    assert_eq!(
        target.list("logs/2024/05/20/").await.unwrap(),
        vec![key.to_owned(), "logs/2024/05/20/20/plain".to_owned()]
    );
    assert_eq!(target.list("logs").await.unwrap().len(), 3);
    let missing = target.get("logs/absent").await.unwrap_err();
    assert!(
        matches!(missing, SinkError::ObjectNotFound { .. }),
        "{missing}"
    );
}

#[tokio::test]
async fn a_missing_s3_bucket_is_a_retryable_store_error() {
    let moto = MotoS3::start();
    let backend = ObjectBackend::S3 {
        endpoint: None,
        region: "us-east-1".to_owned(),
    };
    let target =
        ObjectTarget::with_env(backend, "never-created", moto_env(&moto.endpoint)).unwrap();
    let error = target
        .put("k", Bytes::from_static(b"x"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SinkError::ObjectStore {
                operation: "put",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.retry_class(),
        millstream_firehose_sinks::RetryClass::Retryable
    );
}
