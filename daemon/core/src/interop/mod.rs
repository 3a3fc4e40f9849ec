//! Conversions between Tanoa advisories and the formats of the CERT ecosystem: STIX 2.1
//! (`stix`), MISP events and feeds (`misp`), and blocklists for firewalls and IDS (`blocklist`).
//!
//! Owns: pure conversions (bytes or JSON in, drafts or documents out), each error naming the
//! source object (a STIX id, a MISP attribute uuid) and the reason.
//! Must never: do I/O, read a clock, sign, or decide TLP reach (that is `policy`): a conversion
//! only carries the TLP the material states.

pub mod blocklist;
pub mod misp;
pub mod stix;
