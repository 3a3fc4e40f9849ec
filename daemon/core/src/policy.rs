//! TLP 2.0 decisions in a federation: who may hold an item, who may send it to whom, and which
//! items two members reconcile.
//!
//! Owns: every TLP rule of the federation, and the human explanation of each decision (used by
//! `tanoa explain`, rejection counters and logs). This is the only place TLP decisions live:
//! `sync`, `node` and `api` ask here and never re-derive a rule.
//! Must never: do I/O, read clocks, keep state, or look at anything but the item's origin, TLP
//! label and audience and the member ids it is asked about.
//!
//! The rules (see `DESIGN.md`, "TLP 2.0 in a federation"):
//!
//! | TLP | may hold | may send to another member |
//! |---|---|---|
//! | CLEAR, GREEN | every member | any holder, to any member |
//! | AMBER, AMBER+STRICT | the origin and the audience | a holder, to another holder (relays only among them) |
//! | RED | the origin and its named recipients (the audience) | only the origin, to a recipient; a recipient may return it to the origin (see below) |
//!
//! Decisions taken where the design is silent:
//! - Member ids passed in are roster members: the transport takes a peer's id from its verified
//!   certificate and refuses anyone not in the roster, so a GREEN item may go to any id asked about.
//! - A RED recipient may send the item back to its origin, and to nobody else. The origin wrote
//!   and signed it, so nothing is disclosed; this lets a member whose data directory was wiped get
//!   its own RED items back, and makes the reconciliation set exactly "items each of the two may
//!   send to the other" (`in_reconcile_scope(i, a, b) == may_send(i, a, b) && may_send(i, b, a)`).
//! - A member never "sends" to itself (`SameMember`).
//! - CLEAR and GREEN ignore the audience (validation requires it to be empty anyway); AMBER with an
//!   empty audience (refused by validation) would be held by its origin only.

use std::fmt;

use crate::model::{Advisory, Tlp};

/// What policy needs to know about an item: its origin, TLP label and audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemScope<'a> {
    /// Origin member id (the signer).
    pub origin: &'a str,
    /// TLP label.
    pub tlp: Tlp,
    /// Audience member ids (named recipients for RED).
    pub audience: &'a [String],
}

impl<'a> ItemScope<'a> {
    /// A scope from its parts.
    pub fn new(origin: &'a str, tlp: Tlp, audience: &'a [String]) -> Self {
        Self {
            origin,
            tlp,
            audience,
        }
    }

    /// Whether `member` is the origin.
    pub fn is_origin(&self, member: &str) -> bool {
        self.origin == member
    }

    /// Whether `member` is named in the audience.
    pub fn in_audience(&self, member: &str) -> bool {
        self.audience.iter().any(|m| m == member)
    }
}

impl<'a> From<&'a Advisory> for ItemScope<'a> {
    fn from(a: &'a Advisory) -> Self {
        ItemScope::new(&a.origin, a.tlp, &a.audience)
    }
}

/// Why a decision was taken. Each variant has a stable machine-readable `code()` (metrics,
/// rejection counters) and a human explanation (`Display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'a> {
    /// CLEAR or GREEN: every member may hold and relay it.
    Community {
        /// The label.
        tlp: Tlp,
    },
    /// The member is the item's origin.
    Origin {
        /// The label.
        tlp: Tlp,
        /// The member (the origin).
        member: &'a str,
    },
    /// The member is named in the audience.
    InAudience {
        /// The label.
        tlp: Tlp,
        /// The member.
        member: &'a str,
    },
    /// The member is neither the origin nor in the audience.
    NotInAudience {
        /// The label.
        tlp: Tlp,
        /// The member.
        member: &'a str,
        /// The item's origin.
        origin: &'a str,
    },
    /// Sender and receiver are the same member.
    SameMember {
        /// The member.
        member: &'a str,
    },
    /// The sender is not allowed to hold the item, so it cannot send it.
    SenderMayNotHold {
        /// The label.
        tlp: Tlp,
        /// The sender.
        sender: &'a str,
        /// The item's origin.
        origin: &'a str,
    },
    /// The receiver is not allowed to hold the item.
    ReceiverMayNotHold {
        /// The label.
        tlp: Tlp,
        /// The receiver.
        receiver: &'a str,
        /// The item's origin.
        origin: &'a str,
    },
    /// AMBER or AMBER+STRICT sent between two members who both may hold it.
    WithinAudience {
        /// The label.
        tlp: Tlp,
        /// The sender.
        sender: &'a str,
        /// The receiver.
        receiver: &'a str,
    },
    /// RED sent by its origin to a named recipient.
    RedFromOrigin {
        /// The origin (sender).
        origin: &'a str,
        /// The recipient.
        receiver: &'a str,
    },
    /// RED returned by a recipient to its origin (restore; discloses nothing).
    RedReturnToOrigin {
        /// The origin (receiver).
        origin: &'a str,
        /// The recipient sending it back.
        sender: &'a str,
    },
    /// RED relayed by a recipient to another recipient: forbidden, only the origin sends.
    RedRelay {
        /// The origin.
        origin: &'a str,
        /// The recipient that would relay.
        sender: &'a str,
    },
}

impl Reason<'_> {
    /// Stable machine-readable code (snake case), e.g. `not_in_audience`, `red_relay`.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Community { .. } => "community",
            Reason::Origin { .. } => "origin",
            Reason::InAudience { .. } => "in_audience",
            Reason::NotInAudience { .. } => "not_in_audience",
            Reason::SameMember { .. } => "same_member",
            Reason::SenderMayNotHold { .. } => "sender_may_not_hold",
            Reason::ReceiverMayNotHold { .. } => "receiver_may_not_hold",
            Reason::WithinAudience { .. } => "within_audience",
            Reason::RedFromOrigin { .. } => "red_from_origin",
            Reason::RedReturnToOrigin { .. } => "red_return_to_origin",
            Reason::RedRelay { .. } => "red_relay",
        }
    }
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::Community { tlp } => write!(f, "{tlp}: every member may hold and relay it"),
            Reason::Origin { tlp, member } => write!(f, "{tlp}: {member} is the origin"),
            Reason::InAudience { tlp, member } => write!(f, "{tlp}: {member} is in the audience"),
            Reason::NotInAudience {
                tlp,
                member,
                origin,
            } => write!(
                f,
                "{tlp}: {member} is neither the origin {origin} nor in the audience"
            ),
            Reason::SameMember { member } => write!(f, "{member} does not send to itself"),
            Reason::SenderMayNotHold {
                tlp,
                sender,
                origin,
            } => write!(
                f,
                "{tlp}: the sender {sender} may not hold it (neither the origin {origin} nor in the audience)"
            ),
            Reason::ReceiverMayNotHold {
                tlp,
                receiver,
                origin,
            } => write!(
                f,
                "{tlp}: {receiver} may not hold it (neither the origin {origin} nor in the audience)"
            ),
            Reason::WithinAudience {
                tlp,
                sender,
                receiver,
            } => write!(
                f,
                "{tlp}: {sender} and {receiver} are both the origin or in the audience"
            ),
            Reason::RedFromOrigin { origin, receiver } => write!(
                f,
                "RED: the origin {origin} sends it to its named recipient {receiver}"
            ),
            Reason::RedReturnToOrigin { origin, sender } => write!(
                f,
                "RED: {sender} may only return it to its origin {origin}, which wrote it"
            ),
            Reason::RedRelay { origin, sender } => write!(
                f,
                "RED: only the origin {origin} sends, {sender} is a relay"
            ),
        }
    }
}

/// A policy answer: allowed or not, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// Why.
    pub reason: Reason<'a>,
}

impl<'a> Decision<'a> {
    fn allow(reason: Reason<'a>) -> Self {
        Self {
            allowed: true,
            reason,
        }
    }

    fn deny(reason: Reason<'a>) -> Self {
        Self {
            allowed: false,
            reason,
        }
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        write!(f, "{verdict}: {}", self.reason)
    }
}

/// Whether `member` may hold the item.
///
/// CLEAR/GREEN: every member. AMBER, AMBER+STRICT and RED: the origin and the audience.
pub fn may_hold<'a>(item: &ItemScope<'a>, member: &'a str) -> Decision<'a> {
    let tlp = item.tlp;
    match tlp {
        Tlp::Clear | Tlp::Green => Decision::allow(Reason::Community { tlp }),
        Tlp::Amber | Tlp::AmberStrict | Tlp::Red => {
            if item.is_origin(member) {
                Decision::allow(Reason::Origin { tlp, member })
            } else if item.in_audience(member) {
                Decision::allow(Reason::InAudience { tlp, member })
            } else {
                Decision::deny(Reason::NotInAudience {
                    tlp,
                    member,
                    origin: item.origin,
                })
            }
        }
    }
}

/// Whether `sender` may send the item to `receiver`.
///
/// Both must be allowed to hold it; CLEAR/GREEN: any holder relays; AMBER and AMBER+STRICT:
/// relayed only among the origin and the audience; RED: only the origin sends (a recipient may
/// return it to the origin, see the module doc).
pub fn may_send<'a>(item: &ItemScope<'a>, sender: &'a str, receiver: &'a str) -> Decision<'a> {
    let tlp = item.tlp;
    if sender == receiver {
        return Decision::deny(Reason::SameMember { member: sender });
    }
    if !may_hold(item, sender).allowed {
        return Decision::deny(Reason::SenderMayNotHold {
            tlp,
            sender,
            origin: item.origin,
        });
    }
    let receiver_hold = may_hold(item, receiver);
    if !receiver_hold.allowed {
        return Decision::deny(Reason::ReceiverMayNotHold {
            tlp,
            receiver,
            origin: item.origin,
        });
    }
    match tlp {
        Tlp::Clear | Tlp::Green => receiver_hold,
        Tlp::Amber | Tlp::AmberStrict => Decision::allow(Reason::WithinAudience {
            tlp,
            sender,
            receiver,
        }),
        Tlp::Red => {
            if item.is_origin(sender) {
                Decision::allow(Reason::RedFromOrigin {
                    origin: sender,
                    receiver,
                })
            } else if item.is_origin(receiver) {
                Decision::allow(Reason::RedReturnToOrigin {
                    origin: receiver,
                    sender,
                })
            } else {
                Decision::deny(Reason::RedRelay {
                    origin: item.origin,
                    sender,
                })
            }
        }
    }
}

/// Whether the item belongs to the set members `a` and `b` reconcile: both may hold it and each
/// may send it to the other (so a RED item only when one of them is its origin). Symmetric.
pub fn in_reconcile_scope(item: &ItemScope<'_>, a: &str, b: &str) -> bool {
    if a == b {
        return false;
    }
    let holds = |m: &str| match item.tlp {
        Tlp::Clear | Tlp::Green => true,
        Tlp::Amber | Tlp::AmberStrict | Tlp::Red => item.is_origin(m) || item.in_audience(m),
    };
    holds(a) && holds(b) && (item.tlp != Tlp::Red || item.is_origin(a) || item.is_origin(b))
}

/// The TLP ceiling of a blocklist or feed export when the operator names none: TLP:GREEN
/// (community sharing); AMBER, AMBER+STRICT and RED go out only when asked for by name.
pub const DEFAULT_EXPORT_CEILING: Tlp = Tlp::Green;

/// Whether an item is delivered by its origin directly to each recipient instead of gossiped by
/// relays: every RED item (nobody relays RED), and AMBER / AMBER+STRICT items whose audience has
/// at most `direct_audience_max` members. CLEAR and GREEN are always gossiped.
pub fn is_direct_delivery(item: &ItemScope<'_>, direct_audience_max: usize) -> bool {
    match item.tlp {
        Tlp::Red => true,
        Tlp::Amber | Tlp::AmberStrict => item.audience.len() <= direct_audience_max,
        Tlp::Clear | Tlp::Green => false,
    }
}

/// What one local consumer (a TAXII collection, an export ceiling) may see, by TLP. TLP:RED
/// belongs to no visibility class: it never leaves the member through a local feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Visibility {
    /// TLP:CLEAR items.
    Clear,
    /// TLP:CLEAR and TLP:GREEN items.
    Green,
    /// TLP:CLEAR, GREEN, AMBER and AMBER+STRICT items this member holds.
    Amber,
}

impl Visibility {
    /// Every collection, least restrictive first.
    pub const ALL: [Visibility; 3] = [Visibility::Clear, Visibility::Green, Visibility::Amber];

    /// The collection's alias (also its name in the configuration).
    pub fn alias(self) -> &'static str {
        match self {
            Visibility::Clear => "clear",
            Visibility::Green => "green",
            Visibility::Amber => "amber",
        }
    }

    /// Parses an alias (case-insensitive, `tlp:` prefix allowed).
    pub fn parse(s: &str) -> Option<Visibility> {
        let t = s.trim().to_ascii_lowercase();
        match t.strip_prefix("tlp:").unwrap_or(&t) {
            "clear" => Some(Visibility::Clear),
            "green" => Some(Visibility::Green),
            "amber" => Some(Visibility::Amber),
            _ => None,
        }
    }

    /// Whether items of `tlp` belong to this collection (never RED).
    pub fn includes(self, tlp: Tlp) -> bool {
        match self {
            Visibility::Clear => tlp == Tlp::Clear,
            Visibility::Green => matches!(tlp, Tlp::Clear | Tlp::Green),
            Visibility::Amber => {
                matches!(tlp, Tlp::Clear | Tlp::Green | Tlp::Amber | Tlp::AmberStrict)
            }
        }
    }

    /// Position in `ALL`.
    pub fn index(self) -> usize {
        match self {
            Visibility::Clear => 0,
            Visibility::Green => 1,
            Visibility::Amber => 2,
        }
    }
}

impl std::fmt::Display for Visibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.alias())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    // The cast of every table: origin `ws`, audience {`to`, `fj`}, others `au`, `nz`.
    const ORIGIN: &str = "ws-cert";
    const AUD1: &str = "to-cert";
    const AUD2: &str = "fj-cert";
    const OTHER1: &str = "au-acsc";
    const OTHER2: &str = "nz-ncsc";

    fn audience() -> Vec<String> {
        vec![AUD1.to_string(), AUD2.to_string()]
    }

    const CLEAR: Tlp = Tlp::Clear;
    const GREEN: Tlp = Tlp::Green;
    const AMBER: Tlp = Tlp::Amber;
    const STRICT: Tlp = Tlp::AmberStrict;
    const RED: Tlp = Tlp::Red;

    /// may_hold: every TLP × {origin, audience member, other audience member, non-audience member}.
    /// (expected allowed, expected reason code), written out by hand.
    const HOLD_TABLE: &[(Tlp, &str, bool, &str)] = &[
        (CLEAR, ORIGIN, true, "community"),
        (CLEAR, AUD1, true, "community"),
        (CLEAR, AUD2, true, "community"),
        (CLEAR, OTHER1, true, "community"),
        (GREEN, ORIGIN, true, "community"),
        (GREEN, AUD1, true, "community"),
        (GREEN, AUD2, true, "community"),
        (GREEN, OTHER1, true, "community"),
        (AMBER, ORIGIN, true, "origin"),
        (AMBER, AUD1, true, "in_audience"),
        (AMBER, AUD2, true, "in_audience"),
        (AMBER, OTHER1, false, "not_in_audience"),
        (STRICT, ORIGIN, true, "origin"),
        (STRICT, AUD1, true, "in_audience"),
        (STRICT, AUD2, true, "in_audience"),
        (STRICT, OTHER1, false, "not_in_audience"),
        (RED, ORIGIN, true, "origin"),
        (RED, AUD1, true, "in_audience"),
        (RED, AUD2, true, "in_audience"),
        (RED, OTHER1, false, "not_in_audience"),
    ];

    #[test]
    fn may_hold_table() {
        let aud = audience();
        for &(tlp, member, allowed, code) in HOLD_TABLE {
            let item = ItemScope::new(ORIGIN, tlp, &aud);
            let d = may_hold(&item, member);
            assert_eq!(
                (d.allowed, d.reason.code()),
                (allowed, code),
                "may_hold({tlp}, {member}): {d}"
            );
        }
    }

    /// may_send: every TLP × sender ∈ {origin, audience member, other member} × receiver ∈
    /// {origin, audience member, other audience member, non-audience member}.
    /// Senders: ORIGIN, AUD1 (audience), OTHER2 (not in the audience).
    /// Receivers: ORIGIN, AUD1 (the same audience member), AUD2 (another), OTHER1 (non-audience).
    #[rustfmt::skip]
    const SEND_TABLE: &[(Tlp, &str, &str, bool, &str)] = &[
        // CLEAR: everyone relays to everyone (but not to itself).
        (CLEAR, ORIGIN, ORIGIN, false, "same_member"),
        (CLEAR, ORIGIN, AUD1,   true,  "community"),
        (CLEAR, ORIGIN, AUD2,   true,  "community"),
        (CLEAR, ORIGIN, OTHER1, true,  "community"),
        (CLEAR, AUD1,   ORIGIN, true,  "community"),
        (CLEAR, AUD1,   AUD1,   false, "same_member"),
        (CLEAR, AUD1,   AUD2,   true,  "community"),
        (CLEAR, AUD1,   OTHER1, true,  "community"),
        (CLEAR, OTHER2, ORIGIN, true,  "community"),
        (CLEAR, OTHER2, AUD1,   true,  "community"),
        (CLEAR, OTHER2, AUD2,   true,  "community"),
        (CLEAR, OTHER2, OTHER1, true,  "community"),
        // GREEN: same as CLEAR inside the federation.
        (GREEN, ORIGIN, ORIGIN, false, "same_member"),
        (GREEN, ORIGIN, AUD1,   true,  "community"),
        (GREEN, ORIGIN, AUD2,   true,  "community"),
        (GREEN, ORIGIN, OTHER1, true,  "community"),
        (GREEN, AUD1,   ORIGIN, true,  "community"),
        (GREEN, AUD1,   AUD1,   false, "same_member"),
        (GREEN, AUD1,   AUD2,   true,  "community"),
        (GREEN, AUD1,   OTHER1, true,  "community"),
        (GREEN, OTHER2, ORIGIN, true,  "community"),
        (GREEN, OTHER2, AUD1,   true,  "community"),
        (GREEN, OTHER2, AUD2,   true,  "community"),
        (GREEN, OTHER2, OTHER1, true,  "community"),
        // AMBER: only among origin + audience.
        (AMBER, ORIGIN, ORIGIN, false, "same_member"),
        (AMBER, ORIGIN, AUD1,   true,  "within_audience"),
        (AMBER, ORIGIN, AUD2,   true,  "within_audience"),
        (AMBER, ORIGIN, OTHER1, false, "receiver_may_not_hold"),
        (AMBER, AUD1,   ORIGIN, true,  "within_audience"),
        (AMBER, AUD1,   AUD1,   false, "same_member"),
        (AMBER, AUD1,   AUD2,   true,  "within_audience"),
        (AMBER, AUD1,   OTHER1, false, "receiver_may_not_hold"),
        (AMBER, OTHER2, ORIGIN, false, "sender_may_not_hold"),
        (AMBER, OTHER2, AUD1,   false, "sender_may_not_hold"),
        (AMBER, OTHER2, AUD2,   false, "sender_may_not_hold"),
        (AMBER, OTHER2, OTHER1, false, "sender_may_not_hold"),
        // AMBER+STRICT: same federation rule as AMBER.
        (STRICT, ORIGIN, ORIGIN, false, "same_member"),
        (STRICT, ORIGIN, AUD1,   true,  "within_audience"),
        (STRICT, ORIGIN, AUD2,   true,  "within_audience"),
        (STRICT, ORIGIN, OTHER1, false, "receiver_may_not_hold"),
        (STRICT, AUD1,   ORIGIN, true,  "within_audience"),
        (STRICT, AUD1,   AUD1,   false, "same_member"),
        (STRICT, AUD1,   AUD2,   true,  "within_audience"),
        (STRICT, AUD1,   OTHER1, false, "receiver_may_not_hold"),
        (STRICT, OTHER2, ORIGIN, false, "sender_may_not_hold"),
        (STRICT, OTHER2, AUD1,   false, "sender_may_not_hold"),
        (STRICT, OTHER2, AUD2,   false, "sender_may_not_hold"),
        (STRICT, OTHER2, OTHER1, false, "sender_may_not_hold"),
        // RED: only the origin sends; a recipient may only give it back to the origin.
        (RED, ORIGIN, ORIGIN, false, "same_member"),
        (RED, ORIGIN, AUD1,   true,  "red_from_origin"),
        (RED, ORIGIN, AUD2,   true,  "red_from_origin"),
        (RED, ORIGIN, OTHER1, false, "receiver_may_not_hold"),
        (RED, AUD1,   ORIGIN, true,  "red_return_to_origin"),
        (RED, AUD1,   AUD1,   false, "same_member"),
        (RED, AUD1,   AUD2,   false, "red_relay"),
        (RED, AUD1,   OTHER1, false, "receiver_may_not_hold"),
        (RED, OTHER2, ORIGIN, false, "sender_may_not_hold"),
        (RED, OTHER2, AUD1,   false, "sender_may_not_hold"),
        (RED, OTHER2, AUD2,   false, "sender_may_not_hold"),
        (RED, OTHER2, OTHER1, false, "sender_may_not_hold"),
    ];

    #[test]
    fn may_send_table_covers_every_case() {
        // 5 labels × 3 senders × 4 receivers.
        assert_eq!(SEND_TABLE.len(), 5 * 3 * 4);
        for tlp in Tlp::ALL {
            for s in [ORIGIN, AUD1, OTHER2] {
                for r in [ORIGIN, AUD1, AUD2, OTHER1] {
                    let n = SEND_TABLE
                        .iter()
                        .filter(|row| row.0 == tlp && row.1 == s && row.2 == r)
                        .count();
                    assert_eq!(n, 1, "row for ({tlp}, {s}, {r})");
                }
            }
        }
    }

    #[test]
    fn may_send_table() {
        let aud = audience();
        for &(tlp, sender, receiver, allowed, code) in SEND_TABLE {
            let item = ItemScope::new(ORIGIN, tlp, &aud);
            let d = may_send(&item, sender, receiver);
            assert_eq!(
                (d.allowed, d.reason.code()),
                (allowed, code),
                "may_send({tlp}, {sender} -> {receiver}): {d}"
            );
        }
    }

    /// in_reconcile_scope for every unordered pair of the cast, per label (expected by hand).
    #[rustfmt::skip]
    const SCOPE_TABLE: &[(Tlp, &str, &str, bool)] = &[
        (GREEN, ORIGIN, AUD1, true), (GREEN, AUD1, AUD2, true), (GREEN, AUD1, OTHER1, true),
        (GREEN, OTHER1, OTHER2, true), (GREEN, ORIGIN, ORIGIN, false),
        (CLEAR, OTHER1, OTHER2, true),
        (AMBER, ORIGIN, AUD1, true), (AMBER, AUD1, AUD2, true), (AMBER, ORIGIN, OTHER1, false),
        (AMBER, AUD1, OTHER1, false), (AMBER, OTHER1, OTHER2, false),
        (STRICT, ORIGIN, AUD2, true), (STRICT, AUD1, AUD2, true), (STRICT, AUD2, OTHER2, false),
        (RED, ORIGIN, AUD1, true), (RED, ORIGIN, AUD2, true), (RED, AUD1, AUD2, false),
        (RED, ORIGIN, OTHER1, false), (RED, AUD1, OTHER1, false), (RED, OTHER1, OTHER2, false),
    ];

    #[test]
    fn reconcile_scope_table() {
        let aud = audience();
        for &(tlp, a, b, expected) in SCOPE_TABLE {
            let item = ItemScope::new(ORIGIN, tlp, &aud);
            assert_eq!(in_reconcile_scope(&item, a, b), expected, "{tlp} {a} {b}");
            assert_eq!(in_reconcile_scope(&item, b, a), expected, "{tlp} {b} {a}");
        }
    }

    #[test]
    fn direct_delivery_and_visibility_tables() {
        let two = vec![AUD1.to_string(), AUD2.to_string()];
        let none: Vec<String> = Vec::new();
        // (tlp, audience, direct_audience_max, direct?)
        let direct = [
            (Tlp::Clear, &none, 32, false),
            (Tlp::Green, &none, 32, false),
            (Tlp::Amber, &two, 32, true),
            (Tlp::Amber, &two, 1, false),
            (Tlp::AmberStrict, &two, 2, true),
            (Tlp::AmberStrict, &two, 0, false),
            (Tlp::Red, &two, 0, true),
        ];
        for (tlp, aud, max, want) in direct {
            let scope = ItemScope::new(ORIGIN, tlp, aud);
            assert_eq!(is_direct_delivery(&scope, max), want, "{tlp} max {max}");
        }
        // (visibility, tlp, included?)
        let vis = [
            (Visibility::Clear, Tlp::Clear, true),
            (Visibility::Clear, Tlp::Green, false),
            (Visibility::Green, Tlp::Green, true),
            (Visibility::Green, Tlp::Amber, false),
            (Visibility::Amber, Tlp::AmberStrict, true),
            (Visibility::Amber, Tlp::Red, false),
            (Visibility::Green, Tlp::Red, false),
        ];
        for (v, tlp, want) in vis {
            assert_eq!(v.includes(tlp), want, "{v} {tlp}");
        }
        assert_eq!(DEFAULT_EXPORT_CEILING, Tlp::Green);
        assert!(!Visibility::ALL.iter().any(|v| v.includes(Tlp::Red)));
    }

    #[test]
    fn explanations_name_members_and_rule() {
        let aud = vec!["au-acsc".to_string(), "nz-ncsc".to_string()];
        let amber = ItemScope::new("ws-cert", Tlp::Amber, &aud);
        assert_eq!(
            may_hold(&amber, "au-acsc").reason.to_string(),
            "AMBER: au-acsc is in the audience"
        );
        assert_eq!(
            may_send(&amber, "ws-cert", "fj-cert").to_string(),
            "denied: AMBER: fj-cert may not hold it (neither the origin ws-cert nor in the audience)"
        );
        let red_aud = vec!["to-cert".to_string(), "fj-cert".to_string()];
        let red = ItemScope::new("ws-cert", Tlp::Red, &red_aud);
        assert_eq!(
            may_send(&red, "to-cert", "fj-cert").reason.to_string(),
            "RED: only the origin ws-cert sends, to-cert is a relay"
        );
        let strict = ItemScope::new("ws-cert", Tlp::AmberStrict, &aud);
        assert_eq!(
            may_hold(&strict, "fj-cert").reason.to_string(),
            "AMBER+STRICT: fj-cert is neither the origin ws-cert nor in the audience"
        );
    }

    #[test]
    fn origin_listed_in_its_own_audience_changes_nothing() {
        let aud = vec![ORIGIN.to_string(), AUD1.to_string()];
        let item = ItemScope::new(ORIGIN, Tlp::Red, &aud);
        assert!(may_send(&item, ORIGIN, AUD1).allowed);
        assert_eq!(may_hold(&item, ORIGIN).reason.code(), "origin");
        assert!(!may_hold(&item, OTHER1).allowed);
    }

    const MEMBERS: [&str; 5] = [ORIGIN, AUD1, AUD2, OTHER1, OTHER2];

    fn arb_case() -> impl Strategy<Value = (Tlp, usize, Vec<bool>, usize, usize)> {
        (
            prop::sample::select(Tlp::ALL.to_vec()),
            0..MEMBERS.len(),
            prop::collection::vec(any::<bool>(), MEMBERS.len()),
            0..MEMBERS.len(),
            0..MEMBERS.len(),
        )
    }

    proptest! {
        #[test]
        fn send_implies_both_hold((tlp, o, mask, s, r) in arb_case()) {
            let aud: Vec<String> = MEMBERS.iter().zip(&mask).filter(|(_, m)| **m)
                .map(|(x, _)| x.to_string()).collect();
            let item = ItemScope::new(MEMBERS[o], tlp, &aud);
            let (sender, receiver) = (MEMBERS[s], MEMBERS[r]);
            if may_send(&item, sender, receiver).allowed {
                prop_assert!(may_hold(&item, sender).allowed);
                prop_assert!(may_hold(&item, receiver).allowed);
                prop_assert_ne!(sender, receiver);
                if tlp == Tlp::Red {
                    prop_assert!(item.is_origin(sender) || item.is_origin(receiver));
                }
            }
        }

        #[test]
        fn scope_is_symmetric_and_matches_send((tlp, o, mask, a, b) in arb_case()) {
            let aud: Vec<String> = MEMBERS.iter().zip(&mask).filter(|(_, m)| **m)
                .map(|(x, _)| x.to_string()).collect();
            let item = ItemScope::new(MEMBERS[o], tlp, &aud);
            let (a, b) = (MEMBERS[a], MEMBERS[b]);
            let ab = in_reconcile_scope(&item, a, b);
            prop_assert_eq!(ab, in_reconcile_scope(&item, b, a));
            prop_assert_eq!(ab, may_send(&item, a, b).allowed && may_send(&item, b, a).allowed);
            if ab {
                prop_assert!(may_hold(&item, a).allowed && may_hold(&item, b).allowed);
            }
        }
    }
}
