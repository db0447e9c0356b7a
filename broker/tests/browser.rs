//! The browser example for real: MQTT.js's browser build in headless
//! Chromium (driven by playwright-core, tests/interop/browser_mqttjs.js)
//! subscribes over ws://127.0.0.1:PORT/mqtt, and receives the message that
//! `mosquitto_pub` publishes over TCP.
//!
//! `ci/test.sh` installs Chromium, node, playwright-core and
//! mosquitto-clients, so CI runs it; on a machine without Chromium or node
//! the test prints why and passes without running.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Chromium's start, the page, and the subscription, on a slow machine.
const SUBSCRIBED_WAIT: Duration = Duration::from_secs(60);
const MESSAGE_WAIT: Duration = Duration::from_secs(30);

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists())
}

fn has(program: &str) -> bool {
    Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_in_headless_chromium_receives_what_mosquitto_pub_publishes() {
    let Some(chromium) = chromium() else {
        return println!("skipped: no Chromium at /usr/bin/chromium (apt-get install -y chromium; ci/test.sh does)");
    };
    if !has("node") {
        return println!("skipped: node is not installed (ci/test.sh installs it)");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: cd broker/tests/interop && npm ci (ci/test.sh does)"
    );
    let text = "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[listeners.ws]\nbind = \"127.0.0.1:0\"\n";
    let server =
        broker::Server::start(broker::Config::parse(text).unwrap(), broker::seam::Runtime::tokio()).await.unwrap();
    let ws_port = server.ws_addr().unwrap().port().to_string();
    let tcp_port = server.local_addr().port().to_string();

    let mut node = Command::new("node")
        .arg(dir.join("browser_mqttjs.js"))
        .arg(&ws_port)
        .arg(chromium)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let out = node.stdout.take().unwrap();
    let err = node.stderr.take().unwrap();
    for stream in [Box::new(out) as Box<dyn std::io::Read + Send>, Box::new(err)] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let result = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut wait_for = |prefix: &str, limit: Duration| -> Option<String> {
            let deadline = std::time::Instant::now() + limit;
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                let line = lines.recv_timeout(left).ok()?;
                seen.push(line.clone());
                if line.starts_with(prefix) {
                    return Some(line);
                }
            }
            None
        };
        if wait_for("subscribed", SUBSCRIBED_WAIT).is_none() {
            return Err(format!("the browser never subscribed; output:\n{}", seen.join("\n")));
        }
        let published = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &tcp_port, "-t", "browser/hello", "-m", "from-mosquitto", "-q", "1"])
            .status()
            .expect("mosquitto_pub runs (apt-get install -y mosquitto-clients; ci/test.sh does)");
        assert!(published.success());
        match wait_for("received", MESSAGE_WAIT) {
            Some(line) => Ok(line),
            None => Err(format!("no message reached the browser; output:\n{}", seen.join("\n"))),
        }
    })
    .await
    .unwrap();
    let _ = node.kill();
    let _ = node.wait();
    let line = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(line, "received browser/hello from-mosquitto");
    server.shutdown().await;
}
