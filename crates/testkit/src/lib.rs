//! Fixtures shared by yonder's integration tests and benchmarks.
//!
//! - [`Sshd`]: a private sshd (below);
//! - [`agent`]: the agent served in this process, with a client connected;
//! - [`contract`]: the behaviour every [`yonder_remote::Remote`] owes its
//!   callers, one check per `#[test]` ([`remote_contract!`]);
//! - [`direct`]: the agent's own request handling called directly, with
//!   no framing, as a `Remote`;
//! - [`faults`]: `Remote` wrappers that inject errors, delays and
//!   disconnection;
//! - [`impl_placement`]: a type's own methods live in the file that
//!   defines it (tests/structure.rs);
//! - [`module_graph`]: the import graph of each crate's modules, which
//!   must have no cycle (tests/structure.rs);
//! - [`observe`]: `Remote` wrappers that count calls, record writes and
//!   hide inode numbers;
//! - [`proxy`]: a loopback TCP proxy that drops, black-holes and restores
//!   the connections through it (network faults under ssh or TCP);
//! - [`agent::TcpAgent`] and [`agent::TcpConnector`]: the agent served over
//!   TCP in this process, for [`yonder_remote::Link`] tests.
//!
//! [`Sshd`] starts a private OpenSSH server on a free loopback port, with a
//! host key and a client key generated in a temporary directory, so that
//! tests exercise the real `ssh` path without depending on any daemon or key
//! that exists on the machine. It is stopped when dropped.

// The fixtures serve the Unix agent (its `Handler`), run sshd and mount:
// Unix only. On Windows the crate is empty, and so are the tests on it.
#![cfg(unix)]

pub mod agent;
pub mod contract;
pub mod direct;
pub mod faults;
pub mod impl_placement;
pub mod module_graph;
pub mod observe;
pub mod proxy;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    user: String,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn find_sshd() -> Result<PathBuf, String> {
    ["/usr/sbin/sshd", "/usr/bin/sshd", "/usr/local/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "sshd not found: install openssh-server (.ci/run does)".to_string())
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Sshd {
    /// Starts sshd; fails (rather than skipping) when it cannot, since a
    /// test that silently skips its ssh half proves nothing.
    pub fn start() -> Result<Sshd, String> {
        Sshd::start_with("")
    }

    /// [`Sshd::start`] with more `sshd_config` lines, e.g. `SetEnv
    /// PATH=...` for the sessions' PATH (a client cannot set it).
    pub fn start_with(extra_config: &str) -> Result<Sshd, String> {
        let sshd = find_sshd()?;
        let dir = tempfile::Builder::new()
            .prefix("yonder-sshd")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key)))?;
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).map_err(|e| e.to_string())?;
        // sshd insists on its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        // AcceptEnv XDG_CACHE_HOME: a test gives the remote's cache (where
        // the agent is deployed) a directory of its own with ssh's SetEnv.
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPermitRootLogin yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPrintMotd no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n\
             MaxStartups 200\nMaxSessions 200\nAcceptEnv XDG_CACHE_HOME\n{extra_config}\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).map_err(|e| e.to_string())?;
        let child = spawn_sshd(&sshd, d)?;
        let mut server = Sshd {
            child,
            port,
            dir,
            user: current_user(),
        };
        server.wait_listening()?;
        Ok(server)
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("sshd exited with {status}: {}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("sshd did not listen on port {port}: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills the server and every session it runs (the per-connection
    /// sshd processes and what they started, agents included), as a
    /// crash or reboot of the remote would: clients see their connections
    /// closed, and new ones refused until [`Sshd::restart`].
    pub fn kill(&mut self) {
        let mut victims = descendants(self.child.id());
        victims.push(self.child.id());
        for pid in victims.iter().rev() {
            // SAFETY: kill(2) on processes this fixture started (the sshd
            // child and its descendants).
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, with the same keys.
    pub fn restart(&mut self) -> Result<(), String> {
        self.child = spawn_sshd(&find_sshd()?, self.dir.path())?;
        self.wait_listening()
    }

    /// The process id of the listening sshd.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// `-o` options that make `ssh` trust this server and use its key, and
    /// never prompt.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            format!("IdentityFile={}", self.client_key().display()),
            "IdentitiesOnly=yes".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "StrictHostKeyChecking=no".into(),
            "BatchMode=yes".into(),
            "LogLevel=ERROR".into(),
        ]
    }

    /// `ssh://user@127.0.0.1:PORT/<root>` for an absolute `root`.
    pub fn source(&self, root: &Path) -> String {
        format!("ssh://{}@127.0.0.1:{}{}", self.user, self.port, root.display())
    }

    /// A `ssh ... ` command line (without the remote command), for
    /// benchmarks that compare with `ssh host cat`.
    pub fn ssh_argv(&self) -> Vec<String> {
        let mut argv = vec!["ssh".to_string()];
        for o in self.ssh_options() {
            argv.push("-o".into());
            argv.push(o);
        }
        argv.extend([
            "-p".into(),
            self.port.to_string(),
            "-l".into(),
            self.user.clone(),
            "127.0.0.1".into(),
        ]);
        argv
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_sshd(sshd: &Path, dir: &Path) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sshd.log"))
        .map_err(|e| e.to_string())?;
    Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("start sshd: {e}"))
}

/// Every process descended from `pid`, parents before children.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The command name may hold spaces and parentheses: fields
            // start after its last ')'.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parents.push((child, ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(child, ppid) in &parents {
            if ppid == parent && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}
