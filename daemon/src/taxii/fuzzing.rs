//! Body of the `taxii_query` fuzz target (`fuzz/`), replayed by the ordinary test suite
//! (`integration-tests/tests/it/fuzz_corpus.rs`).
//!
//! Owns: feeding untrusted query strings and `next` cursors to the real parsers.
//! Must never: panic on any input.

use super::cursor::Cursor;
use super::query::{self, Endpoint};

/// `taxii_query`: the first byte chooses the endpoint (objects, manifest, object, versions);
/// the rest is a raw query string (as UTF-8, lossily), parsed as a request's, and also taken
/// whole as a `next` value. A cursor that decodes survives encode → decode unchanged.
pub fn taxii_query(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let raw = String::from_utf8_lossy(body);
    let endpoint = match mode % 4 {
        0 => Endpoint::Objects,
        1 => Endpoint::Manifest,
        2 => Endpoint::Object,
        _ => Endpoint::Versions,
    };
    let object_id = matches!(endpoint, Endpoint::Object | Endpoint::Versions)
        .then_some("indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f");
    if let Ok(q) = query::parse(Some(&raw), endpoint, "green", object_id)
        && let Some(c) = q.next
    {
        round_trip(&c);
    }
    // The part before the first `&` or `=` as an object id from a URL path.
    let first = raw.split(['&', '=']).next().unwrap_or("");
    let _ = query::check_object_id(first);
    if let Ok(c) = Cursor::decode(&raw) {
        round_trip(&c);
    }
}

fn round_trip(c: &Cursor) {
    let again = Cursor::decode(&c.encode());
    assert_eq!(
        again.as_ref(),
        Ok(c),
        "a decoded cursor must survive encode -> decode"
    );
}
