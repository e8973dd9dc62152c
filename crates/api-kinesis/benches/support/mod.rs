//! What the decode and encode benchmarks share.

/// Deterministic, incompressible-looking record bytes.
pub fn payload(index: usize, size: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ index as u64;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
