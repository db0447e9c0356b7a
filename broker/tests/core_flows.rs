//! The core's protocol decisions, driven without a network.
#![allow(clippy::unwrap_used)]

mod core_common;

use broker::config::MqttConfig;
use core_common::*;
use mqtt_codec::{
    ConnAck, Disconnect, Packet, ProtocolVersion, PubResponse, QoS, ReasonCode, RetainHandling, SubscriptionOptions,
};

fn connack(packets: &[Packet]) -> &ConnAck {
    match packets.first() {
        Some(Packet::ConnAck(c)) => c,
        other => panic!("expected CONNACK first, got {other:?}"),
    }
}

fn disconnect_reason(packets: &[Packet]) -> Option<ReasonCode> {
    packets.iter().find_map(|p| if let Packet::Disconnect(d) = p { Some(d.reason_code) } else { None })
}

#[test]
fn v5_connack_announces_limits() {
    let mut h = Harness::new();
    let (_, out) = h.connect(v5("a"));
    let ack = connack(&out);
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(ack.properties.maximum_packet_size, Some(1024 * 1024));
    assert_eq!(ack.properties.receive_maximum, Some(32));
    assert_eq!(ack.properties.topic_alias_maximum, Some(64));
    assert!(!ack.session_present);
}

#[test]
fn empty_client_id_is_assigned_for_v5_and_clean_v311_only() {
    let mut h = Harness::new();
    let (_, out) = h.connect(v5(""));
    let assigned = connack(&out).properties.assigned_client_identifier.clone().unwrap();
    assert!(assigned.starts_with("auto-"));
    let (_, out) = h.connect(v311("", true));
    assert_eq!(connack(&out).reason_code, ReasonCode::SUCCESS);
    assert_eq!(connack(&out).properties.assigned_client_identifier, None);
    let (_, out) = h.connect(v311("", false));
    assert_eq!(connack(&out).reason_code, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    let (_, out) = h.connect(connect(ProtocolVersion::V3_1, "", true));
    assert_eq!(connack(&out).reason_code, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
}

#[test]
fn second_connection_takes_over_and_first_gets_0x8e() {
    let mut h = Harness::new();
    let (first, _) = h.connect(v5("a"));
    let (_, out) = h.connect(v5("a"));
    assert_eq!(connack(&out).reason_code, ReasonCode::SUCCESS);
    let old = h.take(first);
    assert_eq!(disconnect_reason(&old), Some(ReasonCode::SESSION_TAKEN_OVER));
    assert_eq!(h.broker.counters.takeovers, 1);
}

#[test]
fn qos1_publish_is_acknowledged_and_delivered_until_acked() {
    let mut h = Harness::new();
    let (sub, _) = h.connect(v5("sub"));
    h.send(sub, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    let (publisher, _) = h.connect(v5("pub"));
    let out = h.send(publisher, publish("t", "m", QoS::AtLeastOnce, 9));
    assert_eq!(out, vec![Packet::PubAck(PubResponse::new(pid(9)))]);
    let got = h.take(sub);
    let p = publishes(&got);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].qos, QoS::AtLeastOnce);
    let id = p[0].packet_id.unwrap();
    h.send(sub, Packet::PubAck(PubResponse::new(id)));
    assert_eq!(h.broker.counters.messages_delivered, 1);
}

#[test]
fn puback_reports_no_matching_subscribers_to_v5_only() {
    let mut h = Harness::new();
    let (a, _) = h.connect(v5("a"));
    let out = h.send(a, publish("nobody", "m", QoS::AtLeastOnce, 1));
    let Packet::PubAck(ack) = &out[0] else { panic!("{out:?}") };
    assert_eq!(ack.reason_code, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    let (b, _) = h.connect(v311("b", true));
    let out = h.send(b, publish("nobody", "m", QoS::AtLeastOnce, 1));
    let Packet::PubAck(ack) = &out[0] else { panic!("{out:?}") };
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
}

#[test]
fn qos2_inbound_is_delivered_once_even_when_resent() {
    let mut h = Harness::new();
    let (sub, _) = h.connect(v5("sub"));
    h.send(sub, subscribe(1, &[("t", QoS::ExactlyOnce)]));
    let (publisher, _) = h.connect(v5("pub"));
    let out = h.send(publisher, publish("t", "m", QoS::ExactlyOnce, 5));
    assert!(matches!(&out[..], [Packet::PubRec(r)] if r.packet_id == pid(5)));
    let mut again = publish("t", "m", QoS::ExactlyOnce, 5);
    if let Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    let out = h.send(publisher, again);
    assert!(matches!(&out[..], [Packet::PubRec(_)]));
    let out = h.send(publisher, Packet::PubRel(PubResponse::new(pid(5))));
    assert!(matches!(&out[..], [Packet::PubComp(c)] if c.reason_code == ReasonCode::SUCCESS));
    assert_eq!(publishes(&h.take(sub)).len(), 1);
    let out = h.send(publisher, Packet::PubRel(PubResponse::new(pid(5))));
    assert!(matches!(&out[..], [Packet::PubComp(c)] if c.reason_code == ReasonCode::PACKET_IDENTIFIER_NOT_FOUND));
}

#[test]
fn qos2_outbound_flow_completes_with_pubrel_and_pubcomp() {
    let mut h = Harness::new();
    let (sub, _) = h.connect(v5("sub"));
    h.send(sub, subscribe(1, &[("t", QoS::ExactlyOnce)]));
    let (publisher, _) = h.connect(v5("pub"));
    h.send(publisher, publish("t", "m", QoS::ExactlyOnce, 5));
    let got = h.take(sub);
    let id = publishes(&got)[0].packet_id.unwrap();
    let out = h.send(sub, Packet::PubRec(PubResponse::new(id)));
    assert_eq!(out, vec![Packet::PubRel(PubResponse::new(id))]);
    h.send(sub, Packet::PubComp(PubResponse::new(id)));
    assert_eq!(h.broker.counters.messages_delivered, 1);
}

#[test]
fn resumed_session_gets_unacknowledged_messages_again_with_dup() {
    let mut h = Harness::new();
    let (sub, _) = h.connect(v311("sub", false));
    h.send(sub, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    let (publisher, _) = h.connect(v311("pub", true));
    h.send(publisher, publish("t", "one", QoS::AtLeastOnce, 1));
    let first = h.take(sub);
    assert!(!publishes(&first)[0].dup);
    h.drop_connection(sub);
    h.send(publisher, publish("t", "two", QoS::AtLeastOnce, 2));
    let (_, out) = h.connect(v311("sub", false));
    assert!(connack(&out).session_present);
    let again = publishes(&out);
    assert_eq!(again.len(), 2);
    assert!(again[0].dup, "unacknowledged message is resent with DUP");
    assert_eq!(&again[0].payload[..], b"one");
    assert!(!again[1].dup, "queued message is sent for the first time");
    assert_eq!(&again[1].payload[..], b"two");
}

#[test]
fn receive_maximum_limits_messages_in_flight() {
    let mut h = Harness::new();
    let mut c = v5("sub");
    c.properties.receive_maximum = Some(2);
    let (sub, _) = h.connect(c);
    h.send(sub, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    let (publisher, _) = h.connect(v5("pub"));
    for i in 1..=5 {
        h.send(publisher, publish("t", &i.to_string(), QoS::AtLeastOnce, i));
    }
    let got = h.take(sub);
    assert_eq!(received(&got).len(), 2);
    let first = publishes(&got)[0].packet_id.unwrap();
    let more = h.send(sub, Packet::PubAck(PubResponse::new(first)));
    assert_eq!(received(&more), vec![("t".into(), "3".into())]);
}

#[test]
fn full_queue_drops_qos0_first_and_counts_drops() {
    let config = MqttConfig { max_queued_messages: 2.try_into().unwrap(), ..Default::default() };
    let mut h = Harness::with_config(config);
    let (sub, _) = h.connect(v311("sub", false));
    h.send(sub, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    h.drop_connection(sub);
    let (publisher, _) = h.connect(v311("pub", true));
    h.send(publisher, publish("t", "q0", QoS::AtMostOnce, 0));
    h.send(publisher, publish("t", "a", QoS::AtLeastOnce, 1));
    h.send(publisher, publish("t", "b", QoS::AtLeastOnce, 2));
    h.send(publisher, publish("t", "c", QoS::AtLeastOnce, 3));
    assert_eq!(h.broker.counters.dropped_qos0_for_room, 1);
    assert_eq!(h.broker.counters.dropped_queue_full, 1);
    let (_, out) = h.connect(v311("sub", false));
    assert_eq!(received(&out), vec![("t".into(), "a".into()), ("t".into(), "b".into())]);
}

#[test]
fn expired_messages_are_dropped_from_queues_and_remaining_expiry_is_forwarded() {
    let mut h = Harness::new();
    let mut c = v5("sub");
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(600);
    let (sub, _) = h.connect(c.clone());
    h.send(sub, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    h.drop_connection(sub);
    let (publisher, _) = h.connect(v5("pub"));
    for (payload, expiry) in [("short", 2), ("long", 100)] {
        let mut p = publish("t", payload, QoS::AtLeastOnce, 1);
        if let Packet::Publish(p) = &mut p {
            p.properties.message_expiry_interval = Some(expiry);
        }
        h.send(publisher, p);
    }
    h.advance(10_000);
    let (_, out) = h.connect(c);
    let got = publishes(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"long");
    assert_eq!(got[0].properties.message_expiry_interval, Some(90));
    assert_eq!(h.broker.counters.dropped_expired, 1);
}

#[test]
fn will_is_published_on_connection_loss_but_not_after_normal_disconnect() {
    let mut h = Harness::new();
    let (watcher, _) = h.connect(v5("w"));
    h.send(watcher, subscribe(1, &[("will/#", QoS::AtLeastOnce)]));
    let (a, _) = h.connect(with_will(v5("a"), "will/a", "gone", None));
    h.drop_connection(a);
    assert_eq!(received(&h.take(watcher)), vec![("will/a".into(), "gone".into())]);
    let (b, _) = h.connect(with_will(v5("b"), "will/b", "gone", None));
    h.send(b, Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION)));
    h.drop_connection(b);
    assert!(received(&h.take(watcher)).is_empty());
    let (c, _) = h.connect(with_will(v5("c"), "will/c", "bye", None));
    h.send(c, Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE)));
    assert_eq!(received(&h.take(watcher)), vec![("will/c".into(), "bye".into())]);
}

#[test]
fn delayed_will_waits_and_is_cancelled_by_reconnect() {
    let mut h = Harness::new();
    let (watcher, _) = h.connect(v5("w"));
    h.send(watcher, subscribe(1, &[("will/#", QoS::AtLeastOnce)]));
    let mut c = with_will(v5("a"), "will/a", "late", Some(5));
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(60);
    let (a, _) = h.connect(c.clone());
    h.drop_connection(a);
    h.advance(3_000);
    assert!(received(&h.take(watcher)).is_empty());
    let (a, _) = h.connect(c.clone());
    h.advance(10_000);
    assert!(received(&h.take(watcher)).is_empty(), "reconnect cancels the delayed will");
    h.drop_connection(a);
    h.advance(5_000);
    assert_eq!(received(&h.take(watcher)), vec![("will/a".into(), "late".into())]);
}

#[test]
fn will_delay_is_cut_short_by_session_expiry() {
    let mut h = Harness::new();
    let (watcher, _) = h.connect(v5("w"));
    h.send(watcher, subscribe(1, &[("will/#", QoS::AtLeastOnce)]));
    let mut c = with_will(v5("a"), "will/a", "x", Some(100));
    c.properties.session_expiry_interval = Some(2);
    let (a, _) = h.connect(c);
    h.drop_connection(a);
    h.advance(2_000);
    assert_eq!(received(&h.take(watcher)).len(), 1);
}

#[test]
fn session_expires_after_its_interval() {
    let mut h = Harness::new();
    let mut c = v5("a");
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(5);
    let (a, _) = h.connect(c.clone());
    h.drop_connection(a);
    h.advance(4_000);
    assert_eq!(h.broker.session_count(), 1);
    h.advance(1_000);
    assert_eq!(h.broker.session_count(), 0);
    let (_, out) = h.connect(c);
    assert!(!connack(&out).session_present);
}

#[test]
fn overlapping_subscriptions_deliver_once_at_highest_qos_with_all_identifiers() {
    let mut h = Harness::new();
    let (sub, _) = h.connect(v5("sub"));
    let q1 = SubscriptionOptions { qos: QoS::AtLeastOnce, ..Default::default() };
    let q0 = SubscriptionOptions::default();
    h.send(sub, subscribe_with(1, "a/+", q0, Some(1)));
    h.send(sub, subscribe_with(2, "a/#", q1, Some(2)));
    let (publisher, _) = h.connect(v5("pub"));
    h.send(publisher, publish("a/b", "m", QoS::ExactlyOnce, 1));
    let got = h.take(sub);
    let p = publishes(&got);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].qos, QoS::AtLeastOnce);
    let mut ids = p[0].properties.subscription_identifiers.clone();
    ids.sort();
    assert_eq!(ids, [1, 2]);
}

#[test]
fn no_local_suppresses_own_messages() {
    let mut h = Harness::new();
    let (a, _) = h.connect(v5("a"));
    let options = SubscriptionOptions { no_local: true, ..Default::default() };
    h.send(a, subscribe_with(1, "t", options, None));
    let out = h.send(a, publish("t", "m", QoS::AtMostOnce, 0));
    assert!(received(&out).is_empty());
}

#[test]
fn retained_message_is_set_replaced_and_deleted() {
    let mut h = Harness::new();
    let (publisher, _) = h.connect(v5("pub"));
    h.send(publisher, retained("r", "one", QoS::AtLeastOnce, 1));
    h.send(publisher, retained("r", "two", QoS::AtLeastOnce, 2));
    let (sub, _) = h.connect(v5("sub"));
    let got = h.send(sub, subscribe(1, &[("r", QoS::AtLeastOnce)]));
    assert!(matches!(got[0], Packet::SubAck(_)), "SUBACK precedes retained messages");
    let p = publishes(&got);
    assert_eq!(p.len(), 1);
    assert_eq!(&p[0].payload[..], b"two");
    assert!(p[0].retain);
    h.send(publisher, retained("r", "", QoS::AtMostOnce, 0));
    assert_eq!(h.broker.retained_count(), 0);
    let (late, _) = h.connect(v5("late"));
    assert!(publishes(&h.send(late, subscribe(1, &[("r", QoS::AtLeastOnce)]))).is_empty());
}

#[test]
fn live_delivery_clears_retain_unless_retain_as_published() {
    let mut h = Harness::new();
    let (plain, _) = h.connect(v5("plain"));
    h.send(plain, subscribe(1, &[("r", QoS::AtMostOnce)]));
    let (rap, _) = h.connect(v5("rap"));
    h.send(rap, subscribe_with(1, "r", SubscriptionOptions { retain_as_published: true, ..Default::default() }, None));
    let (publisher, _) = h.connect(v5("pub"));
    h.send(publisher, retained("r", "x", QoS::AtMostOnce, 0));
    assert!(!publishes(&h.take(plain))[0].retain);
    assert!(publishes(&h.take(rap))[0].retain);
}

#[test]
fn retain_handling_controls_retained_delivery_on_subscribe() {
    let mut h = Harness::new();
    let (publisher, _) = h.connect(v5("pub"));
    h.send(publisher, retained("r", "x", QoS::AtMostOnce, 0));
    let (sub, _) = h.connect(v5("sub"));
    let if_new = SubscriptionOptions { retain_handling: RetainHandling::SendAtSubscribeIfNew, ..Default::default() };
    assert_eq!(publishes(&h.send(sub, subscribe_with(1, "r", if_new, None))).len(), 1);
    assert_eq!(publishes(&h.send(sub, subscribe_with(2, "r", if_new, None))).len(), 0);
    let never = SubscriptionOptions { retain_handling: RetainHandling::DoNotSend, ..Default::default() };
    assert_eq!(publishes(&h.send(sub, subscribe_with(3, "r", never, None))).len(), 0);
    assert_eq!(publishes(&h.send(sub, subscribe(4, &[("r", QoS::AtMostOnce)]))).len(), 1);
}

#[test]
fn shared_subscription_round_robins_and_hands_over_unacknowledged_messages() {
    let mut h = Harness::new();
    let (a, _) = h.connect(v5("a"));
    let (b, _) = h.connect(v5("b"));
    h.send(a, subscribe(1, &[("$share/g/t", QoS::AtLeastOnce)]));
    h.send(b, subscribe(1, &[("$share/g/t", QoS::AtLeastOnce)]));
    let (publisher, _) = h.connect(v5("pub"));
    for i in 1..=4 {
        h.send(publisher, publish("t", &i.to_string(), QoS::AtLeastOnce, i));
    }
    let to_a = received(&h.take(a));
    let to_b = received(&h.take(b));
    assert_eq!(to_a.len(), 2);
    assert_eq!(to_b.len(), 2);
    h.drop_connection(a);
    let handed = received(&h.take(b));
    assert_eq!(handed, to_a, "a's unacknowledged messages go to b");
}

#[test]
fn shared_subscriptions_get_no_retained_messages() {
    let mut h = Harness::new();
    let (publisher, _) = h.connect(v5("pub"));
    h.send(publisher, retained("r", "x", QoS::AtMostOnce, 0));
    let (sub, _) = h.connect(v5("sub"));
    assert!(publishes(&h.send(sub, subscribe(1, &[("$share/g/r", QoS::AtMostOnce)]))).is_empty());
}

#[test]
fn message_larger_than_client_maximum_is_not_sent() {
    let mut h = Harness::new();
    let mut c = v5("sub");
    c.properties.maximum_packet_size = Some(64);
    let (sub, _) = h.connect(c);
    h.send(sub, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    let (publisher, _) = h.connect(v5("pub"));
    h.send(publisher, publish("t", &"x".repeat(100), QoS::AtLeastOnce, 1));
    h.send(publisher, publish("t", "small", QoS::AtLeastOnce, 2));
    assert_eq!(received(&h.take(sub)), vec![("t".into(), "small".into())]);
    assert_eq!(h.broker.counters.dropped_too_large, 1);
}

#[test]
fn topic_aliases_work_in_both_directions() {
    let mut h = Harness::new();
    let mut c = v5("sub");
    c.properties.topic_alias_maximum = Some(4);
    let (sub, _) = h.connect(c);
    h.send(sub, subscribe(1, &[("long/topic", QoS::AtMostOnce)]));
    let (publisher, _) = h.connect(v5("pub"));
    let mut first = publish("long/topic", "1", QoS::AtMostOnce, 0);
    if let Packet::Publish(p) = &mut first {
        p.properties.topic_alias = Some(3);
    }
    h.send(publisher, first);
    let mut second = publish("", "2", QoS::AtMostOnce, 0);
    if let Packet::Publish(p) = &mut second {
        p.properties.topic_alias = Some(3);
    }
    h.send(publisher, second);
    let got = h.take(sub);
    let p = publishes(&got);
    assert_eq!(p.len(), 2);
    assert_eq!((p[0].topic.as_ref(), p[0].properties.topic_alias), ("long/topic", Some(1)));
    assert_eq!((p[1].topic.as_ref(), p[1].properties.topic_alias), ("", Some(1)));
    assert_eq!(&p[1].payload[..], b"2");
}

#[test]
fn unknown_or_out_of_range_topic_alias_is_a_protocol_error() {
    let mut h = Harness::new();
    let (a, _) = h.connect(v5("a"));
    let mut p = publish("", "x", QoS::AtMostOnce, 0);
    if let Packet::Publish(p) = &mut p {
        p.properties.topic_alias = Some(1);
    }
    assert_eq!(disconnect_reason(&h.send(a, p)), Some(ReasonCode::PROTOCOL_ERROR));
    let (b, _) = h.connect(v5("b"));
    let mut p = publish("t", "x", QoS::AtMostOnce, 0);
    if let Packet::Publish(p) = &mut p {
        p.properties.topic_alias = Some(1000);
    }
    assert_eq!(disconnect_reason(&h.send(b, p)), Some(ReasonCode::TOPIC_ALIAS_INVALID));
}

#[test]
fn dollar_topics_are_not_matched_by_leading_wildcards() {
    let mut h = Harness::new();
    let (sub, _) = h.connect(v5("sub"));
    h.send(sub, subscribe(1, &[("#", QoS::AtMostOnce), ("+/x", QoS::AtMostOnce)]));
    let (publisher, _) = h.connect(v5("pub"));
    h.send(publisher, publish("$SYS/x", "m", QoS::AtMostOnce, 0));
    assert!(received(&h.take(sub)).is_empty());
}

#[test]
fn suback_reports_failures_per_filter() {
    let config = MqttConfig {
        shared_subscription_available: false,
        max_subscriptions: 2.try_into().unwrap(),
        ..Default::default()
    };
    let mut h = Harness::with_config(config);
    let (a, _) = h.connect(v5("a"));
    let out = h.send(
        a,
        subscribe(
            1,
            &[
                ("ok", QoS::ExactlyOnce),
                ("a/#/b", QoS::AtMostOnce),
                ("$share/g/t", QoS::AtMostOnce),
                ("ok2", QoS::AtLeastOnce),
                ("three", QoS::AtMostOnce),
            ],
        ),
    );
    let Packet::SubAck(ack) = &out[0] else { panic!("{out:?}") };
    assert_eq!(
        ack.reason_codes,
        [
            ReasonCode::GRANTED_QOS_2,
            ReasonCode::TOPIC_FILTER_INVALID,
            ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::QUOTA_EXCEEDED
        ]
    );
}

#[test]
fn unsuback_says_which_subscriptions_existed() {
    let mut h = Harness::new();
    let (a, _) = h.connect(v5("a"));
    h.send(a, subscribe(1, &[("t", QoS::AtMostOnce)]));
    let out = h.send(
        a,
        Packet::Unsubscribe(mqtt_codec::Unsubscribe {
            packet_id: pid(2),
            filters: vec!["t".into(), "u".into(), "a/#/b".into()],
            user_properties: vec![],
        }),
    );
    let Packet::UnsubAck(ack) = &out[0] else { panic!("{out:?}") };
    assert_eq!(
        ack.reason_codes,
        [ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED, ReasonCode::TOPIC_FILTER_INVALID]
    );
}

#[test]
fn disconnect_may_not_raise_session_expiry_from_zero() {
    let mut h = Harness::new();
    let (a, _) = h.connect(v5("a"));
    let mut d = Disconnect::new(ReasonCode::NORMAL_DISCONNECTION);
    d.properties.session_expiry_interval = Some(10);
    assert_eq!(disconnect_reason(&h.send(a, Packet::Disconnect(d))), Some(ReasonCode::PROTOCOL_ERROR));
}

#[test]
fn qos_above_maximum_is_refused() {
    let config = MqttConfig { maximum_qos: 1, ..Default::default() };
    let mut h = Harness::with_config(config);
    let (a, out) = h.connect(v5("a"));
    assert_eq!(connack(&out).properties.maximum_qos, Some(QoS::AtLeastOnce));
    let out = h.send(a, subscribe(1, &[("t", QoS::ExactlyOnce)]));
    let Packet::SubAck(ack) = &out[0] else { panic!("{out:?}") };
    assert_eq!(ack.reason_codes, [ReasonCode::GRANTED_QOS_1]);
    assert_eq!(
        disconnect_reason(&h.send(a, publish("t", "m", QoS::ExactlyOnce, 1))),
        Some(ReasonCode::QOS_NOT_SUPPORTED)
    );
}

#[test]
fn shutdown_tells_v5_clients_and_closes_everyone() {
    let mut h = Harness::new();
    let (a, _) = h.connect(v5("a"));
    let (b, _) = h.connect(v311("b", true));
    h.broker.shutdown();
    let out_a = h.broker.take_outbox(a, h.now);
    assert_eq!(disconnect_reason(&out_a.packets), Some(ReasonCode::SERVER_SHUTTING_DOWN));
    assert!(out_a.close.is_some());
    let out_b = h.broker.take_outbox(b, h.now);
    assert!(out_b.packets.is_empty());
    assert!(out_b.close.is_some());
}

#[test]
fn shared_qos2_message_in_flight_stays_with_its_persistent_member() {
    let mut h = Harness::new();
    let mut member = v5("a");
    member.clean_start = false;
    member.properties.session_expiry_interval = Some(600);
    let (a, _) = h.connect(member.clone());
    let (b, _) = h.connect(v5("b"));
    h.send(a, subscribe(1, &[("$share/g/t", QoS::ExactlyOnce)]));
    h.send(b, subscribe(1, &[("$share/g/t", QoS::ExactlyOnce)]));
    let (publisher, _) = h.connect(v5("pub"));
    h.send(publisher, publish("t", "x", QoS::ExactlyOnce, 1));
    let first = h.take(a);
    let sent = publishes(&first)[0].packet_id;
    h.drop_connection(a);
    assert!(received(&h.take(b)).is_empty(), "[MQTT-4.8.2-5]: not given to another member");
    let (_, out) = h.connect(member);
    let again = publishes(&out);
    assert_eq!(again.len(), 1);
    assert!(again[0].dup);
    assert_eq!(again[0].packet_id, sent, "resent with its original packet identifier");
}

#[test]
fn v311_client_may_have_more_qos2_messages_awaiting_release_than_receive_maximum() {
    let mut h = Harness::new();
    let (a, _) = h.connect(v311("a", true));
    for id in 1..=40 {
        let out = h.send(a, publish("t", "x", QoS::ExactlyOnce, id));
        assert!(matches!(&out[..], [Packet::PubRec(_)]), "message {id}: {out:?}");
    }
}

#[test]
fn v5_client_over_receive_maximum_is_disconnected() {
    let mut h = Harness::new();
    let (a, _) = h.connect(v5("a"));
    for id in 1..=32 {
        h.send(a, publish("t", "x", QoS::ExactlyOnce, id));
    }
    let out = h.send(a, publish("t", "x", QoS::ExactlyOnce, 33));
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED));
}

#[test]
fn resent_messages_respect_the_new_connections_limits() {
    let mut h = Harness::new();
    let mut c = v5("sub");
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(600);
    let (sub, _) = h.connect(c.clone());
    h.send(sub, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    let (publisher, _) = h.connect(v5("pub"));
    h.send(publisher, publish("t", &"x".repeat(200), QoS::AtLeastOnce, 1));
    h.send(publisher, publish("t", "a", QoS::AtLeastOnce, 2));
    h.send(publisher, publish("t", "b", QoS::AtLeastOnce, 3));
    assert_eq!(publishes(&h.take(sub)).len(), 3);
    h.drop_connection(sub);
    c.properties.receive_maximum = Some(1);
    c.properties.maximum_packet_size = Some(100);
    let (sub, out) = h.connect(c);
    assert_eq!(received(&out), vec![("t".into(), "a".into())], "the large one is discarded, one in flight");
    let id = publishes(&out)[0].packet_id.unwrap();
    let more = h.send(sub, Packet::PubAck(PubResponse::new(id)));
    assert_eq!(received(&more), vec![("t".into(), "b".into())]);
    assert!(publishes(&more)[0].dup);
    assert_eq!(h.broker.counters.dropped_too_large, 1);
}

#[test]
fn v311_refusal_without_a_return_code_closes_without_connack() {
    let config = MqttConfig { maximum_qos: 1, ..Default::default() };
    let mut h = Harness::with_config(config);
    let mut c = with_will(v311("a", true), "w", "x", None);
    if let Some(will) = &mut c.will {
        will.qos = QoS::ExactlyOnce;
    }
    let (_, out) = h.connect(c.clone());
    assert!(out.is_empty(), "3.1.1 has no return code for an unsupported will QoS: {out:?}");
    c.protocol = ProtocolVersion::V5;
    let (_, out) = h.connect(c);
    assert_eq!(connack(&out).reason_code, ReasonCode::QOS_NOT_SUPPORTED);
}
