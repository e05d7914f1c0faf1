//! A room's reorder buffer: messages that arrive ahead of a missing seq (from another node,
//! or from a later commit batch) wait here until every seq before them is delivered, so
//! members get messages strictly in seq order, each once. Pure: the Room owns the newest
//! delivered seq (it survives an actor restart; waiting messages do not) and passes it in.

use std::collections::BTreeMap;

/// Messages waiting for the seqs before them.
#[derive(Debug)]
pub(crate) struct Reorder<T> {
    waiting: BTreeMap<u64, T>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder {
            waiting: BTreeMap::new(),
        }
    }
}

impl<T> Reorder<T> {
    /// Message `seq` arrived while `delivered` is the newest delivered seq: `Some` when it is
    /// the next one (deliver it now, then [`Reorder::next`] until `None`), `None` when it was
    /// delivered before (dropped) or must wait for a gap to close (kept).
    pub(crate) fn offer(&mut self, delivered: u64, seq: u64, item: T) -> Option<T> {
        if seq <= delivered {
            return None;
        }
        if seq > delivered + 1 {
            self.waiting.insert(seq, item);
            return None;
        }
        Some(item)
    }

    /// The waiting message right after `delivered`, if it is here (deliver it); waiting
    /// messages at or below `delivered` are dropped on the way.
    pub(crate) fn next(&mut self, delivered: u64) -> Option<T> {
        while let Some(entry) = self.waiting.first_entry() {
            match *entry.key() {
                seq if seq <= delivered => {
                    entry.remove();
                }
                seq if seq == delivered + 1 => return Some(entry.remove()),
                _ => return None,
            }
        }
        None
    }

    /// The missing seqs `(after, until]` before the first waiting message.
    pub(crate) fn gap(&self, delivered: u64) -> Option<(u64, u64)> {
        let (&first, _) = self.waiting.iter().find(|(seq, _)| **seq > delivered)?;
        (first > delivered + 1).then_some((delivered, first - 1))
    }

    /// Whether any message waits.
    pub(crate) fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// Drives the buffer as the Room does: delivers what is ready, in order.
    struct Room {
        order: Reorder<u64>,
        delivered: u64,
        out: Vec<u64>,
    }

    impl Room {
        fn new() -> Room {
            Room {
                order: Reorder::default(),
                delivered: 0,
                out: Vec::new(),
            }
        }

        fn arrive(&mut self, seq: u64) {
            if let Some(now) = self.order.offer(self.delivered, seq, seq) {
                self.deliver(now);
            }
        }

        fn deliver(&mut self, seq: u64) {
            self.out.push(seq);
            self.delivered = seq;
            while let Some(next) = self.order.next(self.delivered) {
                self.out.push(next);
                self.delivered = next;
            }
        }

        /// The gap timer fired: the store holds `stored`; what it lacks is skipped.
        fn fill(&mut self, stored: &BTreeSet<u64>) {
            while let Some((after, until)) = self.order.gap(self.delivered) {
                for seq in after + 1..=until {
                    if stored.contains(&seq) {
                        self.arrive(seq);
                    }
                }
                if self.delivered < until {
                    self.delivered = until;
                    while let Some(next) = self.order.next(self.delivered) {
                        self.deliver(next);
                    }
                }
            }
        }
    }

    #[test]
    fn early_messages_wait_for_the_gap() {
        let mut room = Room::new();
        room.arrive(2);
        room.arrive(3);
        assert_eq!(room.out, Vec::<u64>::new());
        assert_eq!(room.order.gap(0), Some((0, 1)));
        room.arrive(1);
        assert_eq!(room.out, vec![1, 2, 3]);
        assert!(!room.order.is_waiting());
        room.arrive(2);
        assert_eq!(room.out, vec![1, 2, 3], "a repeat is dropped");
    }

    proptest! {
        /// Seqs 1..=n arrive in any order, some twice, some never (the broker lost them);
        /// once the gaps are filled from the store, every seq was delivered once, in order.
        #[test]
        fn every_seq_is_delivered_once_in_order(
            order in Just((1..=40u64).collect::<Vec<_>>()).prop_shuffle(),
            repeats in prop::collection::vec(1..=40u64, 0..20),
            lost in prop::collection::btree_set(1..=40u64, 0..10),
            fills in prop::collection::vec(0..60usize, 0..5),
        ) {
            let mut room = Room::new();
            let stored: BTreeSet<u64> = (1..=40).collect();
            let arrivals: Vec<u64> = order
                .into_iter()
                .chain(repeats)
                .filter(|seq| !lost.contains(seq))
                .collect();
            for (i, seq) in arrivals.iter().enumerate() {
                if fills.contains(&i) {
                    room.fill(&stored);
                }
                room.arrive(*seq);
                prop_assert!(room.out.windows(2).all(|w| w[1] == w[0] + 1));
            }
            room.fill(&stored);
            let newest_arrived = arrivals.iter().copied().max().unwrap_or(0);
            prop_assert_eq!(room.out, (1..=newest_arrived).collect::<Vec<_>>());
        }

        /// When the store lacks seqs too (a history reset), the room skips them and still
        /// delivers everything that arrived, once, in increasing order.
        #[test]
        fn seqs_missing_everywhere_are_skipped(
            order in Just((1..=30u64).collect::<Vec<_>>()).prop_shuffle(),
            gone in prop::collection::btree_set(1..=30u64, 0..8),
        ) {
            let mut room = Room::new();
            let stored: BTreeSet<u64> = (1..=30).filter(|s| !gone.contains(s)).collect();
            for seq in order.iter().filter(|s| stored.contains(s)) {
                room.arrive(*seq);
            }
            room.fill(&stored);
            prop_assert_eq!(room.out, stored.into_iter().collect::<Vec<_>>());
        }
    }
}
