//! Tidy checks that run as ordinary tests.
//!
//! The broker reaches time, randomness, threads and the network only through
//! `src/seam.rs`, so that a simulator can substitute all four. Any other file
//! under `broker/` that calls them directly fails this test.

use std::path::{Path, PathBuf};

/// Calls that escape the seams, with the reason each is forbidden.
const FORBIDDEN: &[(&str, &str)] = &[
    ("Instant::now", "read time through seam::Clock"),
    ("SystemTime::now", "wall-clock time comes through the seam"),
    ("thread_rng", "randomness comes from the seeded seam::rng"),
    ("rand::random", "randomness comes from the seeded seam::rng"),
    ("from_os_rng", "randomness comes from the seeded seam::rng"),
    ("std::thread::spawn", "tasks start through seam::Runtime::spawn"),
    ("spawn_blocking", "tasks start through seam::Runtime::spawn"),
    ("tokio::spawn", "tasks start through seam::Runtime::spawn"),
    ("tokio::net", "sockets come from seam::Network"),
];

/// Files allowed to use them: the seam itself, and the binary's entry point
/// (which builds the tokio runtime the seam wraps).
const EXEMPT: &[&str] = &["src/seam.rs", "src/main.rs"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // Test code may use real sockets and clocks; fuzz has its own crate.
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !matches!(name, "tests" | "benches" | "fuzz" | "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn violations(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(root).unwrap_or(&file).to_string_lossy().replace('\\', "/");
        if EXEMPT.contains(&relative.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (call, why) in FORBIDDEN {
                if code.contains(call) {
                    found.push(format!("{relative}:{}: `{call}`: {why}", number + 1));
                }
            }
        }
    }
    found
}

#[test]
fn broker_code_reaches_time_randomness_threads_and_network_only_through_the_seam() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = violations(root);
    assert!(found.is_empty(), "calls that bypass the seams:\n{}", found.join("\n"));
}

#[test]
fn the_tidy_check_finds_a_forbidden_call() {
    let dir = std::env::temp_dir().join(format!("tidy-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("temp dir");
    std::fs::write(src.join("leak.rs"), "fn f() { let _ = std::time::Instant::now(); }\n").expect("write");
    std::fs::write(src.join("seam.rs"), "fn g() { let _ = std::time::Instant::now(); }\n").expect("write");
    let found = violations(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("src/leak.rs:1"), "{found:?}");
}
