//! The TAXII 2.1 read endpoint: local tools (SIEMs, TIPs, firewalls) pull this member's
//! advisories as STIX 2.1 objects over HTTPS.
//!
//! Owns: the collections (one per visibility a local consumer may have: `clear`, `green`,
//! `amber`; TLP:RED is never served), client authentication (bearer token, HTTP Basic with the
//! token as password, or a client certificate) and per-collection authorization, the HTTP
//! resources of TAXII 2.1 (discovery, API root, collections, objects, object, versions,
//! manifest) with their media types, filters, headers and errors, the ordered index of object
//! versions by `date_added` that makes paging exact (`index`), the opaque `next` cursors
//! (`cursor`), the bounded cache of converted objects, and the listener (plain HTTP on loopback,
//! else rustls with optional client certificates).
//! Must never: serve a TLP:RED item, write to the store, convert advisories to STIX itself
//! (`interop::stix::advisory_objects` does), lose or repeat an object across the pages of one
//! paging session, or let a client read a collection its configuration does not list.
//!
//! Decisions (also in `ARCHITECTURE.md` and `docs/interop.md`, "TAXII 2.1"):
//! - A collection holds every object version of every stored revision whose TLP it covers:
//!   `clear` = CLEAR, `green` = CLEAR + GREEN, `amber` = CLEAR + GREEN + AMBER + AMBER+STRICT.
//!   Its id is a UUID v5 of the member id and the alias, so it is stable across restarts.
//! - `date_added` of an object version = `received_ms` of the first stored item (in
//!   (received_ms, item id) order) that carries it, within that collection; except that an item
//!   indexed after items with a later or equal `date_added` (a write racing an earlier
//!   indexing pass, a clock step back) is dated 1 ms after the latest `date_added` then
//!   indexed, so a client resuming with `added_after` = the last `date_added` it saw cannot miss
//!   it. The index is rebuilt from the store at start (dates = `received_ms` again).
//! - Pages are ordered by (date_added, object id, version). `next` encodes the position of the
//!   last object returned and the index sequence number at the first page (the snapshot): the
//!   later pages of a paging session return exactly the objects that matched at the first
//!   page, however many share one `date_added` and whatever is stored meanwhile; what was
//!   stored after the first page is returned by a later request (e.g. `added_after` = the last
//!   `X-TAXII-Date-Added-Last`).
//! - Only the collections a client may read are listed; any other known collection answers
//!   403, an unknown one 404.

mod auth;
mod cache;
mod cursor;
mod feed;
#[doc(hidden)]
pub(crate) mod fuzzing;
mod index;
pub(crate) mod listener;
mod login;
mod query;
mod routes;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::Value;

use crate::envelope::Envelope;
use crate::model::Advisory;

pub(crate) use listener::{TaxiiServer, tls_server_config};
#[cfg(test)]
use routes::router;

/// Media type of every TAXII 2.1 response.
pub(crate) const MEDIA_TYPE_TAXII: &str = "application/taxii+json;version=2.1";
/// Media type of the STIX 2.1 objects in the collections.
pub(crate) const MEDIA_TYPE_STIX: &str = "application/stix+json;version=2.1";
/// Name of the one API root (`/tanoa/`).
pub(crate) const API_ROOT: &str = "tanoa";
/// `max_content_length` announced by the API root (nothing is accepted: the endpoint is read
/// only; this bounds what a client should ever send).
pub(crate) const MAX_CONTENT_LENGTH: u64 = 64 * 1024;

pub(crate) use tanoa_core::policy::Visibility;

/// How a visibility class is presented as a TAXII collection (title, description, id).
pub(crate) trait Collection {
    /// Human title of the collection.
    fn title(self) -> &'static str;
    /// Description of the collection.
    fn description(self) -> &'static str;
    /// The collection id on member `member`: UUID v5 (URL namespace) of
    /// `tanoa://member/<member>/taxii/<alias>`.
    fn collection_id(self, member: &str) -> String;
}

impl Collection for Visibility {
    /// Human title of the collection.
    fn title(self) -> &'static str {
        match self {
            Visibility::Clear => "TLP:CLEAR advisories",
            Visibility::Green => "TLP:CLEAR and TLP:GREEN advisories",
            Visibility::Amber => "TLP:CLEAR, GREEN, AMBER and AMBER+STRICT advisories",
        }
    }

    /// Description of the collection.
    fn description(self) -> &'static str {
        match self {
            Visibility::Clear => {
                "Every object version of the TLP:CLEAR advisory revisions held here."
            }
            Visibility::Green => {
                "Every object version of the TLP:CLEAR and TLP:GREEN advisory revisions held here."
            }
            Visibility::Amber => {
                "Every object version of the TLP:CLEAR, TLP:GREEN, TLP:AMBER and \
                 TLP:AMBER+STRICT advisory revisions held here (this member is their origin or \
                 in their audience). TLP:RED is never served over TAXII."
            }
        }
    }

    /// The collection id on member `member`: UUID v5 (URL namespace) of
    /// `tanoa://member/<member>/taxii/<alias>`.
    fn collection_id(self, member: &str) -> String {
        let name = format!(
            "{}{member}/taxii/{}",
            crate::transport::MEMBER_URI_PREFIX,
            self.alias()
        );
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
    }
}

/// Converts one stored advisory revision to its STIX 2.1 objects.
pub(crate) type Converter = Arc<dyn Fn(&Advisory, &Envelope) -> Vec<Value> + Send + Sync>;

/// The converter of the running daemon: `interop::stix::advisory_objects`.
pub(crate) fn stix_converter() -> Converter {
    Arc::new(|advisory: &Advisory, envelope: &Envelope| {
        crate::interop::stix::advisory_objects(advisory, envelope)
    })
}
