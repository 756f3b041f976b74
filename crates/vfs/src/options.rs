use std::time::Duration;

/// Tunables of a [`crate::Vfs`].
#[derive(Clone, Debug)]
pub struct VfsOptions {
    /// Refuse every modification with EROFS.
    pub read_only: bool,
    /// How long attributes fetched from the remote are trusted.
    pub attr_ttl: Duration,
    /// How long names (directory entries, including the absence of a name
    /// in a fully listed directory) are trusted.
    pub dir_ttl: Duration,
    /// While the remote does not push its changes (or its watch is
    /// degraded), attributes and names are trusted at most this long.
    pub unwatched_ttl: Duration,
    /// Where the connection cannot push changes at all (an SFTP server),
    /// attributes and names are trusted at most this long: sshfs's 20 s
    /// by default, what a user moving from sshfs expects. A watch that
    /// degrades is `unwatched_ttl`'s: its user expected changes at once.
    pub feedless_ttl: Duration,
    /// Small sequential writes are gathered into remote writes of up to this
    /// many bytes.
    pub write_buffer: usize,
    /// Buffered write data is sent at the latest this long after it was
    /// written, so that other clients of the remote see it without waiting
    /// for close.
    pub write_delay: Duration,
    /// Size of one readahead request.
    pub readahead_chunk: usize,
    /// Upper bound of the readahead window of a sequential reader.
    pub readahead_max: usize,
    /// Entries asked for per directory listing round trip at most (over
    /// the directory and those below it that come along); a page is also
    /// bounded by bytes (2 MiB).
    pub readdir_page: u32,
    /// How long an operation waits for a lost connection to come back
    /// (counted from the operation's start) before failing with EIO.
    pub op_timeout: Duration,
    /// Metadata write-back: create, mkdir, symlink, unlink, rmdir and
    /// setattr (no truncation) are acknowledged once the caches vouch for
    /// them, and carried out on the remote in order in the background.
    /// Off (the default): each waits for the remote, as every other call
    /// does. Off by default because the behaviour suite holds a mount to
    /// showing a change on the remote disk the moment the call returns
    /// (and to the remote's own ctime), which write-back gives up.
    pub write_back: bool,
}

impl Default for VfsOptions {
    fn default() -> Self {
        VfsOptions {
            read_only: false,
            attr_ttl: Duration::from_secs(1),
            dir_ttl: Duration::from_secs(1),
            unwatched_ttl: Duration::from_secs(1),
            feedless_ttl: Duration::from_secs(20),
            write_buffer: 1 << 20,
            write_delay: Duration::from_secs(1),
            readahead_chunk: 1 << 20,
            readahead_max: 8 << 20,
            readdir_page: 16384,
            op_timeout: Duration::from_secs(20),
            write_back: false,
        }
    }
}
