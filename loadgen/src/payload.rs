//! The header every load-generator message carries at the front of its
//! payload, and the per-publisher sequence check on the receiving side.
//!
//! Layout (big endian, 24 bytes): magic `LGv1`, publisher key (u32: group
//! ordinal in the high 8 bits, client number in the low 24), sequence number
//! (u64, from 0), scheduled send time (u64, nanoseconds since the Unix epoch).
//! The time is when the schedule wanted the message sent, not when it went
//! out, so a publisher that falls behind shows up as latency instead of
//! hiding it (coordinated omission).

use ahash::AHashMap;

pub const MAGIC: [u8; 4] = *b"LGv1";
pub const HEADER_LEN: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub publisher: u32,
    pub sequence: u64,
    pub scheduled_unix_ns: u64,
}

impl Header {
    /// Writes the header over the first bytes of `payload` (which must hold it).
    pub fn write(&self, payload: &mut [u8]) {
        if payload.len() < HEADER_LEN {
            return;
        }
        payload[..4].copy_from_slice(&MAGIC);
        payload[4..8].copy_from_slice(&self.publisher.to_be_bytes());
        payload[8..16].copy_from_slice(&self.sequence.to_be_bytes());
        payload[16..24].copy_from_slice(&self.scheduled_unix_ns.to_be_bytes());
    }

    /// Reads a header; `None` for a payload that is not ours (too short, other magic).
    pub fn read(payload: &[u8]) -> Option<Self> {
        let h = payload.get(..HEADER_LEN)?;
        if h[..4] != MAGIC {
            return None;
        }
        Some(Self {
            publisher: u32::from_be_bytes(h[4..8].try_into().ok()?),
            sequence: u64::from_be_bytes(h[8..16].try_into().ok()?),
            scheduled_unix_ns: u64::from_be_bytes(h[16..24].try_into().ok()?),
        })
    }
}

pub fn publisher_key(group_ordinal: usize, client_number: u64) -> u32 {
    ((group_ordinal as u32 & 0xff) << 24) | (client_number as u32 & 0x00ff_ffff)
}

/// What one received sequence number means for its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    InOrder,
    /// Ahead of the next expected number: this many numbers are missing (for now).
    Gap(u64),
    /// An earlier missing number arrived late: one fewer missing.
    Late,
    Duplicate,
}

/// How far back a late arrival is told apart from a duplicate.
const WINDOW: u64 = 64;

/// Sequence state of one publisher's stream as seen by one subscription.
#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    next: u64,
    /// Bit k set: `next - 1 - k` has arrived.
    seen: u64,
}

impl Stream {
    fn arrive(&mut self, seq: u64) -> Arrival {
        if seq >= self.next {
            let gap = seq - self.next;
            let shift = gap + 1;
            self.seen = if shift >= WINDOW { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.next = seq + 1;
            return if gap == 0 { Arrival::InOrder } else { Arrival::Gap(gap) };
        }
        let back = self.next - 1 - seq;
        if back >= WINDOW {
            return Arrival::Duplicate;
        }
        let bit = 1u64 << back;
        if self.seen & bit != 0 {
            Arrival::Duplicate
        } else {
            self.seen |= bit;
            Arrival::Late
        }
    }
}

/// The streams of every publisher one subscription hears from.
#[derive(Debug, Default)]
pub struct SequenceCheck {
    streams: AHashMap<u32, Stream>,
}

impl SequenceCheck {
    pub fn arrive(&mut self, publisher: u32, seq: u64) -> Arrival {
        self.streams.entry(publisher).or_default().arrive(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_foreign_payloads_are_ignored() {
        let h = Header { publisher: publisher_key(2, 513), sequence: 9, scheduled_unix_ns: 1_700_000_000_123 };
        let mut buf = [0u8; 32];
        h.write(&mut buf);
        assert_eq!(Header::read(&buf), Some(h));
        assert_eq!(Header::read(&buf[..10]), None);
        assert_eq!(Header::read(&[0u8; 32]), None);
    }

    #[test]
    fn gaps_late_arrivals_and_duplicates_are_told_apart() {
        let mut c = SequenceCheck::default();
        assert_eq!(c.arrive(1, 0), Arrival::InOrder);
        assert_eq!(c.arrive(1, 1), Arrival::InOrder);
        assert_eq!(c.arrive(1, 4), Arrival::Gap(2));
        assert_eq!(c.arrive(1, 3), Arrival::Late);
        assert_eq!(c.arrive(1, 3), Arrival::Duplicate);
        assert_eq!(c.arrive(1, 4), Arrival::Duplicate);
        assert_eq!(c.arrive(1, 2), Arrival::Late);
        assert_eq!(c.arrive(1, 5), Arrival::InOrder);
        // Another publisher has its own stream.
        assert_eq!(c.arrive(2, 0), Arrival::InOrder);
        // Far behind the window counts as a duplicate.
        assert_eq!(c.arrive(1, 500), Arrival::Gap(494));
        assert_eq!(c.arrive(1, 6), Arrival::Duplicate);
    }
}
