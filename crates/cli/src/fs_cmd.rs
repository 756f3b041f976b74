//! `yonder fs`: scripting commands over any SOURCE, without a mount.
//!
//! Paths are relative to the SOURCE's root (a leading `/` is ignored), so
//! `yonder fs cat host:/srv notes.txt` reads `/srv/notes.txt` on `host`.

use crate::ConnectArgs;
use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use yonder_remote::proto::{open_flags, Attr, Errno, SetAttr, Target};
use yonder_remote::transfer::{read_to, write_from, Pipeline, TransferError};
use yonder_remote::{Remote, RemoteError, Source};

#[derive(Args)]
pub struct FsArgs {
    /// Pass an option to ssh, as `-o KEY=VALUE` (repeatable).
    #[arg(short = 'o', value_name = "SSH_OPTION", global = true)]
    ssh_option: Vec<String>,
    /// Program (and arguments) to run instead of `ssh`.
    #[arg(long, value_name = "COMMAND", global = true)]
    ssh_command: Option<String>,
    /// Path of `yonder` on the remote machine (nothing is deployed).
    #[arg(long, value_name = "PATH", global = true)]
    agent_path: Option<String>,
    /// Reach an ssh source through the host's SFTP server, no agent.
    #[arg(long, global = true)]
    sftp: bool,
    /// Never copy yonder to a host that lacks it (by default it is sent
    /// over the ssh connection, once, to ~/.cache/yonder on the remote).
    #[arg(long, global = true)]
    no_deploy: bool,
    /// The container client for docker:// and podman:// sources (default:
    /// `docker`, `podman`).
    #[arg(long, value_name = "COMMAND", global = true)]
    docker_command: Option<String>,
    /// Log debug detail to stderr.
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: FsCommand,
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Subcommand)]
enum FsCommand {
    /// List a directory (or show a file).
    Ls {
        /// Long form: type, mode, links, owner, size, mtime.
        #[arg(short = 'l')]
        long: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// What to list: a local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
        source: String,
        /// A path below SOURCE's root (default: the root itself).
        path: Option<String>,
    },
    /// Show the attributes of paths (not following a final symlink).
    Stat {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// A local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
        source: String,
        /// Paths below SOURCE's root.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Write files' contents to stdout.
    Cat {
        /// A local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
        source: String,
        /// Paths below SOURCE's root.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Write a remote file from LOCAL (or stdin when LOCAL is omitted or `-`).
    Put {
        /// A local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
        source: String,
        /// A path below SOURCE's root.
        path: String,
        /// A local file (`-`: standard input or output).
        local: Option<PathBuf>,
    },
    /// Copy a remote file to LOCAL (or stdout when LOCAL is omitted or `-`).
    Get {
        /// A local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
        source: String,
        /// A path below SOURCE's root.
        path: String,
        /// A local file (`-`: standard input or output).
        local: Option<PathBuf>,
    },
    /// Create directories.
    Mkdir {
        /// Create missing parents; an existing directory is not an error.
        #[arg(short = 'p')]
        parents: bool,
        /// A local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
        source: String,
        /// Paths below SOURCE's root.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove files (and with -r, directories and their contents).
    Rm {
        #[arg(short = 'r', short_alias = 'R')]
        recursive: bool,
        /// Ignore missing paths.
        #[arg(short = 'f')]
        force: bool,
        /// A local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
        source: String,
        /// Paths below SOURCE's root.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Rename FROM to TO (replacing TO if it is a file).
    Mv {
        /// A local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
        source: String,
        from: String,
        to: String,
    },
    /// Create LINK pointing at TARGET (a hard link unless -s).
    Ln {
        /// Symbolic link; TARGET is stored as given.
        #[arg(short = 's')]
        symbolic: bool,
        /// A local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
        source: String,
        target: String,
        link: String,
    },
    /// Change permission bits, given in octal.
    Chmod {
        /// A local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
        source: String,
        mode: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

impl FsCommand {
    fn source(&self) -> &str {
        match self {
            FsCommand::Ls { source, .. }
            | FsCommand::Stat { source, .. }
            | FsCommand::Cat { source, .. }
            | FsCommand::Put { source, .. }
            | FsCommand::Get { source, .. }
            | FsCommand::Mkdir { source, .. }
            | FsCommand::Rm { source, .. }
            | FsCommand::Mv { source, .. }
            | FsCommand::Ln { source, .. }
            | FsCommand::Chmod { source, .. } => source,
        }
    }
}

pub fn run(args: FsArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.debug, None)?;
    let source = Source::parse(args.command.source())?;
    source.check_local_root(args.command.source())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let connect = ConnectArgs {
            ssh_option: args.ssh_option,
            ssh_command: args.ssh_command,
            agent_path: args.agent_path,
            sftp: args.sftp,
            no_deploy: args.no_deploy,
            docker_command: args.docker_command,
            debug: args.debug,
            ..Default::default()
        };
        let options = connect.options();
        let connector = yonder_remote::connector_for(&source, &options)?;
        let client: Arc<dyn Remote> = connector.connect().await?;
        if let Some(notice) = yonder_remote::transport_notice(&connector.transport(), &source) {
            eprintln!("yonder: {notice}");
        }
        execute(client, args.command).await
    })
}

/// Wire path for a user-given path: relative to the root, no leading `/`.
fn wire(path: &str) -> Vec<u8> {
    path.trim_start_matches('/').as_bytes().to_vec()
}

async fn execute(client: Arc<dyn Remote>, command: FsCommand) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match command {
        FsCommand::Ls {
            long, format, path, ..
        } => {
            let path = wire(path.as_deref().unwrap_or(""));
            let attr = client.lstat(&path).await?;
            let mut rows: Vec<(Vec<u8>, Attr)> = if attr.is_dir() {
                let entries = client.read_dir_all(&path).await?;
                entries
                    .into_iter()
                    .filter_map(|e| Some((e.name.into_vec(), e.attr?)))
                    .collect()
            } else {
                vec![(path.clone(), attr)]
            };
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            match format {
                Format::Json => {
                    let items: Vec<_> = rows
                        .iter()
                        .map(|(name, attr)| JsonAttr::new(name, attr))
                        .collect();
                    serde_json::to_writer_pretty(&mut stdout, &items)?;
                    writeln!(stdout)?;
                }
                Format::Text if long => {
                    let mut lines = Vec::with_capacity(rows.len());
                    for (name, attr) in &rows {
                        let mut target = None;
                        if attr.is_symlink() {
                            let full = if attr.is_dir() || path == *name {
                                name.clone()
                            } else {
                                join(&path, name)
                            };
                            target = client.readlink(&full).await.ok();
                        }
                        lines.push((name.as_slice(), attr, target));
                    }
                    write!(stdout, "{}", long_listing(&lines, unix_now()))?;
                }
                Format::Text => {
                    for (name, _) in &rows {
                        stdout.write_all(name)?;
                        writeln!(stdout)?;
                    }
                }
            }
        }
        FsCommand::Stat { format, paths, .. } => {
            let mut items = Vec::new();
            for p in &paths {
                let attr = client.lstat(&wire(p)).await?;
                items.push(JsonAttr::new(p.as_bytes(), &attr));
            }
            match format {
                Format::Json if items.len() == 1 => serde_json::to_writer_pretty(&mut stdout, &items[0])?,
                Format::Json => serde_json::to_writer_pretty(&mut stdout, &items)?,
                Format::Text => {
                    for item in &items {
                        write!(stdout, "{}", item.text())?;
                    }
                }
            }
            if matches!(format, Format::Json) {
                writeln!(stdout)?;
            }
        }
        FsCommand::Cat { paths, .. } => {
            drop(stdout);
            for p in &paths {
                let mut out = tokio::io::stdout();
                read_file(&client, &wire(p), &mut out).await?;
            }
        }
        FsCommand::Get { path, local, .. } => {
            drop(stdout);
            match local.filter(|l| l.as_os_str() != "-") {
                None => read_file(&client, &wire(&path), &mut tokio::io::stdout()).await?,
                Some(local) => {
                    let mut file = tokio::fs::File::create(&local)
                        .await
                        .with_context(|| format!("create {}", local.display()))?;
                    read_file(&client, &wire(&path), &mut file).await?;
                    file.sync_all()
                        .await
                        .with_context(|| format!("fsync {}", local.display()))?;
                }
            }
        }
        FsCommand::Put { path, local, .. } => match local.filter(|l| l.as_os_str() != "-") {
            None => write_file(&client, &wire(&path), &mut tokio::io::stdin()).await?,
            Some(local) => {
                let mut file = tokio::fs::File::open(&local)
                    .await
                    .with_context(|| format!("open {}", local.display()))?;
                write_file(&client, &wire(&path), &mut file).await?;
            }
        },
        FsCommand::Mkdir { parents, paths, .. } => {
            for p in &paths {
                if parents {
                    mkdir_parents(&client, &wire(p)).await?;
                } else {
                    client.mkdir(&wire(p), 0o777 & !umask(), None).await?;
                }
            }
        }
        FsCommand::Rm {
            recursive,
            force,
            paths,
            ..
        } => {
            for p in &paths {
                let path = wire(p);
                if path.is_empty() {
                    anyhow::bail!("rm {p}: refusing to remove the source's root");
                }
                let result = if recursive {
                    remove_tree(client.clone(), path).await
                } else {
                    match client.lstat(&path).await {
                        Ok(attr) if attr.is_dir() => Err(RemoteError::os("rm", p.clone(), Errno::EISDIR)),
                        Ok(_) => client.unlink(&path).await,
                        Err(e) => Err(e),
                    }
                };
                match result {
                    Err(e) if force && e.errno() == Errno::ENOENT => {}
                    other => other?,
                }
            }
        }
        FsCommand::Mv { from, to, .. } => {
            client
                .rename(&wire(&from), &wire(&to), Default::default())
                .await?;
        }
        FsCommand::Ln {
            symbolic,
            target,
            link,
            ..
        } => {
            if symbolic {
                client.symlink(target.as_bytes(), &wire(&link), None).await?;
            } else {
                client.link(&wire(&target), &wire(&link)).await?;
            }
        }
        FsCommand::Chmod { mode, paths, .. } => {
            let mode = u32::from_str_radix(&mode, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| anyhow::anyhow!("chmod: invalid mode {mode:?} (expected octal, e.g. 644)"))?;
            for p in &paths {
                let attr = SetAttr {
                    mode: Some(mode),
                    ..Default::default()
                };
                client.setattr(Target::Path(wire(p).into()), attr).await?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Windows has no umask: new files get the modes a default umask of 022
/// leaves (the portable agent keeps only their read-only bit anyway).
#[cfg(windows)]
fn umask() -> u32 {
    0o022
}

#[cfg(unix)]
fn umask() -> u32 {
    // The process umask can only be read by setting it; set it straight back.
    let old = rustix_umask(0o022);
    rustix_umask(old);
    old
}

#[cfg(unix)]
fn rustix_umask(mask: u32) -> u32 {
    // SAFETY: umask(2) only swaps the process's file mode creation mask; it
    // cannot fail and touches no memory. This runs before any thread that
    // creates files locally.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut p = dir.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

async fn read_file<W: tokio::io::AsyncWrite + Unpin>(
    client: &Arc<dyn Remote>,
    path: &[u8],
    out: &mut W,
) -> anyhow::Result<()> {
    let (handle, _) = client.open(path, open_flags::READ_ONLY, 0, None).await?;
    let copied = read_to(client.clone(), handle, 0, Pipeline::default(), out).await;
    let closed = client.close(handle).await;
    if let Err(TransferError::Remote(RemoteError::Os { errno, .. })) = &copied {
        // The error names the handle, which means nothing to the user.
        let shown = format!("/{}", String::from_utf8_lossy(path));
        return Err(RemoteError::os("read", shown, *errno).into());
    }
    copied?;
    closed?;
    Ok(())
}

async fn write_file<R: tokio::io::AsyncRead + Unpin>(
    client: &Arc<dyn Remote>,
    path: &[u8],
    input: &mut R,
) -> anyhow::Result<()> {
    let flags = open_flags::WRITE_ONLY | open_flags::CREATE | open_flags::TRUNCATE;
    let (handle, _) = client.open(path, flags, 0o666 & !umask(), None).await?;
    let written = write_from(client.clone(), handle, 0, Pipeline::default(), input).await;
    // Close even after a failed write, but report the first error: a write
    // error must never be masked by a successful close.
    let synced = match &written {
        Ok(_) => client.fsync(handle, false).await,
        Err(_) => Ok(()),
    };
    let closed = client.close(handle).await;
    written?;
    synced?;
    closed?;
    Ok(())
}

async fn mkdir_parents(client: &Arc<dyn Remote>, path: &[u8]) -> Result<(), RemoteError> {
    let mut prefix = Vec::new();
    for component in path.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(component);
        match client.mkdir(&prefix, 0o777 & !umask(), None).await {
            Ok(_) => {}
            Err(e) if e.errno() == Errno::EEXIST => {
                if !client.stat(&prefix).await?.is_dir() {
                    return Err(RemoteError::os(
                        "mkdir",
                        String::from_utf8_lossy(&prefix),
                        Errno::ENOTDIR,
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes a tree, children of a directory concurrently so that a deep tree
/// over a slow link costs round trips per level, not per file.
fn remove_tree(
    client: Arc<dyn Remote>,
    path: Vec<u8>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RemoteError>> + Send>> {
    Box::pin(async move {
        let attr = client.lstat(&path).await?;
        if !attr.is_dir() {
            return client.unlink(&path).await;
        }
        let entries = client.read_dir_all(&path).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for entry in entries {
            let child = join(&path, &entry.name);
            let client = client.clone();
            let is_dir = entry.attr.is_some_and(|a| a.is_dir());
            tasks.spawn(async move {
                if is_dir {
                    remove_tree(client, child).await
                } else {
                    client.unlink(&child).await
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.expect("remove task panicked")?;
        }
        client.rmdir(&path).await
    })
}

#[derive(Serialize)]
struct JsonTime {
    sec: i64,
    nsec: u32,
}

#[derive(Serialize)]
struct JsonAttr {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    mode: String,
    ino: u64,
    nlink: u64,
    uid: u32,
    gid: u32,
    rdev_major: u32,
    rdev_minor: u32,
    size: u64,
    blocks: u64,
    atime: JsonTime,
    mtime: JsonTime,
    ctime: JsonTime,
}

fn kind_name(attr: &Attr) -> &'static str {
    use yonder_remote::proto::file_type::*;
    match attr.file_type() {
        REGULAR => "file",
        DIRECTORY => "dir",
        SYMLINK => "symlink",
        FIFO => "fifo",
        SOCKET => "socket",
        CHAR => "char",
        BLOCK => "block",
        _ => "unknown",
    }
}

impl JsonAttr {
    fn new(name: &[u8], a: &Attr) -> Self {
        let t = |t: yonder_remote::proto::Timespec| JsonTime {
            sec: t.sec,
            nsec: t.nsec,
        };
        JsonAttr {
            name: String::from_utf8_lossy(name).into_owned(),
            kind: kind_name(a),
            mode: format!("{:04o}", a.permissions()),
            ino: a.ino,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            rdev_major: a.rdev_major,
            rdev_minor: a.rdev_minor,
            size: a.size,
            blocks: a.blocks,
            atime: t(a.atime),
            mtime: t(a.mtime),
            ctime: t(a.ctime),
        }
    }

    fn text(&self) -> String {
        format!(
            "  File: {}\n  Type: {}\n  Size: {}  Blocks: {}  Inode: {}  Links: {}\n  Mode: {}  Uid: {}  Gid: {}\nAccess: {}\nModify: {}\nChange: {}\n",
            self.name, self.kind, self.size, self.blocks, self.ino, self.nlink, self.mode, self.uid, self.gid,
            stat_time(&self.atime), stat_time(&self.mtime), stat_time(&self.ctime),
        )
    }
}

/// A time as stat(1) shows it, in local time: `2026-11-29 17:05:09.123456789 +0100`.
fn stat_time(t: &JsonTime) -> String {
    let Some(tm) = local_time(t.sec) else {
        return format!("{}.{:09}", t.sec, t.nsec);
    };
    let offset = utc_offset_minutes(&tm);
    let sign = if offset < 0 { '-' } else { '+' };
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}.{:09} {sign}{:02}{:02}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        t.nsec,
        offset.abs() / 60,
        offset.abs() % 60
    )
}

#[cfg(unix)]
fn utc_offset_minutes(tm: &libc::tm) -> i64 {
    tm.tm_gmtoff / 60
}

/// Times are shown in UTC on Windows (see [`local_time`]).
#[cfg(windows)]
fn utc_offset_minutes(_tm: &libc::tm) -> i64 {
    0
}

/// The broken-down UTC time of `sec` seconds since the epoch: Windows's C
/// runtime has no `localtime_r`, and std no time zones.
#[cfg(windows)]
fn local_time(sec: i64) -> Option<libc::tm> {
    let days = sec.div_euclid(86_400);
    let of_day = sec.rem_euclid(86_400);
    // Days to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(libc::tm {
        tm_sec: (of_day % 60) as i32,
        tm_min: (of_day / 60 % 60) as i32,
        tm_hour: (of_day / 3600) as i32,
        tm_mday: day as i32,
        tm_mon: (month - 1) as i32,
        tm_year: i32::try_from(year - 1900).ok()?,
        tm_wday: (days + 4).rem_euclid(7) as i32,
        tm_yday: 0,
        tm_isdst: 0,
    })
}

/// The broken-down local time of `sec` seconds since the epoch.
#[cfg(unix)]
fn local_time(sec: i64) -> Option<libc::tm> {
    // time_t is 64 bits wide on every target yonder builds for.
    let time = sec as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to fill.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `time` and writes only `tm`, both valid
    // for the call; it returns NULL for a time it cannot represent.
    if unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
        return None;
    }
    Some(tm)
}

fn mode_string(attr: &Attr) -> String {
    use yonder_remote::proto::file_type::*;
    let kind = match attr.file_type() {
        DIRECTORY => 'd',
        SYMLINK => 'l',
        FIFO => 'p',
        SOCKET => 's',
        CHAR => 'c',
        BLOCK => 'b',
        _ => '-',
    };
    let m = attr.mode;
    let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
    let exec = |x: u32, special: u32, set: char, unset: char| match (m & x != 0, m & special != 0) {
        (true, true) => set,
        (false, true) => unset,
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        kind,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        exec(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        exec(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        exec(0o001, 0o1000, 't', 'T'),
    ]
    .iter()
    .collect()
}

/// `ls -l`'s lines: mode, links, owner, group, size (or device numbers),
/// modification time and name (`-> target` for a symlink), in columns as
/// wide as their widest entry. Owner and group are names where they
/// resolve on this machine, numbers otherwise; times are local.
/// One entry of a long listing: its name, attributes and, for a symlink,
/// its target.
type LongRow<'a> = (&'a [u8], &'a Attr, Option<Vec<u8>>);

fn long_listing(rows: &[LongRow<'_>], now: i64) -> String {
    use yonder_remote::proto::file_type::{BLOCK, CHAR};
    let mut users = std::collections::HashMap::new();
    let mut groups = std::collections::HashMap::new();
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|(_, attr, _)| {
            let user = users
                .entry(attr.uid)
                .or_insert_with(|| user_name(attr.uid).unwrap_or_else(|| attr.uid.to_string()));
            let group = groups
                .entry(attr.gid)
                .or_insert_with(|| group_name(attr.gid).unwrap_or_else(|| attr.gid.to_string()));
            let size = match attr.file_type() {
                CHAR | BLOCK => format!("{}, {}", attr.rdev_major, attr.rdev_minor),
                _ => attr.size.to_string(),
            };
            [
                mode_string(attr),
                attr.nlink.to_string(),
                user.clone(),
                group.clone(),
                size,
            ]
        })
        .collect();
    let width = |i: usize| cells.iter().map(|c| c[i].chars().count()).max().unwrap_or(0);
    let (links, owner, group, size) = (width(1), width(2), width(3), width(4));
    let mut out = String::new();
    for ((name, attr, target), [mode, nlink, user, grp, sz]) in rows.iter().zip(&cells) {
        out.push_str(&format!(
            "{mode} {nlink:>links$} {user:<owner$} {grp:<group$} {sz:>size$} {} {}",
            ls_time(attr.mtime.sec, now),
            String::from_utf8_lossy(name)
        ));
        if let Some(target) = target {
            out.push_str(" -> ");
            out.push_str(&String::from_utf8_lossy(target));
        }
        out.push('\n');
    }
    out
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A time as `ls -l` shows it, in local time: `Nov 29 17:05` within the
/// last six months, `Nov 29  2025` before that or in the future.
fn ls_time(sec: i64, now: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Half of an average Gregorian year, as ls uses.
    const SIX_MONTHS: i64 = 31_556_952 / 2;
    let Some(tm) = local_time(sec) else {
        return sec.to_string();
    };
    let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("???");
    if sec > now - SIX_MONTHS && sec <= now {
        format!("{month} {:>2} {:02}:{:02}", tm.tm_mday, tm.tm_hour, tm.tm_min)
    } else {
        format!("{month} {:>2} {:>5}", tm.tm_mday, i64::from(tm.tm_year) + 1900)
    }
}

/// Windows has no uid: the number is shown.
#[cfg(windows)]
fn user_name(_uid: u32) -> Option<String> {
    None
}

/// Windows has no gid: the number is shown.
#[cfg(windows)]
fn group_name(_gid: u32) -> Option<String> {
    None
}

/// The local name of a user id, through the system's user database (NSS).
#[cfg(unix)]
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: an all-zero `passwd` is a valid value for getpwuid_r to fill.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes the entry and its strings into `entry` and
    // `buf` (whose length it is given) and sets `found` to `entry` or NULL.
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string in `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The local name of a group id, through the system's group database.
#[cfg(unix)]
fn group_name(gid: u32) -> Option<String> {
    // Groups may list many members: grow the buffer while it is too small.
    let mut size = 4096;
    loop {
        let mut buf = vec![0u8; size];
        // SAFETY: an all-zero `group` is a valid value for getgrgid_r to fill.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut found = std::ptr::null_mut();
        // SAFETY: as for getpwuid_r above.
        let rc = unsafe { libc::getgrgid_r(gid, &mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if rc != 0 || found.is_null() {
            return None;
        }
        // SAFETY: on success gr_name points at a NUL-terminated string in `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.gr_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}
