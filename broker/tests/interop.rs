//! Interoperability: independent client libraries in other languages talk to
//! the broker at every protocol version, over TCP and (Paho) over WebSocket.
//! `ci/test.sh` installs them (`pip install paho-mqtt`, `npm ci` in
//! tests/interop); when one is missing the test fails and says how to install it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use broker::seam::Runtime;
use broker::{Config, Server};

async fn server() -> Server {
    let text = "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[listeners.ws]\nbind = \"127.0.0.1:0\"\n";
    Server::start(Config::parse(text).unwrap(), Runtime::tokio()).await.unwrap()
}

/// Runs a client script against a fresh broker's TCP listener.
async fn run(program: &str, script: &str, install_hint: &str) {
    run_on(program, script, install_hint, |server| server.local_addr().port()).await;
}

/// Runs a client script, given the port `port_of` picks, against a fresh
/// broker off the async runtime, and fails with its output unless it exits 0.
async fn run_on(program: &str, script: &str, install_hint: &str, port_of: fn(&Server) -> u16) {
    let server = server().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let port = port_of(&server).to_string();
    let (program, script) = (program.to_string(), dir.join(script));
    let output =
        tokio::task::spawn_blocking(move || Command::new(program).arg(script).arg(port).current_dir(dir).output())
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("cannot run the client ({e}); {install_hint}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}\n(if the library is missing: {install_hint})");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eclipse_paho_python_round_trips_at_every_version_and_qos() {
    run("python3", "paho_roundtrip.py", "pip install paho-mqtt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_round_trips_at_every_version_and_qos() {
    run("node", "mqttjs_roundtrip.js", "cd broker/tests/interop && npm ci").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eclipse_paho_python_round_trips_over_websocket() {
    let ws_port = |server: &Server| server.ws_addr().map(|a| a.port()).unwrap_or_default();
    run_on("python3", "paho_websocket.py", "pip install paho-mqtt", ws_port).await;
}
