//! `$SYS` topics of this node (`[sys] interval_secs`): every interval, the
//! core's and the cluster's counters under `$SYS/brokers/<node>/metrics/...`,
//! and the node's uptime and connection count. In a cluster each node
//! publishes its own, and subscribers on any node receive them through the
//! routes like any message.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;

use super::Shared;

pub(super) async fn publish_loop(shared: Arc<Shared>, interval_secs: u32) {
    let started = shared.now();
    let prefix = format!("$SYS/brokers/{}", topic_level(&shared.config.node.name));
    let mut shutdown = shared.shutting_down.subscribe();
    let interval = Duration::from_secs(u64::from(interval_secs));
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let uptime_secs = shared.now().saturating_sub(started) / 1000;
        let connections = shared.live_connections.load(std::sync::atomic::Ordering::Acquire);
        let mut topics = vec![
            (format!("{prefix}/uptime"), uptime_secs.to_string()),
            (format!("{prefix}/version"), env!("CARGO_PKG_VERSION").to_string()),
            (format!("{prefix}/clients/connected"), connections.to_string()),
        ];
        let (counters, cluster) = {
            let broker = shared.broker.lock();
            (
                serde_json::to_value(&broker.counters).ok(),
                broker.cluster().and_then(|c| serde_json::to_value(&c.counters).ok()),
            )
        };
        push_counters(&mut topics, &format!("{prefix}/metrics"), counters);
        push_counters(&mut topics, &format!("{prefix}/metrics/cluster"), cluster);
        if let Some(shell) = &shared.cluster {
            let relaxed = std::sync::atomic::Ordering::Relaxed;
            topics.push((
                format!("{prefix}/metrics/cluster/forwards_dropped"),
                shell.forwards_dropped.load(relaxed).to_string(),
            ));
            topics.push((
                format!("{prefix}/metrics/cluster/duplicates_settled"),
                shell.duplicates_settled.load(relaxed).to_string(),
            ));
            let pending: usize = shell.forwards_pending().iter().map(|(_, n)| n).sum();
            topics.push((format!("{prefix}/metrics/cluster/forwards_pending"), pending.to_string()));
        }
        shared.with_broker(|broker, now| {
            for (topic, value) in topics {
                broker.publish_system(ByteString::from(topic), Bytes::from(value), false, now);
            }
        });
    }
}

/// Every numeric field of a counters struct as (topic, decimal value).
fn push_counters(topics: &mut Vec<(String, String)>, prefix: &str, counters: Option<serde_json::Value>) {
    let Some(serde_json::Value::Object(fields)) = counters else { return };
    for (name, value) in fields {
        if let Some(n) = value.as_u64() {
            topics.push((format!("{prefix}/{name}"), n.to_string()));
        }
    }
}

/// A node name as one topic level: characters that would split or widen it become `_`.
fn topic_level(name: &str) -> String {
    name.chars().map(|c| if matches!(c, '/' | '+' | '#' | '\0') { '_' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_name_is_one_level_without_wildcards() {
        assert_eq!(topic_level("broker@127.0.0.1"), "broker@127.0.0.1");
        assert_eq!(topic_level("a/b+c#"), "a_b_c_");
    }

    #[test]
    fn counters_become_one_topic_each() {
        let mut topics = Vec::new();
        push_counters(&mut topics, "p", Some(serde_json::json!({"a": 1, "b": 2, "c": "x"})));
        assert_eq!(topics, vec![("p/a".to_string(), "1".to_string()), ("p/b".to_string(), "2".to_string())]);
    }
}
