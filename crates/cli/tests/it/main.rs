//! Integration tests: a real `millstream serve` process driven by real AWS clients.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap freely too

mod bench_tool;
mod cli_commands;
mod cli_observability;
mod external;
mod firehose;
mod firehose_destinations;
mod lifecycle_delays;
mod python_clients;
mod restart;
mod sdk_control;
mod sdk_data;
mod sdk_fanout;
mod sdk_reshard;
mod support;
mod throttle;
mod tip_wait;
mod transport;
mod wire;
