//! PUBLISH over real TCP: the QoS 0/1/2 flows in both directions, redelivery
//! on session resume, exactly-once, QoS downgrade, receive maximum, topic
//! aliases, message expiry, property forwarding and the client's maximum
//! packet size.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::time::Duration;

use tcp_common::*;

#[tokio::test]
async fn qos_0_1_and_2_messages_round_trip_between_v311_clients() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "rt4-sub").await;
    let codes = sub.subscribe("rt4/#", Q4::ExactlyOnce).await;
    assert_eq!(codes, vec![rumqttc::SubscribeReasonCode::Success(Q4::ExactlyOnce)]);
    let (mut publisher, _) = V4::connect(addr, "rt4-pub").await;
    for qos in [Q4::AtMostOnce, Q4::AtLeastOnce, Q4::ExactlyOnce] {
        let payload = format!("{qos:?}");
        publisher.publish("rt4/t", qos, false, payload.as_bytes()).await;
        let got = sub.recv_publish().await;
        assert_eq!(got.topic, "rt4/t");
        assert_eq!(got.qos, qos);
        assert_eq!(got.payload, payload.as_bytes());
        assert!(!got.retain && !got.dup);
    }
    publisher.disconnect().await;
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn qos_0_1_and_2_messages_round_trip_between_v5_clients() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V5::connect(addr, "rt5-sub").await;
    sub.subscribe("rt5/#", Q5::ExactlyOnce).await;
    let (mut publisher, _) = V5::connect(addr, "rt5-pub").await;
    for qos in [Q5::AtMostOnce, Q5::AtLeastOnce, Q5::ExactlyOnce] {
        let payload = format!("{qos:?}");
        publisher.publish("rt5/t", qos, false, payload.as_bytes()).await;
        let got = sub.recv_publish().await;
        assert_eq!(&got.topic[..], b"rt5/t");
        assert_eq!(got.qos, qos);
        assert_eq!(got.payload, payload.as_bytes());
    }
    publisher.disconnect().await;
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v311_and_v5_clients_exchange_messages_in_both_directions() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut old, _) = V4::connect(addr, "x-311").await;
    old.subscribe("x/to311", Q4::ExactlyOnce).await;
    let (mut new, _) = V5::connect(addr, "x-5").await;
    new.subscribe("x/to5", Q5::ExactlyOnce).await;
    new.publish("x/to311", Q5::ExactlyOnce, false, b"from5").await;
    old.publish("x/to5", Q4::ExactlyOnce, false, b"from311").await;
    let got = old.recv_publish().await;
    assert_eq!((got.qos, &got.payload[..]), (Q4::ExactlyOnce, &b"from5"[..]));
    let got = new.recv_publish().await;
    assert_eq!((got.qos, &got.payload[..]), (Q5::ExactlyOnce, &b"from311"[..]));
    old.disconnect().await;
    new.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn qos_1_publish_from_a_client_is_acknowledged_with_puback() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "ack1-sub").await;
    sub.subscribe("ack1/t", Q4::AtLeastOnce).await;
    let (mut raw, _) = Raw::connect(addr, Connect::v311("ack1-raw")).await;
    raw.send(&PublishSpec::new("ack1/t", b"m").qos(1, 0x1234).encode(Level::V311)).await;
    assert_eq!(raw.recv().await.bytes(), vec![0x40, 0x02, 0x12, 0x34]);
    assert_eq!(&sub.recv_publish().await.payload[..], b"m");

    let (mut raw5, _) = Raw::connect(addr, Connect::v5("ack1-raw5")).await;
    raw5.send(&PublishSpec::new("ack1/t", b"m5").qos(1, 0x0102).encode(Level::V5)).await;
    let ack = raw5.recv().await;
    ack.expect_kind(PUBACK);
    assert_eq!(ack.flags(), 0);
    assert_eq!(ack.ack(), (0x0102, 0x00), "PUBACK success for a matched message: {ack:?}");
    assert_eq!(&sub.recv_publish().await.payload[..], b"m5");
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v5_puback_reports_no_matching_subscribers_when_nobody_subscribed() {
    let server = start().await;
    let (mut raw, _) = Raw::connect(server.local_addr(), Connect::v5("lonely")).await;
    raw.send(&PublishSpec::new("nobody/listens", b"m").qos(1, 3).encode(Level::V5)).await;
    assert_eq!(raw.recv_kind(PUBACK).await.ack(), (3, 0x10));
    raw.send(&PublishSpec::new("nobody/listens", b"m").qos(2, 4).encode(Level::V5)).await;
    assert_eq!(raw.recv_kind(PUBREC).await.ack(), (4, 0x10));
    raw.send(&ack_packet(PUBREL, 4)).await;
    assert_eq!(raw.recv_kind(PUBCOMP).await.ack().0, 4);
    server.shutdown().await;
}

#[tokio::test]
async fn qos_2_publish_from_a_client_completes_with_pubrec_pubrel_pubcomp() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "q2in-sub").await;
    sub.subscribe("q2in/t", Q4::ExactlyOnce).await;
    let (mut raw, _) = Raw::connect(addr, Connect::v311("q2in-raw")).await;
    raw.send(&PublishSpec::new("q2in/t", b"exactly").qos(2, 7).encode(Level::V311)).await;
    assert_eq!(raw.recv().await.bytes(), vec![0x50, 0x02, 0x00, 0x07], "PUBREC");
    raw.send(&ack_packet(PUBREL, 7)).await;
    assert_eq!(raw.recv().await.bytes(), vec![0x70, 0x02, 0x00, 0x07], "PUBCOMP");
    let got = sub.recv_publish().await;
    assert_eq!((got.qos, &got.payload[..]), (Q4::ExactlyOnce, &b"exactly"[..]));
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn qos_2_delivery_to_a_client_goes_publish_pubrec_pubrel_pubcomp() {
    let server = start().await;
    let addr = server.local_addr();
    for level in [Level::V311, Level::V5] {
        let id = format!("q2out-{level:?}");
        let (mut sub, _) = Raw::connect(addr, Connect::new(level, &id)).await;
        let topic = format!("q2out/{level:?}");
        assert_eq!(sub.subscribe(1, &[(&topic, 2)]).await, vec![2]);
        let (mut publisher, _) = V4::connect(addr, &format!("{id}-pub")).await;
        publisher.publish(&topic, Q4::ExactlyOnce, false, b"first").await;
        let got = sub.recv_publish().await;
        assert_eq!((got.qos, got.dup, got.payload_str()), (2, false, "first"));
        let pid = got.packet_id.unwrap();
        sub.send(&ack_packet(PUBREC, pid)).await;
        let rel = sub.recv().await;
        let mut expected = vec![0x62, 0x02];
        expected.extend(pid.to_be_bytes());
        assert_eq!(rel.bytes(), expected, "PUBREL answers PUBREC ({level:?})");
        sub.send(&ack_packet(PUBCOMP, pid)).await;
        // The flow is over: the next message is new, and nothing is resent.
        publisher.publish(&topic, Q4::ExactlyOnce, false, b"second").await;
        let next = sub.recv_publish().await;
        assert_eq!((next.dup, next.payload_str()), (false, "second"));
        sub.ack(&next).await;
        sub.expect_silence().await;
        publisher.disconnect().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unacknowledged_qos_1_delivery_is_resent_with_dup_when_the_session_resumes() {
    let server = start().await;
    let addr = server.local_addr();
    for (level, connect) in [
        (Level::V311, Connect::v311("dup4").clean(false)),
        (Level::V5, Connect::v5("dup5").clean(false).session_expiry(60)),
    ] {
        let topic = format!("dup/{level:?}");
        let (mut sub, _) = Raw::connect(addr, connect.clone()).await;
        assert_eq!(sub.subscribe(1, &[(&topic, 1)]).await, vec![1]);
        let (mut publisher, _) = V4::connect(addr, &format!("dup-pub-{level:?}")).await;
        publisher.publish(&topic, Q4::AtLeastOnce, false, b"unacked").await;
        let first = sub.recv_publish().await;
        assert_eq!((first.qos, first.dup), (1, false));
        drop(sub); // no PUBACK, no DISCONNECT

        let (mut sub, ack) = Raw::connect(addr, connect).await;
        assert!(ack.session_present, "{level:?}: the session was kept");
        let again = sub.recv_publish().await;
        assert_eq!(again.payload_str(), "unacked");
        assert!(again.dup, "{level:?}: a resent PUBLISH has DUP set [MQTT-3.3.1-1]");
        assert_eq!(again.packet_id, first.packet_id, "{level:?}: same packet identifier");
        sub.ack(&again).await;
        publisher.publish(&topic, Q4::AtLeastOnce, false, b"next").await;
        let next = sub.recv_publish_acked().await;
        assert_eq!((next.payload_str(), next.dup), ("next", false));
        sub.disconnect().await;
        publisher.disconnect().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unacknowledged_qos_2_delivery_is_resent_with_dup_when_the_session_resumes() {
    let server = start().await;
    let addr = server.local_addr();
    let connect = Connect::v311("dup2").clean(false);
    let (mut sub, _) = Raw::connect(addr, connect.clone()).await;
    assert_eq!(sub.subscribe(1, &[("dup2/t", 2)]).await, vec![2]);
    let (mut publisher, _) = V4::connect(addr, "dup2-pub").await;
    publisher.publish("dup2/t", Q4::ExactlyOnce, false, b"q2").await;
    let first = sub.recv_publish().await;
    drop(sub);
    let (mut sub, ack) = Raw::connect(addr, connect).await;
    assert!(ack.session_present);
    let again = sub.recv_publish().await;
    assert_eq!((again.qos, again.dup, again.packet_id, again.payload_str()), (2, true, first.packet_id, "q2"));
    sub.ack(&again).await;
    sub.expect_silence().await;
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn qos_2_delivery_interrupted_after_pubrec_resumes_with_pubrel_not_publish() {
    let server = start().await;
    let addr = server.local_addr();
    let connect = Connect::v311("rel-resume").clean(false);
    let (mut sub, _) = Raw::connect(addr, connect.clone()).await;
    assert_eq!(sub.subscribe(1, &[("rel/t", 2)]).await, vec![2]);
    let (mut publisher, _) = V4::connect(addr, "rel-pub").await;
    publisher.publish("rel/t", Q4::ExactlyOnce, false, b"once").await;
    let got = sub.recv_publish().await;
    let pid = got.packet_id.unwrap();
    sub.send(&ack_packet(PUBREC, pid)).await;
    assert_eq!(sub.recv_kind(PUBREL).await.ack().0, pid);
    drop(sub); // before PUBCOMP

    let (mut sub, ack) = Raw::connect(addr, connect).await;
    assert!(ack.session_present);
    let resent = sub.recv().await;
    let mut expected = vec![0x62, 0x02];
    expected.extend(pid.to_be_bytes());
    assert_eq!(resent.bytes(), expected, "the PUBREL is resent, the message is not [MQTT-4.4.0-1]");
    sub.send(&ack_packet(PUBCOMP, pid)).await;
    sub.expect_silence().await;
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn qos_2_message_resent_by_the_publisher_with_the_same_packet_id_is_delivered_once() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "once-sub").await;
    sub.subscribe("once/#", Q4::ExactlyOnce).await;

    // Resent on the same connection before PUBREL.
    let (mut raw, _) = Raw::connect(addr, Connect::v311("once-pub")).await;
    let publish = PublishSpec::new("once/t", b"one").qos(2, 7);
    raw.send(&publish.encode(Level::V311)).await;
    assert_eq!(raw.recv_kind(PUBREC).await.ack().0, 7);
    raw.send(&publish.clone().dup().encode(Level::V311)).await;
    assert_eq!(raw.recv_kind(PUBREC).await.ack().0, 7);
    raw.send(&ack_packet(PUBREL, 7)).await;
    assert_eq!(raw.recv_kind(PUBCOMP).await.ack().0, 7);
    raw.publish(PublishSpec::new("once/t", b"end1").qos(1, 8)).await;
    assert_eq!(sub.payloads_until("end1").await, vec!["one"]);

    // Resent on a new connection of the same session.
    let connect = Connect::v311("once-pub2").clean(false);
    let (mut raw, _) = Raw::connect(addr, connect.clone()).await;
    let publish = PublishSpec::new("once/t", b"two").qos(2, 9);
    raw.send(&publish.encode(Level::V311)).await;
    assert_eq!(raw.recv_kind(PUBREC).await.ack().0, 9);
    drop(raw);
    let (mut raw, ack) = Raw::connect(addr, connect).await;
    assert!(ack.session_present);
    raw.send(&publish.clone().dup().encode(Level::V311)).await;
    assert_eq!(raw.recv_kind(PUBREC).await.ack().0, 9);
    raw.send(&ack_packet(PUBREL, 9)).await;
    assert_eq!(raw.recv_kind(PUBCOMP).await.ack().0, 9);
    raw.publish(PublishSpec::new("once/t", b"end2").qos(1, 10)).await;
    assert_eq!(sub.payloads_until("end2").await, vec!["two"]);
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn delivery_qos_is_the_lower_of_the_message_qos_and_the_subscription_qos() {
    let server = start().await;
    let addr = server.local_addr();
    let mut subs = Vec::new();
    for qos in 0..=2u8 {
        let (mut sub, _) = Raw::connect(addr, Connect::v311(&format!("down-{qos}"))).await;
        assert_eq!(sub.subscribe(1, &[("down/t", qos)]).await, vec![qos]);
        subs.push(sub);
    }
    let (mut publisher, _) = V4::connect(addr, "down-pub").await;
    for (message_qos, q) in [(0u8, Q4::AtMostOnce), (1, Q4::AtLeastOnce), (2, Q4::ExactlyOnce)] {
        publisher.publish("down/t", q, false, format!("m{message_qos}").as_bytes()).await;
        for (sub_qos, sub) in subs.iter_mut().enumerate() {
            let got = sub.recv_publish_acked().await;
            let expected = message_qos.min(u8::try_from(sub_qos).unwrap());
            assert_eq!(got.qos, expected, "message QoS {message_qos} to a QoS {sub_qos} subscription");
            assert_eq!(got.packet_id.is_some(), expected > 0);
        }
    }
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v5_client_with_receive_maximum_1_gets_one_unacknowledged_message_at_a_time() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v5("rm1").props(p_u16(prop::RECEIVE_MAXIMUM, 1))).await;
    assert_eq!(sub.subscribe(1, &[("rm/t", 2)]).await, vec![2]);
    let (mut publisher, _) = V4::connect(addr, "rm1-pub").await;
    publisher.publish("rm/t", Q4::AtLeastOnce, false, b"m1").await;
    publisher.publish("rm/t", Q4::ExactlyOnce, false, b"m2").await;
    publisher.publish("rm/t", Q4::AtLeastOnce, false, b"m3").await;
    // All three are routed (the publisher has its acknowledgements).

    let m1 = sub.recv_publish().await;
    assert_eq!(m1.payload_str(), "m1");
    sub.expect_silence().await;
    sub.send(&ack_packet(PUBACK, m1.packet_id.unwrap())).await;

    let m2 = sub.recv_publish().await;
    assert_eq!((m2.payload_str(), m2.qos), ("m2", 2));
    sub.expect_silence().await;
    // A QoS 2 message stays in flight until PUBCOMP, not just PUBREC.
    let pid = m2.packet_id.unwrap();
    sub.send(&ack_packet(PUBREC, pid)).await;
    assert_eq!(sub.recv_kind(PUBREL).await.ack().0, pid);
    sub.expect_silence().await;
    sub.send(&ack_packet(PUBCOMP, pid)).await;

    let m3 = sub.recv_publish_acked().await;
    assert_eq!(m3.payload_str(), "m3");
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v5_topic_alias_from_the_client_stands_for_the_topic_it_was_set_with() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "alias-in-sub").await;
    sub.subscribe("alias/#", Q4::AtLeastOnce).await;
    let (mut raw, _) = Raw::connect(addr, Connect::v5("alias-in")).await;
    let alias = |n: u16| p_u16(prop::TOPIC_ALIAS, n);
    raw.publish(PublishSpec::new("alias/a", b"1").qos(1, 1).props(alias(1))).await;
    raw.publish(PublishSpec::new("", b"2").qos(1, 2).props(alias(1))).await;
    raw.publish(PublishSpec::new("alias/b", b"3").qos(1, 3).props(alias(1))).await;
    raw.publish(PublishSpec::new("", b"4").qos(0, 0).props(alias(1))).await;
    raw.publish(PublishSpec::new("alias/c", b"5").qos(1, 4).props(alias(2))).await;
    raw.publish(PublishSpec::new("", b"6").qos(1, 5).props(alias(2))).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let got = sub.recv_publish().await;
        seen.push((got.topic.clone(), String::from_utf8_lossy(&got.payload).into_owned()));
    }
    let expected: Vec<(String, String)> =
        [("alias/a", "1"), ("alias/a", "2"), ("alias/b", "3"), ("alias/b", "4"), ("alias/c", "5"), ("alias/c", "6")]
            .iter()
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect();
    assert_eq!(seen, expected);
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn broker_uses_topic_aliases_towards_a_v5_client_that_announces_topic_alias_maximum() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v5("alias-out").props(p_u16(prop::TOPIC_ALIAS_MAXIMUM, 4))).await;
    assert_eq!(sub.subscribe(1, &[("ao/#", 1)]).await, vec![1]);
    let (mut publisher, _) = V4::connect(addr, "alias-out-pub").await;
    for (topic, payload) in [("ao/x", "1"), ("ao/x", "2"), ("ao/y", "3"), ("ao/y", "4"), ("ao/x", "5")] {
        publisher.publish(topic, Q4::AtLeastOnce, false, payload.as_bytes()).await;
    }
    let mut topics = std::collections::HashMap::new();
    let mut empty_topic_seen = false;
    for expected in [("ao/x", "1"), ("ao/x", "2"), ("ao/y", "3"), ("ao/y", "4"), ("ao/x", "5")] {
        let got = sub.recv_publish_acked().await;
        assert_eq!(got.payload_str(), expected.1);
        let alias = got.props.u16(prop::TOPIC_ALIAS);
        if let Some(alias) = alias {
            assert!((1..=4).contains(&alias), "alias {alias} outside 1..=4");
        }
        let topic = if got.topic.is_empty() {
            empty_topic_seen = true;
            let alias = alias.expect("an empty topic comes with a topic alias");
            topics.get(&alias).cloned().expect("alias used before it was set")
        } else {
            if let Some(alias) = alias {
                topics.insert(alias, got.topic.clone());
            }
            got.topic.clone()
        };
        assert_eq!(topic, expected.0);
    }
    assert!(empty_topic_seen, "the broker never replaced a repeated topic by its alias");

    // rumqttc resolves the broker's aliases too.
    let (mut rumq, _) = V5::connect_with(addr, "alias-out-rumq", |o| {
        o.set_topic_alias_max(Some(10));
    })
    .await;
    rumq.subscribe("ao/#", Q5::AtLeastOnce).await;
    publisher.publish("ao/z", Q4::AtLeastOnce, false, b"a").await;
    publisher.publish("ao/z", Q4::AtLeastOnce, false, b"b").await;
    for payload in ["a", "b"] {
        let got = rumq.recv_publish().await;
        assert_eq!((&got.topic[..], &got.payload[..]), (&b"ao/z"[..], payload.as_bytes()));
    }
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn broker_sends_no_topic_alias_to_a_client_that_did_not_announce_topic_alias_maximum() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v5("no-alias")).await;
    assert_eq!(sub.subscribe(1, &[("na/t", 1)]).await, vec![1]);
    let (mut publisher, _) = V4::connect(addr, "no-alias-pub").await;
    for payload in ["1", "2", "3"] {
        publisher.publish("na/t", Q4::AtLeastOnce, false, payload.as_bytes()).await;
        let got = sub.recv_publish_acked().await;
        assert_eq!((got.topic.as_str(), got.payload_str()), ("na/t", payload));
        assert!(!got.props.has(prop::TOPIC_ALIAS), "{got:?}");
    }
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn queued_message_expires_for_an_offline_session_and_the_survivor_carries_a_decreased_expiry() {
    let server = start().await;
    let addr = server.local_addr();
    let connect = Connect::v5("exp-sub").clean(false).session_expiry(60);
    let (mut sub, _) = Raw::connect(addr, connect.clone()).await;
    assert_eq!(sub.subscribe(1, &[("exp/t", 1)]).await, vec![1]);
    sub.disconnect().await;

    let (mut publisher, _) = Raw::connect(addr, Connect::v5("exp-pub")).await;
    let expiry = |secs: u32| p_u32(prop::MESSAGE_EXPIRY_INTERVAL, secs);
    publisher.publish(PublishSpec::new("exp/t", b"short").qos(1, 1).props(expiry(1))).await;
    publisher.publish(PublishSpec::new("exp/t", b"long").qos(1, 2).props(expiry(60))).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let (mut sub, ack) = Raw::connect(addr, connect).await;
    assert!(ack.session_present);
    let got = sub.recv_publish_acked().await;
    assert_eq!(got.payload_str(), "long", "the 1 s message expired while the session was offline");
    let left = got.props.u32(prop::MESSAGE_EXPIRY_INTERVAL).expect("the expiry interval is forwarded");
    assert!((1..=58).contains(&left), "forwarded expiry {left} s must be 60 less the 2.2 s waited [MQTT-3.3.2-6]");
    sub.expect_silence().await;
    assert!(server.counters().dropped_expired >= 1, "{:?}", server.counters());
    server.shutdown().await;
}

#[tokio::test]
async fn message_expiry_interval_is_forwarded_to_a_live_subscriber() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v5("exp-live")).await;
    assert_eq!(sub.subscribe(1, &[("expl/t", 1)]).await, vec![1]);
    let (mut publisher, _) = Raw::connect(addr, Connect::v5("exp-live-pub")).await;
    publisher
        .publish(PublishSpec::new("expl/t", b"m").qos(1, 1).props(p_u32(prop::MESSAGE_EXPIRY_INTERVAL, 100)))
        .await;
    publisher.publish(PublishSpec::new("expl/t", b"forever").qos(1, 2)).await;
    let got = sub.recv_publish_acked().await;
    let left = got.props.u32(prop::MESSAGE_EXPIRY_INTERVAL).expect("expiry forwarded");
    assert!((90..=100).contains(&left), "forwarded expiry {left}");
    let got = sub.recv_publish_acked().await;
    assert!(!got.props.has(prop::MESSAGE_EXPIRY_INTERVAL), "no expiry was set: {got:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn publish_properties_are_forwarded_unchanged() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V5::connect(addr, "props-sub").await;
    sub.subscribe("props/t", Q5::AtLeastOnce).await;
    let (mut publisher, _) = V5::connect(addr, "props-pub").await;
    let user_properties = vec![
        ("k".to_string(), "v1".to_string()),
        ("k".to_string(), "v2".to_string()),
        ("a".to_string(), "z".to_string()),
    ];
    let props = v5p::PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("text/plain; charset=utf-8".into()),
        response_topic: Some("props/reply".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"\x00\x01corr\xff")),
        user_properties: user_properties.clone(),
        ..Default::default()
    };
    publisher.publish_with("props/t", Q5::AtLeastOnce, false, "héllo".as_bytes(), Some(props)).await;
    let got = sub.recv_publish().await;
    let p = got.properties.expect("properties forwarded");
    assert_eq!(p.payload_format_indicator, Some(1));
    assert_eq!(p.content_type.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(p.response_topic.as_deref(), Some("props/reply"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"\x00\x01corr\xff"[..]));
    assert_eq!(p.user_properties, user_properties, "user properties in order [MQTT-3.3.2-18]");
    assert_eq!(p.message_expiry_interval, None);
    assert!(p.subscription_identifiers.is_empty());
    assert_eq!(&got.payload[..], "héllo".as_bytes());
    publisher.disconnect().await;
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn message_larger_than_the_client_maximum_packet_size_is_not_sent_to_it() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut small, _) =
        Raw::connect(addr, Connect::v5("mps-small").props(p_u32(prop::MAXIMUM_PACKET_SIZE, 200))).await;
    assert_eq!(small.subscribe(1, &[("mps/t", 1)]).await, vec![1]);
    let (mut large, _) = Raw::connect(addr, Connect::v5("mps-large")).await;
    assert_eq!(large.subscribe(1, &[("mps/t", 1)]).await, vec![1]);
    let (mut publisher, _) = V4::connect(addr, "mps-pub").await;
    let big = vec![b'x'; 1000];
    publisher.publish("mps/t", Q4::AtLeastOnce, false, &big).await;
    publisher.publish("mps/t", Q4::AtLeastOnce, false, b"small").await;
    let got = large.recv_publish_acked().await;
    assert_eq!(got.payload.len(), 1000);
    assert_eq!(large.recv_publish_acked().await.payload_str(), "small");
    let got = small.recv_publish_acked().await;
    assert_eq!(
        got.payload_str(),
        "small",
        "the 1000-byte message must not be sent to a 200-byte client [MQTT-3.1.2-24]"
    );
    small.expect_silence().await;
    assert!(server.counters().dropped_too_large >= 1);
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn messages_from_one_publisher_arrive_in_the_order_sent() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "order-sub").await;
    sub.subscribe("order/t", Q4::AtLeastOnce).await;
    let (publisher, _) = V4::connect(addr, "order-pub").await;
    for i in 0..100 {
        publisher.client.publish("order/t", Q4::AtLeastOnce, false, format!("{i}")).await.unwrap();
    }
    for i in 0..100 {
        let got = sub.recv_publish().await;
        assert_eq!(String::from_utf8_lossy(&got.payload), format!("{i}"));
    }
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn pubrel_for_an_unknown_packet_identifier_is_answered_with_pubcomp() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut v5, _) = Raw::connect(addr, Connect::v5("stray-rel5")).await;
    v5.send(&ack_packet(PUBREL, 77)).await;
    let comp = v5.recv().await;
    comp.expect_kind(PUBCOMP);
    assert_eq!(comp.ack(), (77, 0x92), "MQTT 5: Packet Identifier not found");
    let (mut v311, _) = Raw::connect(addr, Connect::v311("stray-rel4")).await;
    v311.send(&ack_packet(PUBREL, 78)).await;
    assert_eq!(v311.recv().await.bytes(), vec![0x70, 0x02, 0x00, 78]);
    server.shutdown().await;
}

#[tokio::test]
async fn acknowledgements_for_unknown_packet_identifiers_do_not_break_the_connection() {
    let server = start().await;
    let addr = server.local_addr();
    for level in [Level::V311, Level::V5] {
        let (mut raw, _) = Raw::connect(addr, Connect::new(level, &format!("stray-{level:?}"))).await;
        raw.send(&ack_packet(PUBACK, 5)).await;
        raw.send(&ack_packet(PUBCOMP, 6)).await;
        raw.send(&ack_packet(PUBREC, 7)).await;
        // PUBREC for an unknown identifier is answered with PUBREL (0x92 in 5.0).
        let rel = raw.recv_kind(PUBREL).await;
        assert_eq!(rel.ack().0, 7);
        raw.ping().await;
        assert_eq!(raw.subscribe(1, &[("stray/t", 1)]).await, vec![1]);
        raw.publish(PublishSpec::new("stray/t", b"ok").qos(1, 1)).await;
        assert_eq!(raw.recv_publish_acked().await.payload_str(), "ok");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn many_packets_in_one_tcp_write_are_each_processed() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "batch-sub").await;
    sub.subscribe("batch/t", Q4::AtLeastOnce).await;
    let (mut raw, _) = Raw::connect(addr, Connect::v311("batch-pub")).await;
    let batch: Vec<u8> = (1..=100u16)
        .flat_map(|id| PublishSpec::new("batch/t", format!("{id}").as_bytes()).qos(1, id).encode(Level::V311))
        .collect();
    raw.send(&batch).await;
    for id in 1..=100u16 {
        assert_eq!(raw.recv_kind(PUBACK).await.ack().0, id, "PUBACKs in order");
    }
    for id in 1..=100u16 {
        assert_eq!(String::from_utf8_lossy(&sub.recv_publish().await.payload), format!("{id}"));
    }
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_packet_split_across_many_tcp_writes_is_reassembled() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "split-sub").await;
    sub.subscribe("split/t", Q4::AtLeastOnce).await;
    let (mut raw, _) = Raw::connect(addr, Connect::v5("split-pub")).await;
    let packet = PublishSpec::new("split/t", &[b'z'; 300]).qos(1, 9).props(p_pair("k", "v")).encode(Level::V5);
    for byte in packet {
        raw.send(&[byte]).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(raw.recv_kind(PUBACK).await.ack().0, 9);
    assert_eq!(sub.recv_publish().await.payload.len(), 300);
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_half_megabyte_message_round_trips() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v5("big-sub")).await;
    assert_eq!(sub.subscribe(1, &[("big/t", 2)]).await, vec![2]);
    let (mut publisher, _) = Raw::connect(addr, Connect::v311("big-pub")).await;
    let payload: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
    publisher.publish(PublishSpec::new("big/t", &payload).qos(2, 1)).await;
    let got = sub.recv_publish_acked().await;
    assert!(got.payload == payload, "payload corrupted ({} bytes received)", got.payload.len());
    server.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_does_not_block_publishers_or_other_subscribers() {
    let server = start().await;
    let addr = server.local_addr();
    // Subscribes, then never reads its socket again.
    let (mut stalled, _) = Raw::connect(addr, Connect::v311("stalled")).await;
    assert_eq!(stalled.subscribe(1, &[("flood/t", 1)]).await, vec![1]);
    let (mut healthy, _) = Raw::connect(addr, Connect::v311("healthy")).await;
    assert_eq!(healthy.subscribe(1, &[("flood/t", 0)]).await, vec![0]);
    let (mut publisher, _) = Raw::connect(addr, Connect::v311("flooder")).await;
    let payload = vec![b'f'; 4096];
    within_named("3000 acknowledged 4 KiB publishes", WAIT * 4, async {
        for chunk in 0..30u16 {
            let batch: Vec<u8> = (1..=100u16)
                .flat_map(|i| PublishSpec::new("flood/t", &payload).qos(1, chunk * 100 + i).encode(Level::V311))
                .collect();
            publisher.send(&batch).await;
            for _ in 0..100 {
                publisher.recv_kind(PUBACK).await;
            }
            // The healthy subscriber drains as it goes.
            for _ in 0..100 {
                healthy.recv_publish().await;
            }
        }
    })
    .await;
    assert_broker_serves(addr, "flood").await;
    drop(stalled);
    server.shutdown().await;
}

#[tokio::test]
async fn many_clients_publish_and_subscribe_concurrently() {
    let server = start().await;
    let addr = server.local_addr();
    let clients = 20;
    let (mut watcher, _) = V4::connect(addr, "crowd-watch").await;
    watcher.subscribe("crowd/#", Q4::AtLeastOnce).await;
    let mut tasks = Vec::new();
    for c in 0..clients {
        tasks.push(tokio::spawn(async move {
            let (mut me, _) = V5::connect(addr, &format!("crowd-{c}")).await;
            me.subscribe(&format!("crowd/{c}"), Q5::AtLeastOnce).await;
            for i in 0..10 {
                me.publish(&format!("crowd/{c}"), Q5::AtLeastOnce, false, format!("{c}:{i}").as_bytes()).await;
            }
            for i in 0..10 {
                let got = me.recv_publish().await;
                assert_eq!(String::from_utf8_lossy(&got.payload), format!("{c}:{i}"));
            }
            me.disconnect().await;
        }));
    }
    for task in tasks {
        within(WAIT * 4, task).await.unwrap();
    }
    let mut per_client = vec![0; clients];
    for _ in 0..clients * 10 {
        let got = watcher.recv_publish().await;
        let text = String::from_utf8_lossy(&got.payload).into_owned();
        let c: usize = text.split(':').next().unwrap().parse().unwrap();
        per_client[c] += 1;
    }
    assert!(per_client.iter().all(|n| *n == 10), "{per_client:?}");
    watcher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_qos_2_packet_identifier_can_be_reused_once_its_flow_completed() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "reuse-sub").await;
    sub.subscribe("reuse/t", Q4::ExactlyOnce).await;
    let (mut raw, _) = Raw::connect(addr, Connect::v5("reuse-pub")).await;
    raw.publish(PublishSpec::new("reuse/t", b"first").qos(2, 7)).await;
    raw.publish(PublishSpec::new("reuse/t", b"second").qos(2, 7)).await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"first");
    assert_eq!(
        &sub.recv_publish().await.payload[..],
        b"second",
        "a new message with a released identifier is delivered"
    );
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn topic_aliases_from_the_client_do_not_survive_a_reconnect() {
    let server = start().await;
    let addr = server.local_addr();
    let connect = Connect::v5("alias-session").clean(false).session_expiry(60);
    let (mut raw, _) = Raw::connect(addr, connect.clone()).await;
    raw.publish(PublishSpec::new("as/t", b"set").qos(1, 1).props(p_u16(prop::TOPIC_ALIAS, 1))).await;
    raw.disconnect().await;
    let (mut raw, ack) = Raw::connect(addr, connect).await;
    assert!(ack.session_present);
    // [MQTT-3.3.2-7]: aliases belong to the network connection.
    raw.send(&PublishSpec::new("", b"stale").qos(1, 2).props(p_u16(prop::TOPIC_ALIAS, 1)).encode(Level::V5)).await;
    raw.expect_disconnect(0x82).await;
    server.shutdown().await;
}
