//! `broker --check-config`, and start-up, as an operator meets them: every
//! file the configuration names is read, and the first bad one is reported
//! by name (and line) with exit status 2, before anything binds.
#![allow(clippy::unwrap_used)]

mod pki;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use broker::auth::password::{NewHash, hash_new};

/// How long a broker that should refuse to start may take to exit.
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// A directory holding a configuration and every file it names, all valid:
/// a TLS listener with a client CA, a users file, an ACL file, a bans file.
struct Setup {
    dir: pki::TestDir,
}

impl Setup {
    fn new(name: &str) -> Self {
        let dir = pki::dir(&format!("check-config-{name}"));
        let ca = pki::Ca::new("check-config CA");
        pki::write_server_files(&dir, &ca.server("localhost"), &ca);
        let scram = hash_new(NewHash::ScramSha256, b"pw", &mut broker::seam::rng(Some(1))).unwrap();
        pki::write(&dir, "users", &format!("# the operator\nalice:{scram}\n"));
        pki::write(&dir, "acl.conf", "allow user:alice all alice/#\ndeny all all #\n");
        pki::write(&dir, "bans.json", "[{\"kind\": \"cidr\", \"value\": \"192.0.2.0/24\"}]\n");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `broker.toml`; `edit` may change the text first.
    fn config(&self, edit: impl FnOnce(String) -> String) -> PathBuf {
        let text = format!(
            "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\
             [listeners.tls]\nbind = \"127.0.0.1:0\"\n{keys}\
             [auth]\nallow_anonymous = false\nchain = [\"users\"]\n[auth.users]\nfile = {users:?}\n\
             [authz]\nacl_file = {acl:?}\n\
             [limits]\nbans_file = {bans:?}\n",
            keys = pki::listener_keys(&self.dir, true),
            users = self.path("users"),
            acl = self.path("acl.conf"),
            bans = self.path("bans.json"),
        );
        pki::write(&self.dir, "broker.toml", &edit(text))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn check_config(config: &Path) -> (Option<i32>, String) {
    let out: Output =
        Command::new(env!("CARGO_BIN_EXE_broker")).arg("--config").arg(config).arg("--check-config").output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_good_configuration_and_its_files_pass() {
    let setup = Setup::new("good");
    let (code, stderr) = check_config(&setup.config(|text| text));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("configuration is valid"), "{stderr}");
}

#[test]
fn a_bad_acl_line_is_reported_with_the_file_and_line() {
    let setup = Setup::new("acl");
    pki::write(&setup.dir, "acl.conf", "# rules\nallow user:alice all alice/#\nallow all publsh x\n");
    let (code, stderr) = check_config(&setup.config(|text| text));
    assert_eq!(code, Some(2), "{stderr}");
    let expected = format!("error: cannot start: ACL file {} line 3: ", setup.path("acl.conf").display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("publsh"), "{stderr}");
}

#[test]
fn an_acl_block_with_host_bits_is_reported_with_the_block_meant() {
    let setup = Setup::new("acl-cidr");
    pki::write(&setup.dir, "acl.conf", "allow ip:10.1.2.3/8 all #\n");
    let (code, stderr) = check_config(&setup.config(|text| text));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("ACL file {} line 1: ", setup.path("acl.conf").display())), "{stderr}");
    assert!(stderr.contains("10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?"), "{stderr}");
}

#[test]
fn a_missing_users_file_is_named() {
    let setup = Setup::new("users");
    std::fs::remove_file(setup.path("users")).unwrap();
    let (code, stderr) = check_config(&setup.config(|text| text));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("[auth.users] file") && stderr.contains(&setup.path("users").display().to_string()));
    assert!(stderr.contains("no such file"), "{stderr}");
}

#[test]
fn a_bad_users_line_is_named_with_its_line() {
    let setup = Setup::new("users-line");
    pki::write(&setup.dir, "users", "# the operator\n\nbob\n");
    let (code, stderr) = check_config(&setup.config(|text| text));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&setup.path("users").display().to_string()) && stderr.contains("line 3"), "{stderr}");
}

#[test]
fn a_missing_certificate_file_is_named() {
    let setup = Setup::new("cert");
    std::fs::remove_file(setup.path("server.pem")).unwrap();
    let (code, stderr) = check_config(&setup.config(|text| text));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("[listeners.tls] cert"), "{stderr}");
    assert!(stderr.contains(&setup.path("server.pem").display().to_string()), "{stderr}");
}

#[test]
fn certificate_key_and_ca_files_are_read_not_only_found() {
    for file in ["server.pem", "server.key", "ca.pem"] {
        let setup = Setup::new(&format!("junk-{file}"));
        pki::write(&setup.dir, file, "this is no PEM\n");
        let (code, stderr) = check_config(&setup.config(|text| text));
        assert_eq!(code, Some(2), "{file}: {stderr}");
        assert!(stderr.contains("[listeners.tls]"), "{file}: {stderr}");
        assert!(stderr.contains(&setup.path(file).display().to_string()), "{file}: {stderr}");
    }
}

#[test]
fn a_bad_bans_file_is_named() {
    let setup = Setup::new("bans");
    pki::write(&setup.dir, "bans.json", "[{\"kind\": \"cidr\", \"value\": \"192.0.2.1/24\"}]\n");
    let (code, stderr) = check_config(&setup.config(|text| text));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("[limits] bans_file {}", setup.path("bans.json").display())), "{stderr}");
    assert!(stderr.contains("did you mean 192.0.2.0/24?"), "{stderr}");
}

#[test]
fn starting_with_a_bad_acl_file_says_so_rather_than_failing_to_listen() {
    let setup = Setup::new("start");
    pki::write(&setup.dir, "acl.conf", "allow all publish a/#/b\n");
    let config = setup.config(|text| text);
    let mut child = Command::new(env!("CARGO_BIN_EXE_broker"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > EXIT_WAIT {
            child.kill().unwrap();
            panic!("the broker started with a malformed ACL file");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    let expected = format!("error: cannot start: ACL file {} line 1: ", setup.path("acl.conf").display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("listen"), "{stderr}");
}

#[test]
fn ctl_ban_refuses_a_block_with_host_bits_before_asking_the_node() {
    // No node listens there: a refusal that reached for it would say "cannot reach".
    let out = Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(["ctl", "--admin", "127.0.0.1:9", "ban", "add", "--cidr", "10.1.2.3/8"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--cidr 10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(["ctl", "--admin", "127.0.0.1:9", "ban", "remove", "--cidr", "2001:db8::1/32"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did you mean 2001:db8::/32?"), "{stderr}");
}
