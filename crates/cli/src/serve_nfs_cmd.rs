//! `yonder serve-nfs SOURCE`: serves SOURCE over NFSv3 on 127.0.0.1 and
//! prints the port and the command that mounts it, for the user to run
//! (with the rights to mount); serves until a signal.

use crate::{ConnectArgs, LinkArgs};
use clap::Args;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use yonder_manager::mount_builder::MountBuilder;
use yonder_manager::protocol::{ConnectSpec, MountSpec};
use yonder_nfs::{mount_command, NfsConfig, NfsFrontend, Os};
use yonder_remote::{Link, Source};

#[derive(Args)]
pub struct ServeNfsArgs {
    /// What to serve: a local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
    source: String,
    /// The port on 127.0.0.1 (default: a free one).
    #[arg(long, value_name = "PORT")]
    nfs_port: Option<u16>,
    /// Refuse every change.
    #[arg(long)]
    read_only: bool,
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    link: LinkArgs,
}

pub fn run(args: ServeNfsArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.connect.debug, None)?;
    let source = Source::parse(&args.source)?;
    source.check_local_root(&args.source)?;
    let connect = args.connect.options();
    let link_options = args.link.options()?;
    let spec = MountSpec {
        connect: ConnectSpec::new(args.source.clone(), &connect, args.link.spec()),
        mountpoint: PathBuf::from(&args.source),
        read_only: args.read_only,
        attr_ttl_secs: 60.0,
        dir_ttl_secs: 60.0,
        allow_other: false,
        default_permissions: false,
        no_default_permissions: false,
        allow_non_empty: false,
        fuse_options: Vec::new(),
        debug: args.connect.debug,
        op_timeout_secs: 20.0,
        frontend: yonder_nfs::FRONTEND_NAME.into(),
        write_back: false,
        write_back_cache: None,
    };
    let frontend = NfsFrontend::serve_only(NfsConfig {
        port: args.nfs_port,
        ..NfsConfig::default()
    });
    let port = frontend.port();
    let builder = MountBuilder::with_frontend(&spec, Box::new(frontend))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("yonder")
        .build()?;
    let (link, served) = runtime.block_on(async {
        let link = Link::connect(&source, &connect, link_options).await?;
        let built = builder.start(&link, &spec.mountpoint).await?;
        anyhow::Ok((link, built.handle))
    })?;
    let port = (*port.borrow()).ok_or_else(|| anyhow::anyhow!("serve-nfs: the server reported no port"))?;
    let mount = mount_command(
        Os::current().unwrap_or(Os::Linux),
        port,
        &PathBuf::from("MOUNTPOINT"),
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "serving {} over NFSv3 on 127.0.0.1:{port}", args.source)?;
    writeln!(out, "mount it with: {mount}")?;
    out.flush()?;
    drop(out);
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut int = signal(SignalKind::interrupt())?;
            let mut term = signal(SignalKind::terminate())?;
            let mut hup = signal(SignalKind::hangup())?;
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        }
        // A console's Ctrl+C (or Ctrl+Break): Windows's only stop signal.
        #[cfg(windows)]
        tokio::signal::ctrl_c().await?;
        anyhow::Ok(())
    })?;
    tracing::info!("stopping: sending buffered writes");
    if let Err(e) = served.flush() {
        tracing::warn!("serve-nfs: sending buffered writes: {e}");
    }
    served.unmount(false)?;
    drop(served);
    link.close();
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(ExitCode::SUCCESS)
}
