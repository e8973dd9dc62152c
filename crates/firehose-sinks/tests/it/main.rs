//! Integration tests against real peers: an in-process HTTP endpoint, moto's S3 server and a
//! throwaway PostgreSQL cluster (both installed by `scripts/test-deps`).
#![allow(clippy::unwrap_used)]

#[path = "../../../cli/tests/it/external.rs"]
mod external;
mod http_endpoint;
mod objects;
mod postgres;
