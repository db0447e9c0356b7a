//! Configured limits and features as clients see them over real TCP: what
//! CONNACK announces and what happens when a client goes beyond it.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::num::{NonZeroU16, NonZeroUsize};

use tcp_common::*;

#[tokio::test]
async fn maximum_qos_1_is_announced_granted_and_enforced() {
    let server = start_with(|c| c.mqtt.maximum_qos = 1).await;
    let addr = server.local_addr();
    let (mut raw, ack) = Raw::connect(addr, Connect::v5("mq1")).await;
    assert_eq!(ack.props.u8(prop::MAXIMUM_QOS), Some(1), "{ack:?}");
    assert_eq!(raw.subscribe(1, &[("mq/t", 2)]).await, vec![1], "QoS 2 requested, 1 granted");
    let (mut old, _) = Raw::connect(addr, Connect::v311("mq1-311")).await;
    assert_eq!(old.subscribe(1, &[("mq/t", 2)]).await, vec![1]);
    // [MQTT-3.2.2-11]: a PUBLISH above the maximum QoS: DISCONNECT 0x9B.
    raw.send(&PublishSpec::new("mq/t", b"q2").qos(2, 1).encode(Level::V5)).await;
    raw.expect_disconnect(0x9B).await;
    // [MQTT-3.2.2-12]: a will above the maximum QoS: CONNACK 0x9B.
    let (_raw, ack) = Raw::try_connect(addr, Connect::v5("mq1-will").will(WillSpec::new("w", b"w").qos(2))).await;
    assert_eq!(ack.code, 0x9B);
    server.shutdown().await;
}

#[tokio::test]
async fn retain_unavailable_is_announced_and_enforced() {
    let server = start_with(|c| c.mqtt.retain_available = false).await;
    let addr = server.local_addr();
    let (mut raw, ack) = Raw::connect(addr, Connect::v5("noretain")).await;
    assert_eq!(ack.props.u8(prop::RETAIN_AVAILABLE), Some(0), "{ack:?}");
    raw.send(&PublishSpec::new("nr/t", b"r").retain().encode(Level::V5)).await;
    raw.expect_disconnect(0x9A).await;
    let (_raw, ack) =
        Raw::try_connect(addr, Connect::v5("noretain-will").will(WillSpec::new("w", b"w").retain())).await;
    assert_eq!(ack.code, 0x9A, "[MQTT-3.2.2-13]");
    server.shutdown().await;
}

#[tokio::test]
async fn anonymous_clients_are_refused_when_anonymous_access_is_off() {
    let server = start_with(|c| c.auth.allow_anonymous = Some(false)).await;
    let addr = server.local_addr();
    let (_raw, ack) = Raw::try_connect(addr, Connect::v5("anon5")).await;
    assert_eq!(ack.code, 0x87, "MQTT 5: Not authorized");
    let (_raw, ack) = Raw::try_connect(addr, Connect::v311("anon4")).await;
    assert_eq!(ack.code, 5, "MQTT 3.1.1: not authorized");
    let (_raw, ack) = Raw::try_connect(addr, Connect::v31("anon3")).await;
    assert_eq!(ack.code, 5);
    assert_eq!(server.connection_count(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn client_identifier_longer_than_the_limit_is_refused() {
    let server = start_with(|c| c.mqtt.max_client_id_len = NonZeroU16::new(8).unwrap()).await;
    let addr = server.local_addr();
    let (_raw, ack) = Raw::try_connect(addr, Connect::v5("nine-char")).await;
    assert_eq!(ack.code, 0x85);
    let (_raw, ack) = Raw::try_connect(addr, Connect::v311("nine-char")).await;
    assert_eq!(ack.code, 2);
    let (mut ok, _) = Raw::connect(addr, Connect::v311("eight-ch")).await;
    ok.ping().await;
    server.shutdown().await;
}

#[tokio::test]
async fn connect_with_an_authentication_method_is_refused_with_bad_authentication_method() {
    let server = start().await;
    let connect = Connect::v5("enhanced").props(p_str(prop::AUTHENTICATION_METHOD, "SCRAM-SHA-1"));
    let (mut raw, ack) = Raw::try_connect(server.local_addr(), connect).await;
    assert_eq!(ack.code, 0x8C, "no enhanced authentication is configured");
    assert!(raw.expect_closed().await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn session_expiry_above_the_maximum_is_lowered_and_announced() {
    let server = start_with(|c| c.mqtt.max_session_expiry_secs = 30).await;
    let (_raw, ack) = Raw::connect(server.local_addr(), Connect::v5("capped").session_expiry(3600)).await;
    assert_eq!(ack.props.u32(prop::SESSION_EXPIRY_INTERVAL), Some(30), "CONNACK tells the session expiry in use");
    let (_raw, ack) = Raw::connect(server.local_addr(), Connect::v5("uncapped").session_expiry(10)).await;
    assert!(!ack.props.has(prop::SESSION_EXPIRY_INTERVAL), "nothing to tell when the request is honoured: {ack:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn disabled_subscription_features_are_announced_and_refused_in_suback() {
    let server = start_with(|c| {
        c.mqtt.shared_subscription_available = false;
        c.mqtt.wildcard_subscription_available = false;
    })
    .await;
    let addr = server.local_addr();
    let (mut raw, ack) = Raw::connect(addr, Connect::v5("nofeatures")).await;
    assert_eq!(ack.props.u8(0x2A), Some(0), "shared subscriptions unavailable: {ack:?}");
    assert_eq!(ack.props.u8(0x28), Some(0), "wildcard subscriptions unavailable: {ack:?}");
    let codes = raw.subscribe(1, &[("$share/g/t", 1), ("a/+", 1), ("a/#", 1), ("a/b", 1)]).await;
    assert_eq!(codes, vec![0x9E, 0xA2, 0xA2, 0x01]);
    let (mut old, _) = Raw::connect(addr, Connect::v311("nofeatures4")).await;
    assert_eq!(old.subscribe(1, &[("a/+", 1), ("a/b", 1)]).await, vec![0x80, 0x01]);
    server.shutdown().await;
}

#[tokio::test]
async fn subscription_identifier_when_unavailable_closes_the_connection() {
    let server = start_with(|c| c.mqtt.subscription_identifiers_available = false).await;
    let (mut raw, ack) = Raw::connect(server.local_addr(), Connect::v5("nosubid")).await;
    assert_eq!(ack.props.u8(0x29), Some(0), "{ack:?}");
    raw.send(&subscribe_packet(Level::V5, 1, &[("t", 1)], &p_var(prop::SUBSCRIPTION_IDENTIFIER, 5))).await;
    raw.expect_disconnect(0xA1).await;
    server.shutdown().await;
}

#[tokio::test]
async fn subscriptions_beyond_max_subscriptions_get_quota_exceeded() {
    let server = start_with(|c| c.mqtt.max_subscriptions = NonZeroUsize::new(2).unwrap()).await;
    let (mut raw, _) = Raw::connect(server.local_addr(), Connect::v5("quota")).await;
    assert_eq!(raw.subscribe(1, &[("q/1", 0), ("q/2", 0), ("q/3", 0)]).await, vec![0, 0, 0x97]);
    assert_eq!(raw.subscribe(2, &[("q/1", 1)]).await, vec![1], "replacing an existing subscription is not a new one");
    server.shutdown().await;
}

#[tokio::test]
async fn topics_with_more_levels_than_the_limit_are_refused() {
    let server = start_with(|c| c.mqtt.max_topic_levels = NonZeroU16::new(3).unwrap()).await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v5("levels")).await;
    assert_eq!(sub.subscribe(1, &[("a/b/c/d", 1), ("a/#", 1)]).await, vec![0x8F, 0x01]);
    let (mut publisher, _) = Raw::connect(addr, Connect::v5("levels-pub")).await;
    publisher.send(&PublishSpec::new("a/b/c/d", b"deep").qos(1, 1).encode(Level::V5)).await;
    assert_eq!(publisher.recv_kind(PUBACK).await.ack(), (1, 0x90), "Topic Name invalid");
    publisher.publish(PublishSpec::new("a/b", b"shallow").qos(1, 2)).await;
    assert_eq!(sub.recv_publish_acked().await.payload_str(), "shallow", "the deep message was not routed");
    server.shutdown().await;
}

#[tokio::test]
async fn retained_store_beyond_max_retained_messages_keeps_the_old_topics_only() {
    let server = start_with(|c| c.mqtt.max_retained_messages = NonZeroUsize::new(2).unwrap()).await;
    let addr = server.local_addr();
    let (mut publisher, _) = V4::connect(addr, "rfull-pub").await;
    for topic in ["rf/1", "rf/2", "rf/3"] {
        publisher.publish(topic, Q4::AtLeastOnce, true, topic.as_bytes()).await;
    }
    publisher.publish("rf/1", Q4::AtLeastOnce, true, b"rf/1 again").await;
    let (mut sub, _) = Raw::connect(addr, Connect::v311("rfull-sub")).await;
    assert_eq!(sub.subscribe(1, &[("rf/#", 1)]).await, vec![1]);
    let mut got = vec![
        sub.recv_publish_acked().await.payload_str().to_owned(),
        sub.recv_publish_acked().await.payload_str().to_owned(),
    ];
    sub.expect_silence().await;
    got.sort();
    assert_eq!(got, ["rf/1 again", "rf/2"], "a full store still replaces existing topics");
    assert_eq!(server.counters().retained_refused_full, 1);
    publisher.disconnect().await;
    server.shutdown().await;
}
