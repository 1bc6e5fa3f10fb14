//! The events of one type as columns, kept in time order where they can
//! be, with the earliest and latest time of every block of [`BLOCK`] events,
//! so that a scan with a time window skips the blocks it cannot touch.
//!
//! A snapshot read whole sorts each type's events by time (ties in the order
//! they were stored); events brought in later are appended, which keeps the
//! order as long as they arrive in time order, as real events nearly do (a
//! late one only widens its block's span). Columns of event details arrive
//! from the database in storage order (event id order); `rank` says where
//! each event stands in that order, so they are put in this column's order
//! once, when read.

use crate::query::ast::TimeRange;
use std::ops::Range;

/// Events per block of the time index (in tests, a few, so that the
/// property tests' small audiences cross many block edges).
pub const BLOCK: usize = if cfg!(test) { 4 } else { 4096 };

#[derive(Debug, Default, Clone)]
pub struct EventColumn {
    /// Index of the subscriber (into the audience's subscriber columns).
    pub subscriber: Vec<u32>,
    /// When each happened, Unix ms.
    pub at: Vec<i64>,
    /// The position of each event in storage order, when it differs from
    /// its position here; `None` while the two orders agree.
    rank: Option<Vec<u32>>,
    /// Earliest and latest `at` of each block.
    blocks: Vec<(i64, i64)>,
}

impl EventColumn {
    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Appends an event (the next in storage order).
    pub fn push(&mut self, subscriber: u32, at: i64) {
        let position = self.at.len();
        if let Some(rank) = &mut self.rank {
            rank.push(position as u32);
        }
        self.subscriber.push(subscriber);
        self.at.push(at);
        if position.is_multiple_of(BLOCK) {
            self.blocks.push((at, at));
        } else if let Some((min, max)) = self.blocks.last_mut() {
            *min = (*min).min(at);
            *max = (*max).max(at);
        }
    }

    fn rebuild_blocks(&mut self) {
        self.blocks = self
            .at
            .chunks(BLOCK)
            .map(|block| {
                let min = block.iter().copied().min().unwrap_or(i64::MAX);
                let max = block.iter().copied().max().unwrap_or(i64::MIN);
                (min, max)
            })
            .collect();
    }

    /// Puts the events in time order (ties in storage order).
    pub fn sort_by_time(&mut self) {
        if self.at.is_sorted() {
            return;
        }
        let at = &self.at;
        let mut order: Vec<u32> = (0..at.len() as u32).collect();
        order.sort_unstable_by_key(|&p| (at[p as usize], p));
        let rank: Vec<u32> = match &self.rank {
            Some(rank) => order.iter().map(|&p| rank[p as usize]).collect(),
            None => order.clone(),
        };
        self.subscriber = order.iter().map(|&p| self.subscriber[p as usize]).collect();
        self.at = order.iter().map(|&p| self.at[p as usize]).collect();
        self.rank = Some(rank);
        self.rebuild_blocks();
    }

    /// Values given in storage order, put in this column's order.
    pub fn in_column_order<T: Clone>(&self, values: Vec<T>) -> Vec<T> {
        match &self.rank {
            None => values,
            Some(rank) => rank.iter().map(|&r| values[r as usize].clone()).collect(),
        }
    }

    /// This column's positions in storage order.
    pub fn storage_order(&self) -> Vec<usize> {
        match &self.rank {
            None => (0..self.len()).collect(),
            Some(rank) => {
                let mut positions = vec![0; rank.len()];
                for (p, &r) in rank.iter().enumerate() {
                    positions[r as usize] = p;
                }
                positions
            }
        }
    }

    pub fn rank(&self) -> Option<&[u32]> {
        self.rank.as_deref()
    }

    /// A column from its parts (read back from a checkpoint); `None` when
    /// they do not fit together.
    pub fn from_parts(subscriber: Vec<u32>, at: Vec<i64>, rank: Option<Vec<u32>>) -> Option<Self> {
        if subscriber.len() != at.len() {
            return None;
        }
        if let Some(rank) = &rank {
            let mut seen = vec![false; rank.len()];
            for &r in rank {
                if std::mem::replace(seen.get_mut(r as usize)?, true) {
                    return None;
                }
            }
            if rank.len() != at.len() {
                return None;
            }
        }
        let mut column = Self {
            subscriber,
            at,
            rank,
            blocks: Vec::new(),
        };
        column.rebuild_blocks();
        Some(column)
    }

    /// The parts of `range` worth scanning for events in `window`: whole
    /// blocks whose span misses the window are left out.
    pub fn ranges_in(&self, range: Range<usize>, window: &TimeRange) -> Vec<Range<usize>> {
        if *window == TimeRange::ALL || range.is_empty() {
            return vec![range];
        }
        let mut out: Vec<Range<usize>> = Vec::new();
        let first = range.start / BLOCK;
        let last = (range.end - 1) / BLOCK;
        for (b, &(min, max)) in self.blocks.iter().enumerate().take(last + 1).skip(first) {
            if max < window.from || min >= window.until {
                continue;
            }
            let part = (b * BLOCK).max(range.start)..((b + 1) * BLOCK).min(range.end);
            match out.last_mut() {
                Some(previous) if previous.end == part.start => previous.end = part.end,
                _ => out.push(part),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(times: &[i64]) -> EventColumn {
        let mut c = EventColumn::default();
        for (i, &at) in times.iter().enumerate() {
            c.push(i as u32, at);
        }
        c
    }

    #[test]
    fn ranges_name_exactly_the_blocks_a_window_touches() {
        let b = BLOCK as i64;
        let window = |from: i64, until: i64| TimeRange { from, until };
        // Three blocks in time order: a range ending at a block's end never
        // reaches into the next one.
        let sorted = column(&(0..3 * b).collect::<Vec<_>>());
        assert!(!sorted.is_empty() && EventColumn::default().is_empty());
        let two_blocks = 0..2 * BLOCK;
        assert_eq!(
            sorted.ranges_in(two_blocks.clone(), &window(2 * b, 3 * b)),
            Vec::<Range<usize>>::new()
        );
        assert_eq!(
            sorted.ranges_in(two_blocks, &window(b, 3 * b)),
            vec![(BLOCK..2 * BLOCK)]
        );
        // Events appended late (after a catch-up) can leave a block between
        // two that a window touches: they stay two ranges.
        let mut times: Vec<i64> = (0..b).collect();
        times.extend((0..b).map(|t| 100 + t));
        times.extend((0..b).map(|t| b + t));
        let appended = column(&times);
        assert_eq!(
            appended.ranges_in(0..3 * BLOCK, &window(0, 2 * b)),
            [0..BLOCK, 2 * BLOCK..3 * BLOCK]
        );
    }

    #[test]
    fn sorting_keeps_where_each_event_was_stored() {
        let mut c = column(&[30, 10, 20, 10]);
        c.sort_by_time();
        assert_eq!(c.at, [10, 10, 20, 30]);
        assert_eq!(c.subscriber, [1, 3, 2, 0]);
        assert_eq!(c.rank(), Some(&[1, 3, 2, 0][..]));
        assert_eq!(
            c.in_column_order(vec!["a", "b", "c", "d"]),
            ["b", "d", "c", "a"]
        );
        assert_eq!(c.storage_order(), [3, 0, 2, 1]);
        c.push(9, 5);
        assert_eq!(c.rank(), Some(&[1, 3, 2, 0, 4][..]));
        let sorted = column(&[1, 2, 3]);
        let mut again = sorted.clone();
        again.sort_by_time();
        assert_eq!(again.rank(), None, "already in order: nothing to remember");
    }

    #[test]
    fn a_window_skips_blocks_it_cannot_touch() {
        let times: Vec<i64> = (0..3 * BLOCK as i64).collect();
        let c = column(&times);
        let window = TimeRange {
            from: BLOCK as i64 + 1,
            until: BLOCK as i64 + 2,
        };
        assert_eq!(c.ranges_in(0..c.len(), &window), vec![(BLOCK..2 * BLOCK)]);
        assert_eq!(c.ranges_in(0..c.len(), &TimeRange::ALL), vec![(0..c.len())]);
        // Edges: a block whose latest event is the window's first instant is
        // read; one whose earliest is the window's end is not.
        let edge = TimeRange {
            from: 2 * BLOCK as i64 - 1,
            until: 2 * BLOCK as i64,
        };
        assert_eq!(c.ranges_in(0..c.len(), &edge), vec![(BLOCK..2 * BLOCK)]);
        let wide = TimeRange {
            from: 1,
            until: 2 * BLOCK as i64 + 1,
        };
        assert_eq!(c.ranges_in(1..c.len() - 1, &wide), vec![(1..c.len() - 1)]);
        let before = TimeRange {
            from: i64::MIN,
            until: 0,
        };
        assert!(c.ranges_in(0..c.len(), &before).is_empty());
    }

    #[test]
    fn parts_that_do_not_fit_are_refused() {
        assert!(EventColumn::from_parts(vec![0, 1], vec![1, 2], Some(vec![1, 0])).is_some());
        assert!(EventColumn::from_parts(vec![0, 1], vec![1, 2], Some(vec![1, 1])).is_none());
        assert!(EventColumn::from_parts(vec![0, 1], vec![1, 2], Some(vec![0, 2])).is_none());
        assert!(EventColumn::from_parts(vec![0], vec![1, 2], None).is_none());
    }
}
