//! Timestamps as Bento writes them. Time is kept as integer Unix
//! milliseconds everywhere (in both databases and in memory) and formatted
//! only at the edge, as `2024-08-06T05:44:04.444Z`.

/// Formats Unix milliseconds as UTC ISO 8601 with milliseconds and `Z`.
pub fn format_ms(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        // Out of chrono's range: cannot come from our own clock.
        None => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        assert_eq!(format_ms(1_722_923_044_444), "2024-08-06T05:44:04.444Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_722_923_044_000), "2024-08-06T05:44:04.000Z");
    }
}
