//! Deterministic cluster failure testing: the real broker, cluster
//! included, runs on turmoil's simulated network and clock; one seed draws
//! the topology, the workload and the faults; the run records a history and
//! checkers judge it. A failing seed replays exactly.
//!
//! # Layout
//! - [`net`]: the broker's network seam on turmoil (TCP, UDP with cuts, DNS, spawn).
//! - [`scenario`]: scenarios drawn from a seed (topology, clients, faults).
//! - [`client`]: the MQTT 5 clients (subscriber, publisher, will watcher) on `mqtt-codec`.
//! - [`history`]: the recorded events and their hash.
//! - [`run`]: the harness: hosts, fault schedule, route observation, convergence.
//! - [`check`]: the checkers over a history.
//!
//! **Determinism**: everything of one run happens on the thread that calls
//! [`run::run`] (turmoil drives every host's runtime from it), so a run
//! shares nothing with another run on another thread, and its history hash
//! depends on the seed alone.

pub mod check;
pub mod client;
pub mod history;
pub mod net;
pub mod run;
pub mod scenario;

pub use run::{Options, Outcome, run};
pub use scenario::{Kind, Scenario};

/// Panics on the simulation's thread, recorded so that a checker reports
/// them. A panic in a host's task stops turmoil's runtime and unwinds out of
/// `Sim::step`, where the harness catches it and ends the run (`run::step`).
pub mod panics {
    use std::cell::RefCell;
    use std::sync::Once;

    thread_local! {
        static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    /// Installs the hook (once per process) and returns the panics this thread recorded since the last call.
    pub fn take() -> Vec<String> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                PANICS.with(|p| p.borrow_mut().push(info.to_string()));
                previous(info);
            }));
        });
        PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()))
    }
}
