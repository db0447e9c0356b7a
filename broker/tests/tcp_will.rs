//! Will messages over real TCP: when they are published and when not, the
//! will delay interval, will QoS / retain and will properties.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::net::SocketAddr;
use std::time::Duration;

use tcp_common::*;

/// A 3.1.1 watcher subscribed to `filter` at QoS 2 and to "end/#".
async fn watcher(addr: SocketAddr, id: &str, filter: &str) -> Raw {
    let (mut raw, _) = Raw::connect(addr, Connect::v311(id)).await;
    assert_eq!(raw.subscribe(1, &[(filter, 2), ("end/#", 1)]).await, vec![2, 1]);
    raw
}

/// Publishes "end" on `end/<tag>` from a fresh client: once the watcher has
/// it, everything published before was routed.
async fn send_end(addr: SocketAddr, tag: &str) {
    let (mut publisher, _) = V4::connect(addr, &format!("end-{tag}")).await;
    publisher.publish(&format!("end/{tag}"), Q4::AtLeastOnce, false, b"end").await;
    publisher.disconnect().await;
}

#[tokio::test]
async fn will_is_published_when_the_connection_drops_without_disconnect() {
    let server = start().await;
    let addr = server.local_addr();
    let mut watch = watcher(addr, "w-drop", "will/#").await;
    for level in [Level::V31, Level::V311, Level::V5] {
        let topic = format!("will/{level:?}");
        let (raw, _) =
            Raw::connect(addr, Connect::new(level, &format!("dropper-{level:?}")).will(WillSpec::new(&topic, b"gone")))
                .await;
        drop(raw);
        let got = watch.recv_publish_acked().await;
        assert_eq!((got.topic.as_str(), got.payload_str()), (topic.as_str(), "gone"), "[MQTT-3.1.2-8]");
    }
    // rumqttc clients too.
    let (client, _) = V5::connect_with(addr, "rumq-dropper", |o| {
        o.set_last_will(v5p::LastWill::new("will/rumqttc", "lost", Q5::AtLeastOnce, false, None));
    })
    .await;
    client.kill().await;
    let got = watch.recv_publish_acked().await;
    assert_eq!((got.topic.as_str(), got.payload_str()), ("will/rumqttc", "lost"));
    assert_eq!(server.counters().wills_published, 4);
    server.shutdown().await;
}

#[tokio::test]
async fn will_is_not_published_after_a_normal_v5_disconnect() {
    let server = start().await;
    let addr = server.local_addr();
    let mut watch = watcher(addr, "w-normal5", "nwill/#").await;
    let (mut raw, _) = Raw::connect(addr, Connect::v5("polite5").will(WillSpec::new("nwill/5", b"x"))).await;
    raw.send(&disconnect_v5(0x00, &[])).await;
    assert!(raw.expect_closed().await.is_empty());
    let (mut short, _) = Raw::connect(addr, Connect::v5("polite5b").will(WillSpec::new("nwill/5b", b"x"))).await;
    short.send(&DISCONNECT_PACKET).await; // the short form of reason 0x00
    assert!(short.expect_closed().await.is_empty());
    let (rumq, _) = V5::connect_with(addr, "polite5c", |o| {
        o.set_last_will(v5p::LastWill::new("nwill/5c", "x", Q5::AtMostOnce, false, None));
    })
    .await;
    rumq.disconnect().await;
    send_end(addr, "normal5").await;
    let before = payloads_until(&mut watch, "end").await;
    assert!(before.is_empty(), "a normal DISCONNECT discards the will [MQTT-3.1.2-10]: got {before:?}");
    assert_eq!(server.counters().wills_published, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn will_is_not_published_after_a_v311_or_v31_disconnect() {
    let server = start().await;
    let addr = server.local_addr();
    let mut watch = watcher(addr, "w-normal4", "nwill/#").await;
    for level in [Level::V31, Level::V311] {
        let (raw, _) =
            Raw::connect(addr, Connect::new(level, &format!("polite-{level:?}")).will(WillSpec::new("nwill/4", b"x")))
                .await;
        raw.disconnect().await;
    }
    let (rumq, _) = V4::connect_with(addr, "polite-rumq", |o| {
        o.set_last_will(rumqttc::LastWill::new("nwill/rumq", "x", Q4::AtMostOnce, false));
    })
    .await;
    rumq.disconnect().await;
    send_end(addr, "normal4").await;
    let before = payloads_until(&mut watch, "end").await;
    assert!(before.is_empty(), "DISCONNECT discards the will [MQTT-3.1.2-10]: got {before:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn will_is_published_after_a_v5_disconnect_with_reason_0x04() {
    let server = start().await;
    let addr = server.local_addr();
    let mut watch = watcher(addr, "w-0x04", "will4/#").await;
    let (mut raw, _) = Raw::connect(addr, Connect::v5("with-will").will(WillSpec::new("will4/t", b"asked for"))).await;
    raw.send(&disconnect_v5(0x04, &[])).await;
    assert!(raw.expect_closed().await.is_empty());
    let got = watch.recv_publish_acked().await;
    assert_eq!((got.topic.as_str(), got.payload_str()), ("will4/t", "asked for"));
    server.shutdown().await;
}

#[tokio::test]
async fn will_is_published_when_the_broker_closes_the_connection_for_a_protocol_error() {
    let server = start().await;
    let addr = server.local_addr();
    let mut watch = watcher(addr, "w-err", "werr/#").await;
    let (mut raw, _) = Raw::connect(addr, Connect::v311("bad-citizen").will(WillSpec::new("werr/t", b"broke"))).await;
    raw.send(&[0x36, 0x03, 0x00, 0x01, b't']).await; // PUBLISH with QoS 3
    raw.expect_closed_without_disconnect().await;
    let got = watch.recv_publish_acked().await;
    assert_eq!((got.topic.as_str(), got.payload_str()), ("werr/t", "broke"));
    server.shutdown().await;
}

#[tokio::test]
async fn will_qos_and_retain_are_honoured() {
    let server = start().await;
    let addr = server.local_addr();
    let mut watch = watcher(addr, "w-qos", "wq/#").await;
    let will = WillSpec::new("wq/status", b"offline").qos(1).retain();
    let (raw, _) = Raw::connect(addr, Connect::v311("qos-will").will(will)).await;
    drop(raw);
    let got = watch.recv_publish_acked().await;
    assert_eq!((got.topic.as_str(), got.payload_str(), got.qos, got.retain), ("wq/status", "offline", 1, false));
    // It was retained: a later subscriber gets it with RETAIN set.
    let (mut late, _) = Raw::connect(addr, Connect::v5("late-watch")).await;
    assert_eq!(late.subscribe(1, &[("wq/status", 2)]).await, vec![2]);
    let got = late.recv_publish_acked().await;
    assert_eq!((got.payload_str(), got.qos, got.retain), ("offline", 1, true));

    // A QoS 2 will arrives at QoS 2.
    let (raw, _) = Raw::connect(addr, Connect::v5("qos2-will").will(WillSpec::new("wq/two", b"2").qos(2))).await;
    drop(raw);
    let got = watch.recv_publish_acked().await;
    assert_eq!((got.topic.as_str(), got.qos), ("wq/two", 2));
    server.shutdown().await;
}

#[tokio::test]
async fn v5_will_properties_are_forwarded_with_the_will_message() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut watch, _) = Raw::connect(addr, Connect::v5("w-props")).await;
    assert_eq!(watch.subscribe(1, &[("wp/#", 1)]).await, vec![1]);
    let props = [
        p_u8(prop::PAYLOAD_FORMAT_INDICATOR, 1),
        p_str(prop::CONTENT_TYPE, "text/plain"),
        p_str(prop::RESPONSE_TOPIC, "wp/reply"),
        p_bin(prop::CORRELATION_DATA, b"cid"),
        p_pair("why", "test"),
        p_u32(prop::MESSAGE_EXPIRY_INTERVAL, 100),
    ]
    .concat();
    let (raw, _) = Raw::connect(addr, Connect::v5("props-will").will(WillSpec::new("wp/t", b"bye").props(props))).await;
    drop(raw);
    let got = watch.recv_publish_acked().await;
    assert_eq!(got.payload_str(), "bye");
    assert_eq!(got.props.u8(prop::PAYLOAD_FORMAT_INDICATOR), Some(1));
    assert_eq!(got.props.str(prop::CONTENT_TYPE), Some("text/plain"));
    assert_eq!(got.props.str(prop::RESPONSE_TOPIC), Some("wp/reply"));
    assert_eq!(got.props.bin(prop::CORRELATION_DATA), Some(&b"cid"[..]));
    assert_eq!(got.props.user_properties(), vec![("why".to_string(), "test".to_string())]);
    let left = got.props.u32(prop::MESSAGE_EXPIRY_INTERVAL).expect("expiry forwarded");
    assert!((90..=100).contains(&left));
    server.shutdown().await;
}

#[tokio::test]
async fn delayed_will_is_not_published_when_the_client_reconnects_within_the_delay() {
    let server = start().await;
    let addr = server.local_addr();
    let mut watch = watcher(addr, "w-delay-back", "dwill/#").await;
    let will = WillSpec::new("dwill/t", b"late").props(p_u32(prop::WILL_DELAY_INTERVAL, 2));
    let connect = Connect::v5("comes-back").clean(false).session_expiry(60).will(will);
    let (raw, _) = Raw::connect(addr, connect.clone()).await;
    drop(raw);
    let (raw, ack) = Raw::connect(addr, Connect::v5("comes-back").clean(false).session_expiry(60)).await;
    assert!(ack.session_present);
    // Wait out the delay (and more) before looking.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    send_end(addr, "delay-back").await;
    let before = payloads_until(&mut watch, "end").await;
    assert!(before.is_empty(), "reconnecting within the will delay cancels the will [MQTT-3.1.3-9]: got {before:?}");
    raw.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn delayed_will_is_published_after_the_delay_when_the_client_stays_away() {
    let server = start().await;
    let addr = server.local_addr();
    let mut watch = watcher(addr, "w-delay-away", "dwill/#").await;
    let will = WillSpec::new("dwill/t", b"late").props(p_u32(prop::WILL_DELAY_INTERVAL, 1));
    let (raw, _) = Raw::connect(addr, Connect::v5("stays-away").clean(false).session_expiry(60).will(will)).await;
    drop(raw);
    // Not at once: the delay is one second.
    watch.expect_silence().await;
    let got = watch.recv_publish_acked().await;
    assert_eq!(got.payload_str(), "late");
    server.shutdown().await;
}

#[tokio::test]
async fn will_delay_longer_than_the_session_expiry_publishes_the_will_when_the_session_ends() {
    let server = start().await;
    let addr = server.local_addr();
    let mut watch = watcher(addr, "w-delay-expiry", "swill/#").await;
    let will = WillSpec::new("swill/t", b"session over").props(p_u32(prop::WILL_DELAY_INTERVAL, 3600));
    let (raw, _) = Raw::connect(addr, Connect::v5("short-session").clean(false).session_expiry(1).will(will)).await;
    drop(raw);
    let got = watch.recv_publish_acked().await;
    assert_eq!(
        got.payload_str(),
        "session over",
        "the will is sent when the session ends, before its delay [MQTT-3.1.2-8] 5.0"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn takeover_publishes_the_first_connections_will() {
    let server = start().await;
    let addr = server.local_addr();
    let mut watch = watcher(addr, "w-takeover", "twill/#").await;
    let (mut first, _) = Raw::connect(addr, Connect::v5("taken").will(WillSpec::new("twill/t", b"taken over"))).await;
    let (_second, _) = Raw::connect(addr, Connect::v5("taken")).await;
    first.expect_disconnect(0x8E).await;
    let got = watch.recv_publish_acked().await;
    assert_eq!(got.payload_str(), "taken over");
    server.shutdown().await;
}
