//! `yonder-bench`: throughput and round-trip rates of the client library.
//!
//! For a file of `--size-mib` MiB, over a locally spawned agent and over ssh
//! to a private sshd on loopback, it measures sequential read and write
//! MB/s and `lstat` round trips per second with 1 and with 64 requests in
//! flight; for ssh it also times `ssh host cat FILE > /dev/null` on the same
//! file, the ceiling any ssh-borne transfer can reach.
//!
//! Run with `./x bench client` (builds with --release).

// The benchmark runs the agent and sshd of the test kit: Unix only.
#[cfg(unix)]
mod bench {
    use anyhow::Context;
    use clap::Parser;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use yonder_remote::proto::open_flags;
    use yonder_remote::transfer::{read_to, write_from, Pipeline};
    use yonder_remote::{ConnectOptions, Remote, Source};
    use yonder_testkit::Sshd;

    #[derive(Parser)]
    struct Args {
        /// The `yonder` binary to run as agent.
        #[arg(long)]
        yonder: PathBuf,
        /// File size for the sequential tests.
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        /// Seconds per round-trip rate measurement.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Repetitions of each throughput measurement (the best is reported).
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        /// Directory for the test file (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Only these transports (local, ssh).
        #[arg(long, value_delimiter = ',', default_value = "local,ssh")]
        transports: Vec<String>,
    }

    fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
        bytes as f64 / 1e6 / elapsed.as_secs_f64()
    }

    async fn seq_read(client: &Arc<dyn Remote>, path: &[u8]) -> anyhow::Result<(u64, Duration)> {
        let start = Instant::now();
        let (h, _) = client.open(path, open_flags::READ_ONLY, 0, None).await?;
        let mut sink = tokio::io::sink();
        let n = read_to(
            client.clone(),
            h,
            0,
            Pipeline {
                chunk: 4 << 20,
                depth: 4,
            },
            &mut sink,
        )
        .await?;
        client.close(h).await?;
        Ok((n, start.elapsed()))
    }

    async fn seq_write(client: &Arc<dyn Remote>, path: &[u8], size: u64) -> anyhow::Result<(u64, Duration)> {
        let data = vec![0x5au8; size as usize];
        let start = Instant::now();
        let flags = open_flags::WRITE_ONLY | open_flags::CREATE | open_flags::TRUNCATE;
        let (h, _) = client.open(path, flags, 0o644, None).await?;
        let n = write_from(
            client.clone(),
            h,
            0,
            Pipeline {
                chunk: 1 << 20,
                depth: 16,
            },
            &mut &data[..],
        )
        .await?;
        client.fsync(h, false).await?;
        client.close(h).await?;
        Ok((n, start.elapsed()))
    }

    async fn stat_rate(client: &Arc<dyn Remote>, in_flight: usize, seconds: f64) -> anyhow::Result<f64> {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let start = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..in_flight {
            let client = client.clone();
            workers.spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    client.lstat(b"data").await?;
                    n += 1;
                }
                anyhow::Ok(n)
            });
        }
        let mut total = 0;
        while let Some(r) = workers.join_next().await {
            total += r??;
        }
        Ok(total as f64 / start.elapsed().as_secs_f64())
    }

    /// Times `ssh host cat FILE > /dev/null`, less the time of `ssh host true`
    /// so that both sides are compared without connection setup.
    fn ssh_cat_rate(sshd: &Sshd, file: &Path, size: u64) -> anyhow::Result<f64> {
        let argv = sshd.ssh_argv();
        let timed = |remote: String| -> anyhow::Result<Duration> {
            let start = Instant::now();
            let status = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .arg(remote)
                .stdout(std::fs::File::create("/dev/null")?)
                .status()
                .context("run ssh")?;
            anyhow::ensure!(status.success(), "ssh failed: {status}");
            Ok(start.elapsed())
        };
        let setup = timed("true".into())?;
        let cat = timed(format!("cat {}", file.display()))?;
        Ok(mb_per_s(size, cat.saturating_sub(setup)))
    }

    #[tokio::main]
    pub(crate) async fn main() -> anyhow::Result<()> {
        let args = Args::parse();
        let tmp = tempfile::Builder::new()
            .prefix("yonder-bench")
            .tempdir_in(args.dir.as_deref().unwrap_or(Path::new("/tmp")))?;
        let root = tmp.path().canonicalize()?;
        let size = args.size_mib * 1024 * 1024;
        std::fs::write(root.join("data"), vec![0xa5u8; size as usize])?;
        println!(
            "yonder client benchmark: {} MiB file, best of {} runs\n",
            args.size_mib, args.repeat
        );
        println!(
            "{:<8} {:>12} {:>12} {:>14} {:>14}",
            "", "read MB/s", "write MB/s", "stat/s (1)", "stat/s (64)"
        );

        let sshd = if args.transports.iter().any(|t| t == "ssh") {
            Some(Sshd::start().map_err(anyhow::Error::msg)?)
        } else {
            None
        };
        for transport in &args.transports {
            let mut options = ConnectOptions {
                local_agent: Some(args.yonder.clone()),
                ..Default::default()
            };
            let source = match transport.as_str() {
                "local" => root.display().to_string(),
                "ssh" => {
                    let sshd = sshd.as_ref().expect("sshd started");
                    options.ssh_options = sshd.ssh_options();
                    options.agent_path = Some(args.yonder.display().to_string());
                    sshd.source(&root)
                }
                other => anyhow::bail!("unknown transport {other}"),
            };
            let client = yonder_remote::connect(&Source::parse(&source)?, &options).await?;
            // Warm the page cache so both sides read the same thing.
            seq_read(&client, b"data").await?;
            let mut best_read: f64 = 0.0;
            let mut best_write: f64 = 0.0;
            for _ in 0..args.repeat {
                let (n, t) = seq_read(&client, b"data").await?;
                anyhow::ensure!(n == size, "read {n} of {size} bytes");
                best_read = best_read.max(mb_per_s(n, t));
                let (n, t) = seq_write(&client, b"written", size).await?;
                best_write = best_write.max(mb_per_s(n, t));
            }
            let one = stat_rate(&client, 1, args.seconds).await?;
            let many = stat_rate(&client, 64, args.seconds).await?;
            println!("{transport:<8} {best_read:>12.0} {best_write:>12.0} {one:>14.0} {many:>14.0}");
        }
        if let Some(sshd) = &sshd {
            let mut best: f64 = 0.0;
            for _ in 0..args.repeat {
                best = best.max(ssh_cat_rate(sshd, &root.join("data"), size)?);
            }
            println!(
                "{:<8} {best:>12.0}   (ssh host cat FILE, for reference)",
                "ssh cat"
            );
        }
        Ok(())
    }
}

#[cfg(unix)]
fn main() -> anyhow::Result<()> {
    bench::main()
}

#[cfg(not(unix))]
fn main() {
    eprintln!(
        "yonder-bench: not supported on {} (it runs the Unix agent and sshd)",
        std::env::consts::OS
    );
    std::process::exit(1);
}
