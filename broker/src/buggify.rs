//! Named bugs that the simulation injects to prove its checkers can fail
//! (FoundationDB's BUGGIFY, reduced to what a checker needs).
//!
//! Compiled only with the `sim-bugs` feature; without it [`fires`] is a
//! constant `false` and every injection point vanishes. With it, a bug is
//! enabled per thread ([`enable`]): turmoil runs a whole simulated cluster on
//! the thread that steps it, so a test that enables a bug affects no other
//! test running beside it, and a production broker (whose threads never call
//! `enable`) behaves as if the feature were off.
//!
//! Each injection point is one `if crate::buggify::fires(Bug::X)` marked
//! `// sim-bugs:` in the file it breaks.

/// The bugs there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// A node receiving a forwarded publish acknowledges it but delivers it
    /// to no local session (core/cluster.rs, `handle_forward`).
    DropForward,
    /// A node applying a peer's route snapshot that replaces an earlier one
    /// (a reconnect) keeps none of its routes (cluster/routes.rs, `apply_snapshot`).
    ForgetRoutesOnReconnect,
    /// A QoS 2 delivery is queued twice, as two messages with their own
    /// packet ids (core/publish.rs, `deliver`).
    Qos2Twice,
    /// A delivery is queued before the one already waiting at the back of a
    /// session's queue (core/session.rs, `enqueue`).
    ReorderQueue,
    /// A node asked by a peer to hand over a session ignores the request: it
    /// neither closes the old connection nor gives the session up, so the
    /// client stays connected on both nodes (core/transfer.rs, `export_session`).
    KeepOldSessionOnTakeover,
    /// A node applies every retained write of a peer as it arrives, whatever
    /// its stamp: last write by arrival instead of by hybrid logical clock
    /// (core/cluster.rs, `apply_remote_retained`).
    RetainedIgnoreStamp,
    /// A node loses a peer's retained write: it neither applies it nor
    /// counts it superseded (core/cluster.rs, `apply_remote_retained`).
    RetainedDropRemote,
    /// A node receiving a forward for shared groups it was named to serve
    /// serves none of them, and delivers nothing of it (core/cluster.rs,
    /// `handle_forward`).
    SkipForwardedGroups,
    /// The core panics on a PINGREQ: a broker assertion that fails inside a
    /// connection's task (core/mod.rs, `handle_packet`).
    PanicOnPing,
    /// A will is published as soon as its connection ends, whatever its
    /// delay: a session taken over by a reconnect (or resumed within the
    /// delay) publishes the will it should drop (core/connect.rs, `detach`).
    WillOnTakeover,
    /// A guardian whose peer died forgets the wills it guarded for it
    /// instead of publishing them (cluster/node.rs, `publish_wills_of`).
    LoseWillOfDeadNode,
}

impl Bug {
    pub const ALL: [Bug; 11] = [
        Bug::DropForward,
        Bug::ForgetRoutesOnReconnect,
        Bug::Qos2Twice,
        Bug::ReorderQueue,
        Bug::KeepOldSessionOnTakeover,
        Bug::RetainedIgnoreStamp,
        Bug::RetainedDropRemote,
        Bug::SkipForwardedGroups,
        Bug::PanicOnPing,
        Bug::WillOnTakeover,
        Bug::LoseWillOfDeadNode,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::DropForward => "drop-forward",
            Bug::ForgetRoutesOnReconnect => "forget-routes-on-reconnect",
            Bug::Qos2Twice => "qos2-twice",
            Bug::ReorderQueue => "reorder-queue",
            Bug::KeepOldSessionOnTakeover => "keep-old-session-on-takeover",
            Bug::RetainedIgnoreStamp => "retained-ignore-stamp",
            Bug::RetainedDropRemote => "retained-drop-remote",
            Bug::SkipForwardedGroups => "skip-forwarded-groups",
            Bug::PanicOnPing => "panic-on-ping",
            Bug::WillOnTakeover => "will-on-takeover",
            Bug::LoseWillOfDeadNode => "lose-will-of-dead-node",
        }
    }

    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// Whether this build has the injection points.
pub const AVAILABLE: bool = cfg!(feature = "sim-bugs");

#[cfg(feature = "sim-bugs")]
mod enabled {
    use std::cell::Cell;

    use super::Bug;

    thread_local! {
        /// The bug enabled on this thread, and how often it fires (every n-th chance).
        static BUG: Cell<Option<(Bug, u64)>> = const { Cell::new(None) };
        /// Chances the enabled bug had so far.
        static CHANCES: Cell<u64> = const { Cell::new(0) };
    }

    pub fn enable(bug: Option<(Bug, u64)>) {
        BUG.set(bug.map(|(b, every)| (b, every.max(1))));
        CHANCES.set(0);
    }

    pub fn fires(bug: Bug) -> bool {
        match BUG.get() {
            Some((enabled, every)) if enabled == bug => {
                let chance = CHANCES.get() + 1;
                CHANCES.set(chance);
                chance.is_multiple_of(every)
            }
            _ => false,
        }
    }
}

/// Enables `bug` on the calling thread, firing at every `every`-th chance
/// (`None`: no bug). Fails when the broker was built without `sim-bugs`.
pub fn enable(bug: Option<(Bug, u64)>) -> Result<(), &'static str> {
    #[cfg(feature = "sim-bugs")]
    {
        enabled::enable(bug);
        Ok(())
    }
    #[cfg(not(feature = "sim-bugs"))]
    {
        match bug {
            None => Ok(()),
            Some(_) => Err("the broker was built without the `sim-bugs` feature"),
        }
    }
}

/// True when `bug` is enabled on this thread and fires at this chance.
#[inline]
pub fn fires(bug: Bug) -> bool {
    #[cfg(feature = "sim-bugs")]
    {
        enabled::fires(bug)
    }
    #[cfg(not(feature = "sim-bugs"))]
    {
        let _ = bug;
        false
    }
}
