//! Redshift-style COPY into a real PostgreSQL.

use millstream_firehose_sinks::{PostgresConfig, PostgresTarget, RetryClass, SinkError};
use tokio_postgres::NoTls;

use crate::external::Postgres;

async fn connect(postgres: &Postgres) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

fn target(
    postgres: &Postgres,
    table: &str,
    columns: Option<&[&str]>,
    copy_options: &str,
) -> PostgresTarget {
    PostgresTarget::new(PostgresConfig {
        jdbc_url: format!(
            "jdbc:redshift://127.0.0.1:{}/{}",
            postgres.port, postgres.database
        ),
        username: postgres.user.clone(),
        password: postgres.password.clone(),
        table: table.to_owned(),
        columns: columns.map(|columns| columns.iter().map(|column| (*column).to_owned()).collect()),
        copy_options: (!copy_options.is_empty()).then(|| copy_options.to_owned()),
    })
    .unwrap()
}

type Row = (i32, Option<String>, Option<String>);

async fn rows(client: &tokio_postgres::Client, table: &str) -> Vec<Row> {
    client
        .query(
            &format!("SELECT id, name, score::text FROM {table} ORDER BY id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

fn row(id: i32, name: Option<&str>, score: Option<&str>) -> Row {
    (id, name.map(str::to_owned), score.map(str::to_owned))
}

#[tokio::test]
async fn copy_loads_pipe_delimited_csv_and_json_objects() {
    let postgres = Postgres::start();
    let client = connect(&postgres).await;
    client
        .batch_execute(
            "CREATE SCHEMA firehose;
             CREATE TABLE firehose.text_rows (id int, name text, score numeric);
             CREATE TABLE csv_rows (id int, name text, score numeric);
             CREATE TABLE json_rows (id int, name text, score numeric, extra text);",
        )
        .await
        .unwrap();

    // Default format: '|' delimited, '\N' is NULL, backslashes are data, an empty numeric is NULL.
    // The table name folds to lower case as Redshift's unquoted names do.
    let text = target(&postgres, "FireHose.Text_Rows", None, "");
    let loaded = text
        .copy(b"1|alice|1.5\n2|b\\ob|\n3|\\N|-2\n")
        .await
        .unwrap();
    assert_eq!(loaded, 3);
    assert_eq!(
        rows(&client, "firehose.text_rows").await,
        vec![
            row(1, Some("alice"), Some("1.5")),
            row(2, Some("b\\ob"), None),
            row(3, None, Some("-2"))
        ]
    );

    let csv = target(
        &postgres,
        "csv_rows",
        Some(&["name", "id"]),
        "CSV IGNOREHEADER 1",
    );
    let loaded = csv
        .copy(b"name,id\n\"smith, \"\"j\"\"\nline2\",10\n,11\n")
        .await
        .unwrap();
    assert_eq!(loaded, 2);
    assert_eq!(
        rows(&client, "csv_rows").await,
        vec![
            row(10, Some("smith, \"j\"\nline2"), None),
            row(11, Some(""), None)
        ]
    );

    // Concatenated records, as Firehose stages them without a delimiter.
    let json = target(&postgres, "json_rows", None, "FORMAT AS JSON 'auto'");
    let loaded = json
        .copy(b"{\"id\":1,\"name\":\"x\\ty\",\"score\":2.25,\"unknown\":1}{\"id\":2,\"extra\":{\"k\":[1]}}\n")
        .await
        .unwrap();
    assert_eq!(loaded, 2);
    assert_eq!(
        rows(&client, "json_rows").await,
        vec![row(1, Some("x\ty"), Some("2.25")), row(2, None, None)]
    );
    let extra: Option<String> = client
        .query_one("SELECT extra FROM json_rows WHERE id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(extra.as_deref(), Some("{\"k\":[1]}"));
}

#[tokio::test]
async fn a_failed_copy_loads_nothing() {
    let postgres = Postgres::start();
    let client = connect(&postgres).await;
    client
        .batch_execute("CREATE TABLE events (id int, name text, score numeric)")
        .await
        .unwrap();
    let events = target(&postgres, "events", None, "");

    // The server rejects row 3 after rows 1 and 2 were sent: the transaction undoes them.
    let error = events
        .copy(b"1|a|1\n2|b|2\n3|c|not-a-number\n")
        .await
        .unwrap_err();
    assert!(matches!(error, SinkError::Database { .. }), "{error}");
    assert_eq!(error.retry_class(), RetryClass::Retryable);
    assert!(rows(&client, "events").await.is_empty());

    // A row with too many fields is caught before anything reaches the server.
    let error = events.copy(b"1|a|1\n2|b|2|surplus\n").await.unwrap_err();
    assert!(
        matches!(error, SinkError::InvalidCopyData { line: 2, .. }),
        "{error}"
    );
    assert_eq!(error.retry_class(), RetryClass::Permanent);
    assert!(rows(&client, "events").await.is_empty());

    // A missing table fails the same clean way, and a retry after fixing it loads once.
    let missing = target(&postgres, "later", None, "");
    let error = missing.copy(b"1|a|1\n").await.unwrap_err();
    assert!(matches!(error, SinkError::Database { .. }), "{error}");
    client
        .batch_execute("CREATE TABLE later (id int, name text, score numeric)")
        .await
        .unwrap();
    assert_eq!(missing.copy(b"1|a|1\n").await.unwrap(), 1);
    assert_eq!(
        rows(&client, "later").await,
        vec![row(1, Some("a"), Some("1"))]
    );

    // Names that try to break out of the identifier are refused before any SQL is built.
    let hostile = PostgresTarget::new(PostgresConfig {
        jdbc_url: format!("jdbc:postgresql://127.0.0.1:{}/postgres", postgres.port),
        username: postgres.user.clone(),
        password: postgres.password.clone(),
        table: "events; DROP TABLE events".to_owned(),
        columns: None,
        copy_options: None,
    });
    assert!(matches!(hostile, Err(SinkError::InvalidConfig { .. })));
    assert_eq!(postgres.psql("SELECT count(*) FROM events").trim(), "0");
}

#[tokio::test]
async fn wrong_credentials_fail_to_connect() {
    let postgres = Postgres::start();
    let target = PostgresTarget::new(PostgresConfig {
        jdbc_url: format!("jdbc:postgresql://127.0.0.1:{}/postgres", postgres.port),
        username: postgres.user.clone(),
        password: "wrong".to_owned(),
        table: "t".to_owned(),
        columns: None,
        copy_options: None,
    })
    .unwrap();
    let error = target.copy(b"1\n").await.unwrap_err();
    assert!(
        matches!(error, SinkError::DatabaseConnect { .. }),
        "{error}"
    );
}
