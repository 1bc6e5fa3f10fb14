//! A notification's object: one transition of a segment's membership
//! journal, as webhooks deliver it and the changes feed lists it
//! (`GET /fetch/segments/{id}/changes`), with the same `event_id` in both.

use crate::clock::format_ms;
use serde::Serialize;
use utoipa::ToSchema;

/// `{"id","name"}` of the segment a change belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeSegment {
    #[schema(example = "42")]
    pub id: String,
    pub name: String,
}

/// `{"uuid","email"}` of the subscriber who moved.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeSubscriber {
    pub uuid: String,
    pub email: String,
}

/// One join or leave: exactly a webhook notification's object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeResource {
    /// Stable: the same transition has the same id in every answer.
    #[schema(example = "evt_t1842")]
    pub event_id: String,
    /// `segment.member_added` or `segment.member_removed`.
    #[serde(rename = "type")]
    #[schema(example = "segment.member_added")]
    pub kind: &'static str,
    /// The commit that moved the subscriber (or, for `time_window`, when
    /// the sweep saw the window move).
    #[schema(example = "2026-11-26T09:00:00.000Z")]
    pub occurred_at: String,
    /// `data`, `time_window`, `definition_changed`, `segment_discarded`,
    /// `segment_restored` or `manual`.
    #[schema(example = "data")]
    pub reason: &'static str,
    pub segment: ChangeSegment,
    pub subscriber: ChangeSubscriber,
}

/// The event id of a recorded transition.
pub fn change_event_id(id: i64) -> String {
    format!("evt_t{id}")
}

impl ChangeResource {
    pub fn new(
        change: &crate::storage::journal::NamedChange,
        segment: &crate::segment::Segment,
    ) -> Self {
        let c = &change.change;
        Self {
            event_id: change_event_id(c.id),
            kind: if c.added {
                "segment.member_added"
            } else {
                "segment.member_removed"
            },
            occurred_at: format_ms(c.at),
            reason: c.reason.as_str(),
            segment: ChangeSegment {
                id: segment.id.0.to_string(),
                name: segment.name.clone(),
            },
            subscriber: ChangeSubscriber {
                uuid: change.subscriber_uuid.clone(),
                email: change.email.clone(),
            },
        }
    }
}
