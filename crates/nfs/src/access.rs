//! Who is served. The port is bound to 127.0.0.1, but every local user can
//! reach it, and an NFS client states its own uid: by default only the
//! uid that started the server (root's, when root did) is answered.

use nfs3_server::nfs3_types::rpc::auth_unix;
use std::net::SocketAddr;

/// The credentials a server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// The one AUTH_UNIX uid served; `None` serves any uid (and calls
    /// without AUTH_UNIX), for a caller that checks otherwise.
    pub uid: Option<u32>,
}

impl Access {
    /// Only the uid of this process.
    #[cfg(unix)]
    pub fn current_user() -> Access {
        // SAFETY: getuid cannot fail and touches no memory.
        let uid = unsafe { libc::getuid() };
        Access { uid: Some(uid) }
    }

    /// Windows has no uid: its Client for NFS sends the one its
    /// `AnonymousUid` setting names, -2 unless changed, for every local
    /// user alike. That one is served.
    #[cfg(windows)]
    pub fn current_user() -> Access {
        Access {
            uid: Some(u32::MAX - 1),
        }
    }

    /// Whether a call with these credentials (`None`: not AUTH_UNIX) is
    /// answered.
    pub fn permits(&self, auth: Option<&auth_unix>) -> bool {
        match (self.uid, auth) {
            (None, _) => true,
            (Some(uid), Some(auth)) => auth.uid == uid,
            (Some(_), None) => false,
        }
    }

    /// Only loopback peers are served, whatever address the port is on.
    pub fn permits_peer(&self, peer: &SocketAddr) -> bool {
        peer.ip().is_loopback()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(uid: u32) -> auth_unix {
        auth_unix {
            uid,
            ..auth_unix::default()
        }
    }

    #[test]
    fn only_the_named_uid_is_served() {
        let access = Access { uid: Some(1000) };
        assert!(access.permits(Some(&unix(1000))));
        assert!(!access.permits(Some(&unix(0))));
        assert!(!access.permits(None));
        assert!(Access { uid: None }.permits(None));
    }

    #[test]
    fn only_loopback_peers_are_served() {
        let access = Access::current_user();
        assert!(access.permits_peer(&"127.0.0.1:900".parse().unwrap()));
        assert!(access.permits_peer(&"[::1]:900".parse().unwrap()));
        assert!(!access.permits_peer(&"192.168.1.4:900".parse().unwrap()));
    }
}
