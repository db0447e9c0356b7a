//! Whole runs against this repository's broker on an ephemeral loopback port:
//! a local run through the library, and a coordinated run over two agent
//! processes started from the `loadgen` binary.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use loadgen::collect::{RunOptions, run_local};
use loadgen::remote::coordinate;
use loadgen::result::RunResult;
use loadgen::scenario::Scenario;
use loadgen::stats::decode_histogram;

async fn start_broker() -> broker::Server {
    let mut config = broker::Config::default();
    config.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    broker::Server::start(config, broker::seam::Runtime::tokio()).await.expect("broker starts")
}

/// `pairs` subscribers on `p2p/%i` and as many publishers, `rate` messages/s in all for 2 s.
fn p2p(addr: SocketAddr, pairs: u64, qos: u8, rate: f64) -> Scenario {
    let text = format!(
        r#"
name = "p2p-test"
[target]
hosts = ["{addr}"]
version = 5
[[group]]
name = "sub"
count = {pairs}
[[group]]
name = "pub"
count = {pairs}
[[phase]]
kind = "connect"
group = "sub"
rate = 2000.0
[[phase]]
kind = "subscribe"
group = "sub"
topic = "p2p/%i"
qos = {qos}
[[phase]]
kind = "connect"
group = "pub"
[[phase]]
kind = "publish"
group = "pub"
topic = "p2p/%i"
qos = {qos}
size = 64
rate = {rate}
duration = "2s"
[[phase]]
kind = "hold"
duration = "500ms"
[[phase]]
kind = "disconnect"
"#
    );
    Scenario::from_toml(&text).expect("valid scenario")
}

fn quiet() -> RunOptions {
    RunOptions { quiet: true, ..RunOptions::default() }
}

/// What must hold after a clean point-to-point run with acknowledged publishes.
fn check_delivered_exactly(r: &RunResult, clients: u64) {
    let t = &r.totals;
    assert_eq!(t.connects_ok, clients, "{t:?}");
    assert_eq!(t.connects_failed, 0, "{t:?}");
    assert_eq!(t.subscribes_ok, clients / 2, "{t:?}");
    assert!(t.pub_sent > 0, "{t:?}");
    assert_eq!(t.pub_acked, t.pub_sent, "every QoS 1/2 publish acknowledged: {t:?}");
    assert_eq!(t.received, t.pub_sent, "every message delivered once: {t:?}");
    assert_eq!((t.lost, t.duplicates, t.out_of_order), (0, 0, 0), "{t:?}");
    assert_eq!(r.latency.count, t.received);
    let histogram = decode_histogram(&r.latency_histogram).expect("histogram decodes");
    assert_eq!(histogram.len(), t.received);
    let series_sent: u64 = r.series.iter().map(|s| s.delta.pub_sent).sum();
    assert_eq!(series_sent, t.pub_sent, "the per-second series adds up to the totals");
    assert!(r.series.last().is_some_and(|s| s.connections == 0), "everything disconnected at the end");
    // The phase counts what was sent until it ended; a publisher caught mid-send
    // at that moment adds its message to the totals just after (at most one each).
    let publish = r.phases.iter().find(|p| p.kind == "publish").expect("a publish phase");
    let publishers = clients / 2;
    assert!(publish.done <= t.pub_sent && t.pub_sent - publish.done <= publishers, "{publish:?} vs {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_qos1_run_delivers_every_message_once_and_in_order() {
    let server = start_broker().await;
    let result = run_local(p2p(server.local_addr(), 20, 1, 400.0), quiet()).await.expect("run");
    check_delivered_exactly(&result, 40);
    let publish = result.phases.iter().find(|p| p.kind == "publish").expect("a publish phase");
    assert!((publish.target_rate - 400.0).abs() < 1e-6, "{publish:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_qos2_run_on_mqtt_3_1_1_delivers_every_message_once() {
    let server = start_broker().await;
    let mut scenario = p2p(server.local_addr(), 10, 2, 200.0);
    scenario.target.version = 4;
    let result = run_local(scenario, quiet()).await.expect("run");
    check_delivered_exactly(&result, 20);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_counted_as_failed_not_hidden() {
    // A port nothing listens on: bind one, note it, close it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut scenario = p2p(addr, 3, 0, 10.0);
    scenario.phases.truncate(1);
    let result = run_local(scenario, quiet()).await.expect("run");
    assert_eq!((result.totals.connects_ok, result.totals.connects_failed), (0, 3), "{:?}", result.totals);
}

struct Agent {
    child: Child,
    address: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `loadgen agent` on an ephemeral loopback port and reads the address it reports.
fn spawn_agent() -> Agent {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["agent", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    reader.read_line(&mut line).expect("agent prints its address");
    // Keep reading, so that the agent's later lines do not fill the pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let address = line.trim().strip_prefix("agent listening on ").expect("address line").to_string();
    Agent { child, address }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agent_processes_produce_one_merged_result() {
    let server = start_broker().await;
    let agents = [spawn_agent(), spawn_agent()];
    let addresses: Vec<String> = agents.iter().map(|a| a.address.clone()).collect();
    let scenario = p2p(server.local_addr(), 30, 1, 600.0);
    let result = tokio::time::timeout(Duration::from_secs(60), coordinate(scenario, &addresses, quiet()))
        .await
        .expect("the coordinated run ends")
        .expect("run");
    assert_eq!(result.agents.len(), 2);
    for a in &result.agents {
        assert_eq!(a.status, "ok", "{a:?}");
        assert_eq!(a.clients, 30, "each agent runs half of the 60 clients: {a:?}");
    }
    // Subscriber i and publisher i may sit on different agents; the merge sees both.
    check_delivered_exactly(&result, 60);
    let publish = result.phases.iter().find(|p| p.kind == "publish").expect("a publish phase");
    assert!((publish.target_rate - 600.0).abs() < 1e-6, "the agents' shares add up to the target: {publish:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_dies_is_reported_failed() {
    let server = start_broker().await;
    let mut agents = [spawn_agent(), spawn_agent()];
    let addresses: Vec<String> = agents.iter().map(|a| a.address.clone()).collect();
    let mut scenario = p2p(server.local_addr(), 10, 1, 100.0);
    // Publish long enough for the kill below to land mid-run.
    if let Some(loadgen::scenario::Phase::Publish { duration, .. }) = scenario.phases.get_mut(3) {
        *duration = Some("6s".into());
    }
    let run = tokio::spawn(async move { coordinate(scenario, &addresses, quiet()).await });
    tokio::time::sleep(Duration::from_secs(4)).await;
    let _ = agents[1].child.kill();
    let result =
        tokio::time::timeout(Duration::from_secs(60), run).await.expect("run ends").expect("task").expect("run");
    assert_eq!(result.agents[0].status, "ok", "{:?}", result.agents[0]);
    assert_eq!(result.agents[1].status, "failed", "{:?}", result.agents[1]);
    server.shutdown().await;
}
