//! The NFS frontend through a real NFSv3 client: libnfs, as its tools
//! (`nfs-ls`, `nfs-cat`, `nfs-cp`) and as a small driver on its library
//! (`support/nfs_driver.c`, built here with `cc`), against a server in
//! this process over an agent serving a temporary directory.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, OnceLock};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use yonder_nfs::{Access, NfsConfig, NfsServer};
use yonder_testkit::direct::DirectAgent;
use yonder_testkit::faults::Op;
use yonder_testkit::observe::Counted;
use yonder_vfs::{MemoryJournal, Vfs, VfsOptions};

/// A uid that is not the one the server serves.
const FOREIGN_UID: u32 = 4321;

fn driver_binary() -> &'static Path {
    static DRIVER: OnceLock<PathBuf> = OnceLock::new();
    DRIVER.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/nfs_driver.c");
        let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nfs_driver");
        let built = std::process::Command::new("cc")
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .arg("-lnfs")
            .output()
            .expect("run cc (libnfs-dev must be installed: ./x installs it)");
        assert!(
            built.status.success(),
            "building the libnfs driver: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        binary
    })
}

struct Served {
    dir: TempDir,
    counts: Arc<Counted>,
    server: NfsServer,
}

impl Served {
    async fn start(port: Option<u16>) -> Served {
        Served::over(tempfile::tempdir().unwrap(), port).await
    }

    /// A new server (a new process, as far as handles go) over `dir`.
    async fn over(dir: TempDir, port: Option<u16>) -> Served {
        let counts = Counted::new(DirectAgent::new(dir.path()));
        let vfs = Vfs::new(
            counts.clone(),
            VfsOptions::default(),
            Arc::new(MemoryJournal::default()),
        )
        .await
        .unwrap();
        let config = NfsConfig {
            port,
            access: Access::current_user(),
        };
        let server = NfsServer::start(vfs, config).await.unwrap();
        Served { dir, counts, server }
    }

    fn port(&self) -> u16 {
        self.server.port()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the driver as this user.
    async fn drive(&self, args: &[&str]) -> String {
        let out = self.drive_as(current_uid(), args).await;
        assert!(
            out.status.success(),
            "nfs_driver {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    async fn drive_as(&self, uid: u32, args: &[&str]) -> Output {
        Command::new(driver_binary())
            .arg(self.port().to_string())
            .arg(uid.to_string())
            .args(args)
            .output()
            .await
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        // libnfs URLs: the export ("/") and then the path.
        format!(
            "nfs://127.0.0.1/{path}?nfsport={port}&mountport={port}",
            port = self.port()
        )
    }
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

/// `key=value` from the driver's `stat` line.
fn field(stat: &str, key: &str) -> String {
    stat.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {stat:?}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfs_ls_and_nfs_cat_see_the_tree() {
    let s = Served::start(None).await;
    std::fs::create_dir(s.path("sub")).unwrap();
    std::fs::write(s.path("sub/hello.txt"), "hello over nfs\n").unwrap();
    let listed = Command::new("nfs-ls").arg(s.url("/sub")).output().await.unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("hello.txt") && listed.contains(" 15 "),
        "{listed}"
    );
    let cat = Command::new("nfs-cat")
        .arg(s.url("/sub/hello.txt"))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "hello over nfs\n");
    // A lookup through the driver: the same file, by a nested path.
    let stat = s.drive(&["stat", "/sub/hello.txt"]).await;
    assert_eq!(field(&stat, "size"), "15");
    use std::os::unix::fs::MetadataExt as _;
    let mode = std::fs::metadata(s.path("sub/hello.txt")).unwrap().mode();
    assert_eq!(field(&stat, "mode"), format!("{mode:o}"));
    let missing = s.drive_as(current_uid(), &["stat", "/sub/absent"]).await;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NOENT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readdirplus_of_a_hundred_thousand_entries_lists_every_name_once() {
    let s = Served::start(None).await;
    std::fs::create_dir(s.path("big")).unwrap();
    for i in 0..100_000 {
        std::fs::File::create(s.path(&format!("big/f{i:06}"))).unwrap();
    }
    let listed = s.drive(&["ls", "/big"]).await;
    let mut names: Vec<&str> = listed.lines().collect();
    assert_eq!(names.len(), 100_000);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 100_000, "a name listed twice");
    assert_eq!((names[0], names[99_999]), ("f000000", "f099999"));
    // Two listings at once, each by its own cookies.
    let (a, b) = tokio::join!(s.drive(&["ls", "/big"]), s.drive(&["ls", "/big"]));
    assert_eq!((a.lines().count(), b.lines().count()), (100_000, 100_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_at_offsets() {
    let s = Served::start(None).await;
    assert_eq!(s.drive(&["write", "/w", "0", "hello"]).await, "wrote 5\n");
    s.drive(&["write", "/w", "10", "world"]).await;
    assert_eq!(std::fs::read(s.path("w")).unwrap(), b"hello\0\0\0\0\0world");
    assert_eq!(s.drive(&["read", "/w", "10", "5"]).await, "world");
    assert_eq!(s.drive(&["read", "/w", "3", "4"]).await, "lo\0\0");
    // Past the end: nothing.
    assert_eq!(s.drive(&["read", "/w", "100", "5"]).await, "");
    s.drive(&["write", "/w", "2", "LL"]).await;
    assert_eq!(std::fs::read(s.path("w")).unwrap(), b"heLLo\0\0\0\0\0world");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfs_cp_copies_in_and_out() {
    let s = Served::start(None).await;
    let local = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(local.path().join("in"), &data).unwrap();
    let into = Command::new("nfs-cp")
        .arg(local.path().join("in"))
        .arg(s.url("/copied"))
        .output()
        .await
        .unwrap();
    assert!(into.status.success(), "{}", String::from_utf8_lossy(&into.stderr));
    assert!(std::fs::read(s.path("copied")).unwrap() == data);
    let out = Command::new("nfs-cp")
        .arg(s.url("/copied"))
        .arg(local.path().join("out"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(local.path().join("out")).unwrap() == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_remove_rename_mkdir_rmdir() {
    let s = Served::start(None).await;
    let made = s.drive(&["create", "/c", "plain"]).await;
    assert_eq!(field(&made, "mode"), "100640");
    assert!(s.path("c").is_file());
    // Unchecked creation of an existing file succeeds; exclusive fails.
    s.drive(&["create", "/c", "plain"]).await;
    let again = s.drive_as(current_uid(), &["create", "/c", "excl"]).await;
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("EXIST"),
        "{again:?}"
    );
    s.drive(&["create", "/e", "excl"]).await;
    assert!(s.path("e").is_file());

    let dir = s.drive(&["mkdir", "/d", "750"]).await;
    assert_eq!(field(&dir, "mode"), "40750");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(s.path("d")).unwrap().permissions().mode() & 0o7777,
        0o750
    );
    s.drive(&["rename", "/c", "/d/c2"]).await;
    assert!(!s.path("c").exists() && s.path("d/c2").is_file());
    let not_empty = s.drive_as(current_uid(), &["rmdir", "/d"]).await;
    assert!(
        String::from_utf8_lossy(&not_empty.stderr).contains("NOTEMPTY"),
        "{not_empty:?}"
    );
    s.drive(&["unlink", "/d/c2"]).await;
    s.drive(&["rmdir", "/d"]).await;
    assert!(!s.path("d").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_chmod_and_times() {
    let s = Served::start(None).await;
    std::fs::write(s.path("f"), "0123456789").unwrap();
    let cut = s.drive(&["truncate", "/f", "4"]).await;
    assert_eq!(field(&cut, "size"), "4");
    assert_eq!(std::fs::read(s.path("f")).unwrap(), b"0123");
    let grown = s.drive(&["truncate", "/f", "6"]).await;
    assert_eq!(field(&grown, "size"), "6");
    let modes = s.drive(&["chmod", "/f", "604"]).await;
    assert_eq!(field(&modes, "mode"), "100604");
    let times = s.drive(&["utimes", "/f", "1000000", "2000000"]).await;
    assert_eq!(
        (field(&times, "atime"), field(&times, "mtime")),
        ("1000000".into(), "2000000".into())
    );
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(s.path("f")).unwrap();
    assert_eq!(
        (meta.atime(), meta.mtime(), meta.mode() & 0o7777),
        (1_000_000, 2_000_000, 0o604)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_and_hard_links() {
    let s = Served::start(None).await;
    std::fs::write(s.path("target"), "t").unwrap();
    s.drive(&["symlink", "target", "/ln"]).await;
    assert_eq!(std::fs::read_link(s.path("ln")).unwrap(), Path::new("target"));
    assert_eq!(s.drive(&["readlink", "/ln"]).await, "target\n");
    let linked = s.drive(&["link", "/target", "/hard"]).await;
    assert_eq!(field(&linked, "nlink"), "2");
    assert!(s.counts.of(Op::Link) == 1);
    use std::os::unix::fs::MetadataExt as _;
    let (a, b) = (
        std::fs::metadata(s.path("target")).unwrap(),
        std::fs::metadata(s.path("hard")).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    // Both names show one file.
    let by_target = s.drive(&["stat", "/target"]).await;
    assert_eq!(field(&by_target, "ino"), field(&linked, "ino"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_syncs_the_file_on_the_remote() {
    let s = Served::start(None).await;
    s.drive(&["write", "/u", "0", "unstable"]).await;
    let before = s.counts.of(Op::Fsync);
    s.drive(&["commit", "/u", "8", "+committed"]).await;
    assert!(s.counts.of(Op::Fsync) > before, "COMMIT sent no fsync");
    assert_eq!(std::fs::read(s.path("u")).unwrap(), b"unstable+committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsstat_reports_the_remote_file_system() {
    let s = Served::start(None).await;
    let line = s.drive(&["statvfs", "/"]).await;
    let ours = rustix_statvfs(s.dir.path());
    let blocks: u64 = field(&line, "blocks").parse().unwrap();
    let bsize: u64 = field(&line, "bsize").parse().unwrap();
    assert_eq!(blocks * bsize, ours.0, "{line}");
    assert_eq!(field(&line, "files").parse::<u64>().unwrap(), ours.1, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsinfo_offers_transfers_of_a_mebibyte() {
    let s = Served::start(None).await;
    let line = s.drive(&["fsinfo"]).await;
    assert_eq!(field(&line, "readmax"), "1048576", "{line}");
    assert_eq!(field(&line, "writemax"), "1048576", "{line}");
}

/// Total bytes and inodes of the file system holding `path`.
fn rustix_statvfs(path: &Path) -> (u64, u64) {
    let st = rustix::fs::statvfs(path).unwrap();
    (st.f_blocks * st.f_frsize, st.f_files)
}

/// Runs the driver's `stale` operation on the server at `port`: it opens
/// `path`, then, once `between` is done, asks for its attributes by that
/// handle.
async fn handle_after(port: u16, path: &str, between: impl std::future::Future<Output = ()>) -> Output {
    let mut child = Command::new(driver_binary())
        .arg(port.to_string())
        .arg(current_uid().to_string())
        .args(["stale", path])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).await.unwrap();
    assert_eq!(line, "opened\n");
    between.await;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    drop(stdin);
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut rest)
        .await
        .unwrap();
    let mut out = child.wait_with_output().await.unwrap();
    out.stdout = rest;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_stay_valid_across_renames_and_go_stale_with_their_file() {
    let s = Served::start(None).await;
    std::fs::write(s.path("kept"), "12345").unwrap();
    let renamed = handle_after(s.port(), "/kept", async {
        std::fs::rename(s.path("kept"), s.path("moved")).unwrap();
    })
    .await;
    assert!(
        renamed.status.success(),
        "{}",
        String::from_utf8_lossy(&renamed.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&renamed.stdout), "size=5\n");

    std::fs::write(s.path("doomed"), "x").unwrap();
    let deleted = handle_after(s.port(), "/doomed", async {
        s.drive(&["unlink", "/doomed"]).await;
        // Another file takes its name.
        s.drive(&["write", "/doomed", "0", "another"]).await;
    })
    .await;
    assert!(
        !deleted.status.success(),
        "a deleted file's handle resolved: {deleted:?}"
    );
    assert!(
        String::from_utf8_lossy(&deleted.stderr).contains("STALE"),
        "{deleted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_from_before_a_restart_are_stale() {
    // Below the ephemeral range: no outgoing connection takes the port
    // while no server holds it.
    let first = Served::start(Some(free_port_below_ephemeral())).await;
    let port = first.port();
    std::fs::write(first.path("f"), "data").unwrap();
    let second = tokio::sync::Mutex::new(None);
    let out = handle_after(port, "/f", async {
        let Served { dir, server, .. } = first;
        server.shutdown().await;
        *second.lock().await = Some(Served::over(dir, Some(port)).await);
    })
    .await;
    assert!(!out.status.success(), "an old handle resolved: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NFS3ERR_STALE"),
        "{out:?}"
    );
    // The new server serves the same file by name.
    let second = second.lock().await;
    let stat = second.as_ref().unwrap().drive(&["stat", "/f"]).await;
    assert_eq!(field(&stat, "size"), "4");
}

/// A free port the kernel does not hand out to outgoing connections.
fn free_port_below_ephemeral() -> u16 {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (start..32_000)
        .chain(20_000..start)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below 32000")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_uid_is_refused() {
    let s = Served::start(None).await;
    std::fs::write(s.path("secret"), "s").unwrap();
    assert_ne!(current_uid(), FOREIGN_UID);
    let refused = s.drive_as(FOREIGN_UID, &["stat", "/secret"]).await;
    assert!(!refused.status.success(), "{refused:?}");
    let written = s.drive_as(FOREIGN_UID, &["write", "/planted", "0", "x"]).await;
    assert!(!written.status.success());
    assert!(!s.path("planted").exists());
    // The server's own user is served.
    s.drive(&["stat", "/secret"]).await;
}
