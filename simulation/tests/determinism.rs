//! One seed, one history: a run repeated on the same seed records the same
//! events at the same simulated times (compared by the hash of the whole log).

use simulation::{Kind, Options, Scenario};

fn twice(kind: Kind, seed: u64) {
    let plan = Scenario::generate(kind, seed);
    let first = simulation::run(&plan, &Options::default());
    let second = simulation::run(&plan, &Options::default());
    assert!(first.records.len() > 100, "{kind} seed {seed} recorded only {} events", first.records.len());
    if first.hash != second.hash {
        let at = first.records.iter().zip(&second.records).position(|(a, b)| a != b);
        panic!(
            "{kind} seed {seed} diverged: hashes {:016x} and {:016x}, first difference at event {at:?}: {:?} vs {:?}",
            first.hash,
            second.hash,
            at.and_then(|i| first.records.get(i)),
            at.and_then(|i| second.records.get(i)),
        );
    }
}

#[test]
fn a_partitioned_cluster_replays_exactly() {
    twice(Kind::Partition, 1);
}

#[test]
fn a_swarm_run_with_crashes_replays_exactly() {
    twice(Kind::Swarm, 1);
}

#[test]
fn a_crash_run_with_wills_and_their_guardians_replays_exactly() {
    twice(Kind::Crash, 1);
}
