//! Putting the agent on a host that lacks it, over the connection that
//! will carry it.
//!
//! One remote command ([`remote_command`], a one-line POSIX sh script)
//! runs `yonder` from the PATH if there is one; else the copy cached in
//! `${XDG_CACHE_HOME:-~/.cache}/yonder/VERSION-HASH/yonder` (HASH names
//! this build: [`Build`]), once its checksum matches the one recorded
//! beside it (`sum`) when it was stored; else it says what it needs, reads
//! this side's answer on its stdin, receives the binary (gzip-compressed)
//! on the same stdin, checks it against the checksum sent with it, moves
//! it into place and runs it. Before the agent speaks,
//! the script says in one line on stdout which of these it did, and
//! [`negotiate`] reads that line (and sends the binary when asked). A
//! later connection finds the cached copy: one ssh command, no upload.
//!
//! What a transport needs for this is a way to run a command on the
//! remote and that command's stdin and stdout: ssh today (`source.rs`);
//! a container's `exec -i` could run the same script.
//!
//! The binary sent is the running one, stripped of its debug info
//! ([`Payload`]): prepared only when a host asks for it, once per build,
//! and kept in this user's cache.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How the agent of a connection got there (`yonder status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentOrigin {
    /// This machine's own binary, as a local agent.
    Local,
    /// `yonder` on the remote's PATH.
    OnPath,
    /// The binary `--agent-path` named.
    AgentPath,
    /// Sent over this connection and stored in the remote's cache.
    Uploaded,
    /// Found in the remote's cache and checked.
    Cached,
}

impl AgentOrigin {
    pub fn name(self) -> &'static str {
        match self {
            AgentOrigin::Local => "local",
            AgentOrigin::OnPath => "on-path",
            AgentOrigin::AgentPath => "agent-path",
            AgentOrigin::Uploaded => "deployed-uploaded",
            AgentOrigin::Cached => "deployed-cached",
        }
    }
}

/// Why the agent could not be started by deployment.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The remote command ended before it said anything: ssh itself
    /// failed, and what it wrote on stderr says why.
    #[error("the remote command ended before starting the agent")]
    Ended,
    /// The agent cannot run there from its cache: another platform, a
    /// read-only or noexec cache directory, a full disk. Where an agentless
    /// transport (SFTP) exists, this is when it takes over.
    #[error("cannot deploy the agent there: {reason}")]
    Impossible { reason: String },
    /// The remote shell printed something else first (a login script
    /// writing to stdout breaks every stdio protocol, scp's too).
    #[error("unexpected output from the remote shell (a login script printing to stdout?): {line:?}")]
    Unexpected { line: String },
    /// This side could not prepare or send the binary.
    #[error("{op} {path}: {reason}")]
    Local {
        op: &'static str,
        path: String,
        reason: String,
    },
}

/// The running build, as the remote's cache names it: the SHA-256 of the
/// executable, hashed once per process (a fraction of a second), so
/// connecting needs no stripping or compressing.
#[derive(Debug)]
pub struct Build {
    /// Hex SHA-256 of the running executable.
    pub sha256: String,
}

impl Build {
    /// The running build. Blocking (it reads the executable): call it from
    /// `spawn_blocking`.
    pub fn current() -> Result<Arc<Build>, DeployError> {
        static CURRENT: Mutex<Option<Arc<Build>>> = Mutex::new(None);
        let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(build) = current.as_ref() {
            return Ok(build.clone());
        }
        let exe = running_exe();
        let failed = |op: &'static str| {
            let path = exe.display().to_string();
            move |e: std::io::Error| DeployError::Local {
                op,
                path,
                reason: e.to_string(),
            }
        };
        let mut file = std::fs::File::open(&exe).map_err(failed("open"))?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).map_err(failed("read"))?;
        let build = Arc::new(Build {
            sha256: hex(&hasher.finalize()),
        });
        *current = Some(build.clone());
        Ok(build)
    }

    /// `VERSION-HASH`: the remote cache directory's name, unique per build.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", env!("CARGO_PKG_VERSION"), &self.sha256[..16])
    }
}

/// The binary to deploy: the running one, stripped, and its gzip stream.
#[derive(Debug)]
pub struct Payload {
    /// Hex SHA-256 of the binary as the remote stores it.
    pub sha256: String,
    /// Its size there, in bytes.
    pub size: u64,
    /// The size of its gzip stream: what one upload sends.
    pub gzip_len: u64,
    gzip: Gzip,
}

#[derive(Debug)]
enum Gzip {
    /// In this user's cache.
    File(PathBuf),
    /// Where that cache cannot be written.
    Memory(Vec<u8>),
}

/// The gzip stream of a [`Payload`] as a file, for a transport that copies
/// files.
pub enum GzipFile {
    /// In this user's cache.
    Kept(PathBuf),
    /// Removed when dropped.
    Temporary(tempfile::TempPath),
}

impl GzipFile {
    pub fn path(&self) -> &Path {
        match self {
            GzipFile::Kept(path) => path,
            GzipFile::Temporary(path) => path,
        }
    }
}

/// Marks the script's report line on stdout, before the agent's frames.
const REPORT: &str = "yonder-deploy:";

/// The longest report line read: a line is a few words.
const MAX_REPORT: usize = 1024;

impl Payload {
    /// The payload of `build` (the running one): prepared once per
    /// process, from this user's cache when an earlier process of the same
    /// build made it. Blocking (it may strip, hash and compress the
    /// binary): call it from `spawn_blocking`.
    pub fn of(build: &Build) -> Result<Arc<Payload>, DeployError> {
        static CURRENT: Mutex<Option<Arc<Payload>>> = Mutex::new(None);
        let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(payload) = current.as_ref() {
            return Ok(payload.clone());
        }
        let payload = Arc::new(prepare(
            &running_exe(),
            &build.sha256,
            local_cache_dir().as_deref(),
        )?);
        *current = Some(payload.clone());
        Ok(payload)
    }

    /// The gzip stream, as a local file (a temporary one where the
    /// payload is not kept in this user's cache).
    pub async fn gzip_file(&self) -> Result<GzipFile, DeployError> {
        match &self.gzip {
            Gzip::File(path) => Ok(GzipFile::Kept(path.clone())),
            Gzip::Memory(bytes) => {
                let failed = |e: std::io::Error| DeployError::Local {
                    op: "write",
                    path: std::env::temp_dir().display().to_string(),
                    reason: e.to_string(),
                };
                let mut file = tempfile::Builder::new()
                    .prefix("yonder-agent")
                    .suffix(".gz")
                    .tempfile()
                    .map_err(failed)?;
                file.write_all(bytes).map_err(failed)?;
                Ok(GzipFile::Temporary(file.into_temp_path()))
            }
        }
    }

    /// The gzip stream.
    pub async fn gzip(&self) -> Result<Vec<u8>, DeployError> {
        match &self.gzip {
            Gzip::Memory(bytes) => Ok(bytes.clone()),
            Gzip::File(path) => tokio::fs::read(path).await.map_err(|e| DeployError::Local {
                op: "read",
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

/// The running executable, by a path that stays valid if the file is
/// replaced (a rebuild) while this process runs.
fn running_exe() -> PathBuf {
    if cfg!(target_os = "linux") {
        PathBuf::from(format!("/proc/{}/exe", std::process::id()))
    } else {
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("yonder"))
    }
}

/// `${XDG_CACHE_HOME:-~/.cache}/yonder/deploy` on this machine.
fn local_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("yonder").join("deploy"))
}

/// The payload of the binary `exe`, kept in `cache` (if given and
/// writable) under `key` (the build's hash), so the next process of the
/// same build only reads one small file.
fn prepare(exe: &Path, key: &str, cache: Option<&Path>) -> Result<Payload, DeployError> {
    let local = |op: &'static str, path: &Path| {
        let path = path.display().to_string();
        move |e: std::io::Error| DeployError::Local {
            op,
            path,
            reason: e.to_string(),
        }
    };
    if let Some(payload) = cache.and_then(|dir| cached_payload(dir, key)) {
        return Ok(payload);
    }
    let started = std::time::Instant::now();
    let binary = stripped(exe)?;
    let sha256 = hex(&Sha256::digest(&binary));
    let size = binary.len() as u64;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&binary).map_err(local("compress", exe))?;
    let gzip = encoder.finish().map_err(local("compress", exe))?;
    let gzip_len = gzip.len() as u64;
    tracing::debug!(
        size,
        gzip_len,
        "prepared the agent binary for deployment in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let gzip = match cache.map(|dir| store_payload(dir, key, &sha256, size, &gzip)) {
        Some(Ok(path)) => Gzip::File(path),
        Some(Err(err)) => {
            tracing::debug!(%err, "cannot keep the deployable agent in the cache");
            Gzip::Memory(gzip)
        }
        None => Gzip::Memory(gzip),
    };
    Ok(Payload {
        sha256,
        size,
        gzip_len,
        gzip,
    })
}

/// `KEY.meta` ("SHA256 SIZE GZIP_LEN") beside `KEY.gz`, written after it.
fn cached_payload(dir: &Path, key: &str) -> Option<Payload> {
    let meta = std::fs::read_to_string(dir.join(format!("{key}.meta"))).ok()?;
    let mut words = meta.split_whitespace();
    let sha256 = words.next()?.to_string();
    let size = words.next()?.parse().ok()?;
    let gzip_len = words.next()?.parse().ok()?;
    let gzip = dir.join(format!("{key}.gz"));
    let on_disk = std::fs::metadata(&gzip).ok()?.len();
    (sha256.len() == 64 && on_disk == gzip_len).then_some(Payload {
        sha256,
        size,
        gzip_len,
        gzip: Gzip::File(gzip),
    })
}

/// Stores a payload (each file written whole, then renamed) and removes
/// those of other builds.
fn store_payload(dir: &Path, key: &str, sha256: &str, size: u64, gzip: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let write = |name: String, bytes: &[u8]| -> std::io::Result<PathBuf> {
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        file.write_all(bytes)?;
        let path = dir.join(name);
        file.persist(&path).map_err(|e| e.error)?;
        Ok(path)
    };
    let gz = write(format!("{key}.gz"), gzip)?;
    write(
        format!("{key}.meta"),
        format!("{sha256} {size} {}\n", gzip.len()).as_bytes(),
    )?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name.strip_suffix(".gz").or_else(|| name.strip_suffix(".meta")) == Some(key);
        if !ours && (name.ends_with(".gz") || name.ends_with(".meta")) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(gz)
}

/// The binary without its debug info and symbols (`strip`, from binutils
/// or the compiler's toolchain): a release build's 56 MB become about 8.
/// Without `strip`, the binary as it is.
fn stripped(exe: &Path) -> Result<Vec<u8>, DeployError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| DeployError::Local {
            op: "read",
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    };
    let out = match tempfile::Builder::new().prefix("yonder-strip").tempdir() {
        Ok(dir) => dir,
        Err(_) => return read(exe),
    };
    let target = out.path().join("yonder");
    let status = std::process::Command::new("strip")
        .arg("-o")
        .arg(&target)
        .arg(exe)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => read(&target),
        _ => {
            tracing::info!("strip failed or is not installed: deploying the agent with its debug info");
            read(exe)
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a host whose `uname -sm` is `uname` runs this binary: the same
/// OS and machine it was built for.
pub fn runs_here_built(uname: &str) -> bool {
    let mut words = uname.split_whitespace();
    let (Some(system), Some(machine)) = (words.next(), words.next()) else {
        return false;
    };
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        "freebsd" => "FreeBSD",
        "netbsd" => "NetBSD",
        "openbsd" => "OpenBSD",
        other => other,
    };
    let arch_ok = match std::env::consts::ARCH {
        "x86_64" => ["x86_64", "amd64"].contains(&machine),
        "aarch64" => ["aarch64", "arm64"].contains(&machine),
        "x86" => ["i386", "i486", "i586", "i686"].contains(&machine),
        other => machine == other,
    };
    system.eq_ignore_ascii_case(os) && arch_ok
}

/// What this binary is built for, as `uname -sm` says it.
fn built_for() -> String {
    format!("{} {}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The remote command that starts the agent with `agent_words` (`agent
/// --stdio ... --root=...`, quoted for sh): `yonder` from the PATH when
/// `try_path` and there is one, else the cached copy of `build`, else one
/// it receives (see the module documentation). One line, run by `sh`
/// whatever the login shell.
pub fn remote_command(agent_words: &str, build: &Build, try_path: bool) -> String {
    let script = format!(
        "say() {{ printf '{REPORT} %s\\n' \"$*\"; }}; \
         d=\"${{XDG_CACHE_HOME:-$HOME/.cache}}/yonder/{dir}\"; f=\"$d/yonder\"; \
         ok() {{ if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum < \"$1\") || return 1; \
         elif command -v shasum >/dev/null 2>&1; then s=$(shasum -a 256 < \"$1\") || return 1; \
         else s=$(wc -c < \"$1\") || return 1; [ $s -eq \"$3\" ]; return; fi; [ \"${{s%% *}}\" = \"$2\" ]; }}; \
         if [ {try_path} = 1 ] && command -v yonder >/dev/null 2>&1; then say path; exec yonder {agent_words}; fi; \
         st=absent; if [ -e \"$f\" ]; then \
         if [ -x \"$f\" ] && read -r sum size < \"$d/sum\" && ok \"$f\" \"$sum\" \"$size\"; then say cached; exec \"$f\" {agent_words}; fi; \
         st=damaged; fi; \
         fail() {{ say fail \"$*\"; exit 1; }}; \
         e=$(mkdir -p \"$d\" 2>&1) || fail \"cannot create $d: ${{e##*: }}\"; \
         t=\"$f.part.$$\"; e=$( (umask 077; : > \"$t\") 2>&1) || fail \"cannot write in $d: ${{e##*: }}\"; \
         chmod 0755 \"$t\"; [ -x \"$t\" ] || {{ rm -f \"$t\"; fail \"cannot run programs from $d (mounted noexec?)\"; }}; \
         say need $st $(uname -sm) \"$t.gz\"; read -r r sum size n || {{ rm -f \"$t\"; exit 1; }}; \
         case $r in upload) head -c \"$n\" | gzip -dc > \"$t\";; copied) gzip -dc < \"$t.gz\" > \"$t\";; \
         *) rm -f \"$t\" \"$t.gz\"; exit 1;; esac && ok \"$t\" \"$sum\" \"$size\" || \
         {{ rm -f \"$t\" \"$t.gz\"; fail \"the copy written to $d is damaged or incomplete (disk full?)\"; }}; \
         rm -f \"$t.gz\"; \
         e=$(\"$t\" --version </dev/null 2>&1 >/dev/null) || {{ rm -f \"$t\"; e=$(printf '%s\\n' \"$e\" | head -n 1); \
         fail \"this build does not run there: ${{e##*: }}\"; }}; \
         printf '%s %s\\n' \"$sum\" \"$size\" > \"$t.sum\" && mv -f \"$t.sum\" \"$d/sum\" && mv -f \"$t\" \"$f\" || \
         {{ rm -f \"$t\" \"$t.sum\"; fail \"cannot store the agent in $d\"; }}; \
         say uploaded; exec \"$f\" {agent_words}",
        dir = build.dir_name(),
        try_path = u8::from(try_path),
    );
    format!("exec sh -c {}", crate::shell::shell_quote(&script))
}

/// How a transport puts a file where the remote script can read it, for
/// one that has a better way than the script's stdin (`docker cp`).
#[async_trait::async_trait]
pub trait CopyIn: Send + Sync {
    /// Copies the local file `local` to `remote`, an absolute path there.
    async fn copy_in(&self, local: &Path, remote: &str) -> Result<(), String>;
}

/// Reads the report of [`remote_command`] from its stdout (`reader`) and,
/// when it asks for the binary and the host runs this build, sends it: on
/// its stdin (`writer`), or, given `copier`, by that to the path the script
/// names. On success the agent's first frame is next on `reader`.
pub async fn negotiate<R, W>(
    reader: &mut R,
    writer: &mut W,
    build: &Arc<Build>,
    copier: Option<&dyn CopyIn>,
) -> Result<AgentOrigin, DeployError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let report = read_report(reader).await?;
    let (word, rest) = report.split_once(' ').unwrap_or((report.as_str(), ""));
    match word {
        "path" => return Ok(AgentOrigin::OnPath),
        "cached" => return Ok(AgentOrigin::Cached),
        "need" => {}
        "fail" => return Err(DeployError::Impossible { reason: rest.into() }),
        _ => return Err(DeployError::Unexpected { line: report }),
    }
    // `need STATE SYSTEM MACHINE DROP`: DROP is where a copier puts the
    // gzip stream.
    let mut words = rest.splitn(4, ' ');
    let state = words.next().unwrap_or("");
    let platform = format!("{} {}", words.next().unwrap_or(""), words.next().unwrap_or(""));
    let drop = words.next().unwrap_or("").to_string();
    if !runs_here_built(&platform) {
        let _ = writer.write_all(b"stop\n").await;
        let _ = writer.flush().await;
        return Err(DeployError::Impossible {
            reason: format!("it runs {platform}, this yonder is built for {}", built_for()),
        });
    }
    if state == "damaged" {
        tracing::info!("the cached agent on the remote is damaged or incomplete: sending it again");
    }
    let build = build.clone();
    let prepared = match tokio::task::spawn_blocking(move || Payload::of(&build)).await {
        Ok(prepared) => prepared,
        Err(err) => Err(DeployError::Local {
            op: "prepare",
            path: running_exe().display().to_string(),
            reason: err.to_string(),
        }),
    };
    let payload = match prepared {
        Ok(payload) => payload,
        Err(err) => {
            let _ = writer.write_all(b"stop\n").await;
            let _ = writer.flush().await;
            return Err(err);
        }
    };
    let started = std::time::Instant::now();
    let (answer, gzip) = match copier {
        None => (
            format!(
                "upload {} {} {}\n",
                payload.sha256, payload.size, payload.gzip_len
            ),
            payload.gzip().await?,
        ),
        Some(copier) => {
            let copied = match payload.gzip_file().await {
                Ok(local) => copier
                    .copy_in(local.path(), &drop)
                    .await
                    .map_err(|reason| DeployError::Local {
                        op: "copy the agent to",
                        path: drop.clone(),
                        reason,
                    }),
                Err(err) => Err(err),
            };
            if let Err(err) = copied {
                let _ = writer.write_all(b"stop\n").await;
                let _ = writer.flush().await;
                return Err(err);
            }
            (
                format!("copied {} {} -\n", payload.sha256, payload.size),
                Vec::new(),
            )
        }
    };
    let send = async {
        writer.write_all(answer.as_bytes()).await?;
        writer.write_all(&gzip).await?;
        writer.flush().await
    };
    let mut send = std::pin::pin!(send);
    let mut sent = false;
    let mut report = std::pin::pin!(read_report(reader));
    let report = loop {
        tokio::select! {
            result = &mut send, if !sent => {
                sent = true;
                // A remote that stopped reading says why on stdout.
                if let Err(err) = result {
                    tracing::debug!(%err, "sending the agent binary");
                }
            }
            report = &mut report => break report?,
        }
    };
    let (word, rest) = report.split_once(' ').unwrap_or((report.as_str(), ""));
    match word {
        "uploaded" => {
            tracing::info!(
                bytes = payload.gzip_len,
                "deployed the agent ({:.1} MB sent in {:.1} s)",
                payload.gzip_len as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
            Ok(AgentOrigin::Uploaded)
        }
        "fail" => Err(DeployError::Impossible { reason: rest.into() }),
        _ => Err(DeployError::Unexpected { line: report }),
    }
}

/// One report line, without its marker. Read a byte at a time: what
/// follows is the agent's, and must stay in the stream.
async fn read_report<R: AsyncRead + Unpin>(reader: &mut R) -> Result<String, DeployError> {
    let mut line = Vec::new();
    loop {
        match reader.read_u8().await {
            Ok(b'\n') => break,
            Ok(byte) if line.len() < MAX_REPORT => line.push(byte),
            Ok(_) => break,
            Err(_) if line.is_empty() => return Err(DeployError::Ended),
            Err(_) => break,
        }
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    match line.strip_prefix(REPORT) {
        Some(rest) => Ok(rest.trim().to_string()),
        None => Err(DeployError::Unexpected { line }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_host_of_this_build_s_platform_gets_it() {
        let here = match (std::env::consts::OS, std::env::consts::ARCH) {
            ("linux", "x86_64") => "Linux x86_64",
            ("linux", "aarch64") => "Linux aarch64",
            _ => return,
        };
        assert!(runs_here_built(here));
        assert!(!runs_here_built("Darwin arm64"));
        assert!(!runs_here_built("Linux riscv64"));
        assert!(!runs_here_built(""));
    }

    #[test]
    #[cfg(unix)]
    fn a_payload_is_prepared_once_per_build_and_found_again() {
        let cache = tempfile::tempdir().unwrap();
        let exe = cache.path().join("program");
        std::fs::write(&exe, b"not an ELF file: strip fails, the bytes go as they are").unwrap();
        let dir = cache.path().join("deploy");
        let first = prepare(&exe, "build-1", Some(&dir)).unwrap();
        assert_eq!(first.size, 54);
        let Gzip::File(stored) = &first.gzip else {
            panic!("kept in the cache: {first:?}")
        };
        let stored_ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(stored).unwrap());
        let again = prepare(&exe, "build-1", Some(&dir)).unwrap();
        let Gzip::File(found) = &again.gzip else {
            panic!("found in the cache: {again:?}")
        };
        let found_ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(found).unwrap());
        assert_eq!(found_ino, stored_ino, "read back, not made again");
        assert_eq!(
            (again.sha256.as_str(), again.gzip_len),
            (first.sha256.as_str(), first.gzip_len)
        );
        // Another build replaces the first one's files.
        std::fs::write(&exe, b"another build").unwrap();
        let other = prepare(&exe, "build-2", Some(&dir)).unwrap();
        assert_ne!(other.sha256, first.sha256);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    }
}
