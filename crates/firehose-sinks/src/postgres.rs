//! Redshift-style `COPY` of one staged object into PostgreSQL (reference §10, Redshift row).
//!
//! Firehose stages a batch in S3 and runs `COPY <table> (<columns>) FROM ... <CopyOptions>` on the
//! cluster. Here the staged bytes come in directly and are loaded with the same meaning:
//!
//! 1. `CopyOptions` are parsed once, in [`PostgresTarget::new`]; anything we would load
//!    differently from Redshift is refused there ([`SinkError::UnsupportedCopyOption`]).
//! 2. Per object: connect, begin, read the target columns and their type categories from the
//!    catalog, parse the object with Redshift's rules (pipe-delimited text, CSV or JSON 'auto'),
//!    re-encode every row in PostgreSQL's text COPY format and stream it with
//!    `COPY ... FROM STDIN`, commit. Any failure rolls the transaction back, so an object is loaded
//!    entirely or not at all and a retry never duplicates rows.
//!
//! Parsing ourselves instead of handing the bytes to PostgreSQL is deliberate: PostgreSQL's text
//! format treats `\` as an escape and rejects empty numeric fields, while Redshift's (without
//! ESCAPE) keeps `\` literally and loads an empty non-character field as NULL.
//!
//! Identifiers are never interpolated raw: unquoted names fold to lower case as both databases do,
//! and every name is emitted double-quoted with inner quotes doubled.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt as _;
use tokio_postgres::NoTls;

use crate::SinkError;

/// Redshift's default port.
pub const REDSHIFT_DEFAULT_PORT: u16 = 5439;
/// PostgreSQL's default port.
pub const POSTGRES_DEFAULT_PORT: u16 = 5432;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Encoded rows go to the server in chunks of about this size.
const COPY_CHUNK_BYTES: usize = 1024 * 1024;
/// Redshift's IGNOREHEADER takes a row count; more than this is a configuration mistake.
const IGNORE_HEADER_ROWS_MAX: u64 = 1_000_000;

/// The `RedshiftDestinationConfiguration` parts needed to load data.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `jdbc:redshift://host:port/db` or `jdbc:postgresql://host[:port]/db`; query parameters are
    /// ignored.
    pub jdbc_url: String,
    pub username: String,
    pub password: String,
    /// `CopyCommand.DataTableName`, optionally schema-qualified.
    pub table: String,
    /// `CopyCommand.DataTableColumns`; `None` loads every column of the table in order.
    pub columns: Option<Vec<String>>,
    /// `CopyCommand.CopyOptions`.
    pub copy_options: Option<String>,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("jdbc_url", &self.jdbc_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("table", &self.table)
            .field("columns", &self.columns)
            .field("copy_options", &self.copy_options)
            .finish()
    }
}

/// One table to COPY into; connects per [`PostgresTarget::copy`].
#[derive(Debug, Clone)]
pub struct PostgresTarget {
    connection: tokio_postgres::Config,
    host: String,
    port: u16,
    /// Display form for errors, as configured.
    table_name: String,
    /// Already quoted, e.g. `"public"."events"`.
    table_sql: String,
    /// Folded column names as configured, `None` for all columns.
    columns: Option<Vec<String>>,
    format: CopyFormat,
}

/// How one staged object is parsed, from `CopyOptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CopyFormat {
    kind: DataKind,
    ignore_header_rows: u64,
    /// A field equal to this loads as NULL (Redshift's default is `\N`).
    null_as: String,
    /// EMPTYASNULL: empty character fields load as NULL instead of ''.
    empty_as_null: bool,
    /// BLANKSASNULL: whitespace-only character fields load as NULL.
    blanks_as_null: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DataKind {
    Delimited { delimiter: char },
    Csv { delimiter: char, quote: char },
    JsonAuto { ignore_case: bool },
}

/// A target column with what the catalog says about it.
#[derive(Debug)]
struct Column {
    name: String,
    /// Character types (pg_type.typcategory 'S') keep empty fields as ''; Redshift loads an empty
    /// field of any other type as NULL.
    is_string: bool,
}

impl PostgresTarget {
    /// # Errors
    /// [`SinkError::InvalidConfig`] for a malformed JDBC URL or identifier,
    /// [`SinkError::UnsupportedCopyOption`] for copy options we cannot honour.
    pub fn new(config: PostgresConfig) -> Result<Self, SinkError> {
        let (host, port, database) = parse_jdbc_url(&config.jdbc_url)?;
        let table_parts = parse_qualified_name(&config.table)?;
        let table_sql = table_parts
            .iter()
            .map(|part| quote_identifier(part))
            .collect::<Vec<_>>()
            .join(".");
        let columns = match &config.columns {
            None => None,
            Some(columns) if columns.is_empty() => None,
            Some(columns) => Some(
                columns
                    .iter()
                    .map(|column| match parse_qualified_name(column)?.as_slice() {
                        [name] => Ok(name.clone()),
                        _ => Err(SinkError::InvalidConfig {
                            reason: format!("column name {column:?} must not be qualified"),
                        }),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let format = parse_copy_options(config.copy_options.as_deref().unwrap_or(""))?;

        let mut connection = tokio_postgres::Config::new();
        connection
            .host(&host)
            .port(port)
            .dbname(&database)
            .user(&config.username)
            .password(config.password.as_bytes())
            .application_name("millstream-firehose")
            .connect_timeout(CONNECT_TIMEOUT);
        Ok(Self {
            connection,
            host,
            port,
            table_name: config.table,
            table_sql,
            columns,
            format,
        })
    }

    /// Loads one staged object (already decompressed) in one transaction and returns the number
    /// of rows loaded.
    ///
    /// # Errors
    /// [`SinkError::InvalidCopyData`] when the bytes do not match the format (nothing is loaded),
    /// [`SinkError::DatabaseConnect`] / [`SinkError::Database`] for server-side failures.
    pub async fn copy(&self, data: &[u8]) -> Result<u64, SinkError> {
        let (mut client, connection) =
            self.connection
                .connect(NoTls)
                .await
                .map_err(|source| SinkError::DatabaseConnect {
                    host: self.host.clone(),
                    port: self.port,
                    source,
                })?;
        let connection_task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "PostgreSQL connection ended with an error");
            }
        });
        let result = self.copy_in_transaction(&mut client, data).await;
        drop(client);
        // The connection task ends once the client is gone; waiting keeps sockets from piling up.
        let _ended = connection_task.await;
        result
    }

    async fn copy_in_transaction(
        &self,
        client: &mut tokio_postgres::Client,
        data: &[u8],
    ) -> Result<u64, SinkError> {
        let database = |source| SinkError::Database {
            table: self.table_name.clone(),
            source,
        };
        let transaction = client.transaction().await.map_err(database)?;
        let columns = self.target_columns(&transaction).await?;
        let encoded = encode_rows(&self.format, &columns, data)?;

        let column_list = columns
            .iter()
            .map(|column| quote_identifier(&column.name))
            .collect::<Vec<_>>()
            .join(", ");
        let statement = format!(
            "COPY {} ({column_list}) FROM STDIN (FORMAT text)",
            self.table_sql
        );
        let sink = transaction
            .copy_in::<_, Bytes>(&statement)
            .await
            .map_err(database)?;
        futures::pin_mut!(sink);
        let mut remaining = Bytes::from(encoded);
        while !remaining.is_empty() {
            let chunk = remaining.split_to(remaining.len().min(COPY_CHUNK_BYTES));
            sink.send(chunk).await.map_err(database)?;
        }
        let rows = sink.finish().await.map_err(database)?;
        transaction.commit().await.map_err(database)?;
        Ok(rows)
    }

    async fn target_columns(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
    ) -> Result<Vec<Column>, SinkError> {
        let database = |source| SinkError::Database {
            table: self.table_name.clone(),
            source,
        };
        // The table name goes in as a parameter; the regclass cast resolves it like SQL would.
        let rows = transaction
            .query(
                "SELECT a.attname::text, t.typcategory::text \
                 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&self.table_sql],
            )
            .await
            .map_err(database)?;
        let mut table_columns = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get(0).map_err(database)?;
            let category: String = row.try_get(1).map_err(database)?;
            table_columns.push(Column {
                name,
                is_string: category == "S",
            });
        }
        Ok(match &self.columns {
            None => table_columns,
            // A configured column the table lacks is left for COPY to reject with its own message.
            Some(names) => names
                .iter()
                .map(|name| Column {
                    is_string: table_columns
                        .iter()
                        .find(|column| &column.name == name)
                        .is_none_or(|column| column.is_string),
                    name: name.clone(),
                })
                .collect(),
        })
    }
}

/// Parses the staged bytes and returns them in PostgreSQL's text COPY format.
fn encode_rows(format: &CopyFormat, columns: &[Column], data: &[u8]) -> Result<Vec<u8>, SinkError> {
    let text = std::str::from_utf8(data).map_err(|error| SinkError::InvalidCopyData {
        line: line_of(data, error.valid_up_to()),
        reason: "the data is not valid UTF-8".to_owned(),
    })?;
    let mut out = Vec::with_capacity(data.len() + data.len() / 8);
    match &format.kind {
        DataKind::Delimited { delimiter } => {
            for (index, line) in split_lines(text).enumerate() {
                let line_number = index as u64 + 1;
                if line_number <= format.ignore_header_rows {
                    continue;
                }
                let fields: Vec<Field<'_>> = line
                    .split(*delimiter)
                    .map(|value| Field {
                        value: Cow::Borrowed(value),
                        quoted: false,
                    })
                    .collect();
                write_row(&mut out, format, columns, &fields, line_number)?;
            }
        }
        DataKind::Csv { delimiter, quote } => {
            let mut parser = CsvParser {
                text,
                position: 0,
                line: 1,
                delimiter: *delimiter,
                quote: *quote,
            };
            let mut record_number = 0;
            while let Some((line_number, fields)) = parser.next_record()? {
                record_number += 1;
                if record_number <= format.ignore_header_rows {
                    continue;
                }
                write_row(&mut out, format, columns, &fields, line_number)?;
            }
        }
        DataKind::JsonAuto { ignore_case } => {
            let mut documents =
                serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
            loop {
                let offset = documents.byte_offset();
                let Some(document) = documents.next() else {
                    break;
                };
                // The offset is where the previous document ended; the next one starts after
                // the whitespace between them.
                let whitespace = data[offset..]
                    .iter()
                    .take_while(|byte| byte.is_ascii_whitespace())
                    .count();
                let line = line_of(data, offset + whitespace);
                let document = document.map_err(|error| SinkError::InvalidCopyData {
                    line: line + error.line() as u64 - 1,
                    reason: format!("invalid JSON: {error}"),
                })?;
                let serde_json::Value::Object(object) = document else {
                    return Err(SinkError::InvalidCopyData {
                        line,
                        reason: "JSON 'auto' expects one JSON object per record".to_owned(),
                    });
                };
                let values: Vec<Option<String>> = columns
                    .iter()
                    .map(|column| {
                        let value = if *ignore_case {
                            object
                                .iter()
                                .find(|(key, _)| key.eq_ignore_ascii_case(&column.name))
                                .map(|(_, v)| v)
                        } else {
                            object.get(&column.name)
                        };
                        match value {
                            None | Some(serde_json::Value::Null) => None,
                            Some(serde_json::Value::String(text)) => Some(text.clone()),
                            // Numbers and booleans load from their JSON text; nested values load
                            // as JSON text, as Redshift does for character columns.
                            Some(other) => Some(other.to_string()),
                        }
                    })
                    .collect();
                encode_row(&mut out, values.iter().map(Option::as_deref));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
struct Field<'a> {
    value: Cow<'a, str>,
    /// A quoted CSV field is never NULL, even when empty.
    quoted: bool,
}

fn write_row(
    out: &mut Vec<u8>,
    format: &CopyFormat,
    columns: &[Column],
    fields: &[Field<'_>],
    line: u64,
) -> Result<(), SinkError> {
    if fields.len() != columns.len() {
        let reason = if fields.len() < columns.len() {
            format!(
                "found {} fields but the target has {} columns (delimiter not found)",
                fields.len(),
                columns.len()
            )
        } else {
            format!(
                "found {} fields but the target has {} columns (extra column(s) found)",
                fields.len(),
                columns.len()
            )
        };
        return Err(SinkError::InvalidCopyData { line, reason });
    }
    let values = fields.iter().zip(columns).map(|(field, column)| {
        if !field.quoted && field.value == format.null_as {
            return None;
        }
        let empty = field.value.is_empty();
        let blank = field.value.trim().is_empty();
        if column.is_string {
            if (empty && format.empty_as_null && !field.quoted) || (blank && format.blanks_as_null)
            {
                return None;
            }
        } else if blank {
            return None;
        }
        Some(field.value.as_ref())
    });
    encode_row(out, values);
    Ok(())
}

/// One row in PostgreSQL's text COPY format: tab-separated, `\N` for NULL, backslash escapes.
fn encode_row<'a>(out: &mut Vec<u8>, values: impl Iterator<Item = Option<&'a str>>) {
    for (index, value) in values.enumerate() {
        if index > 0 {
            out.push(b'\t');
        }
        let Some(value) = value else {
            out.extend_from_slice(b"\\N");
            continue;
        };
        for byte in value.bytes() {
            match byte {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                other => out.push(other),
            }
        }
    }
    out.push(b'\n');
}

/// Lines separated by `\n`; a final newline does not start another line.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .filter(move |_| !text.is_empty())
}

fn line_of(data: &[u8], offset: usize) -> u64 {
    data[..offset.min(data.len())]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count() as u64
        + 1
}

/// RFC 4180 records: quoted fields may hold delimiters, newlines and doubled quotes.
struct CsvParser<'a> {
    text: &'a str,
    position: usize,
    line: u64,
    delimiter: char,
    quote: char,
}

impl<'a> CsvParser<'a> {
    /// The next record and the line it starts on; `None` at the end.
    fn next_record(&mut self) -> Result<Option<(u64, Vec<Field<'a>>)>, SinkError> {
        if self.position >= self.text.len() {
            return Ok(None);
        }
        let start_line = self.line;
        let mut fields = Vec::new();
        loop {
            let rest = &self.text[self.position..];
            if let Some(after_quote) = rest.strip_prefix(self.quote) {
                // Quoted field: find the closing quote that is not doubled.
                let mut value = String::new();
                let mut chars = after_quote.char_indices();
                let mut end = None;
                while let Some((index, character)) = chars.next() {
                    if character == self.quote {
                        if after_quote[index + character.len_utf8()..].starts_with(self.quote) {
                            value.push(self.quote);
                            chars.next();
                            continue;
                        }
                        end = Some(index + character.len_utf8());
                        break;
                    }
                    if character == '\n' {
                        self.line += 1;
                    }
                    value.push(character);
                }
                let Some(end) = end else {
                    return Err(SinkError::InvalidCopyData {
                        line: start_line,
                        reason: "unterminated quoted CSV field".to_owned(),
                    });
                };
                self.position += self.quote.len_utf8() + end;
                fields.push(Field {
                    value: Cow::Owned(value),
                    quoted: true,
                });
                let rest = &self.text[self.position..];
                match rest.chars().next() {
                    None => return Ok(Some((start_line, fields))),
                    Some('\n') => {
                        self.position += 1;
                        self.line += 1;
                        return Ok(Some((start_line, fields)));
                    }
                    Some(character) if character == self.delimiter => {
                        self.position += character.len_utf8();
                    }
                    Some(_) => {
                        return Err(SinkError::InvalidCopyData {
                            line: self.line,
                            reason: "unexpected character after a closing CSV quote".to_owned(),
                        });
                    }
                }
            } else {
                let end = rest.find([self.delimiter, '\n']).unwrap_or(rest.len());
                fields.push(Field {
                    value: Cow::Borrowed(&rest[..end]),
                    quoted: false,
                });
                self.position += end;
                match rest[end..].chars().next() {
                    None => return Ok(Some((start_line, fields))),
                    Some('\n') => {
                        self.position += 1;
                        self.line += 1;
                        return Ok(Some((start_line, fields)));
                    }
                    Some(character) => self.position += character.len_utf8(),
                }
            }
        }
    }
}

/// `jdbc:redshift://host:port/db` / `jdbc:postgresql://host[:port]/db` → (host, port, database).
fn parse_jdbc_url(url: &str) -> Result<(String, u16, String), SinkError> {
    let invalid = |reason: &str| SinkError::InvalidConfig {
        reason: format!("JDBC URL {url:?}: {reason}"),
    };
    let (scheme, rest) = url
        .strip_prefix("jdbc:")
        .and_then(|rest| rest.split_once("://"))
        .ok_or_else(|| invalid("expected jdbc:redshift://host:port/database"))?;
    let default_port = match scheme {
        "redshift" => REDSHIFT_DEFAULT_PORT,
        "postgresql" => POSTGRES_DEFAULT_PORT,
        _ => {
            return Err(invalid(
                "the scheme must be jdbc:redshift or jdbc:postgresql",
            ));
        }
    };
    let rest = rest.split(['?', ';']).next().unwrap_or_default();
    let (authority, database) = rest
        .split_once('/')
        .ok_or_else(|| invalid("the database name is missing"))?;
    if database.is_empty() || database.contains('/') {
        return Err(invalid("the path must be exactly one database name"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("unterminated IPv6 address"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains('@') {
        return Err(invalid("the host is missing or carries credentials"));
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(|| invalid("the port must be a number from 1 to 65535"))?,
    };
    Ok((host.to_owned(), port, database.to_owned()))
}

/// `schema.table`, `"Mixed Case".t`, ... → folded, unquoted parts. Unquoted parts fold to lower
/// case as Redshift and PostgreSQL fold them; quoted parts keep their spelling.
fn parse_qualified_name(name: &str) -> Result<Vec<String>, SinkError> {
    let invalid = |reason: &str| SinkError::InvalidConfig {
        reason: format!("identifier {name:?}: {reason}"),
    };
    let mut parts = Vec::new();
    let mut chars = name.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some('\0') => return Err(invalid("NUL is not allowed")),
                    Some(character) => part.push(character),
                    None => return Err(invalid("unterminated quoted identifier")),
                }
            }
        } else {
            while let Some(&character) = chars.peek() {
                if character == '.' {
                    break;
                }
                if !(character.is_alphanumeric() || character == '_' || character == '$') {
                    return Err(invalid(
                        "unquoted names may hold letters, digits, '_' and '$' only",
                    ));
                }
                part.extend(character.to_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return Err(invalid("empty name part"));
        }
        parts.push(part);
        match chars.next() {
            None => break,
            Some('.') => {}
            Some(_) => return Err(invalid("expected '.' after a quoted name")),
        }
    }
    if parts.len() > 3 {
        return Err(invalid("at most database.schema.name"));
    }
    Ok(parts)
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Upper-cased keyword or number.
    Word(String),
    /// A single-quoted literal, `''` unescaped, backslashes kept.
    Literal(String),
}

fn tokenize_copy_options(options: &str) -> Result<Vec<Token>, SinkError> {
    let mut tokens = Vec::new();
    let mut chars = options.chars().peekable();
    while let Some(&character) = chars.peek() {
        if character.is_whitespace() {
            chars.next();
        } else if character == '\'' {
            chars.next();
            let mut literal = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        literal.push('\'');
                    }
                    Some('\'') => break,
                    Some(character) => literal.push(character),
                    None => {
                        return Err(SinkError::UnsupportedCopyOption {
                            option: options.to_owned(),
                            reason: "unterminated quoted string".to_owned(),
                        });
                    }
                }
            }
            tokens.push(Token::Literal(literal));
        } else if character.is_ascii_alphanumeric() || character == '_' {
            let mut word = String::new();
            while let Some(&character) = chars.peek() {
                if !(character.is_ascii_alphanumeric() || character == '_') {
                    break;
                }
                word.push(character.to_ascii_uppercase());
                chars.next();
            }
            tokens.push(Token::Word(word));
        } else if character == ';' && chars.clone().skip(1).all(char::is_whitespace) {
            break;
        } else {
            return Err(SinkError::UnsupportedCopyOption {
                option: options.to_owned(),
                reason: format!("unexpected character {character:?}"),
            });
        }
    }
    Ok(tokens)
}

/// Parses Redshift `CopyOptions`. Supported: `DELIMITER [AS] 'c'`, `CSV [QUOTE [AS] 'q']`,
/// `FORMAT [AS] CSV|JSON`, `JSON [AS] 'auto'|'auto ignorecase'`, `IGNOREHEADER [AS] n`,
/// `NULL [AS] 'text'`, `EMPTYASNULL`, `BLANKSASNULL`, `TIMEFORMAT|DATEFORMAT [AS] 'auto'`;
/// `GZIP|BZIP2|LZOP|ZSTD` and `COMPUPDATE|STATUPDATE [ON|OFF]` are accepted and have no effect
/// here (the data arrives decompressed; there are no Redshift statistics).
fn parse_copy_options(options: &str) -> Result<CopyFormat, SinkError> {
    let unsupported = |option: &str, reason: &str| SinkError::UnsupportedCopyOption {
        option: option.to_owned(),
        reason: reason.to_owned(),
    };
    let tokens = tokenize_copy_options(options)?;
    let mut tokens = tokens.into_iter().peekable();
    let mut delimiter = None;
    let mut csv = false;
    let mut quote = None;
    let mut json = None;
    let mut ignore_header_rows = 0;
    let mut null_as = "\\N".to_owned();
    let mut empty_as_null = false;
    let mut blanks_as_null = false;

    // Every option that takes a value allows an optional AS before it.
    let literal_argument = |tokens: &mut std::iter::Peekable<std::vec::IntoIter<Token>>,
                            option: &str| {
        if tokens.peek() == Some(&Token::Word("AS".to_owned())) {
            tokens.next();
        }
        match tokens.next() {
            Some(Token::Literal(value)) => Ok(value),
            _ => Err(unsupported(option, "expects a quoted value")),
        }
    };

    while let Some(token) = tokens.next() {
        let Token::Word(word) = token else {
            return Err(unsupported(
                options,
                "a quoted value without an option name",
            ));
        };
        match word.as_str() {
            "DELIMITER" => {
                let value = literal_argument(&mut tokens, "DELIMITER")?;
                let value = if value == "\\t" {
                    "\t".to_owned()
                } else {
                    value
                };
                let mut chars = value.chars();
                match (chars.next(), chars.next()) {
                    (Some(character), None) if character != '\n' && character != '\r' => {
                        delimiter = Some(character);
                    }
                    _ => {
                        return Err(unsupported(
                            "DELIMITER",
                            "the delimiter must be a single character",
                        ));
                    }
                }
            }
            "FORMAT" => {
                if tokens.peek() == Some(&Token::Word("AS".to_owned())) {
                    tokens.next();
                }
                match tokens.peek() {
                    Some(Token::Word(kind)) if kind == "CSV" || kind == "JSON" => {}
                    _ => {
                        return Err(unsupported(
                            "FORMAT",
                            "only FORMAT AS CSV and FORMAT AS JSON are supported",
                        ));
                    }
                }
            }
            "CSV" => {
                csv = true;
            }
            "QUOTE" => {
                let value = literal_argument(&mut tokens, "QUOTE")?;
                let mut chars = value.chars();
                match (chars.next(), chars.next()) {
                    (Some(character), None) => quote = Some(character),
                    _ => return Err(unsupported("QUOTE", "the quote must be a single character")),
                }
            }
            "JSON" => {
                let value = literal_argument(&mut tokens, "JSON")?;
                match value.to_ascii_lowercase().as_str() {
                    "auto" => json = Some(false),
                    "auto ignorecase" => json = Some(true),
                    _ => {
                        return Err(unsupported(
                            "JSON",
                            "only 'auto' and 'auto ignorecase' are supported (no JSONPaths files)",
                        ));
                    }
                }
            }
            "IGNOREHEADER" => {
                if tokens.peek() == Some(&Token::Word("AS".to_owned())) {
                    tokens.next();
                }
                ignore_header_rows = match tokens.next() {
                    Some(Token::Word(number)) => number
                        .parse::<u64>()
                        .ok()
                        .filter(|&rows| rows <= IGNORE_HEADER_ROWS_MAX)
                        .ok_or_else(|| unsupported("IGNOREHEADER", "expects a row count"))?,
                    _ => return Err(unsupported("IGNOREHEADER", "expects a row count")),
                };
            }
            "NULL" => null_as = literal_argument(&mut tokens, "NULL")?,
            "EMPTYASNULL" => empty_as_null = true,
            "BLANKSASNULL" => blanks_as_null = true,
            "TIMEFORMAT" | "DATEFORMAT" => {
                let value = literal_argument(&mut tokens, &word)?;
                if !value.eq_ignore_ascii_case("auto") {
                    return Err(unsupported(&word, "only 'auto' is supported"));
                }
            }
            "GZIP" | "BZIP2" | "LZOP" | "ZSTD" => {}
            "COMPUPDATE" | "STATUPDATE" => {
                if matches!(tokens.peek(), Some(Token::Word(value)) if ["ON", "OFF", "TRUE", "FALSE"].contains(&value.as_str()))
                {
                    tokens.next();
                }
            }
            other => return Err(unsupported(other, "not supported by this destination")),
        }
    }

    let kind = match (csv, json) {
        (true, Some(_)) => return Err(unsupported("CSV", "CSV and JSON exclude each other")),
        (false, Some(ignore_case)) => {
            if delimiter.is_some() || quote.is_some() || ignore_header_rows > 0 {
                return Err(unsupported(
                    "JSON",
                    "DELIMITER, QUOTE and IGNOREHEADER do not apply to JSON",
                ));
            }
            DataKind::JsonAuto { ignore_case }
        }
        (true, None) => {
            let delimiter = delimiter.unwrap_or(',');
            let quote = quote.unwrap_or('"');
            if delimiter == quote {
                return Err(unsupported(
                    "QUOTE",
                    "the quote must differ from the delimiter",
                ));
            }
            DataKind::Csv { delimiter, quote }
        }
        (false, None) => {
            if quote.is_some() {
                return Err(unsupported("QUOTE", "QUOTE requires CSV"));
            }
            DataKind::Delimited {
                delimiter: delimiter.unwrap_or('|'),
            }
        }
    };
    Ok(CopyFormat {
        kind,
        ignore_header_rows,
        null_as,
        empty_as_null,
        blanks_as_null,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn columns(spec: &[(&str, bool)]) -> Vec<Column> {
        spec.iter()
            .map(|(name, is_string)| Column {
                name: (*name).to_owned(),
                is_string: *is_string,
            })
            .collect()
    }

    fn encode(options: &str, columns: &[Column], data: &str) -> Result<String, SinkError> {
        let format = parse_copy_options(options)?;
        encode_rows(&format, columns, data.as_bytes()).map(|out| String::from_utf8(out).unwrap())
    }

    #[test]
    fn jdbc_urls_give_host_port_and_database() {
        assert_eq!(
            parse_jdbc_url("jdbc:redshift://cluster.example.com:5439/dev").unwrap(),
            ("cluster.example.com".to_owned(), 5439, "dev".to_owned())
        );
        assert_eq!(
            parse_jdbc_url("jdbc:redshift://h/db").unwrap().1,
            REDSHIFT_DEFAULT_PORT
        );
        assert_eq!(
            parse_jdbc_url("jdbc:postgresql://h/db?ssl=true").unwrap(),
            ("h".into(), 5432, "db".into())
        );
        assert_eq!(
            parse_jdbc_url("jdbc:postgresql://[::1]:6000/db").unwrap(),
            ("::1".into(), 6000, "db".into())
        );
        for bad in [
            "jdbc:mysql://h/db",
            "jdbc:redshift://h:0/db",
            "jdbc:redshift://h:99999/db",
            "jdbc:redshift://h",
            "redshift://h/db",
            "jdbc:redshift://u@h/db",
        ] {
            assert!(parse_jdbc_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_fold_unquoted_parts_and_quote_safely() {
        assert_eq!(
            parse_qualified_name("Public.Events").unwrap(),
            ["public", "events"]
        );
        assert_eq!(
            parse_qualified_name("\"My\"\"T\".x").unwrap(),
            ["My\"T", "x"]
        );
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
        for bad in [
            "",
            "a b",
            "t; DROP TABLE x",
            "a..b",
            "\"open",
            "a.b.c.d",
            "x\"y\"",
        ] {
            assert!(parse_qualified_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn copy_options_parse_redshift_spellings() {
        let format =
            parse_copy_options("delimiter as '\\t' ignoreheader 2 null as 'NIL' emptyasnull gzip")
                .unwrap();
        assert_eq!(format.kind, DataKind::Delimited { delimiter: '\t' });
        assert_eq!(
            (
                format.ignore_header_rows,
                format.null_as.as_str(),
                format.empty_as_null
            ),
            (2, "NIL", true)
        );
        assert_eq!(
            parse_copy_options("").unwrap().kind,
            DataKind::Delimited { delimiter: '|' }
        );
        assert_eq!(
            parse_copy_options("FORMAT AS CSV QUOTE AS '''';")
                .unwrap()
                .kind,
            DataKind::Csv {
                delimiter: ',',
                quote: '\''
            }
        );
        assert_eq!(
            parse_copy_options("json 'auto ignorecase'").unwrap().kind,
            DataKind::JsonAuto { ignore_case: true }
        );
        for bad in [
            "ESCAPE",
            "JSON 's3://b/paths.json'",
            "CSV JSON 'auto'",
            "DELIMITER '||'",
            "QUOTE '\"'",
            "MAXERROR 10",
            "FORMAT AS PARQUET",
            "'x'",
        ] {
            let err = parse_copy_options(bad).unwrap_err();
            assert!(
                matches!(err, SinkError::UnsupportedCopyOption { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn delimited_text_keeps_backslashes_and_maps_empty_non_text_to_null() {
        let cols = columns(&[("id", false), ("name", true), ("note", true)]);
        let out = encode("", &cols, "1|a\\b|\\N\n|tab\there|\n").unwrap();
        assert_eq!(out, "1\ta\\\\b\t\\N\n\\N\ttab\\there\t\n");
        let err = encode("", &cols, "1|2\n3|4|5|6\n").unwrap_err();
        assert!(
            matches!(err, SinkError::InvalidCopyData { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn csv_handles_quotes_newlines_and_headers() {
        let cols = columns(&[("id", false), ("text", true)]);
        let data = "id,text\n1,\"a,\"\"b\"\"\nc\"\n2,\n3,\"\"\n";
        let out = encode("CSV IGNOREHEADER 1 EMPTYASNULL", &cols, data).unwrap();
        assert_eq!(out, "1\ta,\"b\"\\nc\n2\t\\N\n3\t\n");
        let err = encode("CSV", &cols, "1,\"open\n").unwrap_err();
        assert!(
            matches!(err, SinkError::InvalidCopyData { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn json_auto_maps_keys_to_columns_across_concatenated_documents() {
        let cols = columns(&[("id", false), ("name", true), ("tags", true)]);
        let out = encode(
            "JSON 'auto'",
            &cols,
            "{\"id\":1,\"name\":\"x\\ty\",\"extra\":true}{\"id\":2,\"tags\":[1,2]}\n",
        )
        .unwrap();
        assert_eq!(out, "1\tx\\ty\t\\N\n2\t\\N\t[1,2]\n");
        let err = encode("JSON 'auto'", &cols, "{\"id\":1}\n[1]\n").unwrap_err();
        assert!(
            matches!(err, SinkError::InvalidCopyData { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8_is_reported_with_its_line() {
        let cols = columns(&[("a", true)]);
        let format = parse_copy_options("").unwrap();
        let err = encode_rows(&format, &cols, b"ok\n\xff\n").unwrap_err();
        assert!(
            matches!(err, SinkError::InvalidCopyData { line: 2, .. }),
            "{err}"
        );
    }
}
