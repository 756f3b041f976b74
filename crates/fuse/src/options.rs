//! `-o` options: the one reading of them, for every way a mount is asked
//! for (`yonder mount -o`, an /etc/fstab line through the helper form, a
//! mount request to the manager). Each word is classified before anything
//! connects, and a word yonder does not take is refused by name, in one
//! line: nothing unknown is handed to `fusermount3` to fail on after ssh
//! has connected.
//!
//! A word is one of:
//! - an ssh option: `Key=value` with a capitalised key (ssh's option names
//!   all are), passed to ssh as `-o Key=value`;
//! - a setting of yonder's (`ro`, `allow_other`, `port=`, `attr_ttl=`...),
//!   the same as the matching command-line flag;
//! - a kernel mount flag `fusermount3` passes on (`noexec`, `noatime`...);
//! - a word that only means something to mount(8), mount.fuse3 or systemd
//!   (`_netdev`, `x-systemd.automount`...), or that changes nothing for a
//!   yonder mount (`relatime`, `dev`...): accepted and dropped;
//! - anything else: refused, sshfs's options naming why yonder does not
//!   need them.

#[cfg(unix)]
use fuser::MountOption;

/// A `-o` word yonder does not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("mount option {key} needs a value ({key}=...)")]
    NeedsValue { key: String },
    #[error("mount option {option}: {reason}")]
    BadValue { option: String, reason: String },
    #[error("mount option {option}: an sshfs option yonder does without: {why}")]
    Sshfs { option: String, why: &'static str },
    #[error(
        "mount option {option}: a kernel mount flag fusermount3 does not take, so yonder cannot pass it on"
    )]
    KernelFlag { option: String },
    #[error(
        "unknown mount option {option:?} (yonder takes ro, allow_other, default_permissions, \
         no_default_permissions, nonempty, debug, fsname=, port=, ssh_command=, agent_path=, docker_command=, attr_ttl=, \
         dir_ttl=, heartbeat=, heartbeat_misses=, op_timeout=, reconnect_timeout=, no_reconnect, sftp, no_deploy, \
         transport=ssh|direct|auto, direct_bind=, direct_connect=, direct_streams=, key=, write_back=on|off, write_back_cache=, the \
         kernel's nodev/nosuid/noexec/noatime/sync/dirsync, and ssh options as Key=value)"
    )]
    Unknown { option: String },
}

/// Kernel mount flags `fusermount3` passes on to the mount.
const KERNEL_FLAGS: &[&str] = &[
    "nodev", "nosuid", "noexec", "atime", "noatime", "sync", "async", "dirsync",
];

/// Words accepted and dropped: mount(8)'s, mount.fuse3's and systemd's
/// own (by the time yonder runs they have mostly been taken out already);
/// `rw`, `exec`, `dev` and `suid`, defaults that mount.fuse3 adds for
/// root and that yonder never changes (its mounts stay `nodev,nosuid`:
/// the remote's device files and set-user-ID bits are not honoured);
/// the access-time policies, which belong to the remote's file system
/// (it keeps the access times; the kernel here never writes them to a
/// yonder mount); and `auto_unmount`, which yonder asks for itself
/// wherever fusermount3 allows it.
const DROPPED: &[&str] = &[
    "_netdev",
    "noauto",
    "auto",
    "nofail",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "defaults",
    "rw",
    "exec",
    "dev",
    "suid",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "diratime",
    "nodiratime",
    "auto_unmount",
];

/// Kernel mount flags `fusermount3` refuses: named as such rather than
/// reported as unknown.
const REFUSED_KERNEL_FLAGS: &[&str] = &[
    "mand",
    "nomand",
    "iversion",
    "noiversion",
    "symfollow",
    "nosymfollow",
    "silent",
    "loud",
    "bind",
    "rbind",
    "remount",
    "move",
];

/// sshfs's options (and libfuse's, which sshfs passes on), with why
/// yonder does without each.
const SSHFS_OPTIONS: &[(&str, &str)] = &[
    (
        "reconnect",
        "yonder always reconnects by itself (no_reconnect turns that off)",
    ),
    (
        "delay_connect",
        "yonder connects before mounting, so that a failure shows at once",
    ),
    ("follow_symlinks", "yonder shows symlinks as the remote has them"),
    (
        "transform_symlinks",
        "yonder shows symlinks as the remote has them",
    ),
    (
        "idmap",
        "yonder shows the remote's owners as numbers, as they are",
    ),
    (
        "uidfile",
        "yonder shows the remote's owners as numbers, as they are",
    ),
    (
        "gidfile",
        "yonder shows the remote's owners as numbers, as they are",
    ),
    (
        "nomap",
        "yonder shows the remote's owners as numbers, as they are",
    ),
    ("uid", "yonder shows the remote's owners as they are"),
    ("gid", "yonder shows the remote's owners as they are"),
    (
        "umask",
        "modes are the remote's; new files get the umask of the process that makes them",
    ),
    (
        "cache",
        "yonder caches by itself: attr_ttl= and dir_ttl= say for how long",
    ),
    (
        "cache_timeout",
        "yonder caches by itself: attr_ttl= and dir_ttl= say for how long",
    ),
    (
        "cache_stat_timeout",
        "yonder caches by itself: attr_ttl= says for how long",
    ),
    (
        "cache_dir_timeout",
        "yonder caches by itself: dir_ttl= says for how long",
    ),
    (
        "cache_link_timeout",
        "yonder caches by itself: attr_ttl= says for how long",
    ),
    ("cache_max_size", "yonder caches by itself"),
    ("dir_cache", "yonder caches by itself: dir_ttl= says for how long"),
    (
        "dcache_timeout",
        "yonder caches by itself: dir_ttl= says for how long",
    ),
    (
        "kernel_cache",
        "yonder keeps the kernel's cache of a file while it is unchanged",
    ),
    (
        "auto_cache",
        "yonder keeps the kernel's cache of a file while it is unchanged",
    ),
    ("compression", "ssh compresses: pass Compression=yes"),
    (
        "max_conns",
        "yonder sends many requests at once over one connection",
    ),
    (
        "sshfs_sync",
        "yonder's writes are acknowledged by the remote; fsync reaches its disk",
    ),
    ("no_readahead", "yonder reads ahead only for sequential reads"),
    ("sync_readdir", "yonder lists a directory in one request"),
    ("workaround", "yonder's agent needs none"),
    (
        "password_stdin",
        "ssh asks on the terminal; use a key for mounts without one",
    ),
    (
        "sftp_server",
        "yonder talks to its own agent (agent_path=), not to an SFTP server",
    ),
    ("ssh_protocol", "ssh negotiates its protocol itself"),
    ("directport", "yonder reaches its agent through ssh"),
    (
        "allow_root",
        "root may already use a mount wherever fusermount3 allows allow_other",
    ),
];

/// What one `-o` word asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionWord {
    /// `Key=value` for ssh.
    Ssh(String),
    /// A kernel mount flag, passed on as it is.
    Kernel(&'static str),
    ReadOnly,
    AllowOther,
    DefaultPermissions,
    NoDefaultPermissions,
    AllowNonEmpty,
    Debug,
    FsName(String),
    Port(u16),
    SshCommand(String),
    AgentPath(String),
    /// The container client's command line (`--docker-command`).
    DockerCommand(String),
    WriteBackCache(String),
    AttrTtl(f64),
    DirTtl(f64),
    Heartbeat(f64),
    HeartbeatMisses(u32),
    OpTimeout(f64),
    ReconnectTimeout(f64),
    NoReconnect,
    /// The host's SFTP server serves the tree (`--sftp`).
    Sftp,
    /// Never send the agent to a host that lacks it (`--no-deploy`).
    NoDeploy,
    /// `transport=ssh|direct|auto` (`--transport`).
    Transport(String),
    /// `direct_bind=ADDR` (`--direct-bind`).
    DirectBind(String),
    /// `direct_connect=HOST:PORT` (`--direct-connect`).
    DirectConnect(String),
    /// `key=FILE`: a `tcp://` source's key file (`--key`).
    Key(String),
    /// `direct_streams=N` (`--direct-streams`).
    DirectStreams(u32),
    WriteBack(bool),
    /// Accepted, and nothing to do (see [`DROPPED`]).
    Dropped,
}

impl OptionWord {
    /// Reads one word (`noexec`, `port=2222`, `IdentityFile=~/.ssh/k`).
    pub fn parse(word: &str) -> Result<OptionWord, OptionError> {
        let word = word.trim();
        let (key, value) = match word.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (word, None),
        };
        let need = || {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| OptionError::NeedsValue { key: key.to_string() })
        };
        let seconds = || -> Result<f64, OptionError> {
            let text = need()?;
            text.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| OptionError::BadValue {
                    option: word.to_string(),
                    reason: "not a number of seconds >= 0".into(),
                })
        };
        if let Some((_, why)) = SSHFS_OPTIONS.iter().find(|(name, _)| *name == key) {
            return Err(OptionError::Sshfs {
                option: word.to_string(),
                why,
            });
        }
        Ok(match (key, value) {
            ("", None) => OptionWord::Dropped,
            (k, None) if DROPPED.contains(&k) => OptionWord::Dropped,
            (k, _) if k.starts_with("x-") || k == "comment" => OptionWord::Dropped,
            (k, None) if KERNEL_FLAGS.contains(&k) => {
                OptionWord::Kernel(KERNEL_FLAGS.iter().copied().find(|f| *f == k).expect("listed"))
            }
            (k, None) if REFUSED_KERNEL_FLAGS.contains(&k) => {
                return Err(OptionError::KernelFlag {
                    option: word.to_string(),
                })
            }
            ("ro", None) => OptionWord::ReadOnly,
            ("allow_other", None) => OptionWord::AllowOther,
            ("default_permissions", None) => OptionWord::DefaultPermissions,
            ("no_default_permissions", None) => OptionWord::NoDefaultPermissions,
            ("nonempty" | "allow_non_empty", None) => OptionWord::AllowNonEmpty,
            ("debug", None) => OptionWord::Debug,
            ("no_reconnect", None) => OptionWord::NoReconnect,
            ("sftp", None) => OptionWord::Sftp,
            ("no_deploy", None) => OptionWord::NoDeploy,
            ("transport", _) => match need()? {
                value @ ("ssh" | "direct" | "auto") => OptionWord::Transport(value.to_string()),
                _ => {
                    return Err(OptionError::BadValue {
                        option: word.to_string(),
                        reason: "ssh, direct or auto".into(),
                    })
                }
            },
            ("direct_bind", _) => OptionWord::DirectBind(need()?.to_string()),
            ("direct_connect", _) => OptionWord::DirectConnect(need()?.to_string()),
            ("key", _) => OptionWord::Key(need()?.to_string()),
            ("direct_streams", _) => OptionWord::DirectStreams(
                need()?
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| OptionError::BadValue {
                        option: word.to_string(),
                        reason: "1 to 64 connections".into(),
                    })?,
            ),
            ("fsname", _) => OptionWord::FsName(need()?.to_string()),
            ("port", _) => {
                let port = need()?;
                OptionWord::Port(port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    OptionError::BadValue {
                        option: word.to_string(),
                        reason: "not a port number".into(),
                    }
                })?)
            }
            ("ssh_command", _) => OptionWord::SshCommand(need()?.to_string()),
            ("agent_path", _) => OptionWord::AgentPath(need()?.to_string()),
            ("docker_command", _) => OptionWord::DockerCommand(need()?.to_string()),
            ("write_back_cache", _) => OptionWord::WriteBackCache(need()?.to_string()),
            ("attr_ttl", _) => OptionWord::AttrTtl(seconds()?),
            ("dir_ttl", _) => OptionWord::DirTtl(seconds()?),
            ("heartbeat", _) => OptionWord::Heartbeat(seconds()?),
            ("op_timeout", _) => OptionWord::OpTimeout(seconds()?),
            ("write_back", _) => OptionWord::WriteBack(match need()? {
                "on" => true,
                "off" => false,
                _ => {
                    return Err(OptionError::BadValue {
                        option: word.to_string(),
                        reason: "on or off".into(),
                    })
                }
            }),
            ("reconnect_timeout", _) => OptionWord::ReconnectTimeout(seconds()?),
            ("heartbeat_misses", _) => {
                let n = need()?;
                OptionWord::HeartbeatMisses(n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    OptionError::BadValue {
                        option: word.to_string(),
                        reason: "not a whole number >= 1".into(),
                    }
                })?)
            }
            (k, Some(_)) if k.starts_with(|c: char| c.is_ascii_uppercase()) => {
                OptionWord::Ssh(word.to_string())
            }
            _ => {
                return Err(OptionError::Unknown {
                    option: word.to_string(),
                })
            }
        })
    }

    /// The word's meaning for the kernel mount, if it has one there.
    #[cfg(unix)]
    pub(crate) fn fuser_option(&self) -> Option<MountOption> {
        Some(match self {
            OptionWord::Kernel(flag) => match *flag {
                "nodev" => MountOption::NoDev,
                "nosuid" => MountOption::NoSuid,
                "noexec" => MountOption::NoExec,
                "atime" => MountOption::Atime,
                "noatime" => MountOption::NoAtime,
                "sync" => MountOption::Sync,
                "async" => MountOption::Async,
                "dirsync" => MountOption::DirSync,
                other => MountOption::CUSTOM(other.to_string()),
            },
            OptionWord::ReadOnly => MountOption::RO,
            OptionWord::DefaultPermissions => MountOption::DefaultPermissions,
            OptionWord::FsName(name) => MountOption::FSName(name.clone()),
            _ => return None,
        })
    }
}

/// Every `-o` word of a mount, read: what each part of yonder needs from
/// them. Values not given stay `None` (the command-line flag's, or the
/// default, applies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountOptions {
    /// `Key=value` for ssh, `port=` included as `Port=`.
    pub ssh_options: Vec<String>,
    pub ssh_command: Option<String>,
    pub agent_path: Option<String>,
    /// `docker_command=`: the client that runs a container source's agent.
    pub docker_command: Option<String>,
    pub read_only: bool,
    pub allow_other: bool,
    pub default_permissions: bool,
    pub no_default_permissions: bool,
    pub allow_non_empty: bool,
    pub debug: bool,
    pub fs_name: Option<String>,
    /// Kernel mount flags, in the order given, each once.
    pub kernel_flags: Vec<String>,
    pub attr_ttl: Option<f64>,
    pub dir_ttl: Option<f64>,
    pub heartbeat: Option<f64>,
    pub heartbeat_misses: Option<u32>,
    pub op_timeout: Option<f64>,
    pub reconnect_timeout: Option<f64>,
    pub no_reconnect: bool,
    pub sftp: bool,
    /// `no_deploy`: never send the agent to a host that lacks it.
    pub no_deploy: bool,
    /// `transport=`, `direct_bind=`, `direct_connect=`, `key=`: the
    /// direct path (`--transport` and its flags).
    pub transport: Option<String>,
    pub direct_bind: Option<String>,
    pub direct_connect: Option<String>,
    pub key: Option<String>,
    pub direct_streams: Option<u32>,
    /// `write_back=on|off`: metadata write-back.
    pub write_back: Option<bool>,
    /// `write_back_cache=DIR`: where the write-back journal lives.
    pub write_back_cache: Option<String>,
}

impl MountOptions {
    /// Reads `-o` values, each a comma-separated list of words; the first
    /// word yonder does not take is the error.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<MountOptions, OptionError> {
        let mut options = MountOptions::default();
        for word in values.iter().flat_map(|v| v.as_ref().split(',')) {
            options.add(OptionWord::parse(word)?);
        }
        if options.no_default_permissions && options.default_permissions {
            return Err(OptionError::BadValue {
                option: "no_default_permissions".into(),
                reason: "conflicts with default_permissions".into(),
            });
        }
        Ok(options)
    }

    /// The words for the kernel mount ([`crate::MountConfig::fuse_options`]):
    /// the kernel flags, and `fsname=` if given.
    pub fn fuse_options(&self) -> Vec<String> {
        let mut words = self.kernel_flags.clone();
        if let Some(name) = &self.fs_name {
            words.push(format!("fsname={name}"));
        }
        words
    }

    fn add(&mut self, word: OptionWord) {
        match word {
            OptionWord::Ssh(option) => self.ssh_options.push(option),
            OptionWord::Kernel(flag) => {
                if !self.kernel_flags.iter().any(|f| f == flag) {
                    self.kernel_flags.push(flag.to_string());
                }
            }
            OptionWord::ReadOnly => self.read_only = true,
            OptionWord::AllowOther => self.allow_other = true,
            OptionWord::DefaultPermissions => self.default_permissions = true,
            OptionWord::NoDefaultPermissions => self.no_default_permissions = true,
            OptionWord::AllowNonEmpty => self.allow_non_empty = true,
            OptionWord::Debug => self.debug = true,
            OptionWord::FsName(name) => self.fs_name = Some(name),
            OptionWord::Port(port) => self.ssh_options.push(format!("Port={port}")),
            OptionWord::SshCommand(command) => self.ssh_command = Some(command),
            OptionWord::AgentPath(path) => self.agent_path = Some(path),
            OptionWord::DockerCommand(command) => self.docker_command = Some(command),
            OptionWord::AttrTtl(s) => self.attr_ttl = Some(s),
            OptionWord::DirTtl(s) => self.dir_ttl = Some(s),
            OptionWord::Heartbeat(s) => self.heartbeat = Some(s),
            OptionWord::HeartbeatMisses(n) => self.heartbeat_misses = Some(n),
            OptionWord::OpTimeout(s) => self.op_timeout = Some(s),
            OptionWord::ReconnectTimeout(s) => self.reconnect_timeout = Some(s),
            OptionWord::NoReconnect => self.no_reconnect = true,
            OptionWord::Sftp => self.sftp = true,
            OptionWord::NoDeploy => self.no_deploy = true,
            OptionWord::Transport(value) => self.transport = Some(value),
            OptionWord::DirectBind(value) => self.direct_bind = Some(value),
            OptionWord::DirectConnect(value) => self.direct_connect = Some(value),
            OptionWord::Key(value) => self.key = Some(value),
            OptionWord::DirectStreams(n) => self.direct_streams = Some(n),
            OptionWord::WriteBack(on) => self.write_back = Some(on),
            OptionWord::WriteBackCache(dir) => self.write_back_cache = Some(dir),
            OptionWord::Dropped => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_sorted_into_their_parts() {
        let o = MountOptions::parse(&[
            "ro,allow_other,port=2222,IdentityFile=/k,default_permissions,dev,suid",
            "noexec,_netdev,x-systemd.automount,ssh_command=ssh -F cfg,comment=x,docker_command=podman --remote",
            "heartbeat=2,op_timeout=30,no_reconnect,sftp,no_deploy,nodiratime,relatime,noexec,fsname=data",
        ])
        .unwrap();
        assert_eq!(o.ssh_options, ["Port=2222", "IdentityFile=/k"]);
        assert!(
            o.read_only && o.allow_other && o.default_permissions && o.no_reconnect && o.sftp && o.no_deploy
        );
        assert_eq!(o.ssh_command.as_deref(), Some("ssh -F cfg"));
        assert_eq!(o.docker_command.as_deref(), Some("podman --remote"));
        assert_eq!(o.kernel_flags, ["noexec"]);
        assert_eq!((o.heartbeat, o.op_timeout), (Some(2.0), Some(30.0)));
        assert_eq!(o.fs_name.as_deref(), Some("data"));
        assert_eq!(o.attr_ttl, None);
    }

    #[test]
    fn refusals_name_the_word_and_why_in_one_line() {
        for (word, expect) in [
            (
                "reconnect",
                "an sshfs option yonder does without: yonder always reconnects",
            ),
            ("follow_symlinks", "an sshfs option"),
            ("idmap=user", "an sshfs option"),
            ("uid=1000", "an sshfs option"),
            ("nosymfollow", "a kernel mount flag fusermount3 does not take"),
            ("mand", "a kernel mount flag"),
            ("port=x", "port=x: not a port number"),
            ("port=", "port needs a value"),
            ("docker_command=", "docker_command needs a value"),
            ("attr_ttl=-1", "not a number of seconds"),
            ("heartbeat_misses=0", "not a whole number"),
            ("frobnicate", "unknown mount option \"frobnicate\""),
            ("lowercase=1", "unknown mount option"),
        ] {
            let said = MountOptions::parse(&[word]).unwrap_err().to_string();
            assert!(said.contains(expect), "{word}: {said}");
            assert!(!said.contains('\n'), "{said}");
        }
        // ssh's own keepalive options are ssh's to take.
        let o = MountOptions::parse(&["ServerAliveInterval=15,ServerAliveCountMax=3"]).unwrap();
        assert_eq!(o.ssh_options.len(), 2);
        let said = MountOptions::parse(&["default_permissions,no_default_permissions"]).unwrap_err();
        assert!(said.to_string().contains("conflicts"), "{said}");
    }

    #[test]
    fn kernel_atime_policies_are_accepted_and_not_passed_on() {
        for flag in [
            "nodiratime",
            "diratime",
            "relatime",
            "norelatime",
            "strictatime",
            "nostrictatime",
            "lazytime",
            "nolazytime",
        ] {
            let o = MountOptions::parse(&[flag]).unwrap();
            assert!(o.kernel_flags.is_empty(), "{flag}");
        }
        let o = MountOptions::parse(&["noatime,nodev,nosuid,sync,dirsync"]).unwrap();
        assert_eq!(o.kernel_flags, ["noatime", "nodev", "nosuid", "sync", "dirsync"]);
    }
}
