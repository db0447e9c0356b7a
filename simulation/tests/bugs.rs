//! Checkers that can fail: each named broker bug (broker/src/buggify.rs)
//! makes its checker report a violation on a fixed seed, and the same seed
//! passes without the bug, so the failure is the bug's.

use broker::buggify::Bug;
use simulation::check::{ACKED_DELIVERED, CONVERGENCE, ORDER, QOS2_ONCE};
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
