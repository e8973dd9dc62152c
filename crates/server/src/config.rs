//! Server configuration: defaults in code, then a TOML file, then environment variables, then
//! flags (the last two are merged by the `millstream` CLI before they reach `resolve`).

use std::path::PathBuf;
use std::time::Duration;

use millstream_storage::SyncPolicy;
use serde::Deserialize;

/// Settings as they may appear in `millstream.toml`; every key optional. Documented in
/// `millstream.example.toml` at the repository root.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub create_stream_ms: Option<u64>,
    pub delete_stream_ms: Option<u64>,
    pub update_stream_ms: Option<u64>,
    /// `always` (fsync every group commit, the default), `interval:<ms>` or `never`.
    pub sync: Option<String>,
    /// Memory for recently written records served to readers without touching disk (MiB).
    pub cache_mib: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub shard_limit: Option<u32>,
    pub expose_stream_id: Option<bool>,
    /// Log filter in `tracing` syntax (`info`, `millstream_server=debug,warn`); the
    /// `MILLSTREAM_LOG` environment variable overrides it. Read by the binary before the
    /// rest of the configuration, because logging starts first.
    pub log: Option<String>,
    /// Serve TLS (ALPN h2 and http/1.1) on the same port as plaintext.
    pub tls: Option<bool>,
    /// PEM certificate chain and private key; without them a self-signed certificate for
    /// localhost is generated on first start under `<data_dir>/tls/`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// How long one SubscribeToShard stream lasts (ms) before the client must resubscribe.
    pub subscription_lifetime_ms: Option<u64>,
    /// Emulate AWS's per-shard throughput quotas (off by default).
    pub throughput_limits: Option<bool>,
    /// How long a GetRecords repeated at a shard's tip waits for the next record (ms); 0
    /// answers every poll at once.
    pub get_records_tip_wait_ms: Option<u64>,
    /// When non-empty, SigV4 signatures are verified against these credentials.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// Firehose delivery: where S3 destinations write, the Lambda endpoint, table schemas.
    pub firehose: Option<FirehoseSettings>,
}

/// `[firehose]` in the configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FirehoseSettings {
    /// S3-compatible endpoint for S3 destinations (`https://s3.amazonaws.com`, MinIO, ...), or
    /// `embedded` for buckets as directories under `<data_dir>/buckets/`. Unset: the
    /// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` variables if set, else embedded.
    pub s3_endpoint: Option<String>,
    /// Lambda Invoke API endpoint for transformation processors (`sam local start-lambda`
    /// listens on http://127.0.0.1:3001); unset: AWS Lambda in the server's region.
    pub lambda_endpoint: Option<String>,
    /// Multiplies delivery retry back-offs; below 1 only for tests.
    pub backoff_scale: Option<f64>,
    /// Where Redshift destinations really connect: the cluster host of `ClusterJDBCURL`
    /// (which must look like an AWS Redshift endpoint to pass AWS's validation), with or
    /// without `:port`, mapped to the `host:port` of a PostgreSQL-compatible server.
    #[serde(default)]
    pub redshift_endpoints: std::collections::BTreeMap<String, String>,
    /// HTTP endpoint destinations must use `https://` URLs (AWS's validation); this maps a
    /// URL prefix to the one really used, e.g. `"https://receiver.test" =
    /// "http://127.0.0.1:8080"` for a plain-HTTP receiver during development.
    #[serde(default)]
    pub http_endpoint_rewrites: std::collections::BTreeMap<String, String>,
    /// Table schemas for record format conversion, in place of AWS Glue.
    #[serde(default)]
    pub tables: Vec<TableSettings>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TableSettings {
    pub database: String,
    pub table: String,
    pub columns: Vec<ColumnSettings>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ColumnSettings {
    pub name: String,
    /// A Hive type as Glue writes it: `string`, `int`, `bigint`, `double`, `timestamp`,
    /// `array<string>`, `struct<a:int,b:string>`, ...
    #[serde(rename = "type")]
    pub hive_type: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Settings {
    /// `self` where set, else `fallback`.
    pub fn or(self, fallback: Settings) -> Settings {
        Settings {
            host: self.host.or(fallback.host),
            port: self.port.or(fallback.port),
            data_dir: self.data_dir.or(fallback.data_dir),
            region: self.region.or(fallback.region),
            account_id: self.account_id.or(fallback.account_id),
            create_stream_ms: self.create_stream_ms.or(fallback.create_stream_ms),
            delete_stream_ms: self.delete_stream_ms.or(fallback.delete_stream_ms),
            update_stream_ms: self.update_stream_ms.or(fallback.update_stream_ms),
            sync: self.sync.or(fallback.sync),
            cache_mib: self.cache_mib.or(fallback.cache_mib),
            max_body_bytes: self.max_body_bytes.or(fallback.max_body_bytes),
            shard_limit: self.shard_limit.or(fallback.shard_limit),
            expose_stream_id: self.expose_stream_id.or(fallback.expose_stream_id),
            tls: self.tls.or(fallback.tls),
            tls_cert: self.tls_cert.or(fallback.tls_cert),
            tls_key: self.tls_key.or(fallback.tls_key),
            subscription_lifetime_ms: self
                .subscription_lifetime_ms
                .or(fallback.subscription_lifetime_ms),
            log: self.log.or(fallback.log),
            throughput_limits: self.throughput_limits.or(fallback.throughput_limits),
            get_records_tip_wait_ms: self
                .get_records_tip_wait_ms
                .or(fallback.get_records_tip_wait_ms),
            credentials: if self.credentials.is_empty() {
                fallback.credentials
            } else {
                self.credentials
            },
            firehose: match (self.firehose, fallback.firehose) {
                (Some(flags), Some(file)) => Some(FirehoseSettings {
                    s3_endpoint: flags.s3_endpoint.or(file.s3_endpoint),
                    lambda_endpoint: flags.lambda_endpoint.or(file.lambda_endpoint),
                    backoff_scale: flags.backoff_scale.or(file.backoff_scale),
                    redshift_endpoints: if flags.redshift_endpoints.is_empty() {
                        file.redshift_endpoints
                    } else {
                        flags.redshift_endpoints
                    },
                    http_endpoint_rewrites: if flags.http_endpoint_rewrites.is_empty() {
                        file.http_endpoint_rewrites
                    } else {
                        flags.http_endpoint_rewrites
                    },
                    tables: if flags.tables.is_empty() {
                        file.tables
                    } else {
                        flags.tables
                    },
                }),
                (flags, file) => flags.or(file),
            },
        }
    }

    /// # Errors
    /// A message naming the key and what it accepts.
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(format!("invalid configuration file: {e}")))
    }
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub region: String,
    pub account_id: String,
    pub create_delay: Duration,
    pub delete_delay: Duration,
    pub update_delay: Duration,
    pub sync_policy: SyncPolicy,
    pub cache_bytes: u64,
    pub max_body_bytes: usize,
    pub shard_limit: u32,
    pub expose_stream_id: bool,
    pub tls: Option<crate::listener::TlsSource>,
    pub subscription_lifetime: Duration,
    pub throughput_limits: bool,
    pub get_records_tip_wait: Duration,
    pub credentials: Vec<Credential>,
    pub firehose: FirehoseServerConfig,
}

#[derive(Debug, Clone)]
pub struct FirehoseServerConfig {
    /// None = embedded buckets; Some(None) = AWS S3; Some(Some(url)) = that endpoint.
    pub s3_endpoint: Option<Option<String>>,
    pub lambda_endpoint: Option<String>,
    pub backoff_scale: f64,
    pub redshift_endpoints: std::collections::BTreeMap<String, String>,
    pub http_endpoint_rewrites: std::collections::BTreeMap<String, String>,
    pub tables: Vec<TableSettings>,
}

impl FirehoseServerConfig {
    fn resolve(settings: Option<FirehoseSettings>) -> Result<Self, ConfigError> {
        let settings = settings.unwrap_or_default();
        let from_env = || {
            ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        };
        let s3_endpoint = match settings.s3_endpoint.or_else(from_env) {
            None => None,
            Some(value) if value == "embedded" => None,
            Some(value) if value == "aws" => Some(None),
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(Some(url))
            }
            Some(other) => {
                return Err(ConfigError(format!(
                    "firehose.s3_endpoint: expected an http(s) URL, `aws` or `embedded`, got `{other}`"
                )));
            }
        };
        let backoff_scale = settings.backoff_scale.unwrap_or(1.0);
        if !(0.000_1..=10.0).contains(&backoff_scale) {
            return Err(ConfigError(format!(
                "firehose.backoff_scale: must be between 0.0001 and 10, got {backoff_scale}"
            )));
        }
        for (host, target) in &settings.redshift_endpoints {
            let valid = target
                .rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(ConfigError(format!(
                    "firehose.redshift_endpoints: `{host}` must map to `host:port`, got `{target}`"
                )));
            }
        }
        for (from, to) in &settings.http_endpoint_rewrites {
            if !(to.starts_with("http://") || to.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "firehose.http_endpoint_rewrites: `{from}` must map to an http(s) URL, got `{to}`"
                )));
            }
        }
        for table in &settings.tables {
            if table.columns.is_empty() {
                return Err(ConfigError(format!(
                    "firehose.tables: table {}.{} has no columns",
                    table.database, table.table
                )));
            }
        }
        Ok(FirehoseServerConfig {
            s3_endpoint,
            lambda_endpoint: settings.lambda_endpoint,
            backoff_scale,
            redshift_endpoints: settings.redshift_endpoints,
            http_endpoint_rewrites: settings.http_endpoint_rewrites,
            tables: settings.tables,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub const DEFAULT_PORT: u16 = 4567;
pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_DATA_DIR: &str = "millstream-data";
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
/// 10 MiB records base64-encode to ~13.4 MiB of JSON.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
const MAX_BODY_BYTES_CEILING: usize = 64 << 20;
const DELAY_MS_MAX: u64 = 3_600_000;
/// Well inside the read timeouts of the AWS SDKs (boto3 60 s, the Java SDK 50 s).
const TIP_WAIT_MS_MAX: u64 = 10_000;

fn parse_sync(text: &str) -> Result<SyncPolicy, ConfigError> {
    match text {
        "always" => Ok(SyncPolicy::Always),
        "never" => Ok(SyncPolicy::Never),
        other => other
            .strip_prefix("interval:")
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|ms| (1..=60_000).contains(ms))
            .map(|ms| SyncPolicy::Interval(Duration::from_millis(ms)))
            .ok_or_else(|| {
                ConfigError(format!(
                    "sync: expected `always`, `never` or `interval:<1..=60000 ms>`, got `{other}`"
                ))
            }),
    }
}

/// Default record cache: enough for seconds of full-speed ingest on every shard. 64 rather
/// than 256 or 128: read-back and ingest measured the same with each, and peak memory for a
/// million 1 KiB records went ~495 -> ~350 (128, round 2) -> 252-282 MB (64, round 3;
/// BENCHMARKS.md).
pub const DEFAULT_CACHE_MIB: u64 = 64;
const CACHE_MIB_RANGE: std::ops::RangeInclusive<u64> = 16..=65_536;

fn cache_bytes(value: Option<u64>) -> Result<u64, ConfigError> {
    let mib = value.unwrap_or(DEFAULT_CACHE_MIB);
    if !CACHE_MIB_RANGE.contains(&mib) {
        return Err(ConfigError(format!(
            "cache_mib: must be between {} and {}, got {mib}",
            CACHE_MIB_RANGE.start(),
            CACHE_MIB_RANGE.end()
        )));
    }
    Ok(mib << 20)
}

fn delay(key: &str, value: Option<u64>) -> Result<Duration, ConfigError> {
    let ms = value.unwrap_or(0);
    if ms > DELAY_MS_MAX {
        return Err(ConfigError(format!(
            "{key}: must be between 0 and {DELAY_MS_MAX}, got {ms}"
        )));
    }
    Ok(Duration::from_millis(ms))
}

impl ServerConfig {
    /// Applies defaults and checks every value.
    ///
    /// # Errors
    /// The first invalid setting, naming its key and allowed range.
    pub fn resolve(settings: Settings) -> Result<ServerConfig, ConfigError> {
        let account_id = settings
            .account_id
            .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_string());
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError(format!(
                "account_id: must be 12 digits, got `{account_id}`"
            )));
        }
        let region = settings
            .region
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError(format!(
                "region: must look like `us-east-1`, got `{region}`"
            )));
        }
        let max_body_bytes = settings.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1024..=MAX_BODY_BYTES_CEILING).contains(&max_body_bytes) {
            return Err(ConfigError(format!(
                "max_body_bytes: must be between 1024 and {MAX_BODY_BYTES_CEILING}, got {max_body_bytes}"
            )));
        }
        let shard_limit = settings
            .shard_limit
            .unwrap_or(millstream_types::limits::SHARD_LIMIT_DEFAULT);
        if shard_limit == 0 {
            return Err(ConfigError("shard_limit: must be at least 1".to_string()));
        }
        let data_dir = settings
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let tls = match (
            settings.tls.unwrap_or(false) || settings.tls_cert.is_some(),
            settings.tls_cert,
            settings.tls_key,
        ) {
            (false, _, _) => None,
            (true, Some(cert), Some(key)) => Some(crate::listener::TlsSource::Files { cert, key }),
            (true, None, None) => Some(crate::listener::TlsSource::SelfSigned {
                dir: data_dir.join("tls"),
            }),
            (true, _, _) => {
                return Err(ConfigError(
                    "tls_cert and tls_key: give both or neither".to_string(),
                ));
            }
        };
        let lifetime_ms = settings.subscription_lifetime_ms.unwrap_or(300_000);
        if !(1_000..=300_000).contains(&lifetime_ms) {
            return Err(ConfigError(format!(
                "subscription_lifetime_ms: must be between 1000 and 300000, got {lifetime_ms}"
            )));
        }
        let tip_wait_ms = settings
            .get_records_tip_wait_ms
            .unwrap_or(millstream_streams::TIP_WAIT_DEFAULT.as_millis() as u64);
        if tip_wait_ms > TIP_WAIT_MS_MAX {
            return Err(ConfigError(format!(
                "get_records_tip_wait_ms: must be at most {TIP_WAIT_MS_MAX}, got {tip_wait_ms}"
            )));
        }
        Ok(ServerConfig {
            tls,
            get_records_tip_wait: Duration::from_millis(tip_wait_ms),
            subscription_lifetime: Duration::from_millis(lifetime_ms),
            throughput_limits: settings.throughput_limits.unwrap_or(false),
            host: settings.host.unwrap_or_else(|| DEFAULT_HOST.to_string()),
            port: settings.port.unwrap_or(DEFAULT_PORT),
            data_dir,
            region,
            account_id,
            create_delay: delay("create_stream_ms", settings.create_stream_ms)?,
            delete_delay: delay("delete_stream_ms", settings.delete_stream_ms)?,
            update_delay: delay("update_stream_ms", settings.update_stream_ms)?,
            sync_policy: parse_sync(settings.sync.as_deref().unwrap_or("always"))?,
            cache_bytes: cache_bytes(settings.cache_mib)?,
            max_body_bytes,
            shard_limit,
            expose_stream_id: settings.expose_stream_id.unwrap_or(false),
            credentials: settings.credentials,
            firehose: FirehoseServerConfig::resolve(settings.firehose)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tip_wait_defaults_to_50_ms_and_is_bounded() {
        let config = ServerConfig::resolve(Settings::default()).unwrap();
        assert_eq!(config.get_records_tip_wait, Duration::from_millis(50));
        let off = Settings::from_toml("get_records_tip_wait_ms = 0").unwrap();
        assert_eq!(
            ServerConfig::resolve(off).unwrap().get_records_tip_wait,
            Duration::ZERO
        );
        let too_long = Settings::from_toml("get_records_tip_wait_ms = 10001").unwrap();
        let err = ServerConfig::resolve(too_long).unwrap_err();
        assert!(err.0.contains("get_records_tip_wait_ms"), "{}", err.0);
    }

    #[test]
    fn defaults_resolve() {
        let config = ServerConfig::resolve(Settings::default()).unwrap();
        assert_eq!(config.port, 4567);
        assert_eq!(config.sync_policy, SyncPolicy::Always);
        assert_eq!(config.account_id, "000000000000");
    }

    #[test]
    fn rejections_name_the_key() {
        let bad = |s: Settings| ServerConfig::resolve(s).unwrap_err().0;
        assert!(
            bad(Settings {
                sync: Some("sometimes".into()),
                ..Default::default()
            })
            .starts_with("sync:")
        );
        assert!(
            bad(Settings {
                account_id: Some("12".into()),
                ..Default::default()
            })
            .starts_with("account_id:")
        );
        assert!(
            bad(Settings {
                region: Some("US_EAST".into()),
                ..Default::default()
            })
            .starts_with("region:")
        );
        assert!(
            bad(Settings {
                max_body_bytes: Some(1),
                ..Default::default()
            })
            .starts_with("max_body_bytes:")
        );
        assert!(
            bad(Settings {
                create_stream_ms: Some(u64::MAX),
                ..Default::default()
            })
            .starts_with("create_stream_ms:")
        );
        assert!(
            bad(Settings {
                shard_limit: Some(0),
                ..Default::default()
            })
            .starts_with("shard_limit:")
        );
        assert!(
            bad(Settings {
                cache_mib: Some(1),
                ..Default::default()
            })
            .starts_with("cache_mib:")
        );
        assert!(
            Settings::from_toml("no_such_key = 1")
                .unwrap_err()
                .0
                .contains("no_such_key")
        );
    }

    #[test]
    fn the_documented_example_configuration_resolves() {
        let text = include_str!("../../../millstream.example.toml");
        let settings = Settings::from_toml(text).unwrap();
        let config = ServerConfig::resolve(settings).unwrap();
        assert_eq!(config.port, 4567);
    }

    #[test]
    fn firehose_settings_are_checked() {
        let bad = |text: &str| {
            ServerConfig::resolve(Settings::from_toml(text).unwrap())
                .unwrap_err()
                .0
        };
        assert!(bad("[firehose]\ns3_endpoint = \"ftp://x\"").starts_with("firehose.s3_endpoint:"));
        assert!(bad("[firehose]\nbackoff_scale = 0.0").starts_with("firehose.backoff_scale:"));
        assert!(
            bad("[firehose.redshift_endpoints]\n\"a.redshift.amazonaws.com\" = \"nowhere\"")
                .starts_with("firehose.redshift_endpoints:")
        );
        assert!(
            bad("[firehose.http_endpoint_rewrites]\n\"https://a\" = \"ftp://b\"")
                .starts_with("firehose.http_endpoint_rewrites:")
        );
        assert!(
            bad("[[firehose.tables]]\ndatabase = \"d\"\ntable = \"t\"\ncolumns = []")
                .starts_with("firehose.tables:")
        );
        let embedded = ServerConfig::resolve(
            Settings::from_toml("[firehose]\ns3_endpoint = \"embedded\"").unwrap(),
        )
        .unwrap();
        assert_eq!(embedded.firehose.s3_endpoint, None);
        let moto = ServerConfig::resolve(
            Settings::from_toml("[firehose]\ns3_endpoint = \"http://127.0.0.1:5000\"").unwrap(),
        )
        .unwrap();
        assert_eq!(
            moto.firehose.s3_endpoint,
            Some(Some("http://127.0.0.1:5000".to_string()))
        );
    }

    #[test]
    fn flags_override_file() {
        let file =
            Settings::from_toml("port = 9000\nregion = \"eu-west-1\"\nsync = \"interval:5\"")
                .unwrap();
        let flags = Settings {
            port: Some(9001),
            ..Default::default()
        };
        let config = ServerConfig::resolve(flags.or(file)).unwrap();
        assert_eq!(config.port, 9001);
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(
            config.sync_policy,
            SyncPolicy::Interval(Duration::from_millis(5))
        );
    }
}
