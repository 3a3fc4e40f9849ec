//! `[limits]`: the advisory size limits (`crate::model::Limits`), checked for sane ranges.

use crate::model::Limits;

/// Every out-of-range `[limits]` value, each under its `limits.<key>`.
pub(super) fn check_limits(l: &Limits, bad: &mut dyn FnMut(&str, String)) {
    const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
    if !(1024..=MAX_PAYLOAD).contains(&l.max_payload_bytes) {
        bad(
            "limits.max_payload_bytes",
            format!(
                "{} is out of range (1024 to {MAX_PAYLOAD})",
                l.max_payload_bytes
            ),
        );
    }
    for (key, v) in [
        ("limits.max_indicators", l.max_indicators),
        ("limits.max_title_len", l.max_title_len),
        ("limits.max_summary_len", l.max_summary_len),
        ("limits.max_string_len", l.max_string_len),
        ("limits.max_list_len", l.max_list_len),
    ] {
        if v == 0 {
            bad(key, "must be at least 1".to_string());
        } else if v > MAX_PAYLOAD {
            bad(key, format!("{v} is larger than any payload can be"));
        }
    }
    if l.max_extras_bytes > l.max_payload_bytes {
        bad(
            "limits.max_extras_bytes",
            format!(
                "{} is larger than limits.max_payload_bytes ({})",
                l.max_extras_bytes, l.max_payload_bytes
            ),
        );
    }
}
