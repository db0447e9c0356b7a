//! Checkers that can fail: each named broker bug (broker/src/buggify.rs)
//! makes its checker report a violation on a fixed seed, and the same seed
//! passes without the bug, so the failure is the bug's.

use broker::buggify::Bug;
use simulation::check::{
    ACKED_DELIVERED, ANOMALY, CONVERGENCE, GROUP_DELIVERED, ONE_CONNECTION, ORDER, QOS2_ONCE, RETAINED_IDENTICAL,
    RETAINED_LAST_WRITE_WINS, WILL,
};
use simulation::{Kind, Options, Scenario};

fn caught(kind: Kind, seed: u64, bug: Bug, every: u64, checker: &str) {
    let plan = Scenario::generate(kind, seed);
    let clean = simulation::run(&plan, &Options::default());
    assert!(!clean.failed(), "{kind} seed {seed} fails without a bug: {:?}", clean.violations.first());
    let buggy = simulation::run(&plan, &Options { trace: false, bug: Some((bug, every)) });
    assert!(
        buggy.violations.iter().any(|v| v.checker == checker),
        "{} on {kind} seed {seed}: {checker} saw nothing; violations: {:?}",
        bug.name(),
        buggy.violations
    );
}

#[test]
fn dropped_forwards_break_acknowledged_delivery() {
    caught(Kind::Crash, 2, Bug::DropForward, 3, ACKED_DELIVERED);
}

#[test]
fn qos2_delivered_twice_breaks_exactly_once() {
    caught(Kind::Single, 0, Bug::Qos2Twice, 2, QOS2_ONCE);
}

#[test]
fn a_reordered_session_queue_breaks_per_publisher_order() {
    caught(Kind::Single, 5, Bug::ReorderQueue, 1, ORDER);
}

#[test]
fn routes_forgotten_on_reconnect_break_convergence() {
    caught(Kind::Partition, 0, Bug::ForgetRoutesOnReconnect, 1, CONVERGENCE);
}

#[test]
fn a_takeover_that_keeps_the_old_session_breaks_one_connection_per_client_id() {
    caught(Kind::Takeover, 0, Bug::KeepOldSessionOnTakeover, 1, ONE_CONNECTION);
}

#[test]
fn retained_writes_applied_by_arrival_break_last_write_wins() {
    caught(Kind::Retained, 4, Bug::RetainedIgnoreStamp, 1, RETAINED_LAST_WRITE_WINS);
}

#[test]
fn a_lost_remote_retained_write_breaks_identical_retained_stores() {
    caught(Kind::Retained, 0, Bug::RetainedDropRemote, 3, RETAINED_IDENTICAL);
}

#[test]
fn a_node_that_serves_no_forwarded_group_breaks_group_delivery() {
    caught(Kind::Shared, 0, Bug::SkipForwardedGroups, 3, GROUP_DELIVERED);
}

/// The panic happens in a connection's task on a node; turmoil's runtime
/// stops, and the harness must report it instead of dying with it.
#[test]
fn a_broker_task_that_panics_is_an_anomaly() {
    caught(Kind::Single, 0, Bug::PanicOnPing, 5, ANOMALY);
}

#[test]
fn a_will_published_when_a_reconnect_takes_the_session_over_breaks_the_will_checker() {
    caught(Kind::Takeover, 0, Bug::WillOnTakeover, 1, WILL);
}

#[test]
fn a_guardian_that_forgets_the_wills_of_a_dead_node_breaks_the_will_checker() {
    caught(Kind::Crash, 1, Bug::LoseWillOfDeadNode, 1, WILL);
}
