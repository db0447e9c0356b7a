//! `broker`: run an MQTT broker node, or (`broker ctl ...`) talk to a running
//! one through its admin API.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use broker::seam::Runtime;
use broker::{Config, Server};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// A clustered MQTT broker (MQTT 3.1, 3.1.1 and 5.0).
///
/// With no arguments it listens on 127.0.0.1:1883 and accepts anonymous
/// clients. See broker/broker.toml for every configuration key and its default.
#[derive(Debug, Parser)]
#[command(name = "broker", version)]
struct Args {
    /// Configuration file (TOML).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Talk to a running node through its admin API (`[admin] bind`).
    Ctl {
        /// The node's admin API address.
        #[arg(long, default_value = "127.0.0.1:18083")]
        admin: String,
        /// Print the API's JSON instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        what: Ctl,
    },
}

#[derive(Debug, Subcommand)]
enum Ctl {
    /// The node's counters.
    Stats,
    /// The cluster as this node sees it.
    Cluster {
        #[command(subcommand)]
        what: ClusterCtl,
    },
    /// Leave the cluster gracefully and stop the node (like SIGTERM).
    Leave,
}

#[derive(Debug, Subcommand)]
enum ClusterCtl {
    /// Members, their incarnation and link state, routes held per member, forwarding counters.
    Status,
    /// Leave the cluster gracefully and stop the node.
    Leave,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Ctl { admin, json, what }) = &args.command {
        return ctl::run(admin, *json, what);
    }
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if args.check_config {
        eprintln!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let bind = config.listeners.tcp.bind;
    let server = match Server::start(config, Runtime::tokio()).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("error: cannot listen on {bind}: {error}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        () = wait_for_signal() => {}
        () = server.stop_requested() => tracing::info!("stop requested through the admin API"),
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Returns on ctrl-c or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; only ctrl-c stops the broker");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `broker ctl`: a few HTTP/1.0 requests to the admin API, by hand (std only:
/// the binary needs no HTTP client for three endpoints).
mod ctl {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::process::ExitCode;
    use std::time::Duration;

    use super::{ClusterCtl, Ctl};

    pub fn run(admin: &str, json: bool, what: &Ctl) -> ExitCode {
        let (method, path) = match what {
            Ctl::Stats => ("GET", "/api/v1/stats"),
            Ctl::Cluster { what: ClusterCtl::Status } => ("GET", "/api/v1/cluster"),
            Ctl::Cluster { what: ClusterCtl::Leave } | Ctl::Leave => ("POST", "/api/v1/cluster/leave"),
        };
        match request(admin, method, path) {
            Ok((200..=299, body)) => {
                let mut out = std::io::stdout().lock();
                let text = match (json, what) {
                    (false, Ctl::Cluster { what: ClusterCtl::Status }) => summary(&body).unwrap_or(body),
                    _ => body,
                };
                let _ = writeln!(out, "{}", text.trim_end());
                ExitCode::SUCCESS
            }
            Ok((status, body)) => {
                eprintln!("error: {admin}{path}: HTTP {status}: {}", body.trim_end());
                ExitCode::FAILURE
            }
            Err(error) => {
                eprintln!("error: cannot reach the admin API at {admin} ([admin] bind in the node's config): {error}");
                ExitCode::FAILURE
            }
        }
    }

    fn request(admin: &str, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(admin)?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "{method} {path} HTTP/1.0\r\nHost: {admin}\r\nContent-Length: 0\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((status, body.to_string()))
    }

    /// The cluster status as a few lines for people.
    fn summary(body: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        let mut out = format!(
            "node {} (incarnation {})\n{:<24} {:>22} {:>6} {:>12}\n",
            v["node"].as_str()?,
            v["incarnation"],
            "member",
            "incarnation",
            "link",
            "routes held"
        );
        let routes_of = |name: &str| {
            v["remote_routes"].as_array().and_then(|all| {
                all.iter().find(|o| o[0].as_str() == Some(name)).and_then(|o| o[1].as_array().map(|r| r.len()))
            })
        };
        for peer in v["peers"].as_array()? {
            let name = peer[0].as_str()?;
            let link = if peer[2].as_bool()? { "up" } else { "down" };
            out += &format!("{name:<24} {:>22} {link:>6} {:>12}\n", peer[1], routes_of(name).unwrap_or(0));
        }
        let c = &v["counters"];
        out += &format!(
            "local routes {}; forwarded {}, received {}, dropped (link full) {}; acks released on timeout {}, on node down {}; \
             retained applied {}, superseded {}; wills guarded {}, published for dead nodes {}\n",
            v["local_routes"].as_array()?.len(),
            c["forwarded"],
            c["forwards_received"],
            v["forwards_dropped"],
            c["forward_timeouts"],
            c["forward_released_node_down"],
            c["retained_applied"],
            c["retained_superseded"],
            v["wills_guarded"],
            c["wills_published_for_dead_nodes"],
        );
        Some(out)
    }
}
