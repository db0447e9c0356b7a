//! Checkers that can fail: each named broker bug (broker/src/buggify.rs)
//! makes its checker report a violation on a fixed seed, and the same seed
//! passes without the bug, so the failure is the bug's.

use broker::buggify::Bug;
use simulation::check::{ACKED_DELIVERED, CONVERGENCE, ONE_CONNECTION, ORDER, QOS2_ONCE, RETAINED_LAST_WRITE_WINS};
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
