//! S3 objects on an embedded directory tree or a real S3-compatible service.
//!
//! One [`ObjectTarget`] is one bucket. Keys are S3 keys; both backends go through `object_store`,
//! whose `Path` cannot hold every S3 key: keys with empty segments (`a//b`), a leading or trailing
//! `/`, `.`/`..` segments or control characters are rejected as [`SinkError::InvalidKey`] rather
//! than silently rewritten, so the key the engine computed is always the key that is stored.
//!
//! Embedded layout: bucket `b` is the directory `<root>/<b>/`, key `x/y/z` the file
//! `<root>/<b>/x/y/z`. `LocalFileSystem` (with fsync on) writes `<file>#<n>`, fsyncs it, renames it
//! over the key and fsyncs the directory, so a reader sees the old object or the new one, never a
//! prefix of it, and a returned `put` survives a crash. Staging files are invisible to `list`. The
//! embedded backend cannot keep object attributes, so `Content-Encoding` is dropped there.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutOptions,
    PutPayload,
};

use crate::SinkError;

/// `get` reads whole objects into memory; Firehose objects are at most one buffer (128 MiB) plus
/// compression overhead, so anything far larger is not ours to load.
pub const GET_OBJECT_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// `list` collects keys in memory; this bounds that.
pub const LIST_KEYS_MAX: usize = 1_000_000;

/// Firehose uploads every object with this content type (reference §7.1).
const OBJECT_CONTENT_TYPE: &str = "application/octet-stream";

/// Where a bucket lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectBackend {
    /// Embedded default: bucket `b` is the directory `<root>/<b>/`; writes are atomic and durable
    /// before `put` returns.
    Embedded { root: PathBuf },
    /// A real S3-compatible service (AWS S3, MinIO, Ceph, moto). The endpoint is found as the AWS
    /// tools find it: `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else `endpoint`, else AWS's
    /// regional endpoint. Credentials come from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
    /// `AWS_SESSION_TOKEN`, falling back to the instance metadata service.
    S3 {
        endpoint: Option<String>,
        region: String,
    },
}

/// What a HEAD of an object tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size_bytes: u64,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
}

/// One bucket of one backend; cheap to clone (the client and its connection pool are shared).
#[derive(Clone)]
pub struct ObjectTarget {
    store: Arc<dyn ObjectStore>,
    bucket: Arc<str>,
    /// Only S3 keeps object attributes; `LocalFileSystem` rejects a put that carries any.
    keeps_attributes: bool,
}

impl std::fmt::Debug for ObjectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectTarget")
            .field("store", &self.store.to_string())
            .field("bucket", &self.bucket)
            .finish()
    }
}

impl ObjectTarget {
    /// Opens `bucket` on `backend`, reading endpoint overrides and credentials from the process
    /// environment.
    ///
    /// # Errors
    /// [`SinkError::InvalidConfig`] for a bad bucket name or S3 settings, [`SinkError::Io`] when
    /// the embedded bucket directory cannot be created.
    pub fn new(backend: ObjectBackend, bucket: &str) -> Result<Self, SinkError> {
        Self::with_env(backend, bucket, |name| std::env::var(name).ok())
    }

    /// [`ObjectTarget::new`] with the environment given as a lookup function, so that callers
    /// (and tests) can supply endpoint and credentials without mutating the process environment.
    ///
    /// # Errors
    /// As [`ObjectTarget::new`].
    pub fn with_env(
        backend: ObjectBackend,
        bucket: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SinkError> {
        validate_bucket_name(bucket)?;
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        match backend {
            ObjectBackend::Embedded { root } => {
                let directory = root.join(bucket);
                std::fs::create_dir_all(&directory).map_err(|source| SinkError::Io {
                    path: directory.clone(),
                    source,
                })?;
                let store = LocalFileSystem::new_with_prefix(&directory)
                    .map_err(|source| SinkError::InvalidConfig {
                        reason: format!(
                            "embedded bucket directory {}: {source}",
                            directory.display()
                        ),
                    })?
                    .with_fsync(true);
                Ok(Self {
                    store: Arc::new(store),
                    bucket: bucket.into(),
                    keeps_attributes: false,
                })
            }
            ObjectBackend::S3 { endpoint, region } => {
                crate::install_tls_provider();
                let endpoint = env("AWS_ENDPOINT_URL_S3")
                    .or_else(|| env("AWS_ENDPOINT_URL"))
                    .or(endpoint);
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region);
                if let Some(endpoint) = endpoint {
                    // A custom endpoint (MinIO, moto, Ceph) rarely has per-bucket DNS names, hence
                    // path-style; plain http is normal for local ones but never for AWS itself.
                    let is_aws = endpoint_host(&endpoint).is_some_and(|host| {
                        host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
                    });
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(!is_aws);
                }
                if let Some(key_id) = env("AWS_ACCESS_KEY_ID") {
                    builder = builder.with_access_key_id(key_id);
                }
                if let Some(secret) = env("AWS_SECRET_ACCESS_KEY") {
                    builder = builder.with_secret_access_key(secret);
                }
                if let Some(token) = env("AWS_SESSION_TOKEN") {
                    builder = builder.with_token(token);
                }
                let store = builder.build().map_err(|source| SinkError::InvalidConfig {
                    reason: format!("S3 bucket {bucket:?}: {source}"),
                })?;
                Ok(Self {
                    store: Arc::new(store),
                    bucket: bucket.into(),
                    keeps_attributes: true,
                })
            }
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Writes `body` under `key` with `Content-Type: application/octet-stream` and the given
    /// `Content-Encoding` (S3 only). Idempotent: the same key and bytes again overwrite.
    ///
    /// # Errors
    /// [`SinkError::InvalidKey`], or [`SinkError::ObjectStore`] when the store fails.
    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_encoding: Option<&str>,
    ) -> Result<(), SinkError> {
        let path = self.object_path(key)?;
        let mut attributes = Attributes::new();
        if self.keeps_attributes {
            attributes.insert(
                Attribute::ContentType,
                AttributeValue::from(OBJECT_CONTENT_TYPE),
            );
            if let Some(encoding) = content_encoding {
                attributes.insert(
                    Attribute::ContentEncoding,
                    AttributeValue::from(encoding.to_owned()),
                );
            }
        }
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&path, PutPayload::from(body), options)
            .await
            .map_err(|source| self.store_error("put", key, source))?;
        Ok(())
    }

    /// Reads a whole object.
    ///
    /// # Errors
    /// [`SinkError::ObjectNotFound`], [`SinkError::ObjectTooLarge`] past
    /// [`GET_OBJECT_BYTES_MAX`], or [`SinkError::ObjectStore`].
    pub async fn get(&self, key: &str) -> Result<Bytes, SinkError> {
        let path = self.object_path(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|source| self.store_error("get", key, source))?;
        if result.meta.size > GET_OBJECT_BYTES_MAX {
            return Err(SinkError::ObjectTooLarge {
                bucket: self.bucket.to_string(),
                key: key.to_owned(),
                size_bytes: result.meta.size,
                limit_bytes: GET_OBJECT_BYTES_MAX,
            });
        }
        result
            .bytes()
            .await
            .map_err(|source| self.store_error("get", key, source))
    }

    /// Size and attributes of an object without its body.
    ///
    /// # Errors
    /// As [`ObjectTarget::get`].
    pub async fn head(&self, key: &str) -> Result<ObjectHead, SinkError> {
        let path = self.object_path(key)?;
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&path, options)
            .await
            .map_err(|source| self.store_error("head", key, source))?;
        let attribute = |name| result.attributes.get(&name).map(|value| value.to_string());
        Ok(ObjectHead {
            size_bytes: result.meta.size,
            content_type: attribute(Attribute::ContentType),
            content_encoding: attribute(Attribute::ContentEncoding),
        })
    }

    /// All keys starting with `prefix` (a plain string prefix, as in S3's ListObjectsV2), sorted.
    ///
    /// # Errors
    /// [`SinkError::ListTooLong`] past [`LIST_KEYS_MAX`], or [`SinkError::ObjectStore`].
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        // object_store lists whole path segments; list from the last complete segment and filter,
        // so `logs/2024` also finds `logs/2024-05/...` as S3 would.
        let directory = match prefix.rfind('/') {
            Some(slash) => {
                Some(
                    Path::parse(&prefix[..slash]).map_err(|source| SinkError::InvalidKey {
                        key: prefix.to_owned(),
                        reason: source.to_string(),
                    })?,
                )
            }
            None => None,
        };
        let mut stream = self.store.list(directory.as_ref());
        let mut keys = Vec::new();
        while let Some(meta) = stream
            .try_next()
            .await
            .map_err(|source| self.store_error("list", prefix, source))?
        {
            let key = meta.location.as_ref();
            if key.starts_with(prefix) {
                if keys.len() == LIST_KEYS_MAX {
                    return Err(SinkError::ListTooLong {
                        bucket: self.bucket.to_string(),
                        prefix: prefix.to_owned(),
                        limit: LIST_KEYS_MAX,
                    });
                }
                keys.push(key.to_owned());
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    fn object_path(&self, key: &str) -> Result<Path, SinkError> {
        let invalid = |reason: String| SinkError::InvalidKey {
            key: key.to_owned(),
            reason,
        };
        if key.is_empty() {
            return Err(invalid("an object key cannot be empty".to_owned()));
        }
        let path = Path::parse(key).map_err(|source| invalid(source.to_string()))?;
        if path.as_ref() != key {
            return Err(invalid("a key cannot start or end with '/'".to_owned()));
        }
        if !self.keeps_attributes
            && let Some((_, suffix)) = path.filename().and_then(|name| name.rsplit_once('#'))
            && !suffix.is_empty()
            && suffix.bytes().all(|byte| byte.is_ascii_digit())
        {
            // `name#<digits>` is how LocalFileSystem names its staging files.
            return Err(invalid(
                "the embedded store reserves names ending in '#<digits>'".to_owned(),
            ));
        }
        Ok(path)
    }

    fn store_error(
        &self,
        operation: &'static str,
        key: &str,
        source: object_store::Error,
    ) -> SinkError {
        match source {
            // On a put, NotFound means the bucket is missing: a store problem, not a key problem.
            object_store::Error::NotFound { .. } if operation != "put" => {
                SinkError::ObjectNotFound {
                    bucket: self.bucket.to_string(),
                    key: key.to_owned(),
                }
            }
            source => SinkError::ObjectStore {
                operation,
                bucket: self.bucket.to_string(),
                key: key.to_owned(),
                source: Box::new(source),
            },
        }
    }
}

/// `arn:aws:s3:::bucket` → `bucket` (any partition); `None` for anything else.
pub fn bucket_from_arn(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let bucket = rest.strip_prefix("s3:::")?;
    (!partition.is_empty() && !bucket.is_empty() && !bucket.contains('/')).then_some(bucket)
}

/// S3's general-purpose bucket naming rules, which also keep an embedded bucket a single plain
/// directory name (no `/`, `..` or hidden names).
fn validate_bucket_name(bucket: &str) -> Result<(), SinkError> {
    let invalid = |rule: &str| SinkError::InvalidConfig {
        reason: format!("bucket name {bucket:?} is invalid: {rule}"),
    };
    if !(3..=63).contains(&bucket.len()) {
        return Err(invalid("it must be 3 to 63 characters long"));
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(invalid(
            "only lowercase letters, digits, '.' and '-' are allowed",
        ));
    }
    let alphanumeric =
        |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !alphanumeric(bucket.bytes().next()) || !alphanumeric(bucket.bytes().last()) {
        return Err(invalid("it must begin and end with a letter or digit"));
    }
    if bucket.contains("..") {
        return Err(invalid("it must not contain two adjacent periods"));
    }
    Ok(())
}

fn endpoint_host(endpoint: &str) -> Option<&str> {
    let after_scheme = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?']).next()?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    host_port.split(':').next()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bucket_from_arn_accepts_only_s3_bucket_arns() {
        assert_eq!(bucket_from_arn("arn:aws:s3:::my-bucket"), Some("my-bucket"));
        assert_eq!(bucket_from_arn("arn:aws-cn:s3:::b.c"), Some("b.c"));
        assert_eq!(bucket_from_arn("arn:aws:s3:::"), None);
        assert_eq!(bucket_from_arn("arn:aws:s3:::bucket/key"), None);
        assert_eq!(bucket_from_arn("arn:aws:sqs:::bucket"), None);
        assert_eq!(bucket_from_arn("my-bucket"), None);
    }

    #[test]
    fn bucket_names_that_escape_the_root_are_rejected() {
        for bad in [
            "..", "a/b", "../etc", "ab", "-abc", "abc.", "a..b", "Upper", "",
        ] {
            assert!(validate_bucket_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["abc", "my-bucket.logs", "0-9"] {
            validate_bucket_name(good).unwrap();
        }
    }

    #[test]
    fn endpoint_host_ignores_scheme_port_and_path() {
        assert_eq!(endpoint_host("http://127.0.0.1:9000"), Some("127.0.0.1"));
        assert_eq!(
            endpoint_host("https://s3.us-east-1.amazonaws.com/x"),
            Some("s3.us-east-1.amazonaws.com")
        );
        assert_eq!(endpoint_host("minio:9000"), Some("minio"));
    }

    #[tokio::test]
    async fn keys_object_store_would_rewrite_are_rejected() {
        let root = tempfile::tempdir().unwrap();
        let target = ObjectTarget::new(
            ObjectBackend::Embedded {
                root: root.path().into(),
            },
            "bucket",
        )
        .unwrap();
        for bad in ["", "/a", "a/", "a//b", "a/../b", "a/./b", "x#1", "a\nb"] {
            let err = target
                .put(bad, Bytes::from_static(b"x"), None)
                .await
                .unwrap_err();
            assert!(
                matches!(err, SinkError::InvalidKey { .. }),
                "{bad:?}: {err}"
            );
        }
    }
}
