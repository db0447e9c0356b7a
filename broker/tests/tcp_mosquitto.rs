//! Interoperability with Eclipse Mosquitto's command line clients
//! (`mosquitto_pub`, `mosquitto_sub` from Debian's mosquitto-clients): a
//! publish / subscribe round trip at QoS 0, 1 and 2 with MQTT 3.1, 3.1.1 and 5.
//!
//! The binaries are required: CI installs them. A machine without them fails
//! these tests with instructions rather than passing silently.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::io::{BufRead, BufReader, Read as _};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tcp_common::*;

const TOOL_WAIT: Duration = Duration::from_secs(10);

fn require_tools() {
    for tool in ["mosquitto_pub", "mosquitto_sub"] {
        let found = Command::new(tool).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        assert!(
            found,
            "`{tool}` was not found on PATH. These tests need Eclipse Mosquitto's clients: \
             install them with `apt-get install -y mosquitto-clients` (Debian/Ubuntu; CI installs them)."
        );
    }
}

/// A running `mosquitto_sub -d`, its output lines arriving on a channel.
struct Sub {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Sub {
    fn spawn(args: &[String]) -> Sub {
        let mut child = Command::new("mosquitto_sub")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub starts");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [Box::new(stdout) as Box<dyn std::io::Read + Send>, Box::new(stderr)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Sub { child, lines, seen: Vec::new() }
    }

    /// Blocks until the process exits; returns its status and all output.
    fn wait_exit(mut self) -> (ExitStatus, Vec<String>) {
        let status = wait_child(&mut self.child, "mosquitto_sub");
        // The reader threads end at EOF; collect what is left.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_child(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + TOOL_WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {TOOL_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mosquitto_pub(args: &[String]) -> (ExitStatus, String) {
    let mut child = Command::new("mosquitto_pub")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub starts");
    let status = wait_child(&mut child, "mosquitto_pub");
    let mut output = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut output);
    let _ = child.stderr.take().unwrap().read_to_string(&mut output);
    (status, output)
}

fn common_args(addr: SocketAddr, version: &str, id: &str, topic: &str, qos: u8) -> Vec<String> {
    let port = addr.port().to_string();
    ["-h", "127.0.0.1", "-p", &port, "-V", version, "-i", id, "-t", topic, "-q", &qos.to_string(), "-d"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// mosquitto_sub subscribes and waits for one message; mosquitto_pub
/// publishes until the subscriber got it (the subscriber's output is
/// block-buffered in a pipe, so its SUBACK cannot be watched for); the
/// subscriber prints QoS and payload and exits.
fn round_trip(addr: SocketAddr, sub_version: &str, pub_version: &str, qos: u8) {
    let tag = format!("{}-{}-q{qos}", sub_version.trim_start_matches("mqtt"), pub_version.trim_start_matches("mqtt"));
    let topic = format!("mosq/{tag}");
    let payload = format!("hello {tag}");

    let mut sub_args = common_args(addr, sub_version, &format!("msub-{tag}"), &topic, qos);
    sub_args.extend(["-C", "1", "-W", "10", "-F", "%q %p"].map(String::from));
    let mut sub = Sub::spawn(&sub_args);

    let mut pub_args = common_args(addr, pub_version, &format!("mpub-{tag}"), &topic, qos);
    pub_args.extend(["-m".to_string(), payload.clone()]);
    let deadline = Instant::now() + TOOL_WAIT;
    let mut runs = 0;
    while sub.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "mosquitto_sub {tag} received nothing within {TOOL_WAIT:?} ({runs} publishes)"
        );
        let (status, output) = mosquitto_pub(&pub_args);
        runs += 1;
        assert!(status.success(), "mosquitto_pub {tag} failed ({status}): {output}");
        match qos {
            1 => assert!(output.contains("received PUBACK"), "{tag}: {output}"),
            2 => assert!(output.contains("received PUBREC") && output.contains("received PUBCOMP"), "{tag}: {output}"),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let (status, lines) = sub.wait_exit();
    assert!(status.success(), "mosquitto_sub {tag} failed ({status}): {lines:#?}");
    assert!(lines.iter().any(|l| l.contains("received SUBACK")), "{tag}: {lines:#?}");
    assert!(
        lines.iter().any(|l| *l == format!("{qos} {payload}")),
        "{tag}: QoS {qos} and payload not printed: {lines:#?}"
    );
    if qos == 2 {
        assert!(lines.iter().any(|l| l.contains("received PUBREL")), "{tag}: QoS 2 flow incomplete: {lines:#?}");
    }
}

async fn round_trips(pairs: &[(&'static str, &'static str)]) {
    require_tools();
    let server = start().await;
    let addr = server.local_addr();
    for &(sub_version, pub_version) in pairs {
        for qos in 0..=2 {
            tokio::task::spawn_blocking(move || round_trip(addr, sub_version, pub_version, qos)).await.unwrap();
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_round_trip_at_every_qos_with_mqtt_v311() {
    round_trips(&[("mqttv311", "mqttv311")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_round_trip_at_every_qos_with_mqtt_v5() {
    round_trips(&[("mqttv5", "mqttv5")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_round_trip_at_every_qos_with_mqtt_v31() {
    round_trips(&[("mqttv31", "mqttv31")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_of_different_versions_exchange_messages() {
    round_trips(&[("mqttv5", "mqttv31"), ("mqttv31", "mqttv5"), ("mqttv311", "mqttv5")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sub_receives_a_retained_message_published_by_rumqttc() {
    require_tools();
    let server = start().await;
    let addr = server.local_addr();
    let (mut publisher, _) = V5::connect(addr, "retain-for-mosq").await;
    publisher.publish("mosq/retained", Q5::AtLeastOnce, true, b"kept for mosquitto").await;
    let lines = tokio::task::spawn_blocking(move || {
        let mut args = common_args(addr, "mqttv5", "msub-retained", "mosq/retained", 1);
        args.extend(["-C", "1", "-W", "10", "-F", "%r %t %p"].map(String::from));
        let sub = Sub::spawn(&args);
        let (status, lines) = sub.wait_exit();
        assert!(status.success(), "{lines:#?}");
        lines
    })
    .await
    .unwrap();
    assert!(
        lines.iter().any(|l| l == "1 mosq/retained kept for mosquitto"),
        "retain flag, topic and payload: {lines:#?}"
    );
    publisher.disconnect().await;
    server.shutdown().await;
}
