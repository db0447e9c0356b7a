//! SUBSCRIBE / UNSUBSCRIBE over real TCP: wildcards, `$` topics, overlapping
//! subscriptions, MQTT 5 subscription options, shared subscriptions and the
//! SUBACK / UNSUBACK reason codes.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::collections::BTreeMap;

use tcp_common::*;

/// Publishes each topic (QoS 1, payload = topic) and then `end` on `end_topic`.
async fn publish_topics(publisher: &mut V4, topics: &[&str], end_topic: &str) {
    for topic in topics {
        publisher.publish(topic, Q4::AtLeastOnce, false, topic.as_bytes()).await;
    }
    publisher.publish(end_topic, Q4::AtLeastOnce, false, b"end").await;
}

#[tokio::test]
async fn single_level_wildcard_matches_exactly_one_level() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "plus-sub").await;
    sub.subscribe("sport/+/player", Q4::AtLeastOnce).await;
    sub.subscribe("+", Q4::AtLeastOnce).await;
    sub.subscribe("end", Q4::AtLeastOnce).await;
    let (mut publisher, _) = V4::connect(addr, "plus-pub").await;
    let topics = [
        "sport/tennis/player",
        "sport/tennis/x/player",
        "sport/player",
        "sport//player",
        "top",
        "sport/tennis/player/x",
        "/top",
    ];
    publish_topics(&mut publisher, &topics, "end").await;
    let mut got = sub.payloads_until("end").await;
    got.retain(|t| t != "end");
    // "+" matches the single level "top", and "end" is also one level.
    assert_eq!(got, vec!["sport/tennis/player", "sport//player", "top"], "[MQTT-4.7.1-3]");
    publisher.disconnect().await;
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn multi_level_wildcard_matches_the_parent_and_every_descendant() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "hash-sub").await;
    sub.subscribe("sport/tennis/#", Q4::AtLeastOnce).await;
    sub.subscribe("end", Q4::AtLeastOnce).await;
    let (mut publisher, _) = V4::connect(addr, "hash-pub").await;
    let topics = [
        "sport/tennis",
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/",
        "sport",
        "sport/tennisx",
    ];
    publish_topics(&mut publisher, &topics, "end").await;
    let got = sub.payloads_until("end").await;
    assert_eq!(got, vec!["sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/"]);
    publisher.disconnect().await;
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn wildcards_in_the_first_level_do_not_match_topics_starting_with_dollar() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut all, _) = V4::connect(addr, "dollar-all").await;
    all.subscribe("#", Q4::AtLeastOnce).await;
    all.subscribe("+/info", Q4::AtLeastOnce).await;
    let (mut dollar, _) = V4::connect(addr, "dollar-explicit").await;
    dollar.subscribe("$data/#", Q4::AtLeastOnce).await;
    dollar.subscribe("$data/+", Q4::AtLeastOnce).await;
    let (mut publisher, _) = V4::connect(addr, "dollar-pub").await;
    publisher.publish("$data/info", Q4::AtLeastOnce, false, b"$data/info").await;
    publisher.publish("plain/info", Q4::AtLeastOnce, false, b"end").await;
    // The explicit "$data/..." subscriptions see it (once: overlapping).
    assert_eq!(&dollar.recv_publish().await.payload[..], b"$data/info");
    let got = all.payloads_until("end").await;
    assert!(got.is_empty(), "'#' and '+/info' must not match a '$' topic [MQTT-4.7.2-1]: got {got:?}");
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos_to_a_v311_client() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v311("overlap4")).await;
    assert_eq!(sub.subscribe(1, &[("ov/+", 0), ("ov/#", 2), ("ov/a", 1)]).await, vec![0, 2, 1]);
    let (mut publisher, _) = V4::connect(addr, "overlap4-pub").await;
    publisher.publish("ov/a", Q4::ExactlyOnce, false, b"m").await;
    publisher.publish("ov/a", Q4::AtLeastOnce, false, b"end").await;
    let first = sub.recv_publish_acked().await;
    assert_eq!((first.payload_str(), first.qos), ("m", 2));
    let second = sub.recv_publish_acked().await;
    assert_eq!((second.payload_str(), second.qos), ("end", 1), "one copy per message");
    sub.expect_silence().await;
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_one_copy_with_every_subscription_identifier_to_a_v5_client() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v5("overlap5")).await;
    let id = |n: usize| p_var(prop::SUBSCRIPTION_IDENTIFIER, n);
    assert_eq!(sub.subscribe_with(1, &[("ov5/+", 0)], &id(1)).await, vec![0]);
    assert_eq!(sub.subscribe_with(2, &[("ov5/#", 1)], &id(300)).await, vec![1]);
    assert_eq!(sub.subscribe(3, &[("ov5/a", 0)]).await, vec![0]);
    let (mut publisher, _) = V4::connect(addr, "overlap5-pub").await;
    publisher.publish("ov5/a", Q4::ExactlyOnce, false, b"m").await;
    publisher.publish("ov5/b", Q4::AtLeastOnce, false, b"end").await;
    let first = sub.recv_publish_acked().await;
    assert_eq!(first.payload_str(), "m");
    assert_eq!(first.qos, 1, "the highest granted QoS of the matching subscriptions");
    assert_eq!(first.props.subscription_ids(), vec![1, 300], "every matching identifier [MQTT-3.3.4-4]");
    let second = sub.recv_publish_acked().await;
    assert_eq!(second.payload_str(), "end", "one copy per message");
    assert_eq!(second.props.subscription_ids(), vec![1, 300]);
    sub.expect_silence().await;
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn subscription_identifier_is_sent_with_matching_messages_and_replaced_on_resubscribe() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut rumq, _) = V5::connect(addr, "subid").await;
    let props = v5p::SubscribeProperties { id: Some(42), user_properties: vec![] };
    rumq.subscribe_filter(v5p::Filter::new("sid/t", Q5::AtLeastOnce), Some(props)).await;
    let (mut publisher, _) = V4::connect(addr, "subid-pub").await;
    publisher.publish("sid/t", Q4::AtLeastOnce, false, b"1").await;
    let got = rumq.recv_publish().await;
    assert_eq!(got.properties.unwrap().subscription_identifiers, vec![42]);
    // Resubscribing without an identifier removes it.
    rumq.subscribe_filter(v5p::Filter::new("sid/t", Q5::AtLeastOnce), None).await;
    publisher.publish("sid/t", Q4::AtLeastOnce, false, b"2").await;
    let got = rumq.recv_publish().await;
    assert!(got.properties.map(|p| p.subscription_identifiers).unwrap_or_default().is_empty());
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn no_local_subscription_does_not_receive_its_own_messages() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut me, _) = Raw::connect(addr, Connect::v5("nolocal")).await;
    assert_eq!(me.subscribe(1, &[("nl/t", sub_options(1, true, false, 0)), ("nl/end", 1)]).await, vec![1, 1]);
    let (mut other, _) = V5::connect(addr, "nolocal-other").await;
    other.subscribe("nl/t", Q5::AtLeastOnce).await;
    me.publish(PublishSpec::new("nl/t", b"mine").qos(1, 1)).await;
    assert_eq!(&other.recv_publish().await.payload[..], b"mine", "others still receive it");
    other.publish("nl/t", Q5::AtLeastOnce, false, b"theirs").await;
    me.publish(PublishSpec::new("nl/end", b"end").qos(1, 2)).await;
    let got = payloads_until(&mut me, "end").await;
    assert_eq!(got, vec!["theirs"], "no local: own message not delivered [MQTT-3.8.3-3]");
    other.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn retain_as_published_keeps_the_retain_flag_on_live_deliveries() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut rap, _) = Raw::connect(addr, Connect::v5("rap")).await;
    assert_eq!(rap.subscribe(1, &[("rap/t", sub_options(1, false, true, 0))]).await, vec![1]);
    let (mut plain, _) = Raw::connect(addr, Connect::v5("rap-plain")).await;
    assert_eq!(plain.subscribe(1, &[("rap/t", sub_options(1, false, false, 0))]).await, vec![1]);
    let (mut publisher, _) = V4::connect(addr, "rap-pub").await;
    publisher.publish("rap/t", Q4::AtLeastOnce, true, b"retained").await;
    publisher.publish("rap/t", Q4::AtLeastOnce, false, b"not").await;
    let got = rap.recv_publish_acked().await;
    assert_eq!((got.payload_str(), got.retain), ("retained", true), "retain as published [MQTT-3.3.1-13]");
    let got = rap.recv_publish_acked().await;
    assert_eq!((got.payload_str(), got.retain), ("not", false));
    let got = plain.recv_publish_acked().await;
    assert_eq!(
        (got.payload_str(), got.retain),
        ("retained", false),
        "live delivery without RAP clears RETAIN [MQTT-3.3.1-12]"
    );
    let got = plain.recv_publish_acked().await;
    assert_eq!((got.payload_str(), got.retain), ("not", false));
    publisher.publish("rap/t", Q4::AtLeastOnce, true, b"").await;
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn retain_handling_0_sends_retained_messages_at_every_subscribe() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut publisher, _) = V4::connect(addr, "rh0-pub").await;
    publisher.publish("rh0/t", Q4::AtLeastOnce, true, b"kept").await;
    let (mut sub, _) = Raw::connect(addr, Connect::v5("rh0")).await;
    for round in 0..2u16 {
        assert_eq!(sub.subscribe(round + 1, &[("rh0/t", sub_options(1, false, false, 0))]).await, vec![1]);
        let got = sub.recv_publish_acked().await;
        assert_eq!((got.payload_str(), got.retain), ("kept", true), "subscribe #{round}");
    }
    sub.expect_silence().await;
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn retain_handling_1_sends_retained_messages_only_for_a_new_subscription() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut publisher, _) = V4::connect(addr, "rh1-pub").await;
    publisher.publish("rh1/t", Q4::AtLeastOnce, true, b"kept").await;
    let (mut sub, _) = Raw::connect(addr, Connect::v5("rh1")).await;
    assert_eq!(sub.subscribe(1, &[("rh1/t", sub_options(1, false, false, 1))]).await, vec![1]);
    let got = sub.recv_publish_acked().await;
    assert_eq!((got.payload_str(), got.retain), ("kept", true));
    assert_eq!(sub.subscribe(2, &[("rh1/t", sub_options(1, false, false, 1))]).await, vec![1]);
    sub.expect_silence().await;
    // After unsubscribing, the subscription is new again.
    assert_eq!(sub.unsubscribe(3, &["rh1/t"]).await, vec![0x00]);
    assert_eq!(sub.subscribe(4, &[("rh1/t", sub_options(1, false, false, 1))]).await, vec![1]);
    assert_eq!(sub.recv_publish_acked().await.payload_str(), "kept");
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn retain_handling_2_never_sends_retained_messages_at_subscribe() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut publisher, _) = V4::connect(addr, "rh2-pub").await;
    publisher.publish("rh2/t", Q4::AtLeastOnce, true, b"kept").await;
    let (mut sub, _) = Raw::connect(addr, Connect::v5("rh2")).await;
    assert_eq!(sub.subscribe(1, &[("rh2/t", sub_options(1, false, false, 2))]).await, vec![1]);
    sub.expect_silence().await;
    // Live messages still flow.
    publisher.publish("rh2/t", Q4::AtLeastOnce, false, b"live").await;
    assert_eq!(sub.recv_publish_acked().await.payload_str(), "live");
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn shared_subscription_round_robins_messages_between_two_members() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut a, _) = Raw::connect(addr, Connect::v5("share-a")).await;
    assert_eq!(a.subscribe(1, &[("$share/g/jobs/#", 1)]).await, vec![1]);
    let (mut b, _) = Raw::connect(addr, Connect::v311("share-b")).await;
    assert_eq!(b.subscribe(1, &[("$share/g/jobs/#", 1)]).await, vec![1]);
    let (mut publisher, _) = V4::connect(addr, "share-pub").await;
    for i in 0..6 {
        publisher.publish("jobs/x", Q4::AtLeastOnce, false, format!("{i}").as_bytes()).await;
    }
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    for _ in 0..3 {
        got_a.push(a.recv_publish_acked().await.payload_str().to_owned());
        got_b.push(b.recv_publish_acked().await.payload_str().to_owned());
    }
    a.expect_silence().await;
    b.expect_silence().await;
    let mut all: Vec<String> = got_a.iter().chain(&got_b).cloned().collect();
    all.sort();
    assert_eq!(all, ["0", "1", "2", "3", "4", "5"], "each message to exactly one member");
    let alternating = (got_a == ["0", "2", "4"] && got_b == ["1", "3", "5"])
        || (got_a == ["1", "3", "5"] && got_b == ["0", "2", "4"]);
    assert!(alternating, "round robin: a={got_a:?} b={got_b:?}");
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn departing_shared_member_hands_its_unacknowledged_qos_1_messages_to_the_other_member() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut a, _) = Raw::connect(addr, Connect::v5("leaver")).await;
    assert_eq!(a.subscribe(1, &[("$share/grp/work", 1)]).await, vec![1]);
    let (mut b, _) = Raw::connect(addr, Connect::v5("stayer")).await;
    assert_eq!(b.subscribe(1, &[("$share/grp/work", 1)]).await, vec![1]);
    let (mut publisher, _) = V4::connect(addr, "work-pub").await;
    publisher.publish("work", Q4::AtLeastOnce, false, b"w1").await;
    publisher.publish("work", Q4::AtLeastOnce, false, b"w2").await;
    // One message each; `a` never acknowledges its own.
    let held = a.recv_publish().await;
    let other = b.recv_publish_acked().await;
    let mut both = [held.payload_str().to_owned(), other.payload_str().to_owned()];
    both.sort();
    assert_eq!(both, ["w1", "w2"]);
    drop(a);
    let handed = b.recv_publish_acked().await;
    assert_eq!(handed.payload_str(), held.payload_str(), "the unacknowledged message goes to the remaining member");
    // And new messages go to the remaining member only.
    publisher.publish("work", Q4::AtLeastOnce, false, b"w3").await;
    assert_eq!(b.recv_publish_acked().await.payload_str(), "w3");
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn shared_and_plain_subscriptions_each_get_a_copy() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut shared, _) = V5::connect(addr, "mix-shared").await;
    shared.subscribe("$share/g/mix/t", Q5::AtLeastOnce).await;
    let (mut plain, _) = V5::connect(addr, "mix-plain").await;
    plain.subscribe("mix/t", Q5::AtLeastOnce).await;
    let (mut publisher, _) = V4::connect(addr, "mix-pub").await;
    publisher.publish("mix/t", Q4::AtLeastOnce, false, b"m").await;
    assert_eq!(&shared.recv_publish().await.payload[..], b"m");
    assert_eq!(&plain.recv_publish().await.payload[..], b"m");
    // Unsubscribing from the group stops the deliveries to that member.
    shared.client.unsubscribe("$share/g/mix/t").await.unwrap();
    shared.wait("UNSUBACK", |p| matches!(p, v5p::Packet::UnsubAck(_)).then_some(())).await;
    shared.subscribe("mix/end", Q5::AtLeastOnce).await;
    publisher.publish("mix/t", Q4::AtLeastOnce, false, b"after").await;
    publisher.publish("mix/end", Q4::AtLeastOnce, false, b"end").await;
    assert!(shared.payloads_until("end").await.is_empty());
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn suback_carries_the_granted_qos_for_each_filter() {
    let server = start().await;
    let addr = server.local_addr();
    for level in [Level::V31, Level::V311, Level::V5] {
        let (mut raw, _) = Raw::connect(addr, Connect::new(level, &format!("granted-{level:?}"))).await;
        raw.send(&subscribe_packet(level, 0x0A0B, &[("g/0", 0), ("g/1", 1), ("g/2", 2)], &[])).await;
        let suback = raw.recv().await;
        assert_eq!(suback.kind(), SUBACK);
        assert_eq!(suback.flags(), 0);
        assert_eq!(suback.sub_ack(level), (0x0A0B, vec![0, 1, 2]), "{level:?}");
        if level != Level::V5 {
            assert_eq!(suback.bytes(), vec![0x90, 0x05, 0x0A, 0x0B, 0, 1, 2]);
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn v5_suback_reports_0x8f_for_an_invalid_topic_filter() {
    let server = start().await;
    let (mut raw, _) = Raw::connect(server.local_addr(), Connect::v5("badfilter5")).await;
    raw.send(&subscribe_packet(Level::V5, 5, &[("ok/1", 1), ("a/#/b", 1), ("ok/2", 0)], &[])).await;
    let frame = raw.recv().await;
    assert_eq!(frame.kind(), SUBACK, "an invalid filter is refused in the SUBACK, not by closing: got {frame:?}");
    assert_eq!(frame.sub_ack(Level::V5), (5, vec![0x01, 0x8F, 0x00]));
    raw.ping().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v311_suback_reports_0x80_for_an_invalid_topic_filter() {
    let server = start().await;
    let (mut raw, _) = Raw::connect(server.local_addr(), Connect::v311("badfilter4")).await;
    raw.send(&subscribe_packet(Level::V311, 6, &[("ok/1", 1), ("a/#/b", 1), ("ok/2", 0)], &[])).await;
    let frame = raw.recv().await;
    assert_eq!(
        frame.bytes(),
        vec![0x90, 0x05, 0x00, 0x06, 0x01, 0x80, 0x00],
        "SUBACK with failure 0x80 for the invalid filter"
    );
    raw.ping().await;
    server.shutdown().await;
}

#[tokio::test]
async fn v5_unsuback_reports_0x11_for_a_filter_that_was_not_subscribed() {
    let server = start().await;
    let (mut raw, _) = Raw::connect(server.local_addr(), Connect::v5("unsub5")).await;
    assert_eq!(raw.subscribe(1, &[("us/a", 1)]).await, vec![1]);
    assert_eq!(raw.unsubscribe(2, &["us/a", "us/never", "us/+"]).await, vec![0x00, 0x11, 0x11]);
    assert_eq!(raw.unsubscribe(3, &["us/a"]).await, vec![0x11], "already removed");
    server.shutdown().await;
}

#[tokio::test]
async fn v311_unsuback_is_sent_even_for_a_filter_that_was_not_subscribed() {
    let server = start().await;
    let (mut raw, _) = Raw::connect(server.local_addr(), Connect::v311("unsub4")).await;
    raw.send(&unsubscribe_packet(Level::V311, 0x0102, &["never/subscribed"])).await;
    assert_eq!(raw.recv().await.bytes(), vec![0xB0, 0x02, 0x01, 0x02], "[MQTT-3.10.4-5]");
    server.shutdown().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_leaves_other_subscriptions() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V4::connect(addr, "unsub-sub").await;
    sub.subscribe("u/a", Q4::AtLeastOnce).await;
    sub.subscribe("u/b", Q4::AtLeastOnce).await;
    let (mut publisher, _) = V4::connect(addr, "unsub-pub").await;
    publisher.publish("u/a", Q4::AtLeastOnce, false, b"a1").await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"a1");
    sub.unsubscribe("u/a").await;
    publisher.publish("u/a", Q4::AtLeastOnce, false, b"a2").await;
    publisher.publish("u/b", Q4::AtLeastOnce, false, b"end").await;
    assert!(sub.payloads_until("end").await.is_empty());
    publisher.disconnect().await;
    sub.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn resubscribing_replaces_the_granted_qos() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = Raw::connect(addr, Connect::v311("resub")).await;
    assert_eq!(sub.subscribe(1, &[("rs/t", 2)]).await, vec![2]);
    assert_eq!(sub.subscribe(2, &[("rs/t", 0)]).await, vec![0]);
    let (mut publisher, _) = V4::connect(addr, "resub-pub").await;
    publisher.publish("rs/t", Q4::ExactlyOnce, false, b"m").await;
    let got = sub.recv_publish_acked().await;
    assert_eq!((got.qos, got.payload_str()), (0, "m"), "the subscription was replaced, not added [MQTT-3.8.4-3]");
    sub.expect_silence().await;
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_wildcard_subscription_sees_messages_from_many_topics_in_order() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub, _) = V5::connect(addr, "many-sub").await;
    sub.subscribe("many/+/x/#", Q5::AtLeastOnce).await;
    let (mut publisher, _) = V5::connect(addr, "many-pub").await;
    let mut expected = BTreeMap::new();
    for i in 0..20 {
        let topic = format!("many/{i}/x/{}", i % 3);
        publisher.publish(&topic, Q5::AtLeastOnce, false, topic.as_bytes()).await;
        expected.insert(i, topic);
    }
    for topic in expected.values() {
        let got = sub.recv_publish().await;
        assert_eq!(&got.topic[..], topic.as_bytes());
    }
    publisher.disconnect().await;
    sub.disconnect().await;
    server.shutdown().await;
}
