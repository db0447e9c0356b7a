//! The one synchronisation primitive the broker writes itself: [`Signal`],
//! a wake-up with a stored permit, between tasks that hand each other work
//! through a mutex-guarded queue (a peer link's queue and its writer task).
//!
//! The protocol it must keep: a `notify` that happens after the waiter last
//! looked at the queue is never lost, whether the waiter is already parked,
//! about to park, or not waiting at all. That is what the loom models in
//! `tests/loom.rs` check, run with `RUSTFLAGS="--cfg loom" cargo test -p
//! broker-sync --release --test loom` (ci/test.sh does). This crate depends on
//! no runtime so that `--cfg loom` reaches only it and loom.

#[cfg(loom)]
use loom::sync::Mutex as Inner;
#[cfg(not(loom))]
use parking_lot::Mutex as Inner;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A mutex with the same face under loom and in production.
#[derive(Debug, Default)]
pub struct Mutex<T>(Inner<T>);

impl<T> Mutex<T> {
    pub fn new(value: T) -> Self {
        Self(Inner::new(value))
    }

    #[cfg(not(loom))]
    pub fn lock(&self) -> parking_lot::MutexGuard<'_, T> {
        self.0.lock()
    }

    #[cfg(loom)]
    pub fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        // A poisoned lock means a model thread panicked: the model fails anyway.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A wake-up for one waiter at a time, with a stored permit: `notify` before
/// `wait` makes the next `wait` return at once. Several notifies before a wait
/// collapse into one permit (the waiter drains the whole queue each time).
///
/// The permit and the parked waker live under one lock, so that "give the
/// permit" and "is anyone parked" are one step: a notify can never fall
/// between a waiter's look at the permit and its parking.
#[derive(Debug, Default)]
pub struct Signal {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    permit: bool,
    waiter: Option<Waker>,
}

impl Signal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives the permit and wakes the waiter, if one is parked.
    pub fn notify(&self) {
        let waker = {
            let mut state = self.state.lock();
            state.permit = true;
            state.waiter.take()
        };
        // Woken outside the lock: the waiter's poll takes the same lock.
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Resolves once a permit is available, taking it.
    pub fn wait(&self) -> Wait<'_> {
        Wait { signal: self }
    }
}

/// The future of [`Signal::wait`].
#[derive(Debug)]
pub struct Wait<'a> {
    signal: &'a Signal,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.signal.state.lock();
        if std::mem::take(&mut state.permit) {
            state.waiter = None;
            return Poll::Ready(());
        }
        state.waiter = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_notify_before_the_wait_is_kept_as_a_permit() {
        let signal = Signal::new();
        signal.notify();
        signal.notify();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut first = signal.wait();
        assert!(Pin::new(&mut first).poll(&mut cx).is_ready());
        let mut second = signal.wait();
        assert!(Pin::new(&mut second).poll(&mut cx).is_pending(), "notifies collapse into one permit");
        signal.notify();
        assert!(Pin::new(&mut second).poll(&mut cx).is_ready());
    }
}
