//! Words for a remote POSIX shell.

/// Quotes a word for the remote POSIX shell. Words of safe characters pass
/// unchanged, so that `~/bin/yonder` still gets tilde expansion.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+~=,:@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}
