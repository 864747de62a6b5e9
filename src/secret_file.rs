//! The secret-file policy, one rule for the module and the CLI: how a file is read, who else may
//! read it, and how an unreadable one is reported without showing a secret pasted as its name.

use core::fmt;

use crate::options::MIN_SECRET_LEN;

/// Who else can read a secret file. Debian's convention, `root:prosody 0640`, is fine: the group
/// that may read it is the server's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Readable by every local user; `mode` as `ls` shows it (`rw-r--r--`).
    Others {
        /// The permission bits, `rwxr-x---` style.
        mode: String,
    },
    /// Readable by a group that is not the server's.
    ForeignGroup {
        /// The file's group.
        gid: u32,
        /// The server's group.
        expected: u32,
    },
}

impl fmt::Display for Exposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exposure::Others { mode } => write!(
                f,
                "is readable by others ({mode}); make it readable only by its owner and Prosody's group (e.g. chown root:prosody and chmod 640)"
            ),
            Exposure::ForeignGroup { gid, expected } => write!(
                f,
                "is readable by group {gid}, which is not Prosody's ({expected}); give it to Prosody's group (e.g. chown root:prosody and chmod 640) or make it readable by its owner only"
            ),
        }
    }
}

/// `rwxr-x---` for the low nine permission bits.
fn mode_string(mode: u32) -> String {
    (0..9)
        .map(|i| {
            let bit = 0o400 >> i;
            if mode & bit == 0 {
                '-'
            } else {
                ['r', 'w', 'x'][i % 3]
            }
        })
        .collect()
}

/// Who besides the owner and `server_gid` can read a file of this `mode` and group.
pub fn exposure(mode: u32, gid: u32, server_gid: Option<u32>) -> Option<Exposure> {
    if mode & 0o004 != 0 {
        return Some(Exposure::Others { mode: mode_string(mode) });
    }
    match server_gid {
        Some(expected) if mode & 0o040 != 0 && gid != expected => Some(Exposure::ForeignGroup { gid, expected }),
        _ => None,
    }
}

/// Whether a configured file name could be a secret pasted where a path belongs
/// (`token_secret_file = "<the secret>"`): anything but an absolute path or one that starts with
/// `./`, `../` or `~`, of 16 or more characters of a secret's alphabet (base32, hex, base64 with
/// `/`) and no dot. Such a name is not shown.
pub fn looks_like_a_secret(configured: &str) -> bool {
    !configured.starts_with(['/', '~'])
        && !configured.starts_with("./")
        && !configured.starts_with("../")
        && configured.len() >= MIN_SECRET_LEN
        && !configured.contains('.')
        && configured.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-'))
}

/// The longest secret file read: a secret is tens of bytes; this only stops a wrong path (a log
/// file, `/dev/zero`) from being read whole.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// "cannot read PATH (why)" for the secret file `path` (the configured value resolved), or, when the
/// value as `configured` looks like a secret rather than a path, the same without either.
pub fn read_error(path: &std::path::Path, configured: &str, err: &std::io::Error) -> String {
    if looks_like_a_secret(configured) {
        format!("cannot read the file it names ({err}; the name is not shown: it looks like a secret, not a path)")
    } else {
        format!("cannot read {} ({err})", path.display())
    }
}

/// A secret file's contents, without trailing line ends (an editor's final newline is not part of
/// the secret), and who else can read it, for a warning. The one rule for the module and the CLI.
pub fn read_secret_file(path: &std::path::Path, server_gid: Option<u32>) -> std::io::Result<(Vec<u8>, Option<Exposure>)> {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&file, MAX_SECRET_FILE + 1), &mut data)?;
    if data.len() as u64 > MAX_SECRET_FILE {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "over 64 KiB: not a secret file"));
    }
    while matches!(data.last(), Some(b'\n' | b'\r')) {
        data.pop();
    }
    Ok((data, exposure(meta.mode(), meta.gid(), server_gid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_given_as_a_path_is_not_shown() {
        use std::path::Path;
        let err = std::io::Error::from(std::io::ErrorKind::NotFound);
        for secret in [
            "WQGUG2BSJYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7YWKA",
            "0123456789abcdef0123456789abcdef",
            "c2VjcmV0LXNlY3JldC0xMjM0NTY=",
            "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9/z0x=", // base64 with a '/'
        ] {
            let resolved = Path::new("/etc/prosody").join(secret);
            let shown = read_error(&resolved, secret, &err);
            assert!(!shown.contains(secret) && !shown.contains("z0x"), "{shown}");
            assert!(shown.contains("not shown"), "{shown}");
        }
        for path in
            ["/etc/prosody/token_secret", "/etc/prosody/otp_seed", "/srv/chat/secret.txt", "/x/y", "./secret", "token_secret"]
        {
            assert!(read_error(Path::new(path), path, &err).contains(path), "{path}");
        }
    }

    #[test]
    fn exposure_follows_debians_convention() {
        assert_eq!(exposure(0o100640, 105, Some(105)), None);
        assert_eq!(exposure(0o100600, 0, Some(105)), None);
        assert_eq!(exposure(0o100640, 0, Some(105)), Some(Exposure::ForeignGroup { gid: 0, expected: 105 }));
        assert_eq!(exposure(0o100640, 0, None), None);
        assert_eq!(exposure(0o100644, 105, Some(105)), Some(Exposure::Others { mode: "rw-r--r--".into() }));
        assert_eq!(exposure(0o100604, 105, None), Some(Exposure::Others { mode: "rw----r--".into() }));
        assert_eq!(mode_string(0o751), "rwxr-x--x");
    }
}
