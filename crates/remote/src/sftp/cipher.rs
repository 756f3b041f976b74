//! The ssh cipher of an SFTP connection.
//!
//! Where one ssh channel carries every byte, its cipher bounds a
//! sequential read: with AES instructions, `aes128-gcm@openssh.com` moves
//! about 1.4 times what OpenSSH's default first choice,
//! `chacha20-poly1305@openssh.com`, does on the same CPU (measured over
//! loopback, bench/mount-results.md). So yonder puts it first, but only
//! where nobody chose: the user's ssh configuration and `-o` options give
//! the cipher list ssh would use otherwise, and a list other than ssh's
//! own default (or a `--ssh-command`, or a CPU without AES instructions)
//! is left alone. The server still picks from the whole list: one without
//! AES-GCM gets the next cipher, as before.

use crate::source::{ssh_destination, ConnectOptions, Source};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// The cipher preferred when the choice is yonder's.
pub const FAST_CIPHER: &str = "aes128-gcm@openssh.com";

/// `options` with a `Ciphers=` option that puts [`FAST_CIPHER`] first,
/// where ssh would otherwise use its default list and this CPU has AES
/// instructions; else `options` as they are.
pub async fn with_fast_cipher(source: &Source, options: &ConnectOptions) -> ConnectOptions {
    let mut chosen = options.clone();
    if options.ssh_command.is_some() || !cpu_has_aes() {
        return chosen;
    }
    let Ok(mut configured) = ssh_destination(source, options) else {
        return chosen;
    };
    let host = configured.pop().expect("destination");
    configured.pop().expect("--");
    configured.extend(["-G".to_string(), "--".to_string(), host.clone()]);
    let default = vec![
        "ssh".to_string(),
        "-F".to_string(),
        "none".to_string(),
        "-G".to_string(),
        "--".to_string(),
        host,
    ];
    let (configured, default) = tokio::join!(ciphers(&configured), ciphers(&default));
    if let (Some(configured), Some(default)) = (configured, default) {
        if let Some(list) = preferring_fast(&configured, &default) {
            chosen.ssh_options.push(format!("Ciphers={list}"));
        }
    }
    chosen
}

/// The cipher list to ask for: [`FAST_CIPHER`] first, then the rest of
/// `configured` in its order; `None` where the configuration is not ssh's
/// default (someone chose), lacks the cipher, or already prefers it.
fn preferring_fast(configured: &str, default: &str) -> Option<String> {
    if configured != default {
        return None;
    }
    let list: Vec<&str> = configured.split(',').collect();
    if list.first() == Some(&FAST_CIPHER) || !list.contains(&FAST_CIPHER) {
        return None;
    }
    let rest = list.into_iter().filter(|c| *c != FAST_CIPHER);
    Some(
        std::iter::once(FAST_CIPHER)
            .chain(rest)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The `ciphers` line of `argv`'s `ssh -G` output; `None` if ssh cannot
/// say.
async fn ciphers(argv: &[String]) -> Option<String> {
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .ok()?
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        key.eq_ignore_ascii_case("ciphers")
            .then(|| value.trim().to_string())
    })
}

/// Whether AES-GCM runs in hardware here (else ChaCha20 is the faster).
fn cpu_has_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,\
                           aes128-gcm@openssh.com,aes256-gcm@openssh.com";

    #[test]
    fn the_default_list_gets_aes_gcm_first_and_keeps_the_rest_in_order() {
        assert_eq!(
            preferring_fast(DEFAULT, DEFAULT).as_deref(),
            Some(
                "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,\
                 aes256-gcm@openssh.com"
            )
        );
    }

    #[test]
    fn a_list_someone_chose_is_left_alone() {
        assert_eq!(preferring_fast("chacha20-poly1305@openssh.com", DEFAULT), None);
        assert_eq!(
            preferring_fast("aes256-ctr,aes128-ctr", "aes256-ctr,aes128-ctr"),
            None
        );
        assert_eq!(
            preferring_fast(
                "aes128-gcm@openssh.com,aes128-ctr",
                "aes128-gcm@openssh.com,aes128-ctr"
            ),
            None
        );
    }
}
