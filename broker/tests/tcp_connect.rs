//! CONNECT / CONNACK over real TCP: announced limits, client identifiers,
//! session present, clean start, takeover, refusals, and graceful shutdown.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::num::{NonZeroU16, NonZeroU32};

use tcp_common::*;

#[tokio::test]
async fn v5_connack_announces_maximum_packet_size_topic_alias_maximum_and_receive_maximum() {
    let server = start_with(|c| {
        c.mqtt.max_packet_size = NonZeroU32::new(4096).unwrap();
        c.mqtt.max_topic_alias = 7;
        c.mqtt.receive_maximum = NonZeroU16::new(5).unwrap();
    })
    .await;
    let (_raw, ack) = Raw::connect(server.local_addr(), Connect::v5("limits")).await;
    assert!(!ack.session_present);
    assert_eq!(ack.props.u32(prop::MAXIMUM_PACKET_SIZE), Some(4096), "{ack:?}");
    assert_eq!(ack.props.u16(prop::TOPIC_ALIAS_MAXIMUM), Some(7), "{ack:?}");
    assert_eq!(ack.props.u16(prop::RECEIVE_MAXIMUM), Some(5), "{ack:?}");
    assert!(
        !ack.props.has(prop::ASSIGNED_CLIENT_IDENTIFIER),
        "no identifier is assigned to a client that chose one: {ack:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn v5_connack_with_default_config_announces_the_defaults_to_rumqttc() {
    let server = start().await;
    let (client, ack) = V5::connect(server.local_addr(), "defaults").await;
    assert_eq!(ack.code, v5p::ConnectReturnCode::Success);
    let props = ack.properties.expect("CONNACK properties");
    assert_eq!(props.max_packet_size, Some(1024 * 1024));
    assert_eq!(props.topic_alias_max, Some(64));
    assert_eq!(props.receive_max, Some(32));
    client.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v5_client_with_empty_client_id_is_assigned_a_unique_identifier() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut first, ack1) = Raw::connect(addr, Connect::v5("")).await;
    let (mut second, ack2) = Raw::connect(addr, Connect::v5("")).await;
    let id1 = ack1.props.str(prop::ASSIGNED_CLIENT_IDENTIFIER).expect("assigned client identifier").to_owned();
    let id2 = ack2.props.str(prop::ASSIGNED_CLIENT_IDENTIFIER).expect("assigned client identifier").to_owned();
    assert!(!id1.is_empty() && !id2.is_empty());
    assert_ne!(id1, id2, "two clients must not be assigned the same identifier");
    // Neither took the other over: both still answer.
    first.ping().await;
    second.ping().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v311_client_with_empty_client_id_and_clean_session_is_accepted() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut client, ack) = V4::connect(addr, "").await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    assert!(!ack.session_present);
    client.subscribe("anon/t", rumqttc::QoS::AtLeastOnce).await;
    client.publish("anon/t", rumqttc::QoS::AtLeastOnce, false, b"hello").await;
    assert_eq!(&client.recv_publish().await.payload[..], b"hello");
    // The CONNACK of 3.1.1 has no properties: exactly 20 02 00 00.
    let mut raw = Raw::tcp(addr, Level::V311).await;
    raw.send(&Connect::v311("").encode()).await;
    assert_eq!(raw.recv().await.bytes(), vec![0x20, 0x02, 0x00, 0x00]);
    client.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v311_client_with_empty_client_id_without_clean_session_is_refused_with_return_code_2() {
    let server = start().await;
    let mut raw = Raw::tcp(server.local_addr(), Level::V311).await;
    raw.send(&Connect::v311("").clean(false).encode()).await;
    let frames = raw.expect_closed().await;
    let bytes: Vec<Vec<u8>> = frames.iter().map(Frame::bytes).collect();
    assert_eq!(bytes, vec![vec![0x20, 0x02, 0x00, 0x02]], "CONNACK identifier rejected, then close");
    server.shutdown().await;
}

#[tokio::test]
async fn v31_client_with_empty_client_id_is_refused_with_return_code_2() {
    let server = start().await;
    let mut raw = Raw::tcp(server.local_addr(), Level::V31).await;
    raw.send(&Connect::v31("").encode()).await;
    let frames = raw.expect_closed().await;
    let bytes: Vec<Vec<u8>> = frames.iter().map(Frame::bytes).collect();
    assert_eq!(bytes, vec![vec![0x20, 0x02, 0x00, 0x02]], "CONNACK identifier rejected, then close");
    server.shutdown().await;
}

#[tokio::test]
async fn v31_client_connects_subscribes_and_exchanges_messages_at_every_qos() {
    let server = start().await;
    let addr = server.local_addr();
    let mut sub = Raw::tcp(addr, Level::V31).await;
    sub.send(&Connect::v31("old-sub").encode()).await;
    assert_eq!(sub.recv().await.bytes(), vec![0x20, 0x02, 0x00, 0x00]);
    assert_eq!(sub.subscribe(1, &[("v31/t", 2)]).await, vec![2]);
    let (mut publisher, _) = Raw::connect(addr, Connect::v31("old-pub")).await;
    for qos in 0..=2u8 {
        let payload = format!("q{qos}");
        publisher.publish(PublishSpec::new("v31/t", payload.as_bytes()).qos(qos, 10 + u16::from(qos))).await;
        let got = sub.recv_publish_acked().await;
        assert_eq!((got.topic.as_str(), got.qos, got.payload_str()), ("v31/t", qos, payload.as_str()));
    }
    // A 3.1.1 subscriber receives what a 3.1 client publishes, and back.
    let (mut modern, _) = V4::connect(addr, "modern").await;
    modern.subscribe("v31/#", rumqttc::QoS::ExactlyOnce).await;
    publisher.publish(PublishSpec::new("v31/x", b"to-311").qos(1, 20)).await;
    assert_eq!(&modern.recv_publish().await.payload[..], b"to-311");
    modern.publish("v31/t", rumqttc::QoS::AtLeastOnce, false, b"to-31").await;
    assert_eq!(sub.recv_publish_acked().await.payload_str(), "to-31");
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn pingreq_is_answered_with_pingresp_in_every_version() {
    let server = start().await;
    for (level, id) in [(Level::V31, "p3"), (Level::V311, "p4"), (Level::V5, "p5")] {
        let (mut raw, _) = Raw::connect(server.local_addr(), Connect::new(level, id)).await;
        raw.ping().await;
        raw.disconnect().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn v311_session_present_is_0_for_a_new_session_and_1_when_resumed() {
    let server = start().await;
    let addr = server.local_addr();
    let persistent = |o: &mut rumqttc::MqttOptions| {
        o.set_clean_session(false);
    };
    let (client, ack) = V4::connect_with(addr, "sp311", persistent).await;
    assert!(!ack.session_present, "no session existed");
    client.disconnect().await;
    let (client, ack) = V4::connect_with(addr, "sp311", persistent).await;
    assert!(ack.session_present, "the session was kept");
    client.disconnect().await;
    // Clean session ends it; the next persistent connect starts afresh.
    let (client, ack) = V4::connect(addr, "sp311").await;
    assert!(!ack.session_present);
    client.disconnect().await;
    let (client, ack) = V4::connect_with(addr, "sp311", persistent).await;
    assert!(!ack.session_present, "clean session discarded the old session");
    client.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v5_session_present_is_0_for_a_new_session_and_1_when_resumed() {
    let server = start().await;
    let addr = server.local_addr();
    let (raw, ack) = Raw::connect(addr, Connect::v5("sp5").clean(false).session_expiry(60)).await;
    assert!(!ack.session_present);
    raw.disconnect().await;
    let (raw, ack) = Raw::connect(addr, Connect::v5("sp5").clean(false).session_expiry(60)).await;
    assert!(ack.session_present);
    raw.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn clean_start_discards_the_previous_session_and_its_subscriptions() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut raw, _) = Raw::connect(addr, Connect::v5("cs").clean(false).session_expiry(60)).await;
    assert_eq!(raw.subscribe(1, &[("cs/old", 1)]).await, vec![1]);
    raw.disconnect().await;

    let (mut raw, ack) = Raw::connect(addr, Connect::v5("cs").clean(true).session_expiry(60)).await;
    assert!(!ack.session_present, "clean start must not resume the session");
    assert_eq!(raw.subscribe(1, &[("cs/marker", 1)]).await, vec![1]);
    let (mut publisher, _) = V4::connect(addr, "cs-pub").await;
    publisher.publish("cs/old", rumqttc::QoS::AtLeastOnce, false, b"old").await;
    publisher.publish("cs/marker", rumqttc::QoS::AtLeastOnce, false, b"marker").await;
    let before = payloads_until(&mut raw, "marker").await;
    assert!(before.is_empty(), "the discarded subscription still delivered {before:?}");
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn second_connection_with_the_same_client_id_takes_over_and_the_first_v5_gets_disconnect_0x8e() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut first, _) = Raw::connect(addr, Connect::v5("twin")).await;
    let (mut second, _) = Raw::connect(addr, Connect::v5("twin")).await;
    first.expect_disconnect(0x8E).await;
    second.ping().await;
    server.shutdown().await;
}

#[tokio::test]
async fn takeover_closes_the_first_v311_connection_without_a_disconnect_packet() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut first, _) = Raw::connect(addr, Connect::v311("twin3")).await;
    let (mut second, _) = Raw::connect(addr, Connect::v311("twin3")).await;
    first.expect_closed_without_disconnect().await;
    second.ping().await;
    server.shutdown().await;
}

#[tokio::test]
async fn takeover_without_clean_start_hands_the_session_to_the_new_connection() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut first, _) = Raw::connect(addr, Connect::v5("handover").clean(false).session_expiry(60)).await;
    assert_eq!(first.subscribe(1, &[("ho/t", 1)]).await, vec![1]);
    let (mut second, ack) = Raw::connect(addr, Connect::v5("handover").clean(false).session_expiry(60)).await;
    assert!(ack.session_present, "the live session is handed over");
    first.expect_disconnect(0x8E).await;
    let (mut publisher, _) = V4::connect(addr, "ho-pub").await;
    publisher.publish("ho/t", rumqttc::QoS::AtLeastOnce, false, b"to-second").await;
    let got = second.recv_publish_acked().await;
    assert_eq!(got.payload_str(), "to-second");
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn unsupported_protocol_level_gets_connack_return_code_1_and_close() {
    let server = start().await;
    for level in [6u8, 2, 0x83] {
        let mut raw = Raw::tcp(server.local_addr(), Level::V311).await;
        let mut body = field(b"MQTT");
        body.extend([level, 0x02, 0x00, 0x3C]);
        body.extend(field(b"future"));
        raw.send(&frame(0x10, &body)).await;
        let frames = raw.expect_closed().await;
        let bytes: Vec<Vec<u8>> = frames.iter().map(Frame::bytes).collect();
        assert_eq!(bytes, vec![vec![0x20, 0x02, 0x00, 0x01]], "protocol level {level}: CONNACK 1 then close");
    }
    assert_broker_serves(server.local_addr(), "level").await;
    server.shutdown().await;
}

#[tokio::test]
async fn first_packet_that_is_not_connect_closes_the_connection() {
    let server = start().await;
    let firsts: [Vec<u8>; 3] = [
        PINGREQ_PACKET.to_vec(),
        PublishSpec::new("t", b"x").encode(Level::V311),
        subscribe_packet(Level::V311, 1, &[("t", 0)], &[]),
    ];
    for first in firsts {
        let mut raw = Raw::tcp(server.local_addr(), Level::V311).await;
        raw.send(&first).await;
        let frames = raw.expect_closed().await;
        assert!(frames.is_empty(), "nothing is sent before the close, got {frames:?} for {first:02x?}");
    }
    assert_broker_serves(server.local_addr(), "notconnect").await;
    server.shutdown().await;
}

#[tokio::test]
async fn second_connect_from_a_v5_client_gets_disconnect_0x82_and_close() {
    let server = start().await;
    let (mut raw, _) = Raw::connect(server.local_addr(), Connect::v5("again5")).await;
    raw.send(&Connect::v5("again5").encode()).await;
    raw.expect_disconnect(0x82).await;
    assert_broker_serves(server.local_addr(), "again5").await;
    server.shutdown().await;
}

#[tokio::test]
async fn second_connect_from_a_v311_client_closes_the_connection() {
    let server = start().await;
    let (mut raw, _) = Raw::connect(server.local_addr(), Connect::v311("again4")).await;
    raw.send(&Connect::v311("again4").encode()).await;
    raw.expect_closed_without_disconnect().await;
    assert_broker_serves(server.local_addr(), "again4").await;
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_sends_v5_clients_disconnect_0x8b_and_closes_every_connection() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut v5, _) = Raw::connect(addr, Connect::v5("bye5")).await;
    let (mut v311, _) = Raw::connect(addr, Connect::v311("bye4")).await;
    let (mut rumq, _) = V5::connect(addr, "bye-rumqttc").await;
    within_named("shutdown", WAIT * 2, server.shutdown()).await;
    v5.expect_disconnect(0x8B).await;
    v311.expect_closed_without_disconnect().await;
    // rumqttc 0.24 cannot parse a DISCONNECT whose property length is
    // omitted (valid: [MQTT-3.14.2] "If the Remaining Length is less than 2,
    // a value of 0 is used"), so it only sees the close.
    let _ = rumq.wait_error().await;
    assert_eq!(server.connection_count(), 0);
    // The listener is closed: a new connection is refused, closed, or at
    // least never accepted with CONNACK 0.
    if let Ok(Ok(mut stream)) = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr)).await {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = stream.write_all(&Connect::v5("late").encode()).await;
        let mut reply = [0u8; 4];
        if let Ok(Ok(_)) = tokio::time::timeout(WAIT, stream.read_exact(&mut reply)).await {
            assert_ne!(reply[3], 0x00, "a connection made after shutdown was accepted: {reply:02x?}");
        }
    }
}
