//! How to mount with FUSE: [`MountConfig`], and its translation into
//! `fuser`'s mount configuration. Pure: nothing here touches the system, so
//! every rule is unit-tested.
//!
//! What the VFS is told (read-only, the TTLs, the op timeout) is its own
//! [`yonder_vfs::VfsOptions`]: the frontend reads it from the VFS it serves
//! and maps it onto the kernel's side (the `ro` mount flag, the TTLs of
//! the kernel's attribute and name caches).

use crate::options::{OptionError, OptionWord};
#[cfg(unix)]
use fuser::{MountOption, SessionACL};

/// How to mount one file system with FUSE. Several mounts of one process
/// each have their own.
#[derive(Clone, Debug, Default)]
pub struct MountConfig {
    /// Let users other than the mounting one use the mount (needs
    /// `user_allow_other` in /etc/fuse.conf for non-root mounters); the
    /// kernel then checks their permissions (see `default_permissions`).
    pub allow_other: bool,
    /// Let the kernel check permissions from file modes and ACLs; without
    /// it every user who may use the mount acts with the remote agent's
    /// rights. Implied by `allow_other` unless `no_default_permissions`.
    pub default_permissions: bool,
    /// With `allow_other`, leave the kernel's permission checks off: every
    /// local user then acts with the remote agent's rights.
    pub no_default_permissions: bool,
    /// Extra `-o` options for the kernel mount (`noexec`, `nosuid`,
    /// `fsname=`...), as [`OptionWord`] reads them; [`MountConfig::check`]
    /// refuses any other word.
    pub fuse_options: Vec<String>,
    /// Mount over a non-empty directory, hiding its contents.
    pub allow_non_empty: bool,
    /// Log every request.
    pub debug: bool,
    /// Source shown in the mount table, e.g. `user@host:/path`.
    pub fs_name: Option<String>,
    /// Unmounts the mount if this process is killed and `fusermount3`
    /// leaves it behind (see [`crate::UnmountGuard`]).
    pub unmount_guard: Option<std::sync::Arc<crate::UnmountGuard>>,
}

impl MountConfig {
    /// Refuses the first of `fuse_options` that yonder does not take, or
    /// that is not for the kernel mount (an ssh option, say): checked
    /// before anything connects.
    pub fn check(&self) -> Result<(), OptionError> {
        for word in self.fuse_options.iter().flat_map(|o| o.split(',')) {
            if let OptionWord::Ssh(_) = OptionWord::parse(word)? {
                return Err(OptionError::Unknown {
                    option: word.to_string(),
                });
            }
        }
        Ok(())
    }

    fn has_fuse_option(&self, name: &str) -> bool {
        self.fuse_options
            .iter()
            .any(|o| o.split(',').any(|o| o.trim() == name))
    }

    /// Whether users other than the mounting one (and root) may use the mount.
    pub fn allows_other(&self) -> bool {
        self.allow_other || self.has_fuse_option("allow_other")
    }

    /// Whether the kernel checks each caller's permissions (mount option
    /// `default_permissions`). Without the checks the agent acts with its
    /// own rights for whoever asks, which is only right for a mount used by
    /// one user: a mount other users may use checks unless told not to.
    pub fn kernel_checks_permissions(&self) -> bool {
        self.default_permissions
            || self.has_fuse_option("default_permissions")
            || (self.allows_other() && !self.no_default_permissions)
    }

    /// `fuser`'s configuration for this mount of a VFS that is
    /// `read_only` or not, on a host where `fusermount3` does
    /// (`may_allow_other`, see [`may_allow_other`]) or does not accept
    /// `allow_other` from this user.
    #[cfg(unix)]
    pub fn fuser_config(&self, read_only: bool, may_allow_other: bool) -> fuser::Config {
        let mut mount_options = vec![
            MountOption::FSName(self.fs_name.clone().unwrap_or_else(|| "yonder".to_string())),
            MountOption::Subtype("yonder".to_string()),
        ];
        if read_only {
            mount_options.push(MountOption::RO);
        }
        if self.kernel_checks_permissions() {
            mount_options.push(MountOption::DefaultPermissions);
        }
        // Words that are not for the kernel, or that `check` refuses, are
        // not passed on.
        let words = self.fuse_options.iter().flat_map(|o| o.split(','));
        for o in words.filter_map(|w| OptionWord::parse(w).ok()?.fuser_option()) {
            if let MountOption::FSName(_) = o {
                // `fsname=` names the mount instead of its source.
                mount_options[0] = o;
            } else if !mount_options.contains(&o) {
                mount_options.push(o);
            }
        }
        let mut config = fuser::Config::default();
        // fusermount3 only unmounts automatically (when this process dies)
        // with allow_other or allow_root; allow_root is enforced by fuser
        // itself.
        config.acl = if self.allows_other() {
            SessionACL::All
        } else if may_allow_other {
            SessionACL::RootAndOwner
        } else {
            SessionACL::Owner
        };
        if config.acl != SessionACL::Owner {
            mount_options.push(MountOption::AutoUnmount);
        }
        config.mount_options = mount_options;
        config
    }
}

/// Whether `fusermount3` accepts `allow_other` from this user: root, or
/// `user_allow_other` in /etc/fuse.conf. Without it a mount is not removed
/// automatically when its process dies.
#[cfg(unix)]
pub fn may_allow_other() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    root || std::fs::read_to_string("/etc/fuse.conf")
        .map(|s| s.lines().any(|l| l.trim() == "user_allow_other"))
        .unwrap_or(false)
}

/// No FUSE mount, so no `allow_other`, on Windows.
#[cfg(windows)]
pub fn may_allow_other() -> bool {
    false
}

// fuser's configuration, which exists on Unix only.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn config(allow_other: bool, fuse_options: &[&str], no_default_permissions: bool) -> MountConfig {
        MountConfig {
            allow_other,
            no_default_permissions,
            fuse_options: fuse_options.iter().map(|o| o.to_string()).collect(),
            ..MountConfig::default()
        }
    }

    #[test]
    fn other_users_get_permission_checks_unless_told_not_to() {
        let checks = |c: &MountConfig| {
            let on = c
                .fuser_config(false, true)
                .mount_options
                .contains(&MountOption::DefaultPermissions);
            assert_eq!(on, c.kernel_checks_permissions());
            on
        };
        assert!(
            !checks(&config(false, &[], false)),
            "a single-user mount leaves checks to the remote"
        );
        assert!(checks(&config(true, &[], false)));
        assert!(checks(&config(false, &["noexec,allow_other"], false)));
        assert!(!checks(&config(true, &[], true)));
        assert!(!checks(&config(false, &["allow_other"], true)));
        assert!(checks(&config(false, &["default_permissions"], false)));
    }

    #[test]
    fn auto_unmount_needs_fusermount_to_allow_other() {
        let single = config(false, &[], false);
        let fc = single.fuser_config(false, true);
        assert_eq!(fc.acl, SessionACL::RootAndOwner);
        assert!(fc.mount_options.contains(&MountOption::AutoUnmount));
        let fc = single.fuser_config(false, false);
        assert_eq!(fc.acl, SessionACL::Owner);
        assert!(!fc.mount_options.contains(&MountOption::AutoUnmount));
        // allow_other asked for: fusermount3 decides (and refuses) itself.
        let fc = config(true, &[], false).fuser_config(false, false);
        assert_eq!(fc.acl, SessionACL::All);
        assert!(fc.mount_options.contains(&MountOption::AutoUnmount));
    }

    #[test]
    fn options_pass_through_once_and_name_the_source() {
        let c = MountConfig {
            fs_name: Some("me@host:/data".into()),
            fuse_options: vec![
                "ro,noexec".into(),
                "nosuid, noexec".into(),
                "x-custom=1,relatime".into(),
            ],
            ..MountConfig::default()
        };
        let opts = c.fuser_config(true, false).mount_options;
        assert_eq!(
            opts,
            [
                MountOption::FSName("me@host:/data".into()),
                MountOption::Subtype("yonder".into()),
                MountOption::RO,
                MountOption::NoExec,
                MountOption::NoSuid,
            ]
        );
        assert!(c.check().is_ok());
        let bad = |word: &str| MountConfig {
            fuse_options: vec![word.into()],
            ..MountConfig::default()
        };
        assert!(bad("reconnect").check().is_err());
        assert!(bad("nosymfollow").check().is_err());
        assert!(
            bad("IdentityFile=/k").check().is_err(),
            "ssh options are not the kernel's"
        );
    }
}
