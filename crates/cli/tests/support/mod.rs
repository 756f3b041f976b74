//! Connects a client to a fresh temporary root over each transport.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use yonder_remote::{ConnectOptions, Remote, Source};
use yonder_testkit::Sshd;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `yonder agent` spawned as a local child process.
    Local,
    /// `yonder agent` started through the system `ssh` on a private sshd.
    Ssh,
    /// No agent: the private sshd's SFTP server (`--sftp`).
    Sftp,
    /// A local `yonder agent` child, its requests over a direct TLS
    /// connection it opened on loopback (`--transport direct`).
    Direct,
}

impl Transport {
    /// Whether the transport reaches the tree through the private sshd.
    pub fn needs_sshd(self) -> bool {
        matches!(self, Transport::Ssh | Transport::Sftp)
    }
}

/// How applications reach the mounted tree: the kernel interface `yonder
/// mount` serves. The mount suites run over every frontend × [`Transport`]
/// (see [`mount_suite!`](crate::mount_suite)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontend {
    /// The kernel's FUSE driver.
    Fuse,
    /// yonder's NFSv3 server, mounted by fuse-nfs (a userspace NFSv3
    /// client on libnfs, over FUSE): this kernel has no NFS client.
    Nfs,
}

impl Frontend {
    /// The `yonder mount` arguments that choose this frontend.
    pub fn mount_args(self) -> &'static [&'static str] {
        match self {
            Frontend::Fuse => &["--backend", "fuse"],
            Frontend::Nfs => &["--backend", "nfs"],
        }
    }

    /// The environment `yonder mount` needs for this frontend.
    pub fn mount_env(self) -> Vec<(&'static str, String)> {
        match self {
            Frontend::Fuse => Vec::new(),
            Frontend::Nfs => {
                let fuse_nfs = fuse_nfs_binary().display().to_string();
                let template = format!(
                    "{fuse_nfs} -n nfs://127.0.0.1/?version=3&nfsport={{port}}&mountport={{port}} -m {{mountpoint}} -a"
                );
                vec![("YONDER_NFS_MOUNT_COMMAND", template)]
            }
        }
    }
}

/// fuse-nfs: `$YONDER_FUSE_NFS`, or built once by the shared build script
/// (`../shared/tools/fuse-nfs/build`, beside the checkout).
pub fn fuse_nfs_binary() -> &'static Path {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("YONDER_FUSE_NFS") {
            return PathBuf::from(path);
        }
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let script = checkout.join("../shared/tools/fuse-nfs/build");
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuse-nfs");
        let built = std::process::Command::new(&script)
            .arg(&out_dir)
            .output()
            .unwrap_or_else(|e| panic!("run {} (or set YONDER_FUSE_NFS): {e}", script.display()));
        assert!(
            built.status.success(),
            "building fuse-nfs: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        PathBuf::from(String::from_utf8(built.stdout).unwrap().trim())
    })
}

/// One cell of the mount suites' matrix.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    pub frontend: Frontend,
    pub transport: Transport,
}

pub struct Fixture {
    pub client: Arc<dyn Remote>,
    pub dir: tempfile::TempDir,
    // Dropped after the client, so the ssh session ends first.
    pub sshd: Option<Sshd>,
}

impl Fixture {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The path on the remote (here: local) disk behind a wire path.
    pub fn disk(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

pub fn yonder_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_yonder"))
}

/// The source string and options that reach `root` over `transport`.
pub fn source_for(transport: Transport, root: &Path, sshd: Option<&Sshd>) -> (String, ConnectOptions) {
    let mut options = ConnectOptions {
        local_agent: Some(yonder_bin()),
        ..Default::default()
    };
    match transport {
        Transport::Local => (root.display().to_string(), options),
        Transport::Direct => {
            options.direct.transport = yonder_remote::TransportChoice::Direct;
            (root.display().to_string(), options)
        }
        Transport::Ssh => {
            let sshd = sshd.expect("ssh transport needs an sshd");
            options.ssh_options = sshd.ssh_options();
            options.agent_path = Some(yonder_bin().display().to_string());
            (sshd.source(root), options)
        }
        Transport::Sftp => {
            let sshd = sshd.expect("sftp transport needs an sshd");
            options.ssh_options = sshd.ssh_options();
            options.sftp = true;
            (sshd.source(root), options)
        }
    }
}

pub async fn fixture(transport: Transport) -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("yonder-test")
        .tempdir()
        .expect("tempdir");
    let sshd = transport
        .needs_sshd()
        .then(|| Sshd::start().expect("start test sshd"));
    let (source, options) = source_for(transport, dir.path(), sshd.as_ref());
    let source = Source::parse(&source).expect("parse source");
    let client = yonder_remote::connect(&source, &options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connect {source}: {e}\nsshd log: {}",
                sshd.as_ref().map(|s| s.log()).unwrap_or_default()
            )
        });
    Fixture { client, dir, sshd }
}

pub mod mount;
