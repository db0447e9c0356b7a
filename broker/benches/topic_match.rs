//! Topic matching against 100,000 filters: the subscription index
//! ([`Router`]: exact filters by hash, wildcard filters by trie) as the core
//! routes with it, one subscriber per filter, no sessions or outboxes.
//!
//! - `topic_match/{exact,wildcard,mixed}_{hit,miss}`: one topic looked up
//!   (one element); `hit` topics reach 1, 4 and 5 filters respectively.
//! - `topic_insert/{exact,wildcard}`: one iteration subscribes all 100,000
//!   filters into an empty index (100,000 elements); dropping it is not timed.

use std::hint::black_box;

use broker::config::SharedStrategy;
use broker::core::router::{ClientId, Router, Subscription};
use broker::seam;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mqtt_codec::SubscriptionOptions;

/// Filters in every index measured here.
const FILTERS: usize = 100_000;

/// `site/{i%100}/device/{i}/temp`: one sensor each, all distinct.
fn exact_filter(i: usize) -> String {
    format!("site/{}/device/{i}/temp", i % 100)
}

/// Four wildcard shapes in turn, each distinct over `n = i / 4`:
/// `site/{n}/device/+/temp`, `site/{n}/#`, `+/{n}/device/{n}/+`, `site/+/device/{n}/#`.
fn wildcard_filter(i: usize) -> String {
    let n = i / 4;
    match i % 4 {
        0 => format!("site/{n}/device/+/temp"),
        1 => format!("site/{n}/#"),
        2 => format!("+/{n}/device/{n}/+"),
        _ => format!("site/+/device/{n}/#"),
    }
}

/// Reaches `site/42/device/42/temp` exactly, and one filter of each wildcard shape.
const TOPIC_HIT: &str = "site/42/device/42/temp";
/// Same shape as the exact filters but no sensor of that id on that site, and
/// `plant` / `line` meet none of the wildcard shapes.
const TOPIC_MISS_EXACT: &str = "site/42/device/43/temp";
const TOPIC_MISS_WILDCARD: &str = "plant/42/line/42/temp";

/// (client, filter) pairs: client `c{k}` subscribes to the k-th filter.
fn subscriptions(filters: impl Iterator<Item = String>) -> Vec<(ClientId, String)> {
    filters.enumerate().map(|(k, filter)| (ClientId::from(format!("c{k}")), filter)).collect()
}

fn build(subscriptions: &[(ClientId, String)]) -> Router {
    let mut router = Router::new(SharedStrategy::RoundRobin);
    let subscription = Subscription { options: SubscriptionOptions::default(), identifier: None };
    for (client, filter) in subscriptions {
        router.subscribe(client, filter, subscription);
    }
    router
}

fn matching(c: &mut Criterion) {
    let exact = subscriptions((0..FILTERS).map(exact_filter));
    let wildcard = subscriptions((0..FILTERS).map(wildcard_filter));
    let mixed = subscriptions((0..FILTERS / 2).map(exact_filter).chain((0..FILTERS / 2).map(wildcard_filter)));
    let cases = [
        ("exact_hit", &exact, TOPIC_HIT, 1),
        ("exact_miss", &exact, TOPIC_MISS_EXACT, 0),
        ("wildcard_hit", &wildcard, TOPIC_HIT, 4),
        ("wildcard_miss", &wildcard, TOPIC_MISS_WILDCARD, 0),
        ("mixed_hit", &mixed, TOPIC_HIT, 5),
        ("mixed_miss", &mixed, TOPIC_MISS_WILDCARD, 0),
    ];
    let mut group = c.benchmark_group("topic_match");
    group.throughput(Throughput::Elements(1));
    let mut rng = seam::rng(Some(1));
    let mut out = Vec::new();
    for (name, subscriptions, topic, expected) in cases {
        let mut router = build(subscriptions);
        assert_eq!(router.filter_count(), FILTERS, "{name}: filters must be distinct");
        out.clear();
        router.route(topic, &mut rng, |_| true, &mut out);
        assert_eq!(out.len(), expected, "{name}: {topic} reaches {expected} filters");
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                router.route(black_box(topic), &mut rng, |_| true, &mut out);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

fn insertion(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_insert");
    // One iteration builds the whole index (tens of milliseconds): criterion's
    // minimum of 10 samples keeps the run within the measurement time.
    group.sample_size(10);
    group.throughput(Throughput::Elements(FILTERS as u64));
    for (name, subscriptions) in [
        ("exact", subscriptions((0..FILTERS).map(exact_filter))),
        ("wildcard", subscriptions((0..FILTERS).map(wildcard_filter))),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(|| (), |()| build(&subscriptions), BatchSize::PerIteration);
        });
    }
    group.finish();
}

criterion_group!(benches, matching, insertion);
criterion_main!(benches);
