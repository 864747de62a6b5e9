//! Randomness, from the operating system's CSPRNG: nonces and secrets.

/// `n` uniformly random decimal digits from the operating system's CSPRNG.
pub fn random_digits(n: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf)?;
        for &b in &buf {
            // 250 is the largest multiple of 10 that fits in a byte: no modulo bias.
            if b < 250 && out.len() < n {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    Ok(out)
}

/// `n` random bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, getrandom::Error> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v)?;
    Ok(v)
}
