//! Clusters of real `broker` processes on loopback, each node on its own
//! 127.77.T.N address (T: the test, N: the node), clients speaking raw MQTT.
//! What ALGORITHM.md promises is checked from the outside: a publish on any
//! node reaches subscribers on every node once per subscription; `kill -9`
//! of a node leaves the others serving; a restarted node rejoins.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tcp_common::*;

const MQTT_PORT: u16 = 1883;
const PEER_PORT: u16 = 4370;
const ADMIN_PORT: u16 = 18083;
/// How long a cluster may take to form or converge before the test fails.
const CONVERGE_MAX: Duration = Duration::from_secs(30);

struct Node {
    name: String,
    ip: String,
    config: std::path::PathBuf,
    child: Option<Child>,
}

impl Node {
    fn mqtt(&self) -> SocketAddr {
        format!("{}:{MQTT_PORT}", self.ip).parse().unwrap()
    }

    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_broker"))
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// `kill -9`: no leave, no goodbye.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// `n` nodes of cluster test `t`, each listing all as seeds, started.
async fn cluster(t: u8, n: u8, extra: &str) -> Vec<Node> {
    let seeds: Vec<String> = (1..=n).map(|i| format!("\"127.77.{t}.{i}:{PEER_PORT}\"")).collect();
    let mut nodes = Vec::new();
    for i in 1..=n {
        let ip = format!("127.77.{t}.{i}");
        let name = format!("n{i}");
        let text = format!(
            "[node]\nname = \"{name}\"\n[listeners.tcp]\nbind = \"{ip}:{MQTT_PORT}\"\n[admin]\nbind = \"{ip}:{ADMIN_PORT}\"\n\
             [cluster]\nname = \"test{t}\"\n\
             bind = \"{ip}:{PEER_PORT}\"\nseeds = [{}]\nroute_grace_ms = 500\n{extra}",
            seeds.join(", ")
        );
        let config = std::env::temp_dir().join(format!("cluster-{}-{t}-{i}.toml", std::process::id()));
        std::fs::write(&config, text).unwrap();
        let mut node = Node { name, ip, config, child: None };
        node.start();
        nodes.push(node);
    }
    for node in &nodes {
        wait_until_serving(node.mqtt()).await;
    }
    nodes
}

async fn wait_until_serving(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + CONVERGE_MAX;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "{addr} never accepted connections");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes QoS 0 probes on `topic` from `publisher` until every subscriber
/// got one: the routes have reached the publishing node. Drains the probes.
async fn wait_for_routes(publisher: &mut Raw, topic: &str, subscribers: &mut [&mut Raw]) {
    let deadline = tokio::time::Instant::now() + CONVERGE_MAX;
    let mut reached = vec![false; subscribers.len()];
    let mut n = 0;
    while reached.iter().any(|r| !r) {
        assert!(tokio::time::Instant::now() < deadline, "routes did not converge: reached {reached:?}");
        n += 1;
        publisher.publish(PublishSpec::new(topic, format!("probe-{n}").as_bytes())).await;
        for (i, sub) in subscribers.iter_mut().enumerate() {
            while let Read::Frame(frame) = sub.read(Duration::from_millis(100)).await {
                if frame.kind() == PUBLISH {
                    reached[i] = true;
                }
            }
        }
    }
    // Let the last probes land, then drop them.
    for sub in subscribers.iter_mut() {
        while let Read::Frame(_) = sub.read(Duration::from_millis(300)).await {}
    }
}

fn payload_of(p: &Pub) -> String {
    p.payload_str().to_string()
}

#[tokio::test]
async fn a_publish_on_any_node_reaches_every_node_once_per_subscription_at_each_qos() {
    let nodes = cluster(1, 3, "").await;
    let (mut s2, _) = Raw::connect(nodes[1].mqtt(), Connect::v5("s2")).await;
    let (mut s3, _) = Raw::connect(nodes[2].mqtt(), Connect::v5("s3")).await;
    let (mut s1, _) = Raw::connect(nodes[0].mqtt(), Connect::v5("s1")).await;
    s2.subscribe(1, &[("t/#", 2)]).await;
    // Two overlapping subscriptions on one node still make one copy.
    s3.subscribe(1, &[("t/a", 2), ("t/+", 2)]).await;
    s1.subscribe(1, &[("t/a", 2)]).await;
    let (mut p1, _) = Raw::connect(nodes[0].mqtt(), Connect::v5("p1")).await;
    wait_for_routes(&mut p1, "t/a", &mut [&mut s2, &mut s3, &mut s1]).await;

    for qos in 0..=2u8 {
        let payload = format!("m-qos{qos}");
        let spec = PublishSpec::new("t/a", payload.as_bytes());
        p1.publish(if qos == 0 { spec } else { spec.qos(qos, 10 + u16::from(qos)) }).await;
        for sub in [&mut s1, &mut s2, &mut s3] {
            let got = sub.recv_publish_acked().await;
            assert_eq!(payload_of(&got), payload);
            assert_eq!(got.qos, qos);
        }
    }
    // Publishing on another node reaches the others the same way.
    let (mut p3, _) = Raw::connect(nodes[2].mqtt(), Connect::v5("p3")).await;
    wait_for_routes(&mut p3, "t/a", &mut [&mut s2, &mut s3, &mut s1]).await;
    p3.publish(PublishSpec::new("t/a", b"from-n3").qos(1, 1)).await;
    for sub in [&mut s1, &mut s2, &mut s3] {
        assert_eq!(payload_of(&sub.recv_publish_acked().await), "from-n3");
        sub.expect_silence().await;
    }
}

#[tokio::test]
async fn a_shared_group_spread_over_nodes_gets_each_message_once() {
    let nodes = cluster(2, 3, "").await;
    let (mut m2, _) = Raw::connect(nodes[1].mqtt(), Connect::v5("m2")).await;
    let (mut m3, _) = Raw::connect(nodes[2].mqtt(), Connect::v5("m3")).await;
    m2.subscribe(1, &[("$share/g/s/+", 1)]).await;
    m3.subscribe(1, &[("$share/g/s/+", 1)]).await;
    // A direct subscriber proves the routes arrived before counting.
    let (mut watcher2, _) = Raw::connect(nodes[1].mqtt(), Connect::v5("w2")).await;
    let (mut watcher3, _) = Raw::connect(nodes[2].mqtt(), Connect::v5("w3")).await;
    watcher2.subscribe(1, &[("s/probe", 0)]).await;
    watcher3.subscribe(1, &[("s/probe", 0)]).await;
    let (mut p1, _) = Raw::connect(nodes[0].mqtt(), Connect::v5("p1")).await;
    wait_for_routes(&mut p1, "s/probe", &mut [&mut watcher2, &mut watcher3]).await;
    // The probes also went to the group: start counting from a clean slate.
    for m in [&mut m2, &mut m3] {
        while let Read::Frame(f) = m.read(Duration::from_millis(300)).await {
            if f.kind() == PUBLISH {
                m.ack(&f.publish(m.level)).await;
            }
        }
    }
    for i in 0..10u16 {
        p1.publish(PublishSpec::new("s/x", format!("g{i}").as_bytes()).qos(1, i + 1)).await;
    }
    let mut got = Vec::new();
    for m in [&mut m2, &mut m3] {
        while let Read::Frame(f) = m.read(Duration::from_millis(500)).await {
            if f.kind() == PUBLISH {
                let p = f.publish(m.level);
                m.ack(&p).await;
                got.push(payload_of(&p));
            }
        }
    }
    got.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("g{i}")).collect();
    expected.sort();
    assert_eq!(got, expected, "each message once, to one member");
}

#[tokio::test]
async fn a_killed_node_does_not_stop_the_others_and_a_restarted_node_rejoins() {
    let mut nodes = cluster(3, 3, "forward_timeout_ms = 2000\n").await;
    let (mut s2, _) = Raw::connect(nodes[1].mqtt(), Connect::v5("s2")).await;
    let (mut s3, _) = Raw::connect(nodes[2].mqtt(), Connect::v5("s3")).await;
    s2.subscribe(1, &[("k/#", 1)]).await;
    s3.subscribe(1, &[("k/#", 1)]).await;
    let (mut p1, _) = Raw::connect(nodes[0].mqtt(), Connect::v5("p1")).await;
    wait_for_routes(&mut p1, "k/x", &mut [&mut s2, &mut s3]).await;

    nodes[2].kill();
    // The publisher is still acknowledged (within the forward timeout at worst) and n2 still gets it.
    p1.publish(PublishSpec::new("k/x", b"after-kill").qos(1, 1)).await;
    assert_eq!(payload_of(&s2.recv_publish_acked().await), "after-kill");

    nodes[2].start();
    wait_until_serving(nodes[2].mqtt()).await;
    let (mut s3, _) = Raw::connect(nodes[2].mqtt(), Connect::v5("s3-again")).await;
    s3.subscribe(1, &[("k/#", 1)]).await;
    wait_for_routes(&mut p1, "k/x", &mut [&mut s2, &mut s3]).await;
    p1.publish(PublishSpec::new("k/x", b"after-restart").qos(1, 2)).await;
    assert_eq!(payload_of(&s3.recv_publish_acked().await), "after-restart");
    assert_eq!(payload_of(&s2.recv_publish_acked().await), "after-restart");
    let _ = &nodes[0].name;
}

/// Subscribes on `node` with new clients until one gets the retained message
/// of `topic` (replication is asynchronous); returns its payload.
async fn retained_on(node: &Node, topic: &str) -> String {
    let deadline = tokio::time::Instant::now() + CONVERGE_MAX;
    for attempt in 0.. {
        assert!(tokio::time::Instant::now() < deadline, "no retained message for {topic} on {}", node.name);
        let (mut c, _) = Raw::connect(node.mqtt(), Connect::v5(&format!("r-{attempt}"))).await;
        c.subscribe(1, &[(topic, 0)]).await;
        if let Read::Frame(f) = c.read(Duration::from_millis(200)).await
            && f.kind() == PUBLISH
        {
            return payload_of(&f.publish(c.level));
        }
        c.disconnect().await;
    }
    unreachable!()
}

#[tokio::test]
async fn a_retained_message_is_visible_from_every_node_and_its_clear_too() {
    let nodes = cluster(4, 3, "").await;
    let (mut p1, _) = Raw::connect(nodes[0].mqtt(), Connect::v5("p1")).await;
    p1.publish(PublishSpec::new("ret/a", b"kept").qos(1, 1).retain()).await;
    for node in &nodes[1..] {
        assert_eq!(retained_on(node, "ret/a").await, "kept");
    }
    // Cleared on n3: a later write, so it wins everywhere.
    let (mut p3, _) = Raw::connect(nodes[2].mqtt(), Connect::v5("p3")).await;
    p3.publish(PublishSpec::new("ret/a", b"").qos(1, 1).retain()).await;
    p3.publish(PublishSpec::new("ret/b", b"marker").qos(1, 2).retain()).await;
    for node in &nodes[..2] {
        // Writes from one node arrive in order: once the marker is there, the clear is too.
        assert_eq!(retained_on(node, "ret/b").await, "marker");
        let (mut c, _) = Raw::connect(node.mqtt(), Connect::v5("check")).await;
        c.subscribe(1, &[("ret/a", 0)]).await;
        c.expect_silence().await;
    }
}

#[tokio::test]
async fn a_persistent_client_moving_to_another_node_gets_the_messages_queued_while_away() {
    let nodes = cluster(5, 3, "").await;
    let persistent = |id: &str| Connect::v5(id).clean(false).session_expiry(600);
    let (mut c, ack) = Raw::connect(nodes[0].mqtt(), persistent("mover")).await;
    assert!(!ack.session_present);
    c.subscribe(1, &[("mv/#", 1)]).await;
    let (mut p, _) = Raw::connect(nodes[1].mqtt(), Connect::v5("p")).await;
    wait_for_routes(&mut p, "mv/probe", &mut [&mut c]).await;
    c.disconnect().await;
    for i in 1..=3u16 {
        p.publish(PublishSpec::new("mv/x", format!("away-{i}").as_bytes()).qos(1, i)).await;
    }
    // Back, on another node: the session, its subscription and its queue moved.
    let (mut c, ack) = Raw::connect(nodes[2].mqtt(), persistent("mover")).await;
    assert!(ack.session_present, "the session came along");
    for i in 1..=3 {
        assert_eq!(payload_of(&c.recv_publish_acked().await), format!("away-{i}"));
    }
    // Its subscription now lives on n3: new messages arrive there.
    wait_for_routes(&mut p, "mv/probe", &mut [&mut c]).await;
    p.publish(PublishSpec::new("mv/x", b"later").qos(1, 9)).await;
    assert_eq!(payload_of(&c.recv_publish_acked().await), "later");

    // Taking it over while connected: the old connection is told 0x8E.
    let (again, ack) = Raw::connect(nodes[0].mqtt(), persistent("mover")).await;
    assert!(ack.session_present);
    c.expect_disconnect(0x8E).await;
    again.disconnect().await;
}

#[tokio::test]
async fn the_will_of_a_client_whose_node_dies_is_published_once_by_a_surviving_node() {
    let mut nodes = cluster(6, 3, "").await;
    let (mut w1, _) = Raw::connect(nodes[0].mqtt(), Connect::v5("w1")).await;
    let (mut w3, _) = Raw::connect(nodes[2].mqtt(), Connect::v5("w3")).await;
    w1.subscribe(1, &[("will/#", 1)]).await;
    w3.subscribe(1, &[("will/#", 1)]).await;
    // Two clients with wills on n2; one leaves normally (its will is void).
    let (mut doomed, _) =
        Raw::connect(nodes[1].mqtt(), Connect::v5("doomed").will(WillSpec::new("will/doomed", b"gone").qos(1))).await;
    let (polite, _) =
        Raw::connect(nodes[1].mqtt(), Connect::v5("polite").will(WillSpec::new("will/polite", b"never").qos(1))).await;
    wait_for_routes(&mut doomed, "will/probe", &mut [&mut w1, &mut w3]).await;
    polite.disconnect().await;
    // Give the release a moment to reach the guardian before n2 dies.
    tokio::time::sleep(Duration::from_millis(300)).await;

    nodes[1].kill();
    // SWIM declares n2 down within seconds; after the grace period its guardian publishes.
    for w in [&mut w1, &mut w3] {
        let deadline = tokio::time::Instant::now() + CONVERGE_MAX;
        let got = loop {
            assert!(tokio::time::Instant::now() < deadline, "no will after n2 died");
            if let Read::Frame(f) = w.read(Duration::from_millis(500)).await
                && f.kind() == PUBLISH
            {
                let p = f.publish(w.level);
                w.ack(&p).await;
                break p;
            }
        };
        assert_eq!(got.topic, "will/doomed");
        assert_eq!(payload_of(&got), "gone");
    }
    // Exactly once, and nothing for the client that left normally.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for w in [&mut w1, &mut w3] {
        w.expect_silence().await;
    }
}

fn ctl(node: &Node, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(["ctl", "--admin", &format!("{}:{ADMIN_PORT}", node.ip)])
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn ctl_shows_the_members_and_leave_stops_a_node_gracefully() {
    let mut nodes = cluster(7, 3, "").await;
    let (mut s2, _) = Raw::connect(nodes[1].mqtt(), Connect::v5("s2")).await;
    s2.subscribe(1, &[("ctl/#", 0)]).await;
    let (mut p1, _) = Raw::connect(nodes[0].mqtt(), Connect::v5("p1")).await;
    wait_for_routes(&mut p1, "ctl/x", &mut [&mut s2]).await;

    let out = ctl(&nodes[0], &["cluster", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("node n1 "), "{text}");
    for peer in ["n2", "n3"] {
        let line = text.lines().find(|l| l.starts_with(peer)).unwrap_or_else(|| panic!("{peer} missing: {text}"));
        assert!(line.contains(" up "), "{line}");
    }
    let out = ctl(&nodes[0], &["--json", "cluster", "status"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON status");
    let n2_routes = status["remote_routes"].as_array().unwrap().iter().find(|o| o[0] == "n2").unwrap()[1].clone();
    assert_eq!(n2_routes, serde_json::json!(["ctl/#"]));

    // A graceful leave: the node exits 0 and the others drop it at once (no failure detection wait).
    let out = ctl(&nodes[2], &["leave"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = nodes[2].child.as_mut().unwrap().wait().unwrap();
    assert!(status.success(), "the leaving node exits cleanly: {status:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let out = ctl(&nodes[0], &["--json", "cluster", "status"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if status["peers"].as_array().unwrap().iter().all(|p| p[0] != "n3") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "n1 still lists n3 after its leave: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nodes[2].child = None;
}
