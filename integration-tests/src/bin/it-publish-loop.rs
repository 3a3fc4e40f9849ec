//! The client of the crash test: publishes advisories to a daemon in a loop until a publish
//! fails (the daemon was killed), printing one line per acknowledged publish.
//!
//! Usage: `it-publish-loop --socket PATH [--prefix P] [--concurrency N] [--max-seconds S]`.
//! Output on stdout, flushed line by line: `START` once connected, then
//! `ACK <item_id> <advisory_id> <revision>` after each acknowledged Publish (only after the
//! daemon answered, i.e. after it reported the item durable). Rounds alternate sequential
//! publishes (new revisions of `<P>-s0..2`, and a fresh advisory with a daemon-generated id that
//! is then withdrawn: its tombstone is acknowledged with an ACK line too) and a burst of N
//! concurrent publishes (`<P>-c0..N-1`), which the daemon's group commit batches.
//! Exit: 0 when `--max-seconds` ran out without a failure, 3 after the first failed publish,
//! 2 on bad usage.
//! Must never: print an ACK line for a publish the daemon did not acknowledge.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tanoa_proto::v1 as pb;
use tanoa_proto::v1::operator_client::OperatorClient;
use tonic::transport::Channel;

#[derive(Debug)]
struct Args {
    socket: PathBuf,
    prefix: String,
    concurrency: usize,
    max_seconds: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut socket = None;
    let mut prefix = "crash".to_string();
    let mut concurrency = 4usize;
    let mut max_seconds = 60u64;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--prefix" => prefix = value()?,
            "--concurrency" => concurrency = value()?.parse().context("--concurrency")?,
            "--max-seconds" => max_seconds = value()?.parse().context("--max-seconds")?,
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(Args {
        socket: socket.context("--socket PATH is required")?,
        prefix,
        concurrency: concurrency.max(1),
        max_seconds,
    })
}

/// A valid draft; `n` makes each one distinct. Sample values from documentation ranges only.
fn draft(id: &str, n: u64) -> pb::AdvisoryDraft {
    let ind = |kind: pb::IndicatorKind, value: String| pb::Indicator {
        kind: kind as i32,
        value,
        confidence: 50,
        valid_until_ms: 0,
        note: String::new(),
    };
    pb::AdvisoryDraft {
        id: id.to_string(),
        tlp: pb::Tlp::Green as i32,
        title: format!("Crash-test advisory {n}"),
        summary: format!("Published by it-publish-loop, number {n}."),
        severity: pb::Severity::Medium as i32,
        indicators: vec![
            ind(pb::IndicatorKind::Ipv4, format!("192.0.2.{}", n % 256)),
            ind(pb::IndicatorKind::Domain, format!("c2-{n}.crash.example")),
            ind(pb::IndicatorKind::Sha256, format!("{n:064x}")),
        ],
        ..Default::default()
    }
}

/// Prints one ACK line and flushes it at once (the harness reads it even if we are killed).
fn ack(item_id: &str, advisory_id: &str, revision: u64) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ACK {item_id} {advisory_id} {revision}")?;
    out.flush()
}

async fn publish(
    mut client: OperatorClient<Channel>,
    id: String,
    n: u64,
) -> Result<pb::PublishResponse, String> {
    let r = client
        .publish(pb::PublishRequest {
            draft: Some(draft(&id, n)),
        })
        .await
        .map_err(|s| format!("publish {id:?}: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    ack(&r.item_id, &r.advisory_id, r.revision).map_err(|e| format!("stdout: {e}"))?;
    Ok(r)
}

async fn withdraw(mut client: OperatorClient<Channel>, id: String) -> Result<(), String> {
    let r = client
        .withdraw(pb::WithdrawRequest {
            id: id.clone(),
            reason: "crash-test withdrawal".into(),
        })
        .await
        .map_err(|s| format!("withdraw {id:?}: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    ack(&r.item_id, &id, r.revision).map_err(|e| format!("stdout: {e}"))
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let client = tanoa_daemon::client::connect_unix(&args.socket)
        .await
        .with_context(|| format!("connecting to {}", args.socket.display()))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "START")?;
        out.flush()?;
    }
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let mut n: u64 = 0;
    let mut round: u64 = 0;
    while Instant::now() < deadline {
        // Sequential: revisions of a few advisories, and one with a generated id.
        for k in 0..4u64 {
            n += 1;
            let id = if k == 3 {
                String::new()
            } else {
                format!("{}-s{}", args.prefix, (round + k) % 3)
            };
            let generated = id.is_empty();
            let result = match publish(client.clone(), id, n).await {
                Ok(r) if generated => withdraw(client.clone(), r.advisory_id).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                eprintln!("it-publish-loop: {e}");
                return Ok(false);
            }
        }
        // Concurrent burst: one publish per lane at the same time (group commit).
        let mut tasks = tokio::task::JoinSet::new();
        for lane in 0..args.concurrency {
            n += 1;
            let id = format!("{}-c{lane}", args.prefix);
            tasks.spawn(publish(client.clone(), id, n));
        }
        let mut failed = false;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    eprintln!("it-publish-loop: {e}");
                    failed = true;
                }
                Err(e) => {
                    eprintln!("it-publish-loop: task failed: {e}");
                    failed = true;
                }
            }
        }
        if failed {
            return Ok(false);
        }
        round += 1;
    }
    Ok(true)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("it-publish-loop: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("it-publish-loop: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("it-publish-loop: {e:#}");
            ExitCode::from(1)
        }
    }
}
