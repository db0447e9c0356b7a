//! Sessions and keep alive over real TCP: session expiry, queued messages
//! for offline sessions, and the keep alive timeout.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::time::Duration;

use tcp_common::*;

#[tokio::test]
async fn v5_session_with_expiry_1s_is_gone_after_2s() {
    let server = start().await;
    let addr = server.local_addr();
    let connect = Connect::v5("brief").clean(false).session_expiry(1);
    let (mut raw, _) = Raw::connect(addr, connect.clone()).await;
    assert_eq!(raw.subscribe(1, &[("brief/t", 1)]).await, vec![1]);
    raw.disconnect().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (mut raw, ack) = Raw::connect(addr, connect).await;
    assert!(!ack.session_present, "the session expired");
    assert_eq!(server.counters().sessions_expired, 1);
    // Its subscription went with it.
    assert_eq!(raw.subscribe(1, &[("brief/end", 1)]).await, vec![1]);
    let (mut publisher, _) = V4::connect(addr, "brief-pub").await;
    publisher.publish("brief/t", Q4::AtLeastOnce, false, b"old").await;
    publisher.publish("brief/end", Q4::AtLeastOnce, false, b"end").await;
    assert!(payloads_until(&mut raw, "end").await.is_empty());
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v5_session_with_expiry_60s_is_kept_and_its_queued_qos_1_messages_are_delivered_on_reconnect() {
    let server = start().await;
    let addr = server.local_addr();
    let connect = Connect::v5("durable").clean(false).session_expiry(60);
    let (mut raw, _) = Raw::connect(addr, connect.clone()).await;
    assert_eq!(raw.subscribe(1, &[("durable/#", 2)]).await, vec![2]);
    raw.disconnect().await;

    let (mut publisher, _) = V5::connect(addr, "durable-pub").await;
    for i in 0..5 {
        publisher.publish(&format!("durable/{i}"), Q5::AtLeastOnce, false, format!("m{i}").as_bytes()).await;
    }
    publisher.publish("durable/q2", Q5::ExactlyOnce, false, b"m-q2").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (mut raw, ack) = Raw::connect(addr, connect).await;
    assert!(ack.session_present, "the session outlived the connection");
    for i in 0..5 {
        let got = raw.recv_publish_acked().await;
        assert_eq!((got.payload_str(), got.qos), (format!("m{i}").as_str(), 1));
    }
    let got = raw.recv_publish_acked().await;
    assert_eq!((got.payload_str(), got.qos), ("m-q2", 2));
    raw.expect_silence().await;
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v5_session_without_expiry_ends_with_the_connection() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut raw, _) = Raw::connect(addr, Connect::v5("ephemeral").clean(false)).await;
    assert_eq!(raw.subscribe(1, &[("eph/t", 1)]).await, vec![1]);
    raw.disconnect().await;
    let (_raw, ack) = Raw::connect(addr, Connect::v5("ephemeral").clean(false)).await;
    assert!(!ack.session_present, "an absent session expiry interval means 0 (5.0 section 3.1.2.11.2)");
    server.shutdown().await;
}

#[tokio::test]
async fn v5_disconnect_can_set_the_session_expiry_to_zero() {
    let server = start().await;
    let addr = server.local_addr();
    let connect = Connect::v5("changes-mind").clean(false).session_expiry(60);
    let (mut raw, _) = Raw::connect(addr, connect.clone()).await;
    raw.send(&disconnect_v5(0x00, &p_u32(prop::SESSION_EXPIRY_INTERVAL, 0))).await;
    raw.expect_closed().await;
    let (_raw, ack) = Raw::connect(addr, connect).await;
    assert!(!ack.session_present, "DISCONNECT's session expiry 0 ended the session");
    server.shutdown().await;
}

#[tokio::test]
async fn v5_disconnect_setting_a_session_expiry_after_connect_set_zero_is_a_protocol_error() {
    let server = start().await;
    let (mut raw, _) = Raw::connect(server.local_addr(), Connect::v5("sneaky")).await;
    raw.send(&disconnect_v5(0x00, &p_u32(prop::SESSION_EXPIRY_INTERVAL, 60))).await;
    raw.expect_disconnect(0x82).await;
    let (_raw, ack) = Raw::connect(server.local_addr(), Connect::v5("sneaky").clean(false)).await;
    assert!(!ack.session_present, "5.0 section 3.14.2.2.2: the session was not extended");
    server.shutdown().await;
}

#[tokio::test]
async fn v311_persistent_session_keeps_subscriptions_and_queues_messages_while_offline() {
    let server = start().await;
    let addr = server.local_addr();
    let persistent = |o: &mut rumqttc::MqttOptions| {
        o.set_clean_session(false);
    };
    let (mut sub, _) = V4::connect_with(addr, "p311", persistent).await;
    sub.subscribe("p311/t", Q4::ExactlyOnce).await;
    sub.disconnect().await;
    let (mut publisher, _) = V4::connect(addr, "p311-pub").await;
    publisher.publish("p311/t", Q4::AtLeastOnce, false, b"one").await;
    publisher.publish("p311/t", Q4::ExactlyOnce, false, b"two").await;
    publisher.publish("p311/t", Q4::AtMostOnce, false, b"three").await;
    let (mut sub, ack) = V4::connect_with(addr, "p311", persistent).await;
    assert!(ack.session_present);
    let got: Vec<(String, Q4)> = [sub.recv_publish().await, sub.recv_publish().await, sub.recv_publish().await]
        .iter()
        .map(|p| (String::from_utf8_lossy(&p.payload).into_owned(), p.qos))
        .collect();
    let expected = vec![
        ("one".to_string(), Q4::AtLeastOnce),
        ("two".to_string(), Q4::ExactlyOnce),
        ("three".to_string(), Q4::AtMostOnce),
    ];
    assert_eq!(got, expected, "queued in order; QoS 0 queued too (queue_qos0_offline defaults to true)");
    sub.disconnect().await;
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v5_client_silent_beyond_keep_alive_gets_disconnect_0x8d_and_its_will_is_published() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut watch, _) = Raw::connect(addr, Connect::v311("ka-watch")).await;
    assert_eq!(watch.subscribe(1, &[("ka/#", 1)]).await, vec![1]);
    let (mut silent, _) =
        Raw::connect(addr, Connect::v5("silent5").keep_alive(1).will(WillSpec::new("ka/5", b"timed out"))).await;
    let frames = silent.expect_closed_within(Duration::from_secs(5)).await;
    let reasons: Vec<u8> = frames.iter().filter(|f| f.kind() == DISCONNECT).map(Frame::disconnect_reason).collect();
    assert_eq!(reasons, vec![0x8D], "keep alive timeout [MQTT-3.1.2-22]: {frames:?}");
    let got = watch.recv_publish_acked().await;
    assert_eq!((got.topic.as_str(), got.payload_str()), ("ka/5", "timed out"));
    server.shutdown().await;
}

#[tokio::test]
async fn v311_client_silent_beyond_keep_alive_is_disconnected_and_its_will_is_published() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut watch, _) = Raw::connect(addr, Connect::v311("ka-watch4")).await;
    assert_eq!(watch.subscribe(1, &[("ka/#", 1)]).await, vec![1]);
    let (mut silent, _) =
        Raw::connect(addr, Connect::v311("silent4").keep_alive(1).will(WillSpec::new("ka/4", b"timed out"))).await;
    let frames = silent.expect_closed_within(Duration::from_secs(5)).await;
    assert!(frames.is_empty(), "{frames:?}");
    let got = watch.recv_publish_acked().await;
    assert_eq!((got.topic.as_str(), got.payload_str()), ("ka/4", "timed out"));
    server.shutdown().await;
}

#[tokio::test]
async fn client_that_sends_pingreq_within_keep_alive_stays_connected() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut raw, _) = Raw::connect(addr, Connect::v5("pinger").keep_alive(1)).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        raw.ping().await;
    }
    // 2.4 s is well past 1.5 x 1 s: only the pings kept it open.
    raw.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn rumqttc_client_with_a_short_keep_alive_stays_connected_while_idle() {
    let server = start().await;
    let addr = server.local_addr();
    // rumqttc's 5.0 client refuses keep alives under 5 s; its 3.1.1 client allows 1 s.
    let (mut client, _) = V4::connect_with(addr, "idle-rumq", |o| {
        o.set_keep_alive(Duration::from_secs(1));
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    client.subscribe("idle/t", Q4::AtLeastOnce).await;
    client.publish("idle/t", Q4::AtLeastOnce, false, b"still here").await;
    assert_eq!(&client.recv_publish().await.payload[..], b"still here");
    client.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn server_keep_alive_overrides_the_clients_keep_alive() {
    let server = start_with(|c| c.mqtt.server_keep_alive = Some(1)).await;
    let (mut raw, ack) = Raw::connect(server.local_addr(), Connect::v5("overridden").keep_alive(600)).await;
    assert_eq!(ack.props.u16(prop::SERVER_KEEP_ALIVE), Some(1), "CONNACK announces the server keep alive");
    let frames = raw.expect_closed_within(Duration::from_secs(5)).await;
    let reasons: Vec<u8> = frames.iter().filter(|f| f.kind() == DISCONNECT).map(Frame::disconnect_reason).collect();
    assert_eq!(reasons, vec![0x8D], "the server keep alive is enforced: {frames:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn offline_qos_0_messages_are_not_queued_when_queue_qos0_offline_is_false() {
    let server = start_with(|c| c.mqtt.queue_qos0_offline = false).await;
    let addr = server.local_addr();
    let connect = Connect::v5("no-q0").clean(false).session_expiry(60);
    let (mut raw, _) = Raw::connect(addr, connect.clone()).await;
    assert_eq!(raw.subscribe(1, &[("noq0/t", 1)]).await, vec![1]);
    raw.disconnect().await;
    let (mut publisher, _) = V4::connect(addr, "no-q0-pub").await;
    publisher.publish("noq0/t", Q4::AtMostOnce, false, b"q0").await;
    publisher.publish("noq0/t", Q4::AtLeastOnce, false, b"q1").await;
    let (mut raw, _) = Raw::connect(addr, connect).await;
    assert_eq!(raw.recv_publish_acked().await.payload_str(), "q1");
    raw.expect_silence().await;
    assert_eq!(server.counters().dropped_offline_qos0, 1);
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn offline_queue_is_bounded_by_max_queued_messages() {
    let server = start_with(|c| c.mqtt.max_queued_messages = std::num::NonZeroUsize::new(3).unwrap()).await;
    let addr = server.local_addr();
    let connect = Connect::v5("bounded").clean(false).session_expiry(60);
    let (mut raw, _) = Raw::connect(addr, connect.clone()).await;
    assert_eq!(raw.subscribe(1, &[("bq/t", 1)]).await, vec![1]);
    raw.disconnect().await;
    let (mut publisher, _) = V4::connect(addr, "bounded-pub").await;
    for i in 0..6 {
        publisher.publish("bq/t", Q4::AtLeastOnce, false, format!("m{i}").as_bytes()).await;
    }
    let (mut raw, _) = Raw::connect(addr, connect).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(raw.recv_publish_acked().await.payload_str().to_owned());
    }
    raw.expect_silence().await;
    assert_eq!(got, ["m0", "m1", "m2"], "the oldest are kept, the overflow is dropped");
    assert_eq!(server.counters().dropped_queue_full, 3);
    publisher.disconnect().await;
    server.shutdown().await;
}

/// A session with three unacknowledged QoS 1 messages (a, b, c) and one
/// queued while offline (d); returns the subscriber's CONNECT and the publisher.
async fn session_with_in_flight_and_queued(addr: std::net::SocketAddr, id: &str) -> (Connect, V4) {
    let connect = Connect::v5(id).clean(false).session_expiry(60);
    let (mut sub, _) = Raw::connect(addr, connect.clone()).await;
    assert_eq!(sub.subscribe(1, &[("ro/t", 1)]).await, vec![1]);
    let (mut publisher, _) = V4::connect(addr, &format!("{id}-pub")).await;
    for payload in ["a", "b", "c"] {
        publisher.publish("ro/t", Q4::AtLeastOnce, false, payload.as_bytes()).await;
    }
    for payload in ["a", "b", "c"] {
        assert_eq!(sub.recv_publish().await.payload_str(), payload);
    }
    drop(sub); // a, b, c unacknowledged
    publisher.publish("ro/t", Q4::AtLeastOnce, false, b"d").await;
    (connect, publisher)
}

fn expected_resume_order() -> Vec<(String, bool)> {
    [("a", true), ("b", true), ("c", true), ("d", false)].iter().map(|(p, d)| (p.to_string(), *d)).collect()
}

#[tokio::test]
async fn resumed_session_resends_in_flight_messages_with_dup_before_queued_ones() {
    let server = start().await;
    let addr = server.local_addr();
    let (connect, publisher) = session_with_in_flight_and_queued(addr, "resume-order").await;
    let (mut sub, ack) = Raw::connect(addr, connect).await;
    assert!(ack.session_present);
    let mut got = Vec::new();
    for _ in 0..4 {
        let publish = sub.recv_publish_acked().await;
        got.push((publish.payload_str().to_owned(), publish.dup));
    }
    assert_eq!(got, expected_resume_order(), "in-flight first with DUP [MQTT-4.4.0-1], then the queued one");
    sub.expect_silence().await;
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn resumed_session_respects_the_receive_maximum_of_the_new_connection() {
    let server = start().await;
    let addr = server.local_addr();
    let (connect, publisher) = session_with_in_flight_and_queued(addr, "resume-window").await;
    // Back with Receive Maximum 1: one unacknowledged PUBLISH at a time [MQTT-3.3.4-9].
    let (mut sub, ack) = Raw::connect(addr, connect.props(p_u16(prop::RECEIVE_MAXIMUM, 1))).await;
    assert!(ack.session_present);
    let mut got = Vec::new();
    for _ in 0..4 {
        let publish = sub.recv_publish().await;
        got.push((publish.payload_str().to_owned(), publish.dup));
        sub.expect_silence().await;
        sub.ack(&publish).await;
    }
    assert_eq!(got, expected_resume_order());
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v311_persistent_session_expires_after_session_expiry_v3_secs() {
    let server = start_with(|c| c.mqtt.session_expiry_v3_secs = 1).await;
    let addr = server.local_addr();
    let connect = Connect::v311("v3-expiry").clean(false);
    let (raw, _) = Raw::connect(addr, connect.clone()).await;
    raw.disconnect().await;
    let (raw, ack) = Raw::connect(addr, connect.clone()).await;
    assert!(ack.session_present, "kept right after the disconnect");
    raw.disconnect().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_raw, ack) = Raw::connect(addr, connect).await;
    assert!(!ack.session_present, "expired after the configured 1 s");
    server.shutdown().await;
}
