//! Membership history, as both front ends read it from the journal
//! ([`crate::storage::journal`]): a segment's size over time, its members
//! at an instant, and its changes feed. Every answer is worked out from the
//! journal's members now, walked back through the transitions recorded
//! since: whole days from the daily counts, the rest from the transitions
//! themselves.

use super::SegmentError;
use crate::segment::{FieldError, Segment, SegmentId};
use crate::storage::Store;
use crate::storage::journal::{JournalInfo, NamedChange};
use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;

/// Most points a series may have.
pub const MAX_POINTS: i64 = 1_000;

/// The width of a series' points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Minute,
    Hour,
    Day,
    /// Weeks start on Monday, 00:00 UTC.
    Week,
    Month,
}

impl Interval {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "minute" => Self::Minute,
            "hour" => Self::Hour,
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            _ => return None,
        })
    }

    /// The start of the interval holding `at` (UTC boundaries).
    pub fn floor(self, at: i64) -> i64 {
        match self {
            Self::Minute => at.div_euclid(MINUTE) * MINUTE,
            Self::Hour => at.div_euclid(HOUR) * HOUR,
            Self::Day => crate::storage::journal::day_of(at),
            // 1970-01-05 was a Monday.
            Self::Week => (at - 4 * DAY).div_euclid(WEEK) * WEEK + 4 * DAY,
            Self::Month => {
                let t = utc(at);
                Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
                    .single()
                    .map_or(at, |t| t.timestamp_millis())
            }
        }
    }

    /// How many intervals start in `[first, to)`, `first` being the start
    /// of one.
    pub fn count(self, first: i64, to: i64) -> i64 {
        if to <= first {
            return 0;
        }
        let width = match self {
            Self::Minute => MINUTE,
            Self::Hour => HOUR,
            Self::Day => DAY,
            Self::Week => WEEK,
            Self::Month => {
                let (a, b) = (utc(first), utc(to - 1));
                let months = (i64::from(b.year()) - i64::from(a.year())) * 12
                    + i64::from(b.month())
                    - i64::from(a.month());
                return months + 1;
            }
        };
        (to - first - 1) / width + 1
    }

    /// The start of the interval after the one starting at `start`.
    pub fn next(self, start: i64) -> i64 {
        match self {
            Self::Minute => start + MINUTE,
            Self::Hour => start + HOUR,
            Self::Day => start + DAY,
            Self::Week => start + WEEK,
            Self::Month => utc(start)
                .checked_add_months(Months::new(1))
                .map_or(i64::MAX, |t| t.timestamp_millis()),
        }
    }
}

/// A refusal naming one field.
fn invalid(field: &str, message: impl Into<String>) -> SegmentError {
    SegmentError::Invalid(FieldError::new(field, message).into())
}

fn utc(at: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at).unwrap_or_else(|| {
        NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("a valid date")
            .and_utc()
    })
}

/// One point of a series: the interval starting at `at`, the members as at
/// its end (or at the series' end, for the last), and the joins and leaves
/// within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub at: i64,
    pub members: i64,
    pub added: i64,
    pub removed: i64,
}

/// A series, and when the segment's history begins (`None`: not yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub points: Vec<Point>,
    pub begins_at: Option<i64>,
}

/// The segment (kept or discarded) and its journal's state.
async fn journaled(
    store: &dyn Store,
    site_id: i64,
    id: SegmentId,
) -> Result<(Segment, Option<JournalInfo>), SegmentError> {
    let segment = store
        .get_segment(site_id, id)
        .await?
        .ok_or(SegmentError::NotFound)?;
    let info = store.journal_info(site_id, id.0).await?;
    Ok((segment, info))
}

/// A segment's size over `[from, to)` by `interval`: at most
/// [`MAX_POINTS`] points, starting with the interval that holds the later
/// of `from` and the history's beginning.
pub async fn series(
    store: &dyn Store,
    site_id: i64,
    id: SegmentId,
    from: i64,
    to: i64,
    interval: Interval,
) -> Result<Series, SegmentError> {
    if from >= to {
        return Err(invalid("from", "must be before to"));
    }
    // The limit holds for the range asked for, wherever the history begins.
    let count = interval.count(interval.floor(from), to);
    if count > MAX_POINTS {
        return Err(invalid(
            "interval",
            format!(
                "would give {count} points from `from` to `to`; at most {MAX_POINTS} are answered (use a wider interval or a shorter range)"
            ),
        ));
    }
    let (_, info) = journaled(store, site_id, id).await?;
    let Some(JournalInfo {
        begins_at: Some(begins_at),
        members: now_members,
    }) = info
    else {
        return Ok(Series {
            points: Vec::new(),
            begins_at: None,
        });
    };
    let first = interval.floor(from.max(begins_at));
    let mut starts = Vec::with_capacity(count.max(0) as usize);
    let mut start = first;
    while start < to {
        starts.push(start);
        start = interval.next(start);
    }
    if starts.is_empty() || to <= begins_at {
        return Ok(Series {
            points: Vec::new(),
            begins_at: Some(begins_at),
        });
    }
    let first = starts[0];
    let counts = counts(store, site_id, id.0, first, to, interval, &starts).await?;
    // Members at the series' end, then walked back interval by interval.
    let mut members = now_members - store.journal_net_after(site_id, id.0, to - 1).await?;
    let mut points = Vec::with_capacity(starts.len());
    for (i, &at) in starts.iter().enumerate().rev() {
        let (added, removed) = counts[i];
        points.push(Point {
            at,
            members,
            added,
            removed,
        });
        members -= added - removed;
    }
    points.reverse();
    Ok(Series {
        points,
        begins_at: Some(begins_at),
    })
}

/// Joins and leaves in each interval (`starts`, up to `to`).
async fn counts(
    store: &dyn Store,
    site_id: i64,
    segment_id: i64,
    first: i64,
    to: i64,
    interval: Interval,
    starts: &[i64],
) -> Result<Vec<(i64, i64)>, SegmentError> {
    let mut counts = vec![(0, 0); starts.len()];
    let index_of = |at: i64| starts.partition_point(|&s| s <= at).saturating_sub(1);
    match interval {
        Interval::Minute | Interval::Hour => {
            let width = if interval == Interval::Minute {
                MINUTE
            } else {
                HOUR
            };
            for (bucket, added, removed) in store
                .journal_buckets(site_id, segment_id, first, to, width)
                .await?
            {
                if let Some(c) = counts.get_mut(bucket as usize) {
                    *c = (added, removed);
                }
            }
        }
        Interval::Day | Interval::Week | Interval::Month => {
            // Whole days from the daily counts; the day `to` falls in from
            // the transitions, up to `to`.
            let last_day = Interval::Day.floor(to);
            for day in store
                .journal_days(site_id, segment_id, first, last_day)
                .await?
            {
                let c = &mut counts[index_of(day.day)];
                c.0 += day.added;
                c.1 += day.removed;
            }
            if last_day < to {
                for (_, added, removed) in store
                    .journal_buckets(site_id, segment_id, last_day.max(first), to, DAY)
                    .await?
                {
                    let c = &mut counts[index_of(last_day.max(first))];
                    c.0 += added;
                    c.1 += removed;
                }
            }
        }
    }
    Ok(counts)
}

/// The members of a segment at `at`, ascending; an instant before its
/// history begins is refused, naming when it begins.
pub async fn members_at(
    store: &dyn Store,
    site_id: i64,
    id: SegmentId,
    at: i64,
) -> Result<std::sync::Arc<Vec<i64>>, SegmentError> {
    let (_, info) = journaled(store, site_id, id).await?;
    match info.and_then(|i| i.begins_at) {
        Some(begins_at) if at >= begins_at => {
            Ok(store.journal_members_at(site_id, id.0, at).await?)
        }
        Some(begins_at) => Err(invalid(
            "at",
            format!(
                "is before the segment's history begins ({})",
                crate::clock::format_ms(begins_at)
            ),
        )),
        None => Err(invalid(
            "at",
            "is before the segment's history begins (it has not begun yet: a server takes its baseline within a minute of starting)",
        )),
    }
}

/// Where a changes feed starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The first transition recorded.
    Beginning,
    /// Transitions at or after this instant.
    Since(i64),
    /// Transitions after a cursor's (instant, id).
    After(i64, i64),
}

/// Up to `limit` transitions of a segment in commit order from `from`, the
/// segment they belong to, and the position to resume from: after the last
/// one answered, or where the page started when it is empty (a poller
/// keeps it and misses nothing committed later).
pub async fn changes(
    store: &dyn Store,
    site_id: i64,
    id: SegmentId,
    from: From,
    limit: usize,
) -> Result<(Segment, Vec<NamedChange>, Option<(i64, i64)>), SegmentError> {
    let (segment, _) = journaled(store, site_id, id).await?;
    let after = match from {
        From::Beginning => (i64::MIN, i64::MIN),
        From::Since(at) => (at.saturating_sub(1), i64::MAX),
        From::After(at, id) => (at, id),
    };
    let changes = store.journal_changes(site_id, id.0, after, limit).await?;
    let next = match (changes.last(), from) {
        (Some(last), _) => Some((last.change.at, last.change.id)),
        (None, From::After(at, id)) => Some((at, id)),
        (None, _) => None,
    };
    Ok((segment, changes, next))
}

/// A subscriber's latest joins and leaves (every segment, kept or
/// discarded), newest first, each with its segment.
pub async fn of_subscriber(
    store: &dyn Store,
    site_id: i64,
    subscriber: &corral_core::audience::Subscriber,
    limit: usize,
) -> Result<Vec<(NamedChange, Segment)>, SegmentError> {
    use crate::segment::Listing;
    let changes = store
        .subscriber_transitions(site_id, subscriber.id, limit)
        .await?;
    let mut segments = store.list_segments(site_id, Listing::Kept).await?;
    segments.extend(store.list_segments(site_id, Listing::Discarded).await?);
    Ok(changes
        .into_iter()
        .filter_map(|change| {
            let segment = segments.iter().find(|s| s.id.0 == change.segment_id)?;
            let named = NamedChange {
                change,
                subscriber_uuid: subscriber.uuid.clone(),
                email: subscriber.email.clone(),
            };
            Some((named, segment.clone()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn intervals_start_at_utc_boundaries_weeks_on_monday() {
        let t = at("2026-12-09T15:47:12.345Z"); // a Wednesday
        assert_eq!(Interval::Minute.floor(t), at("2026-12-09T15:47:00Z"));
        assert_eq!(Interval::Hour.floor(t), at("2026-12-09T15:00:00Z"));
        assert_eq!(Interval::Day.floor(t), at("2026-12-09T00:00:00Z"));
        assert_eq!(Interval::Week.floor(t), at("2026-12-07T00:00:00Z"));
        assert_eq!(Interval::Month.floor(t), at("2026-12-01T00:00:00Z"));
        assert_eq!(
            Interval::Month.next(at("2026-12-01T00:00:00Z")),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            Interval::Week.next(at("2026-12-07T00:00:00Z")),
            at("2026-12-14T00:00:00Z")
        );
        assert_eq!(Interval::parse("fortnight"), None);
        let day = at("2026-12-09T00:00:00Z");
        assert_eq!(Interval::Day.count(day, day + DAY), 1);
        assert_eq!(Interval::Day.count(day, day + DAY + 1), 2);
        assert_eq!(Interval::Hour.count(day, day + 1), 1);
        assert_eq!(
            Interval::Month.count(at("2026-01-01T00:00:00Z"), at("2026-12-09T00:00:00Z")),
            12
        );
        assert_eq!(
            Interval::Minute.count(0, 253_402_300_799_000),
            4_223_371_680
        );
    }
}
