//! Five cluster nodes in one process (each on its own 127.78.1.N address),
//! subscriptions churning on every node while messages flow; once the churn
//! stops, every node's view of every other node's routes must equal that
//! node's own routes (ALGORITHM.md, "Routes": convergence).
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::time::Duration;

use rand::{Rng, SeedableRng};
use tcp_common::*;

const NODES: usize = 5;
const CONVERGE_MAX: Duration = Duration::from_secs(30);

async fn start_node(i: usize) -> broker::Server {
    let mut config = broker::Config::default();
    config.node.name = format!("n{i}");
    config.node.rng_seed = None;
    config.listeners.tcp.bind = format!("127.78.1.{i}:1883").parse().unwrap();
    let seeds = (1..=NODES).map(|n| format!("127.78.1.{n}:4370")).collect();
    config.cluster = Some(broker::config::ClusterConfig {
        name: "churn".into(),
        bind: format!("127.78.1.{i}:4370").parse().unwrap(),
        seeds,
        ..Default::default()
    });
    broker::Server::start(config, broker::seam::Runtime::tokio()).await.unwrap()
}

/// True when every node holds, for every other node, exactly that node's routes.
fn converged(nodes: &[broker::Server]) -> Result<(), String> {
    let statuses: Vec<_> = nodes.iter().map(|n| n.cluster_status().unwrap()).collect();
    for viewer in &statuses {
        for origin in &statuses {
            if origin.node == viewer.node {
                continue;
            }
            let held = viewer
                .remote_routes
                .iter()
                .find(|(o, _)| *o == origin.node)
                .map(|(_, routes)| routes.clone())
                .unwrap_or_default();
            if held != origin.local_routes {
                return Err(format!(
                    "{} holds {} routes for {}, which has {}",
                    viewer.node,
                    held.len(),
                    origin.node,
                    origin.local_routes.len()
                ));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_converge_on_five_nodes_after_subscriptions_churn_while_messages_flow() {
    let mut nodes = Vec::new();
    for i in 1..=NODES {
        nodes.push(start_node(i).await);
    }
    // Every node sees the four others with a live link.
    let deadline = tokio::time::Instant::now() + CONVERGE_MAX;
    while nodes.iter().any(|n| n.cluster_status().unwrap().peers.iter().filter(|p| p.2).count() < NODES - 1) {
        assert!(tokio::time::Instant::now() < deadline, "the cluster did not form");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A publisher on n1 keeps messages flowing during the churn.
    let publish_to = nodes[0].local_addr();
    let flow = tokio::spawn(async move {
        let (mut p, _) = Raw::connect(publish_to, Connect::v5("flow")).await;
        for i in 0..200u16 {
            p.publish(PublishSpec::new(&format!("churn/{}", i % 7), b"m").qos(1, i % 1000 + 1)).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let mut rng = rand::rngs::StdRng::seed_from_u64(20261126);
    let mut clients = Vec::new();
    for c in 0..20 {
        let node = &nodes[c % NODES];
        let (raw, _) = Raw::connect(node.local_addr(), Connect::v5(&format!("churner-{c}"))).await;
        clients.push(raw);
    }
    let filters = ["churn/0", "churn/+", "churn/#", "$share/g/churn/1", "other/x", "churn/3", "+/3"];
    for round in 0..150u16 {
        let c = rng.random_range(0..clients.len());
        let filter = filters[rng.random_range(0..filters.len())];
        let id = round + 1;
        if rng.random_bool(0.6) {
            clients[c].subscribe(id, &[(filter, 1)]).await;
        } else {
            clients[c].unsubscribe(id, &[filter]).await;
        }
    }
    // Some clients leave outright, taking their routes with them.
    for _ in 0..5 {
        let gone = clients.swap_remove(rng.random_range(0..clients.len()));
        gone.disconnect().await;
    }
    flow.await.unwrap();

    let deadline = tokio::time::Instant::now() + CONVERGE_MAX;
    loop {
        match converged(&nodes) {
            Ok(()) => break,
            Err(why) if tokio::time::Instant::now() >= deadline => panic!("routes did not converge: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let total: usize = nodes.iter().map(|n| n.cluster_status().unwrap().local_routes.len()).sum();
    assert!(total > 0, "the churn left some routes to compare");
    for node in &nodes {
        node.shutdown().await;
    }
}
