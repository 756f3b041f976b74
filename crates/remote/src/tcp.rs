//! TCP keepalive for transports that open a TCP connection themselves.
//!
//! ssh keeps its own connection alive (see
//! [`crate::source::SSH_KEEPALIVE`]); the direct path (`direct.rs`) calls
//! [`set_keepalive`] on its socket in its [`crate::Connector`], as the test
//! harness's TCP connector does. The link's heartbeat notices a dead link
//! in any case; keepalive also ends a connection the kernel would keep for
//! hours on a silent, half-open peer (the heartbeat's pings then fail at
//! once instead of waiting for the next miss).

#[cfg(unix)]
use std::os::fd::AsFd;
// A socket is not a descriptor on Windows.
#[cfg(windows)]
use std::os::windows::io::AsSocket as AsFd;
use std::time::Duration;

/// Turns on TCP keepalive on `socket`: first probe after `idle` without
/// traffic, then every `interval`, the connection dropped after `count`
/// unanswered probes.
pub fn set_keepalive(
    socket: impl AsFd,
    idle: Duration,
    interval: Duration,
    count: u32,
) -> std::io::Result<()> {
    use rustix::net::sockopt;
    sockopt::set_socket_keepalive(&socket, true)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        sockopt::set_tcp_keepidle(&socket, idle)?;
        sockopt::set_tcp_keepintvl(&socket, interval)?;
        sockopt::set_tcp_keepcnt(&socket, count)?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (idle, interval, count);
    Ok(())
}
