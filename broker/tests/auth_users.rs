//! The users file: every hash kind admits its user and refuses a wrong
//! password, a bad file stops start-up naming the line, reload keeps the old
//! users when the new file is bad, and `broker ctl users` edits the file.
#![allow(clippy::unwrap_used)]

mod auth_common;

use std::path::Path;
use std::process::{Command, Stdio};

use auth_common::{config, connack, start, temp_dir};
use broker::auth::password::{NewHash, hash_new};
use mqtt_codec::{ProtocolVersion, ReasonCode};
use password_hash::{PasswordHasher, SaltString};
use rand::SeedableRng;
use sha2::{Digest, Sha256};

const V5: ProtocolVersion = ProtocolVersion::V5;

fn users_config(file: &Path) -> String {
    format!(
        "[auth]\nallow_anonymous = false\nchain = [\"users\"]\n[auth.users]\nfile = {:?}\n",
        file.display().to_string()
    )
}

/// One user per hash kind, all with password "pw-<name>"; cheap parameters
/// where the kind has them (the defaults are tested in `password.rs`).
fn users_file(dir: &Path) -> std::path::PathBuf {
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(1024, 1, 1, None).unwrap(),
    );
    let argon = argon.hash_password(b"pw-argon", &salt).unwrap().to_string();
    let pbkdf2_params = pbkdf2::Params { rounds: 1000, output_length: 32 };
    let pbkdf2 =
        pbkdf2::Pbkdf2.hash_password_customized(b"pw-pbkdf2", None, None, pbkdf2_params, &salt).unwrap().to_string();
    let bcrypt = bcrypt::hash_with_salt("pw-bcrypt", 4, [3; 16]).unwrap().format_for_version(bcrypt::Version::TwoB);
    let sha: String = Sha256::digest(b"s4ltpw-sha").iter().map(|b| format!("{b:02x}")).collect();
    let scram = hash_new(NewHash::ScramSha256, b"pw-scram", &mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();
    let text = format!(
        "# one user per hash kind\nargon:{argon}\npbkdf2:{pbkdf2}\nbcrypt:{bcrypt}\n\nsha:$sha256$s4lt${sha}\nscram:{scram}\n"
    );
    let path = dir.join("users");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn each_hash_kind_admits_its_user_and_refuses_a_wrong_password() {
    let dir = temp_dir("kinds");
    let server = start(&users_config(&users_file(&dir))).await;
    let addr = server.local_addr();
    for user in ["argon", "pbkdf2", "bcrypt", "sha", "scram"] {
        let right = format!("pw-{user}");
        assert_eq!(connack(addr, V5, user, Some(user), Some(&right)).await, Some(ReasonCode::SUCCESS), "{user}");
        assert_eq!(
            connack(addr, V5, user, Some(user), Some("wrong")).await,
            Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
            "{user} with a wrong password"
        );
        assert_eq!(
            connack(addr, V5, user, Some(user), None).await,
            Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
            "{user} without a password"
        );
    }
    // 3.1.1 return code 4 reads back as 0x86.
    assert_eq!(
        connack(addr, ProtocolVersion::V3_1_1, "c", Some("sha"), Some("pw-sha")).await,
        Some(ReasonCode::SUCCESS)
    );
    assert_eq!(
        connack(addr, ProtocolVersion::V3_1_1, "c", Some("sha"), Some("nope")).await,
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    // Nobody claims an unknown user: refused as bad credentials; no credentials at all: not authorized.
    assert_eq!(connack(addr, V5, "u", Some("nobody"), Some("pw")).await, Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD));
    assert_eq!(connack(addr, V5, "anon", None, None).await, Some(ReasonCode::NOT_AUTHORIZED));
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_users_file_stops_start_up_naming_the_file_and_line() {
    let dir = temp_dir("bad");
    let path = dir.join("users");
    std::fs::write(&path, "# fine\nalice:$sha256$s$00\n").unwrap();
    let error = broker::Server::start(config(&users_config(&path)), broker::seam::Runtime::tokio())
        .await
        .expect_err("a bad users file must stop start-up")
        .to_string();
    assert!(error.contains(&path.display().to_string()) && error.contains("line 2"), "{error}");
    assert!(error.contains("64 hex"), "{error}");
}

#[tokio::test]
async fn reload_keeps_the_old_users_when_the_new_file_is_bad() {
    let dir = temp_dir("reload");
    let path = dir.join("users");
    let sha = |pw: &str| -> String { Sha256::digest(format!("s{pw}")).iter().map(|b| format!("{b:02x}")).collect() };
    std::fs::write(&path, format!("alice:$sha256$s${}\n", sha("a"))).unwrap();
    let server = start(&users_config(&path)).await;
    let addr = server.local_addr();
    assert_eq!(connack(addr, V5, "c", Some("alice"), Some("a")).await, Some(ReasonCode::SUCCESS));

    std::fs::write(&path, format!("bob:$sha256$s${}\nbroken line\n", sha("b"))).unwrap();
    let errors = server.reload().expect_err("a bad file fails the reload");
    assert!(errors.iter().any(|e| e.contains("line 2")), "{errors:?}");
    assert_eq!(connack(addr, V5, "c", Some("alice"), Some("a")).await, Some(ReasonCode::SUCCESS), "old users stay");
    assert_eq!(connack(addr, V5, "c", Some("bob"), Some("b")).await, Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD));

    std::fs::write(&path, format!("bob:$sha256$s${}\n", sha("b"))).unwrap();
    server.reload().expect("a good file reloads");
    assert_eq!(connack(addr, V5, "c", Some("bob"), Some("b")).await, Some(ReasonCode::SUCCESS));
    assert_eq!(connack(addr, V5, "c", Some("alice"), Some("a")).await, Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD));
    server.shutdown().await;
}

fn ctl(file: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_broker"));
    command.args(["ctl", "users", "--file"]).arg(file).args(args);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        std::io::Write::write_all(&mut input, text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

#[tokio::test]
async fn ctl_users_adds_changes_lists_and_removes_users_in_the_file_the_broker_reads() {
    let dir = temp_dir("ctl");
    let file = dir.join("users");
    assert!(ctl(&file, &["add", "alice", "--password", "first"], None).0);
    assert!(ctl(&file, &["add", "bob", "--hash", "scram-sha-256"], Some("from stdin\n")).0);
    assert!(ctl(&file, &["add", "carol", "--hash", "pbkdf2-sha256", "--password", "c"], None).0);
    let (ok, _, stderr) = ctl(&file, &["add", "alice", "--password", "again"], None);
    assert!(!ok && stderr.contains("exists"), "{stderr}");
    assert!(ctl(&file, &["passwd", "alice", "--password", "second"], None).0);
    assert!(ctl(&file, &["remove", "carol"], None).0);
    let (ok, _, stderr) = ctl(&file, &["remove", "carol"], None);
    assert!(!ok && stderr.contains("no user"), "{stderr}");
    let (ok, list, _) = ctl(&file, &["list"], None);
    assert!(ok);
    assert_eq!(list, "alice\targon2id\nbob\tscram-sha-256\n");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("alice:$argon2id$v=19$m=19456,t=2,p=1$"), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left: {leftovers:?}");

    let server = start(&users_config(&file)).await;
    let addr = server.local_addr();
    assert_eq!(connack(addr, V5, "c", Some("alice"), Some("second")).await, Some(ReasonCode::SUCCESS));
    assert_eq!(connack(addr, V5, "c", Some("alice"), Some("first")).await, Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD));
    assert_eq!(connack(addr, V5, "c", Some("bob"), Some("from stdin")).await, Some(ReasonCode::SUCCESS));
    assert_eq!(connack(addr, V5, "c", Some("carol"), Some("c")).await, Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD));
    server.shutdown().await;
}

#[test]
fn check_config_reads_the_users_file_and_names_the_bad_line() {
    let dir = temp_dir("check");
    let users = dir.join("users");
    std::fs::write(&users, "alice:$2b$04$short\n").unwrap();
    let config = dir.join("broker.toml");
    std::fs::write(&config, users_config(&users)).unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_broker")).arg("--config").arg(&config).arg("--check-config").output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 1") && stderr.contains("bcrypt"), "{stderr}");
}
