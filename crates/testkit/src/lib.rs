//! Fixtures shared by yonder's integration tests and benchmarks.
//!
//! - [`Sshd`]: a private sshd (below);
//! - [`agent`]: the agent served in this process, with a client connected;
//! - [`contract`]: the behaviour every [`yonder_remote::Remote`] owes its
//!   callers, one check per `#[test]` ([`remote_contract!`]);
//! - [`faults`]: `Remote` wrappers that inject errors, delays and
//!   disconnection.
//!
//! [`Sshd`] starts a private OpenSSH server on a free loopback port, with a
//! host key and a client key generated in a temporary directory, so that
//! tests exercise the real `ssh` path without depending on any daemon or key
//! that exists on the machine. It is stopped when dropped.

pub mod agent;
pub mod contract;
pub mod faults;

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
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPermitRootLogin yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPrintMotd no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n\
             MaxStartups 200\nMaxSessions 200\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).map_err(|e| e.to_string())?;
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sshd.log")).map_err(|e| e.to_string())?,
            ))
            .spawn()
            .map_err(|e| format!("start sshd: {e}"))?;
        let mut server = Sshd {
            child,
            port,
            dir,
            user: current_user(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("sshd exited with {status}: {}", server.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("sshd did not listen on port {port}: {}", server.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
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

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}
