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

    /// Check the configuration and every file it names (users file, JWT key,
    /// ACL file, bans file, certificates, keys, CA files), then exit: 0 if
    /// the broker could start with them, 2 and the first error if not.
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
    /// Edit a users file ([auth.users] file) in place; the node rereads it on reload.
    Users {
        /// The users file.
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        #[command(subcommand)]
        what: users::UsersCtl,
    },
    /// The node's counters.
    Stats,
    /// The cluster as this node sees it.
    Cluster {
        #[command(subcommand)]
        what: ClusterCtl,
    },
    /// Leave the cluster gracefully and stop the node (like SIGTERM).
    Leave,
    /// Reread the listeners' certificates and the authentication and
    /// authorization files (like SIGHUP); prints what failed to load.
    Reload,
    /// Bans by client id, user name or address block, checked at CONNECT.
    Ban {
        #[command(subcommand)]
        what: BanCtl,
    },
}

#[derive(Debug, Subcommand)]
enum BanCtl {
    /// Ban a client id, user name or address block; live clients it matches are closed.
    Add {
        #[command(flatten)]
        target: BanTarget,
        /// Seconds until the ban lapses; without it the ban lasts until removed.
        #[arg(long, value_name = "SECS")]
        duration: Option<u64>,
        /// Why, for the people reading the list.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove a ban.
    Remove {
        #[command(flatten)]
        target: BanTarget,
    },
    /// The bans in force.
    List,
}

/// What a ban matches: exactly one of these.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct BanTarget {
    /// A client identifier (exact).
    #[arg(long)]
    client_id: Option<String>,
    /// A user name (exact).
    #[arg(long)]
    username: Option<String>,
    /// An address block (10.0.0.0/8, 2001:db8::/32) or one address; host bits
    /// must be zero (10.1.2.3/8 is refused as a probable typo of 10.0.0.0/8).
    #[arg(long)]
    cidr: Option<String>,
}

impl BanTarget {
    /// The address block, checked here as the node checks it, so that a typo
    /// is refused with the block probably meant before the node is asked.
    fn check(&self) -> Result<(), String> {
        match &self.cidr {
            Some(block) => broker::authz::Cidr::parse(block).map(drop).map_err(|e| format!("--cidr {e}")),
            None => Ok(()),
        }
    }

    /// The `kind` and `value` fields of the API's JSON.
    fn json(&self) -> serde_json::Value {
        let (kind, value) = match (&self.client_id, &self.username, &self.cidr) {
            (Some(v), _, _) => ("client_id", v.as_str()),
            (_, Some(v), _) => ("username", v.as_str()),
            (_, _, Some(v)) => ("cidr", v.as_str()),
            // clap's group makes one of them required; the API refuses an empty value.
            (None, None, None) => ("client_id", ""),
        };
        serde_json::json!({ "kind": kind, "value": value })
    }
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
    // Before anything binds: a bad file is reported as that file's fault
    // (with its line), not as a listener that failed to start.
    if let Err(error) = broker::server::check_files(&config) {
        eprintln!("error: cannot start: {error}");
        return ExitCode::from(2);
    }
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
    let server = match Server::start(config, Runtime::tokio()).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("error: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(server.clone()));
    tokio::select! {
        () = wait_for_signal() => {}
        () = server.stop_requested() => tracing::info!("stop requested through the admin API"),
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Reloads on every SIGHUP (certificates, authentication and authorization
/// files); a part that fails to load keeps its previous state and is logged.
#[cfg(unix)]
async fn reload_on_hangup(server: Server) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(error) => return tracing::warn!(%error, "cannot watch SIGHUP; reload with `broker ctl reload`"),
    };
    while hangup.recv().await.is_some() {
        match server.reload() {
            Ok(()) => tracing::info!("reloaded on SIGHUP"),
            Err(errors) => {
                for error in errors {
                    tracing::error!(%error, "reload on SIGHUP: this part keeps its previous state");
                }
            }
        }
    }
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

    use super::{BanCtl, ClusterCtl, Ctl};

    pub fn run(admin: &str, json: bool, what: &Ctl) -> ExitCode {
        if let Ctl::Ban { what: BanCtl::Add { target, .. } | BanCtl::Remove { target } } = what
            && let Err(error) = target.check()
        {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
        let mut payload = String::new();
        let (method, path) = match what {
            Ctl::Users { file, what } => return super::users::run(file, what),
            Ctl::Stats => ("GET", "/api/v1/stats"),
            Ctl::Cluster { what: ClusterCtl::Status } => ("GET", "/api/v1/cluster"),
            Ctl::Cluster { what: ClusterCtl::Leave } | Ctl::Leave => ("POST", "/api/v1/cluster/leave"),
            Ctl::Reload => ("POST", "/api/v1/reload"),
            Ctl::Ban { what: BanCtl::List } => ("GET", "/api/v1/bans"),
            Ctl::Ban { what: BanCtl::Add { target, duration, reason } } => {
                let mut ban = target.json();
                ban["duration_secs"] = serde_json::json!(duration);
                ban["reason"] = serde_json::json!(reason);
                payload = ban.to_string();
                ("POST", "/api/v1/bans")
            }
            Ctl::Ban { what: BanCtl::Remove { target } } => {
                payload = target.json().to_string();
                ("DELETE", "/api/v1/bans")
            }
        };
        match request(admin, method, path, &payload) {
            Ok((200..=299, body)) => {
                let mut out = std::io::stdout().lock();
                let text = match (json, what) {
                    (false, Ctl::Cluster { what: ClusterCtl::Status }) => summary(&body).unwrap_or(body),
                    (false, Ctl::Ban { what: BanCtl::List }) => bans_summary(&body).unwrap_or(body),
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

    /// One request; `body` (JSON), if not empty, goes with it.
    fn request(admin: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(admin)?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let length = body.len();
        write!(stream, "{method} {path} HTTP/1.0\r\nHost: {admin}\r\nContent-Length: {length}\r\n")?;
        if !body.is_empty() {
            write!(stream, "Content-Type: application/json\r\n")?;
        }
        write!(stream, "\r\n{body}")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((status, body.to_string()))
    }

    /// The bans as one line each: kind, value, expiry, reason.
    fn bans_summary(body: &str) -> Option<String> {
        let bans: Vec<serde_json::Value> = serde_json::from_str(body).ok()?;
        let mut out = format!("{} bans\n", bans.len());
        for ban in &bans {
            let until = ban["until_ms"].as_u64().map_or_else(|| "never".to_string(), |ms| format!("unix ms {ms}"));
            let (kind, value) = (ban["kind"].as_str()?, ban["value"].as_str()?);
            out += &format!("{kind:<10} {value:<40} until {until:<24} {}\n", ban["reason"].as_str().unwrap_or(""));
        }
        Some(out)
    }

    /// The cluster status as a few lines for people.
    fn summary(body: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        let mut out = format!(
            "node {} (incarnation {})\n{:<24} {:>22} {:>6} {:>12} {:>16}\n",
            v["node"].as_str()?,
            v["incarnation"],
            "member",
            "incarnation",
            "link",
            "routes held",
            "forwards pending"
        );
        let pending_of = |name: &str| {
            v["forwards_pending"]
                .as_array()
                .and_then(|all| all.iter().find(|p| p[0].as_str() == Some(name)).and_then(|p| p[1].as_u64()))
        };
        let routes_of = |name: &str| {
            v["remote_routes"].as_array().and_then(|all| {
                all.iter().find(|o| o[0].as_str() == Some(name)).and_then(|o| o[1].as_array().map(|r| r.len()))
            })
        };
        for peer in v["peers"].as_array()? {
            let name = peer[0].as_str()?;
            let link = if peer[2].as_bool()? { "up" } else { "down" };
            let pending = pending_of(name).unwrap_or(0);
            out +=
                &format!("{name:<24} {:>22} {link:>6} {:>12} {pending:>16}\n", peer[1], routes_of(name).unwrap_or(0));
        }
        let c = &v["counters"];
        out += &format!(
            "local routes {}; forwarded {}, received {}, dropped (link full) {}; acks released on timeout {}, on node down {}; \
             retained applied {}, superseded {}; wills guarded {}, published for dead nodes {}; \
             connections settled in favour of a later one on another node {}\n",
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
            v["duplicates_settled"],
        );
        Some(out)
    }
}

/// `broker ctl users`: edits the users file directly (no running node needed).
mod users {
    use std::io::{BufRead, IsTerminal, Write};
    use std::path::Path;
    use std::process::ExitCode;

    use broker::auth::password::{NewHash, hash_new};
    use broker::auth::users_file::UsersFile;
    use clap::{Subcommand, ValueEnum};

    #[derive(Debug, Subcommand)]
    pub enum UsersCtl {
        /// Add a user (the password from --password, or one line of stdin).
        Add {
            name: String,
            #[arg(long)]
            password: Option<String>,
            #[arg(long, value_enum, default_value_t = Hash::Argon2id)]
            hash: Hash,
        },
        /// Change a user's password.
        Passwd {
            name: String,
            #[arg(long)]
            password: Option<String>,
            #[arg(long, value_enum, default_value_t = Hash::Argon2id)]
            hash: Hash,
        },
        /// Remove a user.
        Remove { name: String },
        /// The users and their hash kinds.
        List,
    }

    /// The hash of a new password: argon2id unless the user needs SCRAM
    /// (scram-sha-256) or a PBKDF2 consumer (pbkdf2-sha256).
    #[derive(Debug, Clone, Copy, ValueEnum)]
    pub enum Hash {
        Argon2id,
        Pbkdf2Sha256,
        #[value(name = "scram-sha-256")]
        ScramSha256,
    }

    pub fn run(file: &Path, what: &UsersCtl) -> ExitCode {
        match edit(file, what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        }
    }

    fn edit(file: &Path, what: &UsersCtl) -> Result<(), String> {
        let mut users = UsersFile::load_or_empty(file)?;
        match what {
            UsersCtl::List => {
                let mut out = std::io::stdout().lock();
                for (name, hash) in users.users() {
                    let kind = broker::auth::password::StoredHash::parse(hash).map_or("?".into(), |h| format!("{h:?}"));
                    writeln!(out, "{name}\t{kind}").map_err(|e| e.to_string())?;
                }
                return Ok(());
            }
            UsersCtl::Remove { name } => {
                if !users.remove(name) {
                    return Err(format!("{}: no user {name:?}", file.display()));
                }
            }
            UsersCtl::Add { name, password, hash } | UsersCtl::Passwd { name, password, hash } => {
                let adding = matches!(what, UsersCtl::Add { .. });
                match (adding, users.get(name).is_some()) {
                    (true, true) => return Err(format!("{}: user {name:?} exists (use passwd)", file.display())),
                    (false, false) => return Err(format!("{}: no user {name:?} (use add)", file.display())),
                    _ => {}
                }
                let password = match password {
                    Some(password) => password.clone(),
                    None => read_password()?,
                };
                if password.is_empty() {
                    return Err("empty password".into());
                }
                let kind = match hash {
                    Hash::Argon2id => NewHash::Argon2id,
                    Hash::Pbkdf2Sha256 => NewHash::Pbkdf2Sha256,
                    Hash::ScramSha256 => NewHash::ScramSha256,
                };
                let hashed = hash_new(kind, password.as_bytes(), &mut broker::seam::rng(None))?;
                users.set(name, hashed)?;
            }
        }
        users.save(file).map_err(|e| format!("{}: cannot write: {e}", file.display()))
    }

    /// One line of stdin, without its line ending.
    fn read_password() -> Result<String, String> {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprint!("password (echoed): ");
        }
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(|e| format!("reading the password: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}
