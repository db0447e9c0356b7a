//! The `broker` binary as an operator runs it: help, configuration errors,
//! and a graceful stop on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn broker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_broker"))
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("broker-test-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn help_describes_the_options() {
    let out = broker().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--config"), "{text}");
}

#[test]
fn unknown_key_stops_start_up_naming_file_line_and_key() {
    let path = temp_config("unknown", "[mqtt]\nmax_inflight = 16\nmax_infligth = 3\n");
    let out = broker().arg("--config").arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("max_infligth"), "{err}");
}

#[test]
fn check_config_accepts_the_shipped_sample() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/broker.toml");
    let out = broker().args(["--config", sample, "--check-config"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sigterm_sends_v5_clients_disconnect_0x8b_and_exits_0() {
    let path = temp_config("sigterm", "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n");
    let mut child = broker().arg("--config").arg(&path).env("RUST_LOG", "info").stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // "broker listening node=... listener=tcp:default addr=127.0.0.1:PORT"
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "broker exited before listening");
        if let Some(rest) = line.split(" addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let _ = std::fs::remove_file(&path);

    let mut stream = TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // CONNECT v5, clean start, keep alive 60, no properties, client id "t".
    stream.write_all(&[0x10, 0x0E, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 1, b't']).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack[0], 0x20);
    // Skip the rest of the CONNACK (its properties).
    let mut rest = vec![0u8; usize::from(connack[1]) - 2];
    stream.read_exact(&mut rest).unwrap();

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut disconnect = Vec::new();
    stream.read_to_end(&mut disconnect).unwrap();
    assert_eq!(disconnect.first(), Some(&0xE0), "DISCONNECT: {disconnect:02x?}");
    assert_eq!(disconnect.get(2), Some(&0x8B), "reason 0x8B: {disconnect:02x?}");
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
}
