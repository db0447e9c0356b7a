//! `$SYS` topics: every `[sys] interval_secs` the node publishes its uptime,
//! connection count and counters under `$SYS/brokers/<node>/`.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::time::Duration;

use tcp_common::*;

#[tokio::test]
async fn the_node_publishes_its_counters_under_sys_every_interval() {
    let server = start_with(|c| {
        c.node.name = "sys-node".into();
        c.sys.interval_secs = 1;
    })
    .await;
    let addr = server.local_addr();
    let (mut watcher, _) = V4::connect(addr, "sys-watch").await;
    watcher.subscribe("$SYS/brokers/sys-node/#", Q4::AtMostOnce).await;
    let (mut publisher, _) = V4::connect(addr, "sys-pub").await;
    publisher.publish("plain/t", Q4::AtLeastOnce, false, b"x").await;

    // Until a burst counts the publish (the first may come before it).
    let mut seen = std::collections::BTreeMap::new();
    let received = "$SYS/brokers/sys-node/metrics/messages_received";
    within(Duration::from_secs(5), async {
        while seen.get(received).map(String::as_str) != Some("1") {
            let got = watcher.recv_publish().await;
            seen.insert(got.topic.clone(), String::from_utf8(got.payload.to_vec()).unwrap());
        }
    })
    .await;
    // Uptime and the connection count come before the counters in each burst.
    assert_eq!(seen["$SYS/brokers/sys-node/clients/connected"], "2", "{seen:?}");
    assert!(seen.contains_key("$SYS/brokers/sys-node/uptime"), "{seen:?}");
    assert!(seen.contains_key("$SYS/brokers/sys-node/metrics/messages_delivered"), "{seen:?}");

    // `#` alone does not match `$SYS` topics ([MQTT-4.7.2-1]).
    let (mut all, _) = V4::connect(addr, "sys-hash").await;
    all.subscribe("#", Q4::AtMostOnce).await;
    assert!(tokio::time::timeout(Duration::from_millis(1500), all.recv_publish()).await.is_err());
    server.shutdown().await;
}
