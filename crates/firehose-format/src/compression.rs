//! Object body compression, one variant per `CompressionFormat` value (reference §7.4).
//!
//! Every format is produced in one pass over a complete object body held in memory: Firehose
//! objects are bounded by the buffering hints (≤128 MiB), so there is no streaming API here.
//!
//! # Byte layouts
//!
//! GZIP: one gzip member (RFC 1952), deflate level 6; bodies of 2 MiB or more deflated in
//! 1 MiB pieces on several threads, still one member (see `GZIP_PIECE_BYTES`).
//!
//! ZIP: an archive with exactly one deflated entry, named by the caller (Firehose names it like
//! the object, UUID-based). The entry timestamp is fixed at the DOS epoch, 1980-01-01 00:00, so
//! recompressing the same batch after a crash yields identical bytes.
//!
//! Snappy (xerial snappy-java stream, `Content-Encoding: snappy-java`; not the official Snappy
//! framing format, which starts with `0xff 0x06 0x00 0x00 sNaPpY`):
//!
//! ```text
//! | 0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00 | version i32 BE = 1 | compatible version i32 BE = 1 |
//! then per block of at most 32 KiB of input:
//! | compressed length u32 BE | raw snappy block |
//! ```
//!
//! The 32 KiB block matches snappy-java's default `SnappyOutputStream` block size. Readers accept
//! any block size, and a header repeated mid-stream (concatenated streams), as snappy-java does.
//!
//! HADOOP_SNAPPY (Hadoop `BlockCompressorStream` as configured by `SnappyCodec`,
//! `Content-Encoding: hadoop-snappy`):
//!
//! ```text
//! per block: | uncompressed length u32 BE | then one or more: | compressed length u32 BE | raw snappy chunk |
//! ```
//!
//! Hadoop's codec buffer is `io.compression.codec.snappy.buffersize` = 256 KiB, and its stream
//! caps a block's input at `buffer - (buffer / 6 + 32)` = 218,422 bytes so that even incompressible
//! input compresses into the 256 KiB buffer. A Hadoop reader decompresses each chunk into that
//! same 256 KiB buffer, so larger blocks would break real readers; we write one chunk per block.
//! An empty body is a single block header of length 0 with no chunks, as Hadoop writes it.

use std::io::{self, Cursor, Read, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Snappy-java stream magic: `0x82 "SNAPPY" 0x00`.
pub const SNAPPY_JAVA_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0x00];
/// Stream format version and the oldest reader version that can read it; both are 1.
const SNAPPY_JAVA_VERSION: u32 = 1;
const SNAPPY_JAVA_COMPATIBLE_VERSION: u32 = 1;
/// Magic plus two big-endian i32 version fields.
pub const SNAPPY_JAVA_HEADER_LEN: usize = 16;
const _: () = assert!(SNAPPY_JAVA_HEADER_LEN == SNAPPY_JAVA_MAGIC.len() + 4 + 4);
/// Input bytes per snappy-java block: snappy-java's default `SnappyOutputStream` block size.
pub const SNAPPY_JAVA_BLOCK_INPUT_BYTES_MAX: usize = 32 * 1024;

/// Hadoop's default `io.compression.codec.snappy.buffersize`.
const HADOOP_SNAPPY_BUFFER_BYTES: usize = 256 * 1024;
/// Input bytes per Hadoop block: `SnappyCodec` passes `buffer / 6 + 32` as the compression
/// overhead and `BlockCompressorStream` subtracts it from the buffer size.
pub const HADOOP_SNAPPY_BLOCK_INPUT_BYTES_MAX: usize =
    HADOOP_SNAPPY_BUFFER_BYTES - (HADOOP_SNAPPY_BUFFER_BYTES / 6 + 32);
const _: () = assert!(HADOOP_SNAPPY_BLOCK_INPUT_BYTES_MAX == 218_422);

/// Upper bound on what [`Compression::decompress`] will produce. Firehose objects are cut at the
/// buffering size hint (at most 128 MiB), so anything we wrote fits; larger output means a
/// hostile or foreign input and is refused rather than allocated.
pub const DECOMPRESSED_BYTES_MAX: usize = 128 * 1024 * 1024;

/// An S3 object body compression format (`CompressionFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Compression {
    Uncompressed,
    Gzip,
    Zip,
    Snappy,
    HadoopSnappy,
}

impl Compression {
    /// Parses the AWS enum value. Case-sensitive, as the AWS model is (`Snappy` is mixed case).
    pub fn from_aws(name: &str) -> Option<Self> {
        match name {
            "UNCOMPRESSED" => Some(Self::Uncompressed),
            "GZIP" => Some(Self::Gzip),
            "ZIP" => Some(Self::Zip),
            "Snappy" => Some(Self::Snappy),
            "HADOOP_SNAPPY" => Some(Self::HadoopSnappy),
            _ => None,
        }
    }

    pub fn as_aws(self) -> &'static str {
        match self {
            Self::Uncompressed => "UNCOMPRESSED",
            Self::Gzip => "GZIP",
            Self::Zip => "ZIP",
            Self::Snappy => "Snappy",
            Self::HadoopSnappy => "HADOOP_SNAPPY",
        }
    }

    /// Object key extension. HADOOP_SNAPPY uses `.snappy` too: the docs say `.hsnappy`, but the
    /// service was observed delivering `.snappy`.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Uncompressed => "",
            Self::Gzip => ".gz",
            Self::Zip => ".zip",
            Self::Snappy | Self::HadoopSnappy => ".snappy",
        }
    }

    /// The `Content-Encoding` header Firehose sets on the S3 object.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Self::Uncompressed => None,
            Self::Gzip => Some("gzip"),
            Self::Zip => Some("zip"),
            Self::Snappy => Some("snappy-java"),
            Self::HadoopSnappy => Some("hadoop-snappy"),
        }
    }

    /// Compresses a whole object body. `zip_entry_name` names the single archive entry for
    /// [`Compression::Zip`] and is ignored otherwise.
    ///
    /// # Errors
    /// Only on encoder failures (an input over 4 GiB for the 32-bit snappy framings, a zip entry
    /// name the zip writer rejects); writing into memory cannot fail otherwise.
    pub fn compress(self, data: &[u8], zip_entry_name: &str) -> io::Result<Vec<u8>> {
        match self {
            Self::Uncompressed => Ok(data.to_vec()),
            Self::Gzip => compress_gzip(data),
            Self::Zip => compress_zip(data, zip_entry_name),
            Self::Snappy => compress_snappy_java(data),
            Self::HadoopSnappy => compress_hadoop_snappy(data),
        }
    }

    /// Inverse of [`Compression::compress`], capped at [`DECOMPRESSED_BYTES_MAX`] of output.
    ///
    /// # Errors
    /// `InvalidData`/`UnexpectedEof` for malformed or truncated input, `InvalidData` when the
    /// output would exceed the cap.
    pub fn decompress(self, data: &[u8]) -> io::Result<Vec<u8>> {
        self.decompress_with_limit(data, DECOMPRESSED_BYTES_MAX)
    }

    /// [`Compression::decompress`] with an explicit output cap in bytes.
    ///
    /// # Errors
    /// As [`Compression::decompress`].
    pub fn decompress_with_limit(
        self,
        data: &[u8],
        output_bytes_max: usize,
    ) -> io::Result<Vec<u8>> {
        match self {
            Self::Uncompressed => {
                ensure_within(data.len(), output_bytes_max)?;
                Ok(data.to_vec())
            }
            Self::Gzip => read_capped(flate2::read::MultiGzDecoder::new(data), output_bytes_max),
            Self::Zip => decompress_zip(data, output_bytes_max),
            Self::Snappy => decompress_snappy_java(data, output_bytes_max),
            Self::HadoopSnappy => decompress_hadoop_snappy(data, output_bytes_max),
        }
    }
}

/// Bodies of at least two pieces are deflated a piece at a time, on as many threads as the
/// machine has (pigz's scheme): deflate at level 6 runs at ~33 MB/s per core here, so one
/// thread spent ~0.15 s on a 5 MiB batch and bounded GZIP delivery at a third of ingest
/// (BENCHMARKS.md, "Firehose"). Each piece is a raw deflate stream primed with the 32 KiB
/// of input before it (so matches reach back across the cut as in one stream) and ended by
/// a sync flush on a byte boundary, the last one finished; the pieces in order between one
/// gzip header and trailer are an ordinary single-member gzip file. Piece boundaries depend
/// on the input alone, so the same body always compresses to the same bytes.
const GZIP_PIECE_BYTES: usize = 1 << 20;
/// Deflate's window: how far back a match may reach.
const DEFLATE_WINDOW_BYTES: usize = 32 << 10;
/// What flate2's `GzEncoder` writes at the default level: magic, deflate, no flags, no
/// mtime, no extra flags, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

fn compress_gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    if data.len() < 2 * GZIP_PIECE_BYTES {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(data.len() / 2 + 64),
            flate2::Compression::default(),
        );
        encoder.write_all(data)?;
        return encoder.finish();
    }
    let pieces = deflate_pieces(data)?;
    let deflated: usize = pieces.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(GZIP_HEADER.len() + deflated + 8);
    out.extend_from_slice(&GZIP_HEADER);
    for piece in &pieces {
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    // ISIZE is the input length modulo 2^32 (RFC 1952).
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(out)
}

/// The raw deflate streams of `data`'s pieces, in order, made by up to one thread per CPU.
fn deflate_pieces(data: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let count = data.len().div_ceil(GZIP_PIECE_BYTES);
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(count);
    let next = AtomicUsize::new(0);
    let results: Vec<OnceLock<io::Result<Vec<u8>>>> = (0..count).map(|_| OnceLock::new()).collect();
    let work = || {
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= count {
                return;
            }
            let start = index * GZIP_PIECE_BYTES;
            let end = (start + GZIP_PIECE_BYTES).min(data.len());
            let dictionary = &data[start.saturating_sub(DEFLATE_WINDOW_BYTES)..start];
            let _ = results[index].set(deflate_piece(
                dictionary,
                &data[start..end],
                end == data.len(),
            ));
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        work();
    });
    results
        .into_iter()
        .map(|result| {
            result
                .into_inner()
                .unwrap_or_else(|| Err(io::Error::other("a gzip piece was not compressed")))
        })
        .collect()
}

fn deflate_piece(dictionary: &[u8], piece: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut deflate = flate2::Compress::new(flate2::Compression::default(), false);
    if !dictionary.is_empty() {
        deflate
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if last {
        flate2::FlushCompress::Finish
    } else {
        flate2::FlushCompress::Sync
    };
    // Incompressible input grows by a few bytes per stored block; start with room for that.
    let mut out = Vec::with_capacity(piece.len() + piece.len() / 64 + 64);
    loop {
        let consumed = usize::try_from(deflate.total_in()).map_err(io::Error::other)?;
        let status = deflate
            .compress_vec(&piece[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = deflate.total_in() == piece.len() as u64;
        // A flush is complete once it returns with output space to spare.
        let done = match flush {
            flate2::FlushCompress::Finish => status == flate2::Status::StreamEnd,
            _ => all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

fn compress_zip(data: &[u8], entry_name: &str) -> io::Result<Vec<u8>> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        // Fixed timestamp: identical input must give identical bytes (crash redelivery), and
        // the zip `time` feature, if ever unified in, would otherwise stamp the wall clock.
        .last_modified_time(zip::DateTime::default())
        .large_file(data.len() as u64 >= u64::from(u32::MAX));
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(data.len() / 2 + 256)));
    writer.start_file(entry_name, options)?;
    writer.write_all(data)?;
    Ok(writer.finish()?.into_inner())
}

fn decompress_zip(data: &[u8], output_bytes_max: usize) -> io::Result<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(data))?;
    if archive.len() != 1 {
        return Err(invalid_data(format!(
            "a Firehose ZIP object holds exactly one entry, this archive holds {}",
            archive.len()
        )));
    }
    let entry = archive.by_index(0)?;
    read_capped(entry, output_bytes_max)
}

fn compress_snappy_java(data: &[u8]) -> io::Result<Vec<u8>> {
    let block_count = data.len().div_ceil(SNAPPY_JAVA_BLOCK_INPUT_BYTES_MAX);
    let mut out = Vec::with_capacity(
        SNAPPY_JAVA_HEADER_LEN + block_count * 4 + snap::raw::max_compress_len(data.len()),
    );
    out.extend_from_slice(&SNAPPY_JAVA_MAGIC);
    out.extend_from_slice(&SNAPPY_JAVA_VERSION.to_be_bytes());
    out.extend_from_slice(&SNAPPY_JAVA_COMPATIBLE_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for block in data.chunks(SNAPPY_JAVA_BLOCK_INPUT_BYTES_MAX) {
        append_length_prefixed_snappy(&mut encoder, block, &mut out)?;
    }
    Ok(out)
}

fn compress_hadoop_snappy(data: &[u8]) -> io::Result<Vec<u8>> {
    let block_count = data
        .len()
        .div_ceil(HADOOP_SNAPPY_BLOCK_INPUT_BYTES_MAX)
        .max(1);
    let mut out = Vec::with_capacity(block_count * 8 + snap::raw::max_compress_len(data.len()));
    if data.is_empty() {
        out.extend_from_slice(&0u32.to_be_bytes());
        return Ok(out);
    }
    let mut encoder = snap::raw::Encoder::new();
    for block in data.chunks(HADOOP_SNAPPY_BLOCK_INPUT_BYTES_MAX) {
        out.extend_from_slice(&u32_len(block.len())?.to_be_bytes());
        append_length_prefixed_snappy(&mut encoder, block, &mut out)?;
    }
    Ok(out)
}

/// Appends `| compressed length u32 BE | raw snappy block |`.
fn append_length_prefixed_snappy(
    encoder: &mut snap::raw::Encoder,
    block: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let length_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let body_at = out.len();
    out.resize(body_at + snap::raw::max_compress_len(block.len()), 0);
    let written = encoder
        .compress(block, &mut out[body_at..])
        .map_err(invalid_data)?;
    out.truncate(body_at + written);
    out[length_at..body_at].copy_from_slice(&u32_len(written)?.to_be_bytes());
    Ok(())
}

fn decompress_snappy_java(data: &[u8], output_bytes_max: usize) -> io::Result<Vec<u8>> {
    let mut reader = ByteReader::new(data);
    let mut out = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    read_snappy_java_header(&mut reader)?;
    while !reader.is_empty() {
        // snappy-java reads concatenated streams as one: a header may follow any block.
        if reader.remaining().starts_with(&SNAPPY_JAVA_MAGIC) {
            read_snappy_java_header(&mut reader)?;
            continue;
        }
        let compressed_len = reader.read_u32_be()? as usize;
        let compressed = reader.take(compressed_len)?;
        decompress_snappy_chunk(&mut decoder, compressed, &mut out, output_bytes_max)?;
    }
    Ok(out)
}

fn read_snappy_java_header(reader: &mut ByteReader<'_>) -> io::Result<()> {
    let magic = reader.take(SNAPPY_JAVA_MAGIC.len())?;
    if magic != SNAPPY_JAVA_MAGIC {
        return Err(invalid_data("missing the snappy-java stream magic"));
    }
    let _version = reader.read_u32_be()?;
    let compatible_version = reader.read_u32_be()?;
    // snappy-java refuses streams that need a newer reader than format version 1.
    if compatible_version > SNAPPY_JAVA_VERSION {
        return Err(invalid_data(format!(
            "snappy-java stream needs reader version {compatible_version}, we read version 1"
        )));
    }
    Ok(())
}

fn decompress_hadoop_snappy(data: &[u8], output_bytes_max: usize) -> io::Result<Vec<u8>> {
    let mut reader = ByteReader::new(data);
    let mut out = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    while !reader.is_empty() {
        let block_len = reader.read_u32_be()? as usize;
        let block_end = out
            .len()
            .checked_add(block_len)
            .ok_or_else(|| too_large(usize::MAX))?;
        ensure_within(block_end, output_bytes_max)?;
        while out.len() < block_end {
            let compressed_len = reader.read_u32_be()? as usize;
            let compressed = reader.take(compressed_len)?;
            let chunk_len = snap::raw::decompress_len(compressed).map_err(invalid_data)?;
            if chunk_len > block_end - out.len() {
                return Err(invalid_data(format!(
                    "a {chunk_len}-byte snappy chunk overruns its {block_len}-byte Hadoop block"
                )));
            }
            decompress_snappy_chunk(&mut decoder, compressed, &mut out, block_end)?;
        }
    }
    Ok(out)
}

/// Decodes one raw snappy chunk onto `out`, refusing to grow `out` past `output_bytes_max`.
fn decompress_snappy_chunk(
    decoder: &mut snap::raw::Decoder,
    compressed: &[u8],
    out: &mut Vec<u8>,
    output_bytes_max: usize,
) -> io::Result<()> {
    let chunk_len = snap::raw::decompress_len(compressed).map_err(invalid_data)?;
    let start = out.len();
    let end = start
        .checked_add(chunk_len)
        .ok_or_else(|| too_large(usize::MAX))?;
    ensure_within(end, output_bytes_max)?;
    out.resize(end, 0);
    let written = decoder
        .decompress(compressed, &mut out[start..])
        .map_err(invalid_data)?;
    out.truncate(start + written);
    Ok(())
}

fn read_capped(reader: impl Read, output_bytes_max: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    // One byte past the cap tells "exactly at the cap" from "over it".
    let cap_probe = u64::try_from(output_bytes_max)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader.take(cap_probe).read_to_end(&mut out)?;
    ensure_within(out.len(), output_bytes_max)?;
    Ok(out)
}

fn ensure_within(len: usize, output_bytes_max: usize) -> io::Result<()> {
    if len > output_bytes_max {
        return Err(too_large(output_bytes_max));
    }
    Ok(())
}

fn too_large(output_bytes_max: usize) -> io::Error {
    invalid_data(format!(
        "decompressed data exceeds the {output_bytes_max}-byte limit"
    ))
}

fn u32_len(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| invalid_data("block longer than a u32 length field allows"))
}

fn invalid_data(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// Bounds-checked cursor over untrusted framing bytes.
struct ByteReader<'a> {
    rest: &'a [u8],
}

impl<'a> ByteReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    fn take(&mut self, len: usize) -> io::Result<&'a [u8]> {
        if len > self.rest.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("framing announces {len} bytes, {} remain", self.rest.len()),
            ));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn read_u32_be(&mut self) -> io::Result<u32> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::Digest;

    const ALL: [Compression; 5] = [
        Compression::Uncompressed,
        Compression::Gzip,
        Compression::Zip,
        Compression::Snappy,
        Compression::HadoopSnappy,
    ];

    /// Raw snappy of "abc": varint length 3, then a literal tag ((len - 1) << 2) and the bytes.
    const RAW_SNAPPY_ABC: [u8; 5] = [0x03, 0x08, b'a', b'b', b'c'];

    fn be32(bytes: &[u8]) -> usize {
        u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize
    }

    /// Pseudo-random bytes that snappy cannot shrink, so blocks keep their size.
    fn incompressible(len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn aws_names_extensions_and_encodings_match_the_reference_table() {
        let expected = [
            ("UNCOMPRESSED", "", None),
            ("GZIP", ".gz", Some("gzip")),
            ("ZIP", ".zip", Some("zip")),
            ("Snappy", ".snappy", Some("snappy-java")),
            ("HADOOP_SNAPPY", ".snappy", Some("hadoop-snappy")),
        ];
        for (format, (name, extension, encoding)) in ALL.into_iter().zip(expected) {
            assert_eq!(Compression::from_aws(name), Some(format));
            assert_eq!(format.as_aws(), name);
            assert_eq!(format.extension(), extension);
            assert_eq!(format.content_encoding(), encoding);
        }
    }

    #[test]
    fn aws_names_are_case_sensitive() {
        assert_eq!(Compression::from_aws("SNAPPY"), None);
        assert_eq!(Compression::from_aws("gzip"), None);
        assert_eq!(Compression::from_aws(""), None);
    }

    /// The expected bytes are also exactly what snappy-java 1.1.8.3's `SnappyOutputStream`
    /// writes for "abc" (checked once against the Debian `libsnappy-java` jar).
    #[test]
    fn snappy_java_stream_of_abc_is_header_then_one_length_prefixed_block() {
        let out = Compression::Snappy.compress(b"abc", "").unwrap();
        let mut expected = vec![0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0x00];
        expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 5]);
        expected.extend_from_slice(&RAW_SNAPPY_ABC);
        assert_eq!(out, expected);
        assert_eq!(Compression::Snappy.decompress(&out).unwrap(), b"abc");
    }

    #[test]
    fn hadoop_snappy_of_abc_is_raw_length_then_compressed_length_then_block() {
        let out = Compression::HadoopSnappy.compress(b"abc", "").unwrap();
        let mut expected = vec![0, 0, 0, 3, 0, 0, 0, 5];
        expected.extend_from_slice(&RAW_SNAPPY_ABC);
        assert_eq!(out, expected);
        assert_eq!(Compression::HadoopSnappy.decompress(&out).unwrap(), b"abc");
    }

    #[test]
    fn empty_bodies_keep_their_framing() {
        assert_eq!(
            Compression::Snappy.compress(b"", "").unwrap().len(),
            SNAPPY_JAVA_HEADER_LEN
        );
        assert_eq!(
            Compression::HadoopSnappy.compress(b"", "").unwrap(),
            vec![0, 0, 0, 0]
        );
        for format in ALL {
            let packed = format.compress(b"", "e").unwrap();
            assert_eq!(format.decompress(&packed).unwrap(), b"", "{format:?}");
        }
    }

    #[test]
    fn snappy_java_splits_input_into_32_kib_blocks() {
        let data = incompressible(2 * SNAPPY_JAVA_BLOCK_INPUT_BYTES_MAX + 100);
        let out = Compression::Snappy.compress(&data, "").unwrap();
        let mut at = SNAPPY_JAVA_HEADER_LEN;
        let mut block_lengths = Vec::new();
        while at < out.len() {
            let len = be32(&out[at..]);
            let block = &out[at + 4..at + 4 + len];
            block_lengths.push(snap::raw::decompress_len(block).unwrap());
            at += 4 + len;
        }
        assert_eq!(at, out.len());
        assert_eq!(block_lengths, vec![32 * 1024, 32 * 1024, 100]);
    }

    #[test]
    fn hadoop_snappy_caps_block_input_at_hadoops_max_input_size() {
        let data = incompressible(2 * HADOOP_SNAPPY_BLOCK_INPUT_BYTES_MAX + 7);
        let out = Compression::HadoopSnappy.compress(&data, "").unwrap();
        let mut at = 0;
        let mut raw_lengths = Vec::new();
        while at < out.len() {
            let raw_len = be32(&out[at..]);
            let compressed_len = be32(&out[at + 4..]);
            // A Hadoop reader decompresses into its 256 KiB buffer, and the compressed chunk
            // must fit that buffer too.
            assert!(compressed_len <= 256 * 1024);
            let chunk = &out[at + 8..at + 8 + compressed_len];
            assert_eq!(
                snap::raw::Decoder::new()
                    .decompress_vec(chunk)
                    .unwrap()
                    .len(),
                raw_len
            );
            raw_lengths.push(raw_len);
            at += 8 + compressed_len;
        }
        assert_eq!(raw_lengths, vec![218_422, 218_422, 7]);
        assert_eq!(Compression::HadoopSnappy.decompress(&out).unwrap(), data);
    }

    #[test]
    fn hadoop_snappy_reader_accepts_several_chunks_per_block() {
        // Hadoop splits one oversized write into several chunks under one raw-length header.
        let mut framed = vec![0, 0, 0, 6];
        for part in [&b"abc"[..], &b"def"[..]] {
            let chunk = snap::raw::Encoder::new().compress_vec(part).unwrap();
            framed.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            framed.extend_from_slice(&chunk);
        }
        assert_eq!(
            Compression::HadoopSnappy.decompress(&framed).unwrap(),
            b"abcdef"
        );
    }

    #[test]
    fn snappy_java_reader_accepts_concatenated_streams() {
        let mut joined = Compression::Snappy.compress(b"abc", "").unwrap();
        joined.extend(Compression::Snappy.compress(b"def", "").unwrap());
        assert_eq!(Compression::Snappy.decompress(&joined).unwrap(), b"abcdef");
    }

    #[test]
    fn gzip_is_one_member_with_crc_and_size_trailer() {
        let data = b"hello firehose\nhello firehose\n";
        let out = Compression::Gzip.compress(data, "").unwrap();
        assert_eq!(
            &out[..3],
            &[0x1f, 0x8b, 0x08],
            "gzip magic + deflate method"
        );
        let trailer = &out[out.len() - 8..];
        let crc = u32::from_le_bytes(trailer[..4].try_into().unwrap());
        let size = u32::from_le_bytes(trailer[4..].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(data));
        assert_eq!(size as usize, data.len());
        // Independent decoder: a single-member reader sees the whole body.
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, data);
    }

    /// Log-like lines: compressible, with matches that reach across piece boundaries.
    fn log_lines(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 100);
        let mut i = 0u64;
        while out.len() < len {
            out.extend_from_slice(
                format!(
                    "{{\"ts\":{},\"level\":\"info\",\"user\":\"u{}\",\"path\":\"/api/v1/items/{}\"}}\n",
                    1_764_000_000_000 + i * 7,
                    i % 97,
                    i % 1013
                )
                .as_bytes(),
            );
            i += 1;
        }
        out.truncate(len);
        out
    }

    fn gunzip_single_member(gz: &[u8]) -> Vec<u8> {
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut decoded)
            .unwrap();
        decoded
    }

    #[test]
    fn large_gzip_bodies_are_deflated_in_pieces_into_one_member() {
        let piece = GZIP_PIECE_BYTES;
        for len in [2 * piece - 1, 2 * piece, 2 * piece + 1, 5 * piece + 12_345] {
            for data in [incompressible(len), log_lines(len)] {
                let out = Compression::Gzip.compress(&data, "").unwrap();
                assert_eq!(&out[..10], &GZIP_HEADER);
                let trailer = &out[out.len() - 8..];
                assert_eq!(trailer[..4], crc32fast::hash(&data).to_le_bytes());
                assert_eq!(trailer[4..], (len as u32).to_le_bytes());
                // A reader of the first member only still gets everything back.
                assert_eq!(gunzip_single_member(&out), data, "{len}");
                assert_eq!(Compression::Gzip.decompress(&out).unwrap(), data);
                assert_eq!(
                    Compression::Gzip.compress(&data, "").unwrap(),
                    out,
                    "the same body compresses to the same bytes"
                );
            }
        }
    }

    #[test]
    fn pieces_primed_with_the_window_compress_as_well_as_one_stream() {
        let data = log_lines(6 * GZIP_PIECE_BYTES);
        let pieces = Compression::Gzip.compress(&data, "").unwrap();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&data).unwrap();
        let whole = encoder.finish().unwrap();
        // Unprimed pieces would lose every match across the 5 cuts; primed ones lose only
        // the few bytes of each sync flush.
        assert!(
            pieces.len() <= whole.len() + 5 * 64,
            "pieces {} vs one stream {}",
            pieces.len(),
            whole.len()
        );
        assert_eq!(gunzip_single_member(&pieces), data);
    }

    /// Python's gzip module (what boto3 users decode objects with) reads the pieced member.
    #[test]
    fn python_reads_a_pieced_gzip_body() {
        let data = log_lines(3 * GZIP_PIECE_BYTES + 99);
        let out = Compression::Gzip.compress(&data, "").unwrap();
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import gzip, hashlib, sys; \
                 print(hashlib.sha256(gzip.decompress(sys.stdin.buffer.read())).hexdigest())",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 is on every machine CI runs on");
        child.stdin.take().unwrap().write_all(&out).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let digest = hex::encode(sha2::Sha256::digest(&data));
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), digest);
    }

    #[test]
    fn zip_holds_one_deflated_entry_with_the_given_name() {
        let data = b"record-1\nrecord-2\nrecord-3\n".repeat(10);
        let name = "0c8c1d6a-1f0e-4a4b-9d53-3c2f1f9b7e11";
        let out = Compression::Zip.compress(&data, name).unwrap();
        // Local file header, read by hand.
        assert_eq!(&out[..4], b"PK\x03\x04");
        let flags = u16::from_le_bytes([out[6], out[7]]);
        assert_eq!(flags & 1, 0, "not encrypted");
        assert_eq!(
            u16::from_le_bytes([out[8], out[9]]),
            8,
            "method 8 = deflate"
        );
        let dos_date = u16::from_le_bytes([out[12], out[13]]);
        assert_eq!(dos_date, (1 << 5) | 1, "1980-01-01: fixed timestamp");
        let compressed_len = u32::from_le_bytes(out[18..22].try_into().unwrap()) as usize;
        let name_len = u16::from_le_bytes([out[26], out[27]]) as usize;
        let extra_len = u16::from_le_bytes([out[28], out[29]]) as usize;
        assert_eq!(&out[30..30 + name_len], name.as_bytes());
        // Inflate the entry with flate2 directly, independent of the zip reader.
        let body_at = 30 + name_len + extra_len;
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&out[body_at..body_at + compressed_len])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, data);
        assert_eq!(Compression::Zip.decompress(&out).unwrap(), data);
        // Deterministic: same batch, same bytes.
        assert_eq!(Compression::Zip.compress(&data, name).unwrap(), out);
    }

    #[test]
    fn decompression_refuses_output_over_the_limit() {
        let data = vec![b'x'; 10_000];
        for format in ALL {
            let packed = format.compress(&data, "e").unwrap();
            assert_eq!(format.decompress_with_limit(&packed, 10_000).unwrap(), data);
            let err = format.decompress_with_limit(&packed, 9_999).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{format:?}");
        }
    }

    #[test]
    fn truncated_framings_are_errors() {
        let data = incompressible(1000);
        for format in [
            Compression::Gzip,
            Compression::Zip,
            Compression::Snappy,
            Compression::HadoopSnappy,
        ] {
            let packed = format.compress(&data, "e").unwrap();
            assert!(
                format.decompress(&packed[..packed.len() - 1]).is_err(),
                "{format:?}"
            );
        }
        assert!(
            Compression::Snappy
                .decompress(b"\x82SNAPPX\x00\0\0\0\x01\0\0\0\x01")
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn every_format_round_trips(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            for format in ALL {
                let packed = format.compress(&data, "entry").unwrap();
                prop_assert_eq!(format.decompress(&packed).unwrap(), data.clone());
            }
        }

        #[test]
        fn decoders_never_panic_on_arbitrary_bytes(
            data in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            for format in ALL {
                let _ = format.decompress_with_limit(&data, 1 << 20);
            }
        }
    }
}
