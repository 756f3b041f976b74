//! [`YonderFs`]: the VFS as `nfs3_server`'s file system, through the
//! VFS's [`Exporter`] (handles, uncounted lookups, I/O by inode), and the
//! procedures the dispatcher answers itself (LINK, MKNOD, FSSTAT, MKDIR
//! with its attributes).

use crate::access::Access;
use crate::convert::{self, fattr, status};
use crate::dir_cursors::DirCursors;
use crate::handle::NfsHandle;
use crate::listing::Listing;
use nfs3_server::nfs3_types::nfs3::{
    createverf3, fattr3, filename3, nfspath3, nfsstat3, nfstime3, sattr3, stable_how, FSINFO3resok,
    Nfs3Option, FSF3_CANSETTIME, FSF3_HOMOGENEOUS, FSF3_LINK, FSF3_SYMLINK,
};
use nfs3_server::nfs3_types::rpc::auth_unix;
use nfs3_server::vfs::{NfsFileSystem, NfsReadFileSystem, ReadDirPlusIterator};
use std::sync::Arc;
use yonder_vfs::{
    open_flags as of, Caller, Errno, Exporter, FileAttr, FileKind, Ino, RenameFlags, SetAttr, SetTime,
    StatFs, Vfs, VfsError, ROOT_INO,
};

/// Largest READ and WRITE a client is offered (FSINFO rtmax, wtmax).
pub const MAX_TRANSFER: u32 = 1 << 20;

type NfsResult<T> = Result<T, nfsstat3>;

/// The VFS served over NFS. A clone serves the same export (the crate's
/// server and the dispatcher in front of it each hold one).
#[derive(Clone)]
pub struct YonderFs {
    exporter: Arc<Exporter>,
    cursors: Arc<DirCursors>,
    access: Access,
    /// Who every call runs as: the one user served (the protocol's hooks
    /// do not hand the call's credentials to the file system).
    caller: Caller,
}

impl YonderFs {
    pub fn new(vfs: Arc<Vfs>, access: Access) -> YonderFs {
        YonderFs {
            cursors: Arc::new(DirCursors::new(vfs.clone())),
            exporter: Exporter::new(vfs),
            access,
            caller: Caller::current(),
        }
    }

    pub fn vfs(&self) -> &Arc<Vfs> {
        self.exporter.vfs()
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The inode a handle names, or STALE.
    pub fn resolve(&self, handle: &NfsHandle) -> NfsResult<Ino> {
        self.exporter
            .resolve(&handle.file_handle())
            .map_err(|e| status(&e))
    }

    /// The handle given out for `ino`.
    pub fn handle_of(&self, ino: Ino) -> NfsResult<NfsHandle> {
        self.exporter
            .file_handle(ino)
            .map(NfsHandle::new)
            .map_err(|e| status(&e))
    }

    pub async fn attr(&self, ino: Ino) -> NfsResult<FileAttr> {
        self.vfs().getattr(ino, None).await.map_err(|e| status(&e))
    }

    /// LINK: a new name for a file.
    pub async fn link(&self, file: Ino, dir: Ino, name: &[u8]) -> NfsResult<FileAttr> {
        self.vfs()
            .link(&self.caller, file, dir, name)
            .await
            .map_err(|e| status(&e))
    }

    /// FSSTAT: the remote file system's own numbers.
    pub async fn statfs(&self, ino: Ino) -> NfsResult<StatFs> {
        self.vfs().statfs(ino).await.map_err(|e| status(&e))
    }

    /// MKDIR with the mode and other attributes the client asked for.
    pub async fn mkdir_with(&self, dir: Ino, name: &[u8], attr: &sattr3) -> NfsResult<(NfsHandle, FileAttr)> {
        let mode = convert::creation_mode(attr, 0o755);
        let made = self
            .vfs()
            .mkdir(&self.caller, dir, name, mode)
            .await
            .map_err(|e| status(&e))?;
        let made = self.apply_rest(made, attr).await?;
        Ok((self.handle_of(made.ino)?, made))
    }

    /// MKNOD: a FIFO, socket or device node.
    pub async fn mknod(
        &self,
        dir: Ino,
        name: &[u8],
        mode: u32,
        rdev: (u32, u32),
        attr: &sattr3,
    ) -> NfsResult<(NfsHandle, FileAttr)> {
        let perm = convert::creation_mode(attr, 0o644);
        let made = self
            .vfs()
            .mknod(&self.caller, dir, name, mode | perm, rdev.0, rdev.1)
            .await
            .map_err(|e| status(&e))?;
        let made = self.apply_rest(made, attr).await?;
        Ok((self.handle_of(made.ino)?, made))
    }

    /// The attributes of a creation other than its mode, which the
    /// creation itself took.
    async fn apply_rest(&self, made: FileAttr, attr: &sattr3) -> NfsResult<FileAttr> {
        let rest = SetAttr {
            mode: None,
            ..convert::set_attr(attr)
        };
        if rest.is_empty() {
            return Ok(made);
        }
        self.vfs()
            .setattr(&self.caller, made.ino, None, rest)
            .await
            .map_err(|e| status(&e))
    }

    async fn lookup_ino(&self, dir: Ino, name: &[u8]) -> NfsResult<Ino> {
        match name {
            b"." => Ok(dir),
            b".." => self.vfs().parent(dir).ok_or(nfsstat3::NFS3ERR_NOENT),
            _ => self
                .vfs()
                .lookup_uncounted(&self.caller, dir, name)
                .await
                .map(|a| a.ino)
                .map_err(|e| status(&e)),
        }
    }
}

/// An exclusive create keeps the client's verifier in the new file's
/// times, as Linux's server does, until the client sets them: a create
/// sent again after a lost reply then finds its own file.
fn verifier_time(verf: &createverf3) -> nfstime3 {
    let bytes = verf.0;
    nfstime3 {
        seconds: u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")),
        nseconds: u32::from_be_bytes(bytes[4..].try_into().expect("4 bytes")) % 1_000_000_000,
    }
}

impl NfsReadFileSystem for YonderFs {
    type Handle = NfsHandle;

    fn root_dir(&self) -> NfsHandle {
        self.handle_of(ROOT_INO)
            .expect("the root is always known to the VFS")
    }

    fn authorize(&self, auth: Option<&auth_unix>) -> bool {
        self.access.permits(auth)
    }

    async fn lookup(&self, dirid: &NfsHandle, filename: &filename3<'_>) -> NfsResult<NfsHandle> {
        let dir = self.resolve(dirid)?;
        let ino = self.lookup_ino(dir, filename.as_ref()).await?;
        self.handle_of(ino)
    }

    async fn getattr(&self, id: &NfsHandle) -> NfsResult<fattr3> {
        let ino = self.resolve(id)?;
        Ok(fattr(&self.attr(ino).await?))
    }

    async fn read(&self, id: &NfsHandle, offset: u64, count: u32) -> NfsResult<(Vec<u8>, bool)> {
        let ino = self.resolve(id)?;
        let count = count.min(MAX_TRANSFER);
        let data = self
            .exporter
            .read_ino(&self.caller, ino, offset, count)
            .await
            .map_err(|e| status(&e))?;
        let eof = if data.len() < count as usize {
            true
        } else {
            offset + data.len() as u64 >= self.attr(ino).await?.size
        };
        Ok((data.to_vec(), eof))
    }

    async fn readdirplus(
        &self,
        dirid: &NfsHandle,
        cookie: u64,
    ) -> NfsResult<impl ReadDirPlusIterator<NfsHandle>> {
        let dir = self.resolve(dirid)?;
        let cursor = self
            .cursors
            .cursor(&self.caller, dir, cookie)
            .map_err(|e| status(&e))?;
        Ok(Listing::new(self.exporter.clone(), dir, cursor))
    }

    async fn readlink(&self, id: &NfsHandle) -> NfsResult<nfspath3<'_>> {
        let ino = self.resolve(id)?;
        let target = self.vfs().readlink(ino).await.map_err(|e| status(&e))?;
        Ok(nfspath3(target.into()))
    }

    async fn fsinfo(&self, root_fileid: &NfsHandle) -> NfsResult<FSINFO3resok> {
        let ino = self.resolve(root_fileid)?;
        let obj_attributes = match self.attr(ino).await {
            Ok(attr) => Nfs3Option::Some(fattr(&attr)),
            Err(_) => Nfs3Option::None,
        };
        Ok(FSINFO3resok {
            obj_attributes,
            rtmax: MAX_TRANSFER,
            rtpref: MAX_TRANSFER,
            rtmult: 4096,
            wtmax: MAX_TRANSFER,
            wtpref: MAX_TRANSFER,
            wtmult: 4096,
            dtpref: 64 * 1024,
            maxfilesize: i64::MAX as u64,
            time_delta: nfstime3 {
                seconds: 0,
                nseconds: 1,
            },
            properties: FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME,
        })
    }
}

impl NfsFileSystem for YonderFs {
    async fn setattr(&self, id: &NfsHandle, setattr: sattr3) -> NfsResult<fattr3> {
        let ino = self.resolve(id)?;
        let attr = self
            .vfs()
            .setattr(&self.caller, ino, None, convert::set_attr(&setattr))
            .await
            .map_err(|e| status(&e))?;
        Ok(fattr(&attr))
    }

    async fn write(
        &self,
        id: &NfsHandle,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> NfsResult<(fattr3, stable_how)> {
        let ino = self.resolve(id)?;
        self.exporter
            .write_ino(&self.caller, ino, offset, data)
            .await
            .map_err(|e| status(&e))?;
        let committed = if stable == stable_how::UNSTABLE {
            stable_how::UNSTABLE
        } else {
            self.exporter
                .commit_ino(&self.caller, ino)
                .await
                .map_err(|e| status(&e))?;
            stable_how::FILE_SYNC
        };
        Ok((fattr(&self.attr(ino).await?), committed))
    }

    async fn create(
        &self,
        dirid: &NfsHandle,
        filename: &filename3<'_>,
        attr: sattr3,
    ) -> NfsResult<(NfsHandle, fattr3)> {
        let dir = self.resolve(dirid)?;
        let mode = convert::creation_mode(&attr, 0o644);
        let (fh, made) = self
            .vfs()
            .create(&self.caller, dir, filename.as_ref(), mode, of::READ_WRITE)
            .await
            .map_err(|e| status(&e))?;
        if let Err(e) = self.vfs().release(fh).await {
            tracing::warn!(
                "create: closing {}: {e}",
                String::from_utf8_lossy(filename.as_ref())
            );
        }
        let made = self.apply_rest(made, &attr).await?;
        Ok((self.handle_of(made.ino)?, fattr(&made)))
    }

    async fn create_exclusive(
        &self,
        dirid: &NfsHandle,
        filename: &filename3<'_>,
        createverf: createverf3,
    ) -> NfsResult<NfsHandle> {
        let dir = self.resolve(dirid)?;
        let name = filename.as_ref();
        let stamp = convert::timespec(verifier_time(&createverf));
        let flags = of::READ_WRITE | of::EXCLUSIVE;
        match self.vfs().create(&self.caller, dir, name, 0o644, flags).await {
            Ok((fh, made)) => {
                if let Err(e) = self.vfs().release(fh).await {
                    tracing::warn!("create: closing {}: {e}", String::from_utf8_lossy(name));
                }
                let times = SetAttr {
                    atime: SetTime::Set(stamp),
                    mtime: SetTime::Set(stamp),
                    ..SetAttr::default()
                };
                self.vfs()
                    .setattr(&self.caller, made.ino, None, times)
                    .await
                    .map_err(|e| status(&e))?;
                self.handle_of(made.ino)
            }
            Err(e) if e.errno() == Errno::EEXIST => {
                let ino = self.lookup_ino(dir, name).await?;
                let attr = self.attr(ino).await?;
                if attr.kind == FileKind::Regular && attr.mtime == stamp && attr.atime == stamp {
                    self.handle_of(ino)
                } else {
                    Err(nfsstat3::NFS3ERR_EXIST)
                }
            }
            Err(e) => Err(status(&e)),
        }
    }

    async fn mkdir(&self, dirid: &NfsHandle, dirname: &filename3<'_>) -> NfsResult<(NfsHandle, fattr3)> {
        let dir = self.resolve(dirid)?;
        let (handle, made) = self.mkdir_with(dir, dirname.as_ref(), &sattr3::default()).await?;
        Ok((handle, fattr(&made)))
    }

    /// REMOVE and RMDIR both come here (`nfs3_server` routes them alike):
    /// what the name is decides.
    async fn remove(&self, dirid: &NfsHandle, filename: &filename3<'_>) -> NfsResult<()> {
        let dir = self.resolve(dirid)?;
        let name = filename.as_ref();
        let vfs = self.vfs();
        let attr = vfs
            .lookup_uncounted(&self.caller, dir, name)
            .await
            .map_err(|e| status(&e))?;
        let removed: Result<(), VfsError> = if attr.kind == FileKind::Directory {
            vfs.rmdir(&self.caller, dir, name).await
        } else {
            vfs.unlink(&self.caller, dir, name).await
        };
        removed.map_err(|e| status(&e))
    }

    async fn rename<'a>(
        &self,
        from_dirid: &NfsHandle,
        from_filename: &filename3<'a>,
        to_dirid: &NfsHandle,
        to_filename: &filename3<'a>,
    ) -> NfsResult<()> {
        let from = self.resolve(from_dirid)?;
        let to = self.resolve(to_dirid)?;
        self.vfs()
            .rename(
                &self.caller,
                from,
                from_filename.as_ref(),
                to,
                to_filename.as_ref(),
                RenameFlags::default(),
            )
            .await
            .map_err(|e| status(&e))
    }

    async fn symlink<'a>(
        &self,
        dirid: &NfsHandle,
        linkname: &filename3<'a>,
        symlink: &nfspath3<'a>,
        _attr: &sattr3,
    ) -> NfsResult<(NfsHandle, fattr3)> {
        let dir = self.resolve(dirid)?;
        let made = self
            .vfs()
            .symlink(&self.caller, dir, linkname.as_ref(), symlink.as_ref())
            .await
            .map_err(|e| status(&e))?;
        Ok((self.handle_of(made.ino)?, fattr(&made)))
    }

    async fn commit(&self, id: &NfsHandle, _offset: u64, _count: u32) -> NfsResult<()> {
        let ino = self.resolve(id)?;
        self.exporter
            .commit_ino(&self.caller, ino)
            .await
            .map_err(|e| status(&e))
    }
}
