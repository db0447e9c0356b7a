//! loom models of the hand-off the broker builds on [`Signal`]: a producer
//! puts work in a mutex-guarded queue and notifies; the consumer drains the
//! queue and waits when it found nothing. loom runs every interleaving (and
//! reports a deadlock if a wake-up is lost).
#![cfg(loom)]

use broker_sync::{Mutex, Signal};
use loom::sync::Arc;

/// The consumer of a queue fed by `producers` threads, each pushing `items`.
fn hand_off(producers: usize, items: usize) {
    // Bounded preemptions keep the model small enough for CI (loom's own advice);
    // three are enough to interleave a producer between any two steps of the waiter.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(move || {
        let queue = Arc::new(Mutex::new(Vec::<usize>::new()));
        let ready = Arc::new(Signal::new());
        let mut threads = Vec::new();
        for p in 0..producers {
            let (queue, ready) = (queue.clone(), ready.clone());
            threads.push(loom::thread::spawn(move || {
                for i in 0..items {
                    queue.lock().push(p * 100 + i);
                    ready.notify();
                }
            }));
        }
        let expected = producers * items;
        let mut got = Vec::new();
        loom::future::block_on(async {
            while got.len() < expected {
                let batch = std::mem::take(&mut *queue.lock());
                if batch.is_empty() {
                    ready.wait().await;
                }
                got.extend(batch);
            }
        });
        for t in threads {
            t.join().unwrap_or_else(|_| panic!("a producer panicked"));
        }
        // Every item once, and each producer's items in the order it pushed them.
        assert_eq!(got.len(), expected);
        for p in 0..producers {
            let mine: Vec<usize> = got.iter().copied().filter(|v| v / 100 == p).collect();
            assert_eq!(mine, (0..items).map(|i| p * 100 + i).collect::<Vec<_>>());
        }
    });
}

#[test]
fn no_wake_up_is_lost_with_one_producer() {
    hand_off(1, 3);
}

#[test]
fn no_wake_up_is_lost_with_two_producers() {
    hand_off(2, 1);
}
