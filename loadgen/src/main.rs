//! `loadgen`: conn / sub / pub with emqtt-bench's options, `run` for scenario
//! files (locally or on agents), `agent`, and `report`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Args, Parser, Subcommand};
use loadgen::collect::{RunOptions, run_local};
use loadgen::remote;
use loadgen::result::RunResult;
use loadgen::scenario::{Group, Phase, Scenario, Target};
use loadgen::transport::TransportKind;

#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about = "MQTT load generator: open-loop publishing, latency percentiles, agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open connections and hold them.
    #[command(disable_help_flag = true)]
    Conn {
        #[command(flatten)]
        conn: ConnArgs,
        /// How long to hold the connections ("60s"); until Ctrl-C when absent.
        #[arg(long)]
        duration: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Connect subscribers and receive.
    #[command(disable_help_flag = true)]
    Sub {
        #[command(flatten)]
        conn: ConnArgs,
        /// Topic filter template (%i %c %u %rand_N).
        #[arg(short = 't', long)]
        topic: String,
        #[arg(short = 'q', long, default_value_t = 0)]
        qos: u8,
        /// How long to receive ("60s"); until Ctrl-C when absent.
        #[arg(long)]
        duration: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Connect publishers and publish on a fixed schedule (open loop).
    #[command(disable_help_flag = true)]
    Pub {
        #[command(flatten)]
        conn: ConnArgs,
        /// Topic template (%i %c %u %s %rand_N).
        #[arg(short = 't', long)]
        topic: String,
        #[arg(short = 'q', long, default_value_t = 0)]
        qos: u8,
        /// Payload size in bytes (24 or more carry the timestamp and sequence number).
        #[arg(short = 's', long, default_value_t = 256)]
        size: usize,
        /// Milliseconds between one client's messages.
        #[arg(short = 'I', long = "interval_of_msg", default_value_t = 1000.0)]
        interval_of_msg: f64,
        /// Messages per client; unlimited when absent.
        #[arg(short = 'L', long)]
        limit: Option<u64>,
        /// QoS 1/2 messages awaiting their ack, per client.
        #[arg(short = 'F', long, default_value_t = 64)]
        inflight: u16,
        #[arg(short = 'r', long, action = ArgAction::SetTrue)]
        retain: bool,
        /// Wait until every publisher is connected before the first publish.
        #[arg(short = 'w', long, action = ArgAction::SetTrue)]
        wait: bool,
        /// Stop publishing after this long ("30s").
        #[arg(long)]
        duration: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Run a scenario file, here or split across agents.
    Run {
        scenario: PathBuf,
        /// Agents (host:port, comma separated) to split the clients across.
        #[arg(long, value_delimiter = ',')]
        agents: Vec<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Serve coordinators: run the slice of a scenario each one sends.
    Agent {
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: String,
        /// Source addresses on this machine (replace the scenario's).
        #[arg(long, value_delimiter = ',')]
        ifaddr: Vec<IpAddr>,
    },
    /// Markdown and SVG plots from result files.
    Report {
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// reports/NAME: writes reports/NAME.md and the plots in reports/NAME/.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        title: Option<String>,
    },
}

/// emqtt-bench's connection options.
#[derive(Debug, Args)]
struct ConnArgs {
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Broker hosts, comma separated; client i uses host i mod n.
    #[arg(short = 'h', long = "host", value_delimiter = ',', default_value = "localhost")]
    hosts: Vec<String>,
    #[arg(short = 'p', long, default_value_t = 1883)]
    port: u16,
    /// Number of clients.
    #[arg(short = 'c', long, default_value_t = 200)]
    count: u64,
    /// Milliseconds between connections (ignored when --connrate is given).
    #[arg(short = 'i', long, default_value_t = 10.0)]
    interval: f64,
    /// Connections per second.
    #[arg(short = 'R', long)]
    connrate: Option<f64>,
    /// Source addresses, comma separated; client i binds address i mod n.
    #[arg(long, value_delimiter = ',')]
    ifaddr: Vec<IpAddr>,
    /// The first client's number.
    #[arg(short = 'n', long = "startnumber", default_value_t = 0)]
    start: u64,
    /// Client id prefix (client id = prefix + number).
    #[arg(long)]
    prefix: Option<String>,
    /// Keep alive in seconds.
    #[arg(short = 'k', long, default_value_t = 300)]
    keepalive: u16,
    /// Protocol level: 3 (MQTT 3.1), 4 (3.1.1) or 5.
    #[arg(short = 'V', long = "version", default_value_t = 5)]
    protocol: u8,
    /// Clean start (clean session in 3.1.1).
    #[arg(short = 'C', long, default_value_t = true, action = ArgAction::Set)]
    clean: bool,
    /// Session expiry interval in seconds (MQTT 5).
    #[arg(short = 'x', long = "session-expiry", default_value_t = 0)]
    session_expiry: u32,
    #[arg(short = 'u', long)]
    username: Option<String>,
    #[arg(short = 'P', long)]
    password: Option<String>,
    /// Further connect attempts per client after a failure, 1 s apart.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// MQTT over TLS (with --ws: WebSocket over TLS). Needs --cacertfile or --insecure.
    #[arg(short = 'S', long = "ssl", visible_alias = "tls")]
    ssl: bool,
    /// PEM file of the CA that signed the broker's certificate (TLS, WSS, QUIC).
    #[arg(long)]
    cacertfile: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS, with --keyfile.
    #[arg(long)]
    certfile: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long)]
    keyfile: Option<PathBuf>,
    /// INSECURE: accept any broker certificate (encrypted but not authenticated); for test brokers only.
    #[arg(long)]
    insecure: bool,
    /// The name the broker's certificate must carry, sent as SNI (default: the host).
    #[arg(long)]
    server_name: Option<String>,
    /// MQTT over WebSocket (subprotocol mqtt); with --ssl over TLS.
    #[arg(long)]
    ws: bool,
    /// The HTTP path of the WebSocket upgrade.
    #[arg(long, default_value = "/mqtt")]
    ws_path: String,
    /// MQTT over QUIC (ALPN mqtt, one stream per connection, TLS 1.3). Needs --cacertfile or --insecure.
    #[arg(long, conflicts_with = "ws")]
    quic: bool,
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// Where to write the result JSON (default: results/NAME-TIME.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Sample this broker process's CPU and memory from /proc during the run.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// key=value recorded in the result (repeatable), e.g. --label broker=mosquitto.
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not key=value"))
}

impl ConnArgs {
    fn scenario(&self, name: &str, group: &str, phases: Vec<Phase>) -> Scenario {
        Scenario {
            name: name.to_string(),
            description: String::new(),
            target: Target {
                hosts: self.hosts.clone(),
                port: self.port,
                version: self.protocol,
                keep_alive: self.keepalive,
                clean_start: self.clean,
                session_expiry: self.session_expiry,
                username: self.username.clone(),
                password: self.password.clone(),
                ifaddr: self.ifaddr.clone(),
                connect_timeout_ms: 10_000,
                connect_retries: self.retries,
                transport: self.transport(),
                cacertfile: self.cacertfile.clone(),
                insecure: self.insecure,
                certfile: self.certfile.clone(),
                keyfile: self.keyfile.clone(),
                server_name: self.server_name.clone(),
                ws_path: self.ws_path.clone(),
            },
            groups: vec![Group {
                name: group.into(),
                count: self.count,
                start: self.start,
                prefix: self.prefix.clone(),
            }],
            phases,
        }
    }

    /// emqtt-bench's flags: `--quic`, or `--ws` and `--ssl` combined.
    fn transport(&self) -> TransportKind {
        match (self.quic, self.ws, self.ssl) {
            (true, _, _) => TransportKind::Quic,
            (false, true, true) => TransportKind::Wss,
            (false, true, false) => TransportKind::Ws,
            (false, false, true) => TransportKind::Tls,
            (false, false, false) => TransportKind::Tcp,
        }
    }

    fn connect_phase(&self, group: &str, wait: bool) -> Phase {
        let rate = self.connrate.or((self.interval > 0.0).then(|| 1000.0 / self.interval));
        Phase::Connect { group: group.into(), rate, wait }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            remote::log(&format!("loadgen: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            remote::log(&format!("loadgen: {e}"));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> Result<(), String> {
    let (scenario, out, agents) = match command {
        Command::Conn { conn, duration, out } => {
            let phases = vec![conn.connect_phase("conn", true), Phase::Hold { duration }];
            (conn.scenario("conn", "conn", phases), out, Vec::new())
        }
        Command::Sub { conn, topic, qos, duration, out } => {
            let phases = vec![
                conn.connect_phase("sub", true),
                Phase::Subscribe { group: "sub".into(), topic, qos },
                Phase::Hold { duration },
            ];
            (conn.scenario("sub", "sub", phases), out, Vec::new())
        }
        Command::Pub { conn, topic, qos, size, interval_of_msg, limit, inflight, retain, wait, duration, out } => {
            let phases = vec![
                conn.connect_phase("pub", wait),
                Phase::Publish {
                    group: "pub".into(),
                    topic,
                    qos,
                    size,
                    rate: None,
                    interval_ms: Some(interval_of_msg),
                    duration,
                    limit,
                    inflight,
                    retain,
                },
                Phase::Hold { duration: Some("1s".into()) },
            ];
            (conn.scenario("pub", "pub", phases), out, Vec::new())
        }
        Command::Run { scenario, agents, out } => {
            let text = std::fs::read_to_string(&scenario).map_err(|e| format!("{}: {e}", scenario.display()))?;
            let parsed = Scenario::from_toml(&text).map_err(|e| format!("{}: {e}", scenario.display()))?;
            (parsed, out, agents)
        }
        Command::Agent { listen, ifaddr } => return remote::agent(&listen, ifaddr).await,
        Command::Report { results, out, title } => {
            let written = loadgen::report::write_report(&results, &out, title.as_deref())?;
            for path in written {
                remote::log(&format!("wrote {}", path.display()));
            }
            return Ok(());
        }
    };
    scenario.validate()?;
    let options = RunOptions {
        command_line: std::env::args().collect(),
        labels: out.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        broker_pid: out.broker_pid,
        quiet: out.quiet,
    };
    let result = if agents.is_empty() {
        run_local(scenario, options).await?
    } else {
        remote::coordinate(scenario, &agents, options).await?
    };
    let path = out.json.unwrap_or_else(|| default_result_path(&result));
    write_result(&result, &path)?;
    print_summary(&result, &path);
    Ok(())
}

fn default_result_path(result: &RunResult) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(result.started_at_unix),
    )
    .to_string()
    .replace(':', "");
    PathBuf::from("results").join(format!("{}-{stamp}.json", result.scenario.name))
}

fn write_result(result: &RunResult, path: &std::path::Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let json = serde_json::to_vec_pretty(result).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))
}

fn print_summary(r: &RunResult, path: &std::path::Path) {
    let t = &r.totals;
    let l = &r.latency;
    let ms = |us: u64| us as f64 / 1000.0;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "connects {} ok, {} failed, {} retried; published {} (acked {}, {} late); received {}; lost {}, duplicates {}, out of order {}",
        t.connects_ok,
        t.connects_failed,
        t.connects_retried,
        t.pub_sent,
        t.pub_acked,
        t.pub_overruns,
        t.received,
        t.lost,
        t.duplicates,
        t.out_of_order
    );
    for p in r.phases.iter().filter(|p| p.kind == "publish" || p.kind == "connect") {
        let _ = writeln!(
            out,
            "phase {} {} {}: {:.0}/s achieved{}",
            p.index + 1,
            p.kind,
            p.group,
            p.achieved_rate,
            if p.target_rate > 0.0 { format!(" of {:.0}/s target", p.target_rate) } else { String::new() }
        );
    }
    if l.count > 0 {
        let _ = writeln!(
            out,
            "latency ms: p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} ({} messages)",
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us),
            l.count
        );
    }
    if let Some(per) = r.loadgen_rss_per_connection_bytes {
        let _ = writeln!(out, "loadgen memory: {per:.0} bytes per connection");
    }
    if let Some(b) = &r.broker {
        let _ = writeln!(out, "broker: {:.2} CPU seconds, max RSS {} KiB", b.cpu_seconds, b.rss_max_bytes / 1024);
    }
    for a in r.agents.iter().filter(|a| a.status != "ok") {
        let _ = writeln!(out, "agent {}: {} ({})", a.name, a.status, a.detail);
    }
    let _ = writeln!(out, "result: {}", path.display());
}
