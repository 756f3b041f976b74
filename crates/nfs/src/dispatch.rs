//! The RPC front of the public port. `nfs3_server` has no LINK or MKNOD,
//! made-up FSSTAT and PATHCONF numbers and a MKDIR that drops the mode,
//! and no hook to answer a procedure itself; so each connection's records
//! are read here first: those five NFS procedures are answered here, with the crate's
//! XDR types, and every other record goes unchanged to the crate's server
//! on a private loopback port, over a connection of its own per client
//! connection. Replies from both go back whole, one record at a time.

use crate::convert::{self, fattr};
use crate::fs::YonderFs;
use crate::handle::{HandleCodec, NfsHandle};
use nfs3_server::nfs3_types::nfs3::{
    self as nfs, mknoddata3, nfsstat3, wcc_data, FSSTAT3args, FSSTAT3res, FSSTAT3resfail, FSSTAT3resok,
    LINK3args, LINK3res, LINK3resfail, LINK3resok, MKDIR3args, MKDIR3res, MKDIR3resfail, MKDIR3resok,
    MKNOD3args, MKNOD3res, MKNOD3resfail, MKNOD3resok, Nfs3Option, PATHCONF3args, PATHCONF3res,
    PATHCONF3resfail, PATHCONF3resok,
};
use nfs3_server::nfs3_types::rpc::{
    accept_stat_data, accepted_reply, auth_flavor, auth_stat, auth_unix, msg_body, opaque_auth,
    rejected_reply, reply_body, rpc_msg,
};
use nfs3_server::nfs3_types::xdr_codec::{Pack, Unpack, Void};
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use yonder_proto::file_type;
use yonder_vfs::Ino;

const PROC_MKDIR: u32 = 9;
const PROC_MKNOD: u32 = 11;
const PROC_LINK: u32 = 15;
const PROC_FSSTAT: u32 = 18;
const PROC_PATHCONF: u32 = 20;

/// Largest record taken from a client: a 1 MiB WRITE and its header, with
/// room to spare.
const MAX_RECORD: usize = 4 << 20;

/// What the front needs of the server behind it.
#[derive(Clone)]
pub struct Front {
    pub fs: Arc<YonderFs>,
    pub codec: HandleCodec,
    pub backend: SocketAddr,
    /// Becomes true when the server stops: open connections end too.
    pub stopped: watch::Receiver<bool>,
    /// How many clients are connected.
    pub connections: Arc<watch::Sender<usize>>,
}

/// Accepts connections on the public port until the server stops.
pub async fn accept_loop(listener: TcpListener, front: Front) {
    let mut stopped = front.stopped.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|s| *s) => return,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("nfs: accepting a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if !front.fs.access().permits_peer(&peer) {
            tracing::warn!("nfs: refusing a connection from {peer}: not a loopback address");
            continue;
        }
        let front = front.clone();
        front.connections.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            if let Err(e) = serve_connection(socket, &front).await {
                tracing::debug!("nfs: connection from {peer} ended: {e}");
            }
            front.connections.send_modify(|n| *n -= 1);
        });
    }
}

async fn serve_connection(socket: TcpStream, front: &Front) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let backend = TcpStream::connect(front.backend).await?;
    backend.set_nodelay(true)?;
    let (mut client_in, mut client_out) = socket.into_split();
    let (mut backend_in, mut backend_out) = backend.into_split();
    let (replies, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();

    let writer = tokio::spawn(async move {
        while let Some(record) = outgoing.recv().await {
            if client_out.write_all(&record).await.is_err() {
                return;
            }
        }
    });
    let from_backend = replies.clone();
    let relay = tokio::spawn(async move {
        while let Ok(Some(record)) = read_record(&mut backend_in).await {
            if from_backend.send(framed(record)).is_err() {
                return;
            }
        }
    });

    let mut stopped = front.stopped.clone();
    let ended = loop {
        let next = tokio::select! {
            next = read_record(&mut client_in) => next,
            _ = stopped.wait_for(|s| *s) => Ok(None),
        };
        let record = match next {
            Ok(Some(record)) => record,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        match own_procedure(&record) {
            Some(call) => {
                let front = front.clone();
                let replies = replies.clone();
                tokio::spawn(async move {
                    let reply = front.answer(call, &record).await;
                    let _ = replies.send(framed(reply));
                });
            }
            None => {
                if let Err(e) = backend_out.write_all(&framed(record)).await {
                    break Err(e);
                }
            }
        }
    };
    relay.abort();
    drop(replies);
    if *front.stopped.borrow() {
        writer.abort();
    } else {
        let _ = writer.await;
    }
    ended
}

/// One RPC record, its fragments joined; `None` at the end of the stream.
async fn read_record(input: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Vec<u8>>> {
    let mut record = Vec::new();
    loop {
        let mut header = [0u8; 4];
        match input.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && record.is_empty() => return Ok(None),
            Err(e) => return Err(e),
        }
        let header = u32::from_be_bytes(header);
        let last = header & 0x8000_0000 != 0;
        let length = (header & 0x7fff_ffff) as usize;
        if record.len() + length > MAX_RECORD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("an RPC record of more than {MAX_RECORD} bytes"),
            ));
        }
        let start = record.len();
        record.resize(start + length, 0);
        input.read_exact(&mut record[start..]).await?;
        if last {
            return Ok(Some(record));
        }
    }
}

/// A record as one last fragment.
fn framed(record: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len() + 4);
    out.extend_from_slice(&(record.len() as u32 | 0x8000_0000).to_be_bytes());
    out.extend_from_slice(&record);
    out
}

/// A call the front answers itself: its id, procedure, credentials and
/// where its arguments start.
struct OwnCall {
    xid: u32,
    procedure: u32,
    auth: Option<auth_unix>,
    args_at: usize,
}

fn own_procedure(record: &[u8]) -> Option<OwnCall> {
    let (msg, args_at) = rpc_msg::unpack(&mut Cursor::new(record)).ok()?;
    let msg_body::CALL(call) = msg.body else {
        return None;
    };
    let ours = matches!(
        call.proc,
        PROC_MKDIR | PROC_MKNOD | PROC_LINK | PROC_FSSTAT | PROC_PATHCONF
    );
    if call.prog != nfs::PROGRAM || call.vers != nfs::VERSION || !ours {
        return None;
    }
    let auth = (call.cred.flavor == auth_flavor::AUTH_UNIX)
        .then(|| auth_unix::unpack(&mut Cursor::new(call.cred.body.as_ref())).ok())
        .flatten()
        .map(|(auth, _)| auth);
    Some(OwnCall {
        xid: msg.xid,
        procedure: call.proc,
        auth,
        args_at,
    })
}

impl Front {
    async fn answer(&self, call: OwnCall, record: &[u8]) -> Vec<u8> {
        if !self.fs.access().permits(call.auth.as_ref()) {
            tracing::warn!("nfs: refusing a call from uid {:?}", call.auth.map(|a| a.uid));
            let body = reply_body::MSG_DENIED(rejected_reply::auth_error(auth_stat::AUTH_TOOWEAK));
            return reply(call.xid, body, &Void);
        }
        let mut args = Cursor::new(&record[call.args_at..]);
        let garbage = || {
            let body = accepted(accept_stat_data::GARBAGE_ARGS);
            reply(call.xid, body, &Void)
        };
        let success = |result: &dyn PackDyn| reply(call.xid, accepted(accept_stat_data::SUCCESS), result);
        match call.procedure {
            PROC_LINK => match LINK3args::unpack(&mut args) {
                Ok((a, _)) => success(&self.link(a).await),
                Err(_) => garbage(),
            },
            PROC_FSSTAT => match FSSTAT3args::unpack(&mut args) {
                Ok((a, _)) => success(&self.fsstat(a).await),
                Err(_) => garbage(),
            },
            PROC_PATHCONF => match PATHCONF3args::unpack(&mut args) {
                Ok((a, _)) => success(&self.pathconf(a).await),
                Err(_) => garbage(),
            },
            PROC_MKDIR => match MKDIR3args::unpack(&mut args) {
                Ok((a, _)) => success(&self.mkdir(a).await),
                Err(_) => garbage(),
            },
            _ => match MKNOD3args::unpack(&mut args) {
                Ok((a, _)) => success(&self.mknod(a).await),
                Err(_) => garbage(),
            },
        }
    }

    fn resolve(&self, fh: &nfs::nfs_fh3) -> Result<Ino, nfsstat3> {
        let handle: NfsHandle = self.codec.decode(fh)?;
        self.fs.resolve(&handle)
    }

    async fn post_op(&self, ino: Result<Ino, nfsstat3>) -> nfs::post_op_attr {
        match ino {
            Ok(ino) => match self.fs.attr(ino).await {
                Ok(attr) => Nfs3Option::Some(fattr(&attr)),
                Err(_) => Nfs3Option::None,
            },
            Err(_) => Nfs3Option::None,
        }
    }

    async fn pre_op(&self, ino: Ino) -> nfs::pre_op_attr {
        match self.fs.attr(ino).await {
            Ok(attr) => Nfs3Option::Some(convert::wcc(&attr)),
            Err(_) => Nfs3Option::None,
        }
    }

    async fn link(&self, args: LINK3args<'_>) -> LINK3res {
        let (file, dir) = match (self.resolve(&args.file), self.resolve(&args.link.dir)) {
            (Ok(file), Ok(dir)) => (file, dir),
            (Err(stat), _) | (_, Err(stat)) => {
                return LINK3res::Err((
                    stat,
                    LINK3resfail {
                        file_attributes: Nfs3Option::None,
                        linkdir_wcc: wcc_data::default(),
                    },
                ));
            }
        };
        let before = self.pre_op(dir).await;
        let linked = self.fs.link(file, dir, args.link.name.as_ref()).await;
        let linkdir_wcc = wcc_data {
            before,
            after: self.post_op(Ok(dir)).await,
        };
        match linked {
            Ok(attr) => LINK3res::Ok(LINK3resok {
                file_attributes: Nfs3Option::Some(fattr(&attr)),
                linkdir_wcc,
            }),
            Err(stat) => LINK3res::Err((
                stat,
                LINK3resfail {
                    file_attributes: self.post_op(Ok(file)).await,
                    linkdir_wcc,
                },
            )),
        }
    }

    async fn fsstat(&self, args: FSSTAT3args) -> FSSTAT3res {
        let ino = match self.resolve(&args.fsroot) {
            Ok(ino) => ino,
            Err(stat) => return FSSTAT3res::Err((stat, FSSTAT3resfail::default())),
        };
        let obj_attributes = self.post_op(Ok(ino)).await;
        match self.fs.statfs(ino).await {
            Ok(st) => {
                let unit = if st.fragment_size > 0 {
                    st.fragment_size
                } else {
                    st.block_size
                };
                FSSTAT3res::Ok(FSSTAT3resok {
                    obj_attributes,
                    tbytes: st.blocks.saturating_mul(unit),
                    fbytes: st.blocks_free.saturating_mul(unit),
                    abytes: st.blocks_available.saturating_mul(unit),
                    tfiles: st.files,
                    ffiles: st.files_free,
                    afiles: st.files_available,
                    // The remote changes under us: ask every time.
                    invarsec: 0,
                })
            }
            Err(stat) => FSSTAT3res::Err((stat, FSSTAT3resfail { obj_attributes })),
        }
    }

    /// The remote's name length limit (the crate answers a fixed 32768).
    async fn pathconf(&self, args: PATHCONF3args) -> PATHCONF3res {
        let ino = match self.resolve(&args.object) {
            Ok(ino) => ino,
            Err(stat) => {
                let fail = PATHCONF3resfail {
                    obj_attributes: Nfs3Option::None,
                };
                return PATHCONF3res::Err((stat, fail));
            }
        };
        let obj_attributes = self.post_op(Ok(ino)).await;
        match self.fs.statfs(ino).await {
            Ok(st) => PATHCONF3res::Ok(PATHCONF3resok {
                obj_attributes,
                // Not known here: the remote's EMLINK says when it is reached.
                linkmax: u32::MAX,
                name_max: u32::try_from(st.name_max).unwrap_or(u32::MAX),
                no_trunc: true,
                chown_restricted: true,
                case_insensitive: false,
                case_preserving: true,
            }),
            Err(stat) => PATHCONF3res::Err((stat, PATHCONF3resfail { obj_attributes })),
        }
    }

    async fn mkdir(&self, args: MKDIR3args<'_>) -> MKDIR3res {
        let dir = match self.resolve(&args.where_.dir) {
            Ok(dir) => dir,
            Err(stat) => return MKDIR3res::Err((stat, MKDIR3resfail::default())),
        };
        let before = self.pre_op(dir).await;
        let made = self
            .fs
            .mkdir_with(dir, args.where_.name.as_ref(), &args.attributes)
            .await;
        let dir_wcc = wcc_data {
            before,
            after: self.post_op(Ok(dir)).await,
        };
        match made {
            Ok((handle, attr)) => MKDIR3res::Ok(MKDIR3resok {
                obj: Nfs3Option::Some(self.codec.encode(&handle)),
                obj_attributes: Nfs3Option::Some(fattr(&attr)),
                dir_wcc,
            }),
            Err(stat) => MKDIR3res::Err((stat, MKDIR3resfail { dir_wcc })),
        }
    }

    async fn mknod(&self, args: MKNOD3args<'_>) -> MKNOD3res {
        let dir = match self.resolve(&args.where_.dir) {
            Ok(dir) => dir,
            Err(stat) => {
                return MKNOD3res::Err((
                    stat,
                    MKNOD3resfail {
                        dir_wcc: wcc_data::default(),
                    },
                ))
            }
        };
        let (mode, rdev, attr) = match &args.what {
            mknoddata3::NF3CHR(d) => (
                file_type::CHAR,
                (d.spec.specdata1, d.spec.specdata2),
                &d.dev_attributes,
            ),
            mknoddata3::NF3BLK(d) => (
                file_type::BLOCK,
                (d.spec.specdata1, d.spec.specdata2),
                &d.dev_attributes,
            ),
            mknoddata3::NF3SOCK(a) => (file_type::SOCKET, (0, 0), a),
            mknoddata3::NF3FIFO(a) => (file_type::FIFO, (0, 0), a),
            mknoddata3::default => {
                return MKNOD3res::Err((
                    nfsstat3::NFS3ERR_BADTYPE,
                    MKNOD3resfail {
                        dir_wcc: wcc_data::default(),
                    },
                ))
            }
        };
        let before = self.pre_op(dir).await;
        let made = self
            .fs
            .mknod(dir, args.where_.name.as_ref(), mode, rdev, attr)
            .await;
        let dir_wcc = wcc_data {
            before,
            after: self.post_op(Ok(dir)).await,
        };
        match made {
            Ok((handle, attr)) => MKNOD3res::Ok(MKNOD3resok {
                obj: Nfs3Option::Some(self.codec.encode(&handle)),
                obj_attributes: Nfs3Option::Some(fattr(&attr)),
                dir_wcc,
            }),
            Err(stat) => MKNOD3res::Err((stat, MKNOD3resfail { dir_wcc })),
        }
    }
}

fn accepted(data: accept_stat_data) -> reply_body<'static> {
    reply_body::MSG_ACCEPTED(accepted_reply {
        verf: opaque_auth::default(),
        reply_data: data,
    })
}

/// `Pack` as a trait object: the results differ in type.
trait PackDyn {
    fn pack_into(&self, out: &mut Vec<u8>);
}

impl<T: Pack> PackDyn for T {
    fn pack_into(&self, out: &mut Vec<u8>) {
        let mut cursor = Cursor::new(out);
        cursor.set_position(cursor.get_ref().len() as u64);
        if let Err(e) = self.pack(&mut cursor) {
            tracing::error!("nfs: encoding a reply: {e}");
        }
    }
}

fn reply(xid: u32, body: reply_body<'_>, result: &dyn PackDyn) -> Vec<u8> {
    let msg = rpc_msg {
        xid,
        body: msg_body::REPLY(body),
    };
    let mut out = Vec::with_capacity(256);
    msg.pack_into(&mut out);
    result.pack_into(&mut out);
    out
}
