//! The OS's own commands that mount and unmount a yonder NFS server: pure
//! functions of the OS, the port and the mount point, so each OS's exact
//! argument list is tested here, on any host.
//!
//! Every OS gets NFSv3 over TCP to 127.0.0.1, with both the NFS and the
//! MOUNT port given (the server has no portmapper on port 111), and with
//! locking kept local (the server has no lock manager).

use std::path::Path;

/// The systems yonder builds mount commands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Os {
    Linux,
    MacOs,
    FreeBsd,
    OpenBsd,
    NetBsd,
}

impl Os {
    /// The system this binary was built for; `None` for one without a
    /// known NFS mount command.
    pub fn current() -> Option<Os> {
        match std::env::consts::OS {
            "linux" => Some(Os::Linux),
            "macos" => Some(Os::MacOs),
            "freebsd" => Some(Os::FreeBsd),
            "openbsd" => Some(Os::OpenBsd),
            "netbsd" => Some(Os::NetBsd),
            _ => None,
        }
    }
}

/// A program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
}

impl std::fmt::Display for Command {
    /// As a shell line (mount points with spaces are quoted).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.program)?;
        for arg in &self.args {
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                write!(f, " '{}'", arg.replace('\'', r"'\''"))?;
            } else {
                write!(f, " {arg}")?;
            }
        }
        Ok(())
    }
}

fn command(program: &str, args: &[&str], mountpoint: &Path) -> Command {
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(mountpoint.display().to_string());
    Command {
        program: program.to_string(),
        args,
    }
}

/// What mounts the server on `port` at `mountpoint`.
pub fn mount_command(os: Os, port: u16, mountpoint: &Path) -> Command {
    let ports = format!("port={port},mountport={port}");
    let source = "127.0.0.1:/";
    match os {
        Os::Linux => {
            let options = format!("nfsvers=3,tcp,nolock,{ports}");
            command("mount", &["-t", "nfs", "-o", &options, source], mountpoint)
        }
        Os::MacOs => {
            let options = format!("vers=3,tcp,nolocks,locallocks,{ports}");
            command("mount_nfs", &["-o", &options, source], mountpoint)
        }
        Os::FreeBsd => {
            let options = format!("nfsv3,tcp,nolockd,{ports}");
            command("mount_nfs", &["-o", &options, source], mountpoint)
        }
        // OpenBSD and NetBSD take the version and transport as flags.
        Os::OpenBsd | Os::NetBsd => command("mount_nfs", &["-3", "-T", "-o", &ports, source], mountpoint),
    }
}

/// The environment variable naming a command that mounts in place of the
/// OS's: a userspace NFS client (fuse-nfs) on a kernel without one, as
/// the tests use. `{port}` and `{mountpoint}` in it are replaced; its
/// words are split at whitespace.
pub const MOUNT_COMMAND_ENV: &str = "YONDER_NFS_MOUNT_COMMAND";

/// The command [`MOUNT_COMMAND_ENV`] names, for `port` and `mountpoint`.
pub fn command_from_template(template: &str, port: u16, mountpoint: &Path) -> Option<Command> {
    let mountpoint = mountpoint.display().to_string();
    let mut words = template.split_whitespace().map(|word| {
        word.replace("{port}", &port.to_string())
            .replace("{mountpoint}", &mountpoint)
    });
    Some(Command {
        program: words.next()?,
        args: words.collect(),
    })
}

/// The mount command set in the environment, if any.
pub fn mount_command_override() -> Option<String> {
    std::env::var(MOUNT_COMMAND_ENV)
        .ok()
        .filter(|c| !c.trim().is_empty())
}

/// Whether a mount over NFS can be made here: the OS has an NFS client,
/// or a command stands in for its mount command.
pub fn nfs_mount_possible() -> bool {
    mount_command_override().is_some() || Os::current().is_some_and(nfs_client_available)
}

/// What unmounts it; `lazy` detaches it even while files are open (where
/// the OS can: Linux's lazy unmount, the BSDs' forced one).
pub fn unmount_command(os: Os, mountpoint: &Path, lazy: bool) -> Command {
    let flag = match (os, lazy) {
        (_, false) => None,
        (Os::Linux, true) => Some("-l"),
        (_, true) => Some("-f"),
    };
    command("umount", flag.as_slice(), mountpoint)
}

/// Whether this kernel has an NFS client. On Linux it is listed in
/// /proc/filesystems once loaded, or loadable as a module; elsewhere it is
/// part of every supported system.
pub fn nfs_client_available(os: Os) -> bool {
    if os != Os::Linux {
        return true;
    }
    let listed = std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|list| list.lines().any(|l| l.split_whitespace().last() == Some("nfs")));
    listed || linux_module_present("nfs")
}

fn linux_module_present(name: &str) -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let dir = Path::new("/lib/modules")
        .join(release.trim())
        .join("kernel/fs")
        .join(name);
    dir.is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(c: &Command) -> Vec<&str> {
        std::iter::once(c.program.as_str())
            .chain(c.args.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn linux_mounts_with_mount_t_nfs() {
        let c = mount_command(Os::Linux, 2049, Path::new("/mnt/x"));
        assert_eq!(
            args(&c),
            [
                "mount",
                "-t",
                "nfs",
                "-o",
                "nfsvers=3,tcp,nolock,port=2049,mountport=2049",
                "127.0.0.1:/",
                "/mnt/x"
            ]
        );
    }

    #[test]
    fn macos_mounts_with_mount_nfs_and_local_locks() {
        let c = mount_command(Os::MacOs, 700, Path::new("/Volumes/y"));
        assert_eq!(
            args(&c),
            [
                "mount_nfs",
                "-o",
                "vers=3,tcp,nolocks,locallocks,port=700,mountport=700",
                "127.0.0.1:/",
                "/Volumes/y"
            ]
        );
    }

    #[test]
    fn freebsd_mounts_without_lockd() {
        let c = mount_command(Os::FreeBsd, 700, Path::new("/mnt"));
        assert_eq!(
            args(&c),
            [
                "mount_nfs",
                "-o",
                "nfsv3,tcp,nolockd,port=700,mountport=700",
                "127.0.0.1:/",
                "/mnt"
            ]
        );
    }

    #[test]
    fn openbsd_and_netbsd_take_version_and_tcp_as_flags() {
        for os in [Os::OpenBsd, Os::NetBsd] {
            let c = mount_command(os, 700, Path::new("/mnt"));
            assert_eq!(
                args(&c),
                [
                    "mount_nfs",
                    "-3",
                    "-T",
                    "-o",
                    "port=700,mountport=700",
                    "127.0.0.1:/",
                    "/mnt"
                ]
            );
        }
    }

    #[test]
    fn a_template_stands_in_for_the_mount_command() {
        let c = command_from_template(
            "fuse-nfs -n nfs://127.0.0.1/?nfsport={port}&mountport={port} -m {mountpoint}",
            900,
            Path::new("/mnt/x"),
        )
        .unwrap();
        assert_eq!(
            args(&c),
            [
                "fuse-nfs",
                "-n",
                "nfs://127.0.0.1/?nfsport=900&mountport=900",
                "-m",
                "/mnt/x"
            ]
        );
        assert_eq!(command_from_template("  ", 1, Path::new("/m")), None);
    }

    #[test]
    fn unmounts_lazily_where_asked() {
        let mp = Path::new("/mnt/a b");
        assert_eq!(
            args(&unmount_command(Os::Linux, mp, false)),
            ["umount", "/mnt/a b"]
        );
        assert_eq!(
            args(&unmount_command(Os::Linux, mp, true)),
            ["umount", "-l", "/mnt/a b"]
        );
        assert_eq!(
            args(&unmount_command(Os::MacOs, mp, true)),
            ["umount", "-f", "/mnt/a b"]
        );
        assert_eq!(
            unmount_command(Os::Linux, mp, false).to_string(),
            "umount '/mnt/a b'"
        );
    }
}
