//! The lean client's hot path allocates nothing per message: publishing
//! (encode, header patch), receiving (decode, latency, sequence check,
//! acknowledgement) and handling acks. Counted by a global allocator that
//! tallies the calling thread's allocations, so other tests' threads do not
//! disturb the count.

// The workspace denies unsafe code; a global allocator cannot be written
// without it. This one only forwards to `System` (see the SAFETY notes), and
// lives in this test binary alone.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::num::NonZeroU16;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use loadgen::payload::Header;
use loadgen::session::{Message, Session};
use loadgen::stats::Stats;
use mqtt_codec::{Decoder, Packet, ProtocolVersion, PubResponse, Publish, PublishProperties, QoS};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // try_with: the thread-local may already be gone while a thread exits.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed to the system allocator unchanged; the only
// addition is a counter in a const-initialised thread-local Cell, which
// neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` was allocated by `System` through this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const MESSAGES: u64 = 10_000;

/// What the broker would send: `n` QoS 1 PUBLISHes of one publisher, in sequence.
fn incoming(n: u64, version: ProtocolVersion) -> BytesMut {
    let mut wire = BytesMut::new();
    let mut payload = vec![0u8; 256];
    for seq in 0..n {
        Header { publisher: 9, sequence: seq, scheduled_unix_ns: 1_000_000 }.write(&mut payload);
        let publish = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: ByteString::from_static("bench/p2p/9"),
            packet_id: NonZeroU16::new(u16::try_from(seq % 60_000 + 1).unwrap_or(1)),
            payload: Bytes::from(payload.clone()),
            properties: PublishProperties::default(),
        };
        mqtt_codec::encode(&Packet::Publish(publish), version, &mut wire).expect("a publish encodes");
    }
    wire
}

#[test]
fn publishing_receiving_and_acknowledging_allocate_nothing_allocated() {
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let stats = Stats::default();
        let mut session = Session::new(version, 0);
        let mut decoder = Decoder::with_version(version, 1 << 20);
        let topic = ByteString::from_static("bench/p2p/1");
        let body = Bytes::from(vec![0u8; 256]);
        let message = Message { topic: &topic, qos: QoS::AtLeastOnce, retain: false, body: &body };
        // The driver's per-thread scratch buffer: allocated once, reused.
        let mut out = BytesMut::with_capacity(64 * 1024);
        let mut input = incoming(MESSAGES + 100, version);

        let mut round = |i: u64, out: &mut BytesMut, input: &mut BytesMut| {
            out.clear();
            let header = Header { publisher: 1, sequence: i, scheduled_unix_ns: 1_000_000 };
            assert!(session.publish(&message, &header, 64, out).expect("encodes"));
            let id = NonZeroU16::new(u16::try_from(i % 60_000 + 1).unwrap_or(1)).unwrap_or(NonZeroU16::MIN);
            session.handle(Packet::PubAck(PubResponse::new(id)), 2_000_000, &stats, out).expect("an ack");
            let Ok(Some(packet)) = decoder.decode(input) else { panic!("a publish from the broker") };
            session.handle(packet, 2_000_000, &stats, out).expect("a publish");
        };
        // Warm-up: the first rounds may grow buffers and the histogram's shard.
        for i in 0..100 {
            round(i, &mut out, &mut input);
        }
        let before = allocations();
        for i in 100..100 + MESSAGES {
            round(i, &mut out, &mut input);
        }
        let allocated = allocations() - before;
        let c = stats.counters.snapshot();
        assert_eq!((c.received, c.pub_acked, c.lost, c.duplicates), (MESSAGES + 100, MESSAGES + 100, 0, 0));
        assert!(
            allocated == 0,
            "{version:?}: {allocated} allocations for {MESSAGES} messages sent, received and acknowledged"
        );
    }
}
