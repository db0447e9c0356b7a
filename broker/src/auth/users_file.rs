//! The users file as text: one `username:hash` per line, `#` comments and
//! blank lines kept as they are. Loading checks every line and names the
//! first bad one; saving writes a temporary file and renames it over the old
//! one, so a reader sees the old file or the new one, never half of one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::password::StoredHash;

/// Longest user name: MQTT strings are at most 65,535 bytes.
const USERNAME_LEN_MAX: usize = 65_535;

#[derive(Debug, Clone)]
enum Line {
    /// A comment or a blank line, kept verbatim.
    Other(String),
    Entry {
        user: String,
        hash: String,
    },
}

/// A parsed users file.
#[derive(Debug, Clone, Default)]
pub struct UsersFile {
    lines: Vec<Line>,
}

impl UsersFile {
    /// Reads and checks a users file; the error names the file and the line.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Self::parse(&text).map_err(|(line, message)| format!("{}: line {line}: {message}", path.display()))
    }

    /// Like `load`, but a missing file is an empty one (for `ctl users add`).
    pub fn load_or_empty(path: &Path) -> Result<Self, String> {
        if path.exists() { Self::load(path) } else { Ok(Self::default()) }
    }

    /// Parses users-file text; the error is (line number, what is wrong).
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut file = Self::default();
        let mut seen = std::collections::HashSet::new();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                file.lines.push(Line::Other(raw.to_owned()));
                continue;
            }
            let (user, hash) = line.split_once(':').ok_or((number, "expected username:hash".to_owned()))?;
            check_username(user).map_err(|e| (number, e))?;
            StoredHash::parse(hash).map_err(|e| (number, format!("user {user:?}: {e}")))?;
            if !seen.insert(user) {
                return Err((number, format!("user {user:?} appears twice")));
            }
            file.lines.push(Line::Entry { user: user.to_owned(), hash: hash.to_owned() });
        }
        Ok(file)
    }

    /// Every user and its hash text, in file order.
    pub fn users(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { user, hash } => Some((user.as_str(), hash.as_str())),
            Line::Other(_) => None,
        })
    }

    pub fn get(&self, user: &str) -> Option<&str> {
        self.users().find(|(u, _)| *u == user).map(|(_, h)| h)
    }

    /// Sets a user's hash; true if the user existed.
    pub fn set(&mut self, user: &str, hash: String) -> Result<bool, String> {
        check_username(user)?;
        StoredHash::parse(&hash)?;
        for line in &mut self.lines {
            if let Line::Entry { user: u, hash: h } = line
                && u == user
            {
                *h = hash;
                return Ok(true);
            }
        }
        self.lines.push(Line::Entry { user: user.to_owned(), hash });
        Ok(false)
    }

    /// Removes a user; true if it existed.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.lines.len();
        self.lines.retain(|l| !matches!(l, Line::Entry { user: u, .. } if u == user));
        self.lines.len() != before
    }

    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Other(raw) => text.push_str(raw),
                Line::Entry { user, hash } => {
                    text.push_str(user);
                    text.push(':');
                    text.push_str(hash);
                }
            }
            text.push('\n');
        }
        text
    }

    /// Writes the file atomically: a temporary file in the same directory
    /// (readable by the owner only), synced, then renamed over `path`.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().ok_or_else(|| io::Error::other("the users file path names no file"))?;
        let temp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        // A leftover of an earlier process with this id that died mid-save
        // (ids repeat, in containers often): no live process writes it.
        let _ = fs::remove_file(&temp);
        let result = write_private(&temp, self.to_text().as_bytes()).and_then(|()| fs::rename(&temp, path));
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A user name the file can hold: not empty, no `:` (the separator), no
/// white space or control characters (they would not survive the line format).
pub fn check_username(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("empty user name".into());
    }
    if user.len() > USERNAME_LEN_MAX {
        return Err(format!("user name longer than {USERNAME_LEN_MAX} bytes"));
    }
    if let Some(c) = user.chars().find(|c| *c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(format!("user name {user:?} contains {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "$sha256$s$0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn comments_and_order_survive_an_edit() {
        let text = format!("# users\nalice:{SHA}\n\nbob:{SHA}\n");
        let mut file = UsersFile::parse(&text).expect("parse");
        assert_eq!(file.set("alice", SHA.replace("$s$", "$t$")), Ok(true));
        assert_eq!(file.set("carol", SHA.to_owned()), Ok(false));
        assert!(file.remove("bob"));
        assert!(!file.remove("bob"));
        let expected = format!("# users\nalice:{}\n\ncarol:{SHA}\n", SHA.replace("$s$", "$t$"));
        assert_eq!(file.to_text(), expected);
    }

    #[test]
    fn a_bad_line_is_named() {
        for (text, line, says) in [
            (format!("alice:{SHA}\nbob\n"), 2, "username:hash"),
            (format!("# c\nalice:{SHA}\nalice:{SHA}\n"), 3, "twice"),
            ("carol:plaintext\n".to_owned(), 1, "unknown hash format"),
            (format!(":{SHA}\n"), 1, "empty user name"),
        ] {
            let (number, message) = UsersFile::parse(&text).expect_err(&text);
            assert_eq!(number, line, "{text}: {message}");
            assert!(message.contains(says), "{text}: {message}");
        }
    }

    #[test]
    fn save_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("users-file-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("users");
        fs::write(&path, "old\n").expect("write");
        let mut file = UsersFile::default();
        file.set("alice", SHA.to_owned()).expect("set");
        file.save(&path).expect("save");
        let loaded = UsersFile::load(&path).expect("load");
        assert_eq!(loaded.get("alice"), Some(SHA));
        let names: Vec<_> = fs::read_dir(&dir).expect("ls").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let _ = fs::remove_dir_all(&dir);
    }

    /// Regression: a temporary file left by a crashed save of a process with
    /// the same id made every later save fail with "File exists".
    #[test]
    fn a_stale_temporary_does_not_block_saving() {
        let dir = std::env::temp_dir().join(format!("users-file-stale-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("users");
        fs::write(dir.join(format!(".users.tmp-{}", std::process::id())), "half a file").expect("write");
        let mut file = UsersFile::default();
        file.set("alice", SHA.to_owned()).expect("set");
        file.save(&path).expect("save over a stale temporary");
        assert_eq!(UsersFile::load(&path).expect("load").get("alice"), Some(SHA));
        assert_eq!(fs::read_dir(&dir).expect("ls").count(), 1, "the stale temporary is gone");
        let _ = fs::remove_dir_all(&dir);
    }
}
