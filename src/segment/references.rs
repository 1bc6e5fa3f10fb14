//! The rules of segment references, as pure functions over a site's kept
//! segments: a query may refer only to kept, evaluable segments of its site,
//! and never lead back to the segment being saved; a segment that kept
//! segments refer to cannot be discarded. The segment service checks them
//! before a write, for early and precise errors, and every backend checks
//! them again inside the write's transaction, where no concurrent write can
//! slip between the check and the change.

use super::{FieldError, FieldErrors, QUERY_FIELD, Segment, SegmentId};
use corral_core::query::Query;
use std::collections::HashMap;

/// A site's kept segments with their parsed queries (`None` when a stored
/// query no longer parses), in the order they were listed.
pub struct KeptSegments {
    order: Vec<i64>,
    queries: HashMap<i64, Option<Query>>,
}

impl KeptSegments {
    /// From the site's kept segments, as a store lists them.
    pub fn new(segments: &[Segment]) -> Self {
        Self {
            order: segments.iter().map(|s| s.id.0).collect(),
            queries: segments
                .iter()
                .map(|s| (s.id.0, corral_core::query::parse(s.query.as_str()).ok()))
                .collect(),
        }
    }

    /// Checks `query`'s segment references for saving it as the query of
    /// `saving` (`None` when creating): each must name a kept segment whose
    /// query is evaluable, and following them must never lead back to
    /// `saving`. Each bad reference is reported at its JSON pointer
    /// (`visitor_event_query/…/segment/member_of`).
    pub fn check(&self, saving: Option<SegmentId>, query: &Query) -> FieldErrors {
        let mut errors = FieldErrors::default();
        for (at, id) in query.segment_refs_at() {
            let message = match self.queries.get(&id) {
                None => format!("refers to segment {id}, which does not exist or is discarded"),
                Some(None | Some(Query::Foreign)) => format!(
                    "refers to segment {id}, whose query is foreign and cannot be evaluated"
                ),
                Some(Some(_)) if Some(id) == saving.map(|s| s.0) => format!(
                    "refers to segment {id}, the segment being saved: a segment cannot contain itself"
                ),
                Some(Some(q)) => {
                    let Some(saving) = saving else { continue };
                    let Some(path) = self.path_to(q, saving.0, &mut vec![id]) else {
                        continue;
                    };
                    let chain: Vec<String> = std::iter::once(saving.0)
                        .chain(path)
                        .map(|s| s.to_string())
                        .collect();
                    format!(
                        "refers to segment {id}, which leads back to this segment (cycle {})",
                        chain.join(" → ")
                    )
                }
            };
            errors.push(format!("{QUERY_FIELD}{at}"), message);
        }
        errors
    }

    /// A chain of references from `query` (reached via `trail`) to `target`.
    fn path_to(&self, query: &Query, target: i64, trail: &mut Vec<i64>) -> Option<Vec<i64>> {
        for id in query.segment_refs() {
            if id == target {
                let mut path = trail.clone();
                path.push(id);
                return Some(path);
            }
            if trail.contains(&id) || trail.len() > 64 {
                continue;
            }
            if let Some(Some(next)) = self.queries.get(&id) {
                trail.push(id);
                let found = self.path_to(next, target, trail);
                trail.pop();
                if found.is_some() {
                    return found;
                }
            }
        }
        None
    }

    /// The ids of the other kept segments whose queries refer to `id`, in
    /// listing order.
    pub fn referrers(&self, id: SegmentId) -> Vec<i64> {
        self.order
            .iter()
            .copied()
            .filter(|&s| s != id.0)
            .filter(|s| {
                self.queries[s]
                    .as_ref()
                    .is_some_and(|q| q.segment_refs().contains(&id.0))
            })
            .collect()
    }

    /// Whether `id` may be discarded: `Err` names the segments that refer
    /// to it.
    pub fn check_discard(&self, id: SegmentId) -> Result<(), FieldErrors> {
        let referrers = self.referrers(id);
        if referrers.is_empty() {
            Ok(())
        } else {
            Err(referenced_by(&referrers).into())
        }
    }
}

/// The error for discarding a segment other segments refer to.
pub fn referenced_by(referrers: &[i64]) -> FieldError {
    let ids: Vec<String> = referrers.iter().map(i64::to_string).collect();
    FieldError::new(
        "id",
        format!(
            "is referred to by segment {}: change their queries first, or a segment would lose part of its audience",
            ids.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_core::query::RawQuery;

    fn segment(id: i64, query: &str) -> Segment {
        Segment {
            id: SegmentId(id),
            name: format!("s{id}"),
            description: None,
            query: RawQuery::from_stored(query.to_owned()),
            created_at: 0,
            updated_at: 0,
            discarded_at: None,
            version: 1,
        }
    }

    fn refer(id: i64) -> String {
        format!(r#"{{"segment":{{"member_of":"{id}"}}}}"#)
    }

    #[test]
    fn references_name_kept_evaluable_segments_and_never_lead_back() {
        let kept = KeptSegments::new(&[
            segment(1, r#"{"subscribed":true}"#),
            segment(2, &refer(1)),
            segment(3, r#"{"not json"#),
        ]);
        let query = corral_core::query::parse(&format!(
            r#"{{"all":[{},{},{}]}}"#,
            refer(2),
            refer(3),
            refer(9)
        ))
        .unwrap();
        let errors = kept.check(None, &query);
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "visitor_event_query/all/1/segment/member_of",
                "visitor_event_query/all/2/segment/member_of"
            ]
        );
        assert!(errors.0[0].message.contains("foreign"), "{errors}");
        assert!(errors.0[1].message.contains("does not exist"), "{errors}");
        // Saved as segment 1's query, 2 leads back to 1.
        let errors = kept.check(
            Some(SegmentId(1)),
            &corral_core::query::parse(&refer(2)).unwrap(),
        );
        assert_eq!(errors.0.len(), 1);
        assert!(
            errors.0[0].message.ends_with("(cycle 1 → 2 → 1)"),
            "{errors}"
        );
        let errors = kept.check(
            Some(SegmentId(1)),
            &corral_core::query::parse(&refer(1)).unwrap(),
        );
        assert!(
            errors.0[0].message.contains("cannot contain itself"),
            "{errors}"
        );
    }

    #[test]
    fn a_segment_referred_to_cannot_be_discarded() {
        let kept = KeptSegments::new(&[
            segment(4, &refer(1)),
            segment(1, r#"{"subscribed":true}"#),
            segment(2, &refer(1)),
        ]);
        assert_eq!(kept.referrers(SegmentId(1)), [4, 2]);
        let refused = kept.check_discard(SegmentId(1)).unwrap_err();
        assert!(
            refused.0[0]
                .message
                .starts_with("is referred to by segment 4, 2:")
        );
        assert!(kept.check_discard(SegmentId(2)).is_ok());
    }
}
