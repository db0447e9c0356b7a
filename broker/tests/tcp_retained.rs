//! Retained messages over real TCP: set, replace, delete, delivery on
//! subscribe with the RETAIN flag, and the flag on live deliveries.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::time::Duration;

use tcp_common::*;

#[tokio::test]
async fn retained_message_is_delivered_to_a_new_subscriber_with_the_retain_flag() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut publisher, _) = V4::connect(addr, "ret-pub").await;
    publisher.publish("ret/t", Q4::AtLeastOnce, true, b"state").await;
    publisher.disconnect().await;

    let (mut old, _) = V4::connect(addr, "ret-sub4").await;
    old.subscribe("ret/t", Q4::AtLeastOnce).await;
    let got = old.recv_publish().await;
    assert_eq!((&got.payload[..], got.retain), (&b"state"[..], true), "[MQTT-3.3.1-8]");

    let (mut new, _) = V5::connect(addr, "ret-sub5").await;
    new.subscribe("ret/+", Q5::AtLeastOnce).await;
    let got = new.recv_publish().await;
    assert_eq!((&got.payload[..], got.retain, &got.topic[..]), (&b"state"[..], true, &b"ret/t"[..]), "[MQTT-3.3.1-9]");

    let (mut raw, _) = Raw::connect(addr, Connect::v31("ret-sub3")).await;
    assert_eq!(raw.subscribe(1, &[("ret/#", 0)]).await, vec![0]);
    let got = raw.recv_publish().await;
    assert_eq!((got.payload_str(), got.retain, got.qos), ("state", true, 0));
    server.shutdown().await;
}

#[tokio::test]
async fn a_new_retained_message_replaces_the_previous_one() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut publisher, _) = V4::connect(addr, "replace-pub").await;
    publisher.publish("rep/t", Q4::AtLeastOnce, true, b"first").await;
    publisher.publish("rep/t", Q4::AtLeastOnce, true, b"second").await;
    publisher.publish("rep/t", Q4::AtLeastOnce, false, b"not retained").await;
    let (mut sub, _) = Raw::connect(addr, Connect::v311("replace-sub")).await;
    assert_eq!(sub.subscribe(1, &[("rep/t", 1)]).await, vec![1]);
    let got = sub.recv_publish_acked().await;
    assert_eq!((got.payload_str(), got.retain), ("second", true));
    sub.expect_silence().await;
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_empty_retained_message_deletes_the_retained_message_and_is_still_delivered_live() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut publisher, _) = V4::connect(addr, "del-pub").await;
    publisher.publish("del/t", Q4::AtLeastOnce, true, b"there").await;
    let (mut live, _) = Raw::connect(addr, Connect::v311("del-live")).await;
    assert_eq!(live.subscribe(1, &[("del/t", 1)]).await, vec![1]);
    assert_eq!(live.recv_publish_acked().await.payload_str(), "there");

    publisher.publish("del/t", Q4::AtLeastOnce, true, b"").await;
    let got = live.recv_publish_acked().await;
    assert!(got.payload.is_empty(), "the empty message is forwarded as normal [MQTT-3.3.1-10]");
    assert!(!got.retain);

    let (mut late, _) = Raw::connect(addr, Connect::v5("del-late")).await;
    assert_eq!(late.subscribe(1, &[("del/#", 1)]).await, vec![1]);
    late.expect_silence().await;
    assert_eq!(server.counters().retained_refused_full, 0);
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn live_deliveries_of_a_retained_publish_have_the_retain_flag_cleared() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut sub4, _) = Raw::connect(addr, Connect::v311("live4")).await;
    assert_eq!(sub4.subscribe(1, &[("live/t", 2)]).await, vec![2]);
    let (mut sub5, _) = V5::connect(addr, "live5").await;
    sub5.subscribe("live/t", Q5::ExactlyOnce).await;
    let (mut publisher, _) = V5::connect(addr, "live-pub").await;
    publisher.publish("live/t", Q5::ExactlyOnce, true, b"r").await;
    let got = sub4.recv_publish_acked().await;
    assert_eq!((got.payload_str(), got.retain), ("r", false), "[MQTT-3.3.1-9] (3.1.1)");
    let got = sub5.recv_publish().await;
    assert_eq!((&got.payload[..], got.retain), (&b"r"[..], false), "[MQTT-3.3.1-12] (5.0)");
    publisher.publish("live/t", Q5::AtLeastOnce, true, b"").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_wildcard_subscription_receives_every_matching_retained_message() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut publisher, _) = V4::connect(addr, "many-ret-pub").await;
    for topic in ["house/kitchen/temp", "house/hall/temp", "house/kitchen/light", "garden/temp"] {
        publisher.publish(topic, Q4::AtLeastOnce, true, topic.as_bytes()).await;
    }
    let (mut sub, _) = Raw::connect(addr, Connect::v311("many-ret-sub")).await;
    assert_eq!(sub.subscribe(1, &[("house/+/temp", 1)]).await, vec![1]);
    let mut got = [sub.recv_publish_acked().await, sub.recv_publish_acked().await];
    sub.expect_silence().await;
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    let topics: Vec<(&str, bool)> = got.iter().map(|p| (p.topic.as_str(), p.retain)).collect();
    assert_eq!(topics, [("house/hall/temp", true), ("house/kitchen/temp", true)]);
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn retained_message_is_delivered_at_the_lower_of_its_qos_and_the_subscription_qos() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut publisher, _) = V4::connect(addr, "rq-pub").await;
    publisher.publish("rq/two", Q4::ExactlyOnce, true, b"two").await;
    publisher.publish("rq/zero", Q4::AtMostOnce, true, b"zero").await;
    // The QoS 0 publish has no acknowledgement: make sure it was processed.
    publisher.publish("rq/sync", Q4::AtLeastOnce, false, b"").await;
    let (mut sub, _) = Raw::connect(addr, Connect::v311("rq-sub")).await;
    assert_eq!(sub.subscribe(1, &[("rq/two", 1)]).await, vec![1]);
    let got = sub.recv_publish_acked().await;
    assert_eq!((got.payload_str(), got.qos), ("two", 1));
    assert_eq!(sub.subscribe(2, &[("rq/zero", 2)]).await, vec![2]);
    let got = sub.recv_publish_acked().await;
    assert_eq!((got.payload_str(), got.qos), ("zero", 0));
    publisher.disconnect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn retained_message_carries_the_subscription_identifier_and_its_properties() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut publisher, _) = Raw::connect(addr, Connect::v5("rp-pub")).await;
    let props = [p_str(prop::CONTENT_TYPE, "application/json"), p_pair("origin", "sensor-1")].concat();
    publisher.publish(PublishSpec::new("rp/t", b"{}").qos(1, 1).retain().props(props)).await;
    let (mut sub, _) = Raw::connect(addr, Connect::v5("rp-sub")).await;
    assert_eq!(sub.subscribe_with(1, &[("rp/#", 1)], &p_var(prop::SUBSCRIPTION_IDENTIFIER, 9)).await, vec![1]);
    let got = sub.recv_publish_acked().await;
    assert!(got.retain);
    assert_eq!(got.props.subscription_ids(), vec![9]);
    assert_eq!(got.props.str(prop::CONTENT_TYPE), Some("application/json"));
    assert_eq!(got.props.user_properties(), vec![("origin".to_string(), "sensor-1".to_string())]);
    server.shutdown().await;
}

#[tokio::test]
async fn retained_message_with_an_expiry_interval_is_not_delivered_after_it_expires() {
    let server = start().await;
    let addr = server.local_addr();
    let (mut publisher, _) = Raw::connect(addr, Connect::v5("rexp-pub")).await;
    let expiry = |secs: u32| p_u32(prop::MESSAGE_EXPIRY_INTERVAL, secs);
    publisher.publish(PublishSpec::new("rexp/short", b"short").qos(1, 1).retain().props(expiry(1))).await;
    publisher.publish(PublishSpec::new("rexp/long", b"long").qos(1, 2).retain().props(expiry(60))).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (mut sub, _) = Raw::connect(addr, Connect::v5("rexp-sub")).await;
    assert_eq!(sub.subscribe(1, &[("rexp/#", 1)]).await, vec![1]);
    let got = sub.recv_publish_acked().await;
    assert_eq!(got.payload_str(), "long", "the expired retained message is gone [MQTT-3.3.2-5]");
    let left = got.props.u32(prop::MESSAGE_EXPIRY_INTERVAL).expect("expiry forwarded");
    assert!((1..=58).contains(&left), "retained expiry {left} must have decreased");
    sub.expect_silence().await;
    server.shutdown().await;
}
