//! ACL-file authorization over real TCP (README, "Authorization"): refused
//! publishes and subscriptions per protocol version, retained messages,
//! revocation by a reload and on session resume, and start-up refusing a bad file.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::path::{Path, PathBuf};

use broker::authz::NoMatch;
use tcp_common::*;

/// An ACL file in the temporary directory, removed when dropped.
struct AclFile(PathBuf);

impl AclFile {
    fn new(name: &str, rules: &str) -> Self {
        let path = std::env::temp_dir().join(format!("broker-acl-{}-{name}.conf", std::process::id()));
        std::fs::write(&path, rules).unwrap();
        Self(path)
    }

    fn rewrite(&self, rules: &str) {
        std::fs::write(&self.0, rules).unwrap();
    }
}

impl Drop for AclFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn start_acl(acl: &AclFile, no_match: NoMatch) -> broker::Server {
    let path = acl.0.clone();
    start_with(move |config| {
        config.authz.acl_file = Some(path);
        config.authz.no_match = no_match;
    })
    .await
}

/// What start-up says about a bad ACL file.
async fn start_error(path: &Path) -> String {
    let mut config = broker::Config::default();
    config.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    config.authz.acl_file = Some(path.to_owned());
    match within(WAIT, broker::Server::start(config, broker::seam::Runtime::tokio())).await {
        Ok(server) => panic!("the broker started with {}: {server:?}", path.display()),
        Err(error) => error.to_string(),
    }
}

/// The reason code of a PUBACK or PUBREC answering `spec`.
async fn publish_reason(raw: &mut Raw, spec: PublishSpec, kind: u8) -> u8 {
    let id = spec.packet_id;
    let level = raw.level;
    raw.send(&spec.encode(level)).await;
    let (got, reason) = raw.recv_kind(kind).await.ack();
    assert_eq!(got, id, "{} packet identifier", packet_name(kind));
    reason
}

const OPEN_PUBLISH: &str = "allow all subscribe #\nallow all publish open/#\n";

#[tokio::test]
async fn a_denied_publish_is_refused_with_0x87_at_qos_1_and_2_and_dropped_at_qos_0_in_mqtt5() {
    let acl = AclFile::new("pub-v5", OPEN_PUBLISH);
    let server = start_acl(&acl, NoMatch::Deny).await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v5("sub")).await;
    assert_eq!(sub.subscribe(1, &[("#", 1)]).await, vec![1]);
    let (mut publisher, _) = Raw::connect(addr, Connect::v5("pub")).await;

    publisher.send(&PublishSpec::new("closed/0", b"q0").encode(Level::V5)).await;
    assert_eq!(publish_reason(&mut publisher, PublishSpec::new("closed/1", b"q1").qos(1, 1), PUBACK).await, 0x87);
    assert_eq!(publish_reason(&mut publisher, PublishSpec::new("closed/2", b"q2").qos(2, 2), PUBREC).await, 0x87);
    // A refused QoS 2 message is not awaiting PUBREL: the same id starts a new flow.
    assert_eq!(publish_reason(&mut publisher, PublishSpec::new("open/2", b"ok2").qos(2, 2), PUBREC).await, 0);
    publisher.send(&ack_packet(PUBREL, 2)).await;
    publisher.recv_kind(PUBCOMP).await;
    publisher.publish(PublishSpec::new("open/end", b"end").qos(1, 3)).await;

    assert_eq!(payloads_until(&mut sub, "end").await, vec!["ok2".to_string()]);
    assert_eq!(server.counters().dropped_not_authorized, 3);
}

#[tokio::test]
async fn a_denied_publish_in_mqtt311_is_acknowledged_as_usual_and_dropped() {
    let acl = AclFile::new("pub-v311", OPEN_PUBLISH);
    let server = start_acl(&acl, NoMatch::Deny).await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v311("sub")).await;
    assert_eq!(sub.subscribe(1, &[("#", 1)]).await, vec![1]);
    let (mut publisher, _) = Raw::connect(addr, Connect::v311("pub")).await;

    publisher.publish(PublishSpec::new("closed/0", b"q0")).await;
    publisher.publish(PublishSpec::new("closed/1", b"q1").qos(1, 1)).await;
    publisher.publish(PublishSpec::new("closed/2", b"q2").qos(2, 2)).await;
    publisher.publish(PublishSpec::new("open/end", b"end").qos(1, 3)).await;

    assert!(payloads_until(&mut sub, "end").await.is_empty());
    assert_eq!(server.counters().dropped_not_authorized, 3);
}

#[tokio::test]
async fn a_denied_subscribe_gets_0x87_in_mqtt5_and_0x80_in_mqtt311() {
    let acl = AclFile::new("sub", "deny all subscribe secret/#\nallow all subscribe #\n");
    let server = start_acl(&acl, NoMatch::Deny).await;
    let addr = server.local_addr();
    let filters = [("secret/a", 1), ("public/a", 1), ("#", 0), ("+/a", 0), ("$share/g/secret/b", 1), ("$share/g/x", 1)];
    let (mut v5, _) = Raw::connect(addr, Connect::v5("sub-v5")).await;
    assert_eq!(v5.subscribe(1, &filters).await, vec![0x87, 1, 0x87, 0x87, 0x87, 1]);
    let (mut v311, _) = Raw::connect(addr, Connect::v311("sub-v311")).await;
    assert_eq!(v311.subscribe(1, &filters).await, vec![0x80, 1, 0x80, 0x80, 0x80, 1]);
}

#[tokio::test]
async fn a_retained_message_on_a_denied_topic_is_not_delivered() {
    let acl = AclFile::new("retained", "allow all publish #\ndeny all subscribe secret/#\nallow all subscribe #\n");
    let server = start_acl(&acl, NoMatch::Deny).await;
    let addr = server.local_addr();
    let (mut publisher, _) = Raw::connect(addr, Connect::v5("pub")).await;
    publisher.publish(PublishSpec::new("secret/x", b"secret").retain().qos(1, 1)).await;
    publisher.publish(PublishSpec::new("public/x", b"public").retain().qos(1, 2)).await;

    let (mut sub, _) = Raw::connect(addr, Connect::v5("sub")).await;
    // Without the ACL either filter would bring the secret retained message.
    assert_eq!(sub.subscribe(1, &[("+/x", 1)]).await, vec![0x87]);
    assert_eq!(sub.subscribe(2, &[("#", 1)]).await, vec![0x87]);
    assert_eq!(sub.subscribe(3, &[("public/+", 1)]).await, vec![1]);
    let retained = sub.recv_publish_acked().await;
    assert_eq!((retained.topic.as_str(), retained.retain), ("public/x", true));
    sub.expect_silence().await;
}

#[tokio::test]
async fn a_reload_revokes_a_live_subscription_and_a_bad_file_changes_nothing() {
    let acl = AclFile::new("reload-live", "allow all all #\n");
    let server = start_acl(&acl, NoMatch::Deny).await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v5("sub")).await;
    assert_eq!(sub.subscribe(1, &[("news/#", 1), ("ctl/#", 1)]).await, vec![1, 1]);
    let (mut publisher, _) = Raw::connect(addr, Connect::v5("pub")).await;
    publisher.publish(PublishSpec::new("news/a", b"a").qos(1, 1)).await;
    publisher.publish(PublishSpec::new("ctl/end", b"end1").qos(1, 2)).await;
    assert_eq!(payloads_until(&mut sub, "end1").await, vec!["a".to_string()]);

    acl.rewrite("allow all publish #\nallow all subscribe ctl/#\nallow all bad #\n");
    let errors = server.reload().expect_err("a malformed file is refused");
    assert!(errors.iter().any(|e| e.contains(&format!("ACL file {} line 3: ", acl.0.display()))), "{errors:?}");
    publisher.publish(PublishSpec::new("news/b", b"b").qos(1, 3)).await;
    publisher.publish(PublishSpec::new("ctl/end", b"end2").qos(1, 4)).await;
    assert_eq!(payloads_until(&mut sub, "end2").await, vec!["b".to_string()], "the old rules stay");
    assert_eq!(server.counters().subscriptions_revoked, 0);

    acl.rewrite("allow all publish #\nallow all subscribe ctl/#\n");
    server.reload().expect("reload");
    assert_eq!(server.counters().subscriptions_revoked, 1);
    publisher.publish(PublishSpec::new("news/c", b"c").qos(1, 5)).await;
    publisher.publish(PublishSpec::new("ctl/end", b"end3").qos(1, 6)).await;
    assert!(payloads_until(&mut sub, "end3").await.is_empty(), "news/# was revoked");
    // Revoked, not merely muted: subscribing again is refused.
    assert_eq!(sub.subscribe(2, &[("news/#", 1)]).await, vec![0x87]);
}

#[tokio::test]
async fn a_resumed_session_comes_back_without_the_subscription_revoked_while_it_was_away() {
    let acl = AclFile::new("reload-stored", "allow all all #\n");
    let server = start_acl(&acl, NoMatch::Deny).await;
    let addr = server.local_addr();
    let persistent = || Connect::v5("sleeper").clean(false).session_expiry(300);
    let (mut sub, _) = Raw::connect(addr, persistent()).await;
    assert_eq!(sub.subscribe(1, &[("news/#", 1), ("ctl/#", 1)]).await, vec![1, 1]);
    sub.disconnect().await;

    let (mut publisher, _) = Raw::connect(addr, Connect::v5("pub")).await;
    publisher.publish(PublishSpec::new("news/queued", b"queued").qos(1, 1)).await;
    acl.rewrite("allow all publish #\nallow all subscribe ctl/#\n");
    server.reload().expect("reload");
    assert_eq!(server.counters().subscriptions_revoked, 1);
    assert_eq!(server.counters().dropped_not_authorized, 1, "the queued news message is dropped with it");

    let (mut sub, ack) = Raw::connect(addr, persistent()).await;
    assert!(ack.session_present);
    publisher.publish(PublishSpec::new("news/later", b"later").qos(1, 2)).await;
    publisher.publish(PublishSpec::new("ctl/end", b"end").qos(1, 3)).await;
    assert!(payloads_until(&mut sub, "end").await.is_empty());
}

#[tokio::test]
async fn ip_rules_see_the_peer_address() {
    let acl = AclFile::new("ip", "allow ip:127.0.0.0/8 subscribe lo/#\nallow ip:10.0.0.0/8 subscribe lan/#\n");
    let server = start_acl(&acl, NoMatch::Deny).await;
    let (mut sub, _) = Raw::connect(server.local_addr(), Connect::v5("sub")).await;
    assert_eq!(sub.subscribe(1, &[("lo/x", 1), ("lan/x", 1)]).await, vec![1, 0x87]);
}

#[tokio::test]
async fn a_client_id_of_hash_does_not_widen_a_clientid_rule() {
    let acl = AclFile::new("smuggle", "allow all all dev/${clientid}/#\n");
    let server = start_acl(&acl, NoMatch::Deny).await;
    let addr = server.local_addr();
    let (mut hash, _) = Raw::connect(addr, Connect::v5("#")).await;
    assert_eq!(publish_reason(&mut hash, PublishSpec::new("dev/other/x", b"x").qos(1, 1), PUBACK).await, 0x87);
    assert_eq!(hash.subscribe(2, &[("dev/#", 1), ("dev/+/x", 1)]).await, vec![0x87, 0x87]);
    let (mut own, _) = Raw::connect(addr, Connect::v5("d1")).await;
    assert_eq!(publish_reason(&mut own, PublishSpec::new("dev/d1/x", b"x").qos(1, 1), PUBACK).await, 0x10);
}

#[tokio::test]
async fn an_empty_acl_file_denies_everything_under_no_match_deny() {
    let acl = AclFile::new("empty", "");
    let server = start_acl(&acl, NoMatch::Deny).await;
    let (mut client, _) = Raw::connect(server.local_addr(), Connect::v5("c")).await;
    assert_eq!(client.subscribe(1, &[("#", 1), ("a", 0)]).await, vec![0x87, 0x87]);
    assert_eq!(publish_reason(&mut client, PublishSpec::new("a", b"x").qos(1, 2), PUBACK).await, 0x87);
}

#[tokio::test]
async fn an_empty_acl_file_allows_everything_under_no_match_allow() {
    let acl = AclFile::new("empty-allow", "");
    let server = start_acl(&acl, NoMatch::Allow).await;
    let (mut client, _) = Raw::connect(server.local_addr(), Connect::v5("c")).await;
    assert_eq!(client.subscribe(1, &[("#", 1)]).await, vec![1]);
    assert!(publish_reason(&mut client, PublishSpec::new("a", b"x").qos(1, 2), PUBACK).await < 0x80);
}

#[tokio::test]
async fn a_missing_acl_file_stops_start_up_naming_the_file() {
    let path = std::env::temp_dir().join(format!("broker-acl-{}-absent.conf", std::process::id()));
    let error = start_error(&path).await;
    assert!(error.starts_with(&format!("ACL file {}: cannot read", path.display())), "{error}");
}

#[tokio::test]
async fn a_malformed_acl_file_stops_start_up_naming_the_file_and_line() {
    let acl = AclFile::new("malformed", "# fine\nallow all publish a\nallow all publish a/#/b\n");
    let error = start_error(&acl.0).await;
    assert!(error.starts_with(&format!("ACL file {} line 3: ", acl.0.display())), "{error}");
}
