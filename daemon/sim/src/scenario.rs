//! Scenarios as data: the federation, its items, its network and its faults, and the presets of
//! issue 4. A scenario plus a seed determines a run completely.

use serde::{Deserialize, Serialize};

use tanoa_core::sync::SyncConfig;

/// The network between every pair of members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkModel {
    /// Smallest one-way latency of a link; each directed link gets a fixed latency in
    /// `[latency_min_ms, latency_max_ms]` drawn from the seed.
    pub latency_min_ms: u64,
    /// Largest one-way latency of a link.
    pub latency_max_ms: u64,
    /// Bandwidth of each directed link in bytes per millisecond (0 = unlimited). Messages on a
    /// link are serialized: a message waits until the previous one has left.
    pub bandwidth_bytes_per_ms: u64,
    /// Probability that a message is lost, parts per million.
    pub loss_ppm: u64,
    /// Probability that a message is delivered twice, parts per million.
    pub dup_ppm: u64,
    /// Probability that a message is held back (and so overtaken), parts per million.
    pub reorder_ppm: u64,
    /// Longest extra delay of a held-back message.
    pub reorder_max_ms: u64,
    /// Apply loss, duplication and reordering only to links touching these members (all links
    /// when empty). Used by the transcript comparison, where links among holders of secrets must
    /// behave the same in both runs.
    pub lossy_only_for: Vec<usize>,
}

impl Default for LinkModel {
    fn default() -> Self {
        Self {
            latency_min_ms: 20,
            latency_max_ms: 80,
            bandwidth_bytes_per_ms: 12_500, // 100 Mbit/s
            loss_ppm: 0,
            dup_ppm: 0,
            reorder_ppm: 0,
            reorder_max_ms: 200,
            lossy_only_for: Vec::new(),
        }
    }
}

/// A named access link (issue 12): what one member's link to the rest of the Internet can do.
/// Names in code, docs and scenario files: `fibre`, `satellite`, `cable-cut`.
///
/// How the simulator uses it (see the module doc of `sim`): a message from A to B is serialized
/// on A's uplink (A's bandwidth; one queue per member and direction, first in first out), takes
/// the propagation delay of both access links (half of each profile's round trip), then is
/// serialized on B's downlink (B's bandwidth). It is lost on each access link with that link's
/// loss, and lost if either access link is down at any moment between the start of its
/// transmission and its delivery (a drop kills what is in flight; nobody is told, the sender's
/// request times out). The bytes serialized are the encoded message plus the transport's
/// framing ([`link_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinkProfile {
    /// 100 Mbit/s each way, 20 ms round trip, no loss, no drops.
    #[serde(rename = "fibre")]
    Fibre,
    /// 1 Mbit/s each way, 600 ms round trip, 1% loss, no drops.
    #[serde(rename = "satellite")]
    Satellite,
    /// 128 kbit/s each way, 700 ms round trip, 5% loss, down for 10 s every 60 s.
    #[serde(rename = "cable-cut")]
    CableCut,
}

/// The figures of a [`LinkProfile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSpec {
    /// Bandwidth of each direction, bits per second.
    pub bits_per_s: u64,
    /// Round trip between this member and a well-connected point, ms (a path between two
    /// members takes half of each end's round trip each way).
    pub rtt_ms: u64,
    /// Probability that a message crossing this link is lost, parts per million.
    pub loss_ppm: u64,
    /// The link drops for `down_ms` every `down_every_ms` (0 = never).
    pub down_every_ms: u64,
    /// Length of each drop.
    pub down_ms: u64,
}

impl LinkProfile {
    /// Every profile, in the order of issue 12's table.
    pub const ALL: [LinkProfile; 3] = [
        LinkProfile::Fibre,
        LinkProfile::Satellite,
        LinkProfile::CableCut,
    ];

    /// The profile's name, as in code, docs and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            LinkProfile::Fibre => "fibre",
            LinkProfile::Satellite => "satellite",
            LinkProfile::CableCut => "cable-cut",
        }
    }

    /// The profile of that name.
    pub fn from_name(name: &str) -> Option<LinkProfile> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// What the link can do.
    pub fn spec(self) -> LinkSpec {
        match self {
            LinkProfile::Fibre => LinkSpec {
                bits_per_s: 100_000_000,
                rtt_ms: 20,
                loss_ppm: 0,
                down_every_ms: 0,
                down_ms: 0,
            },
            LinkProfile::Satellite => LinkSpec {
                bits_per_s: 1_000_000,
                rtt_ms: 600,
                loss_ppm: 10_000,
                down_every_ms: 0,
                down_ms: 0,
            },
            LinkProfile::CableCut => LinkSpec {
                bits_per_s: 128_000,
                rtt_ms: 700,
                loss_ppm: 50_000,
                down_every_ms: 60_000,
                down_ms: 10_000,
            },
        }
    }
}

/// Bytes a message of `encoded` bytes occupies on a link: the message, 64 bytes per message for
/// the gRPC length prefix, the HTTP/2 frame headers, HPACK-compressed headers and trailers and
/// the TLS record header, and 52 bytes of TCP/IP headers (with timestamps) per 1,448-byte
/// segment. Acknowledgements going the other way are not counted.
pub fn link_bytes(encoded: u64) -> u64 {
    let framed = encoded + 64;
    framed + 52 * framed.div_ceil(1_448)
}

/// The items a scenario publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ItemMix {
    /// GREEN advisories published in the measured wave (from origins chosen by the seed).
    pub green: usize,
    /// Small AMBER audiences (each: an origin and `amber_audience` other members).
    pub amber_groups: usize,
    /// Members in each AMBER audience besides the origin.
    pub amber_audience: usize,
    /// AMBER advisories per audience.
    pub amber_per_group: usize,
    /// RED advisories, each to `red_audience` recipients.
    pub red: usize,
    /// Recipients of each RED advisory.
    pub red_audience: usize,
    /// GREEN advisories that get a second revision (supersession), published in the wave.
    pub revisions: usize,
    /// GREEN advisories whose origin equivocates (two payloads, same revision).
    pub equivocations: usize,
    /// Items already held before the run by `backlog_holders` members (not measured).
    pub backlog: usize,
    /// Members holding the backlog at start.
    pub backlog_holders: usize,
    /// Indicators in every advisory (documentation-range IPv4 addresses, `.example` domains and
    /// SHA-256 digests, in turn), to give the envelopes a realistic size; 0 = none.
    pub indicators: usize,
}

impl Default for ItemMix {
    fn default() -> Self {
        Self {
            green: 100,
            amber_groups: 0,
            amber_audience: 0,
            amber_per_group: 0,
            red: 0,
            red_audience: 0,
            revisions: 2,
            equivocations: 1,
            backlog: 0,
            backlog_holders: 0,
            indicators: 0,
        }
    }
}

/// A fault or change at a point of simulated time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Cut the network between these members and everyone else.
    Isolate {
        /// Member indices.
        members: Vec<usize>,
    },
    /// Cut the first `fraction_ppm` of members (by a seeded shuffle) from the rest.
    Partition {
        /// Share of members on the small side, parts per million.
        fraction_ppm: u64,
    },
    /// Every cut ends.
    Heal,
    /// The member stops (in-flight messages to and from it are lost).
    Crash {
        /// Member index.
        member: usize,
    },
    /// The member starts again with a new core, its store kept or wiped.
    Restart {
        /// Member index.
        member: usize,
        /// Whether its store is lost.
        wipe: bool,
    },
    /// From now on, each interval `fraction_ppm` of members crash, and those that crashed the
    /// interval before restart (one in ten restarts wiped), until `StopChurn`.
    Churn {
        /// Share of members crashing per interval, parts per million.
        fraction_ppm: u64,
    },
    /// Churn stops; every crashed member restarts.
    StopChurn,
    /// The origin-offline scenario: `origin` publishes one GREEN item that reaches only `peer`,
    /// then goes offline forever.
    PublishAndVanish {
        /// Origin member index.
        origin: usize,
        /// The only peer that gets the item.
        peer: usize,
    },
}

/// One roster change of a [`RosterPlan`] (issue 11). `member` is never a proposer or approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RosterStep {
    /// `member` (absent until then: list it in `late_joiners` with `late_join_ms` = `at_ms`)
    /// joins with a join request signed by its key; it starts with the version that admits it.
    Join {
        /// Member index.
        member: usize,
    },
    /// `member` gets a new signing key from the change's time; it publishes one item signed by
    /// the new key half an interval later (valid only once the rotation is in force).
    RotateKey {
        /// Member index.
        member: usize,
    },
    /// `member`'s key is revoked as of `as_of_ms` (ms after the wave starts). Half an interval
    /// before the change, `member` publishes one item dated after `as_of_ms` (the compromised
    /// key's item): every member must drop it once the revocation is in force.
    Revoke {
        /// Member index.
        member: usize,
        /// From when what the key signed is void (ms after the wave starts).
        as_of_ms: i64,
    },
    /// `member` is removed; half an interval later it publishes one more item, which nobody
    /// may keep once the removal is in force. It stops counting as a member when proposed.
    Remove {
        /// Member index.
        member: usize,
    },
}

impl RosterStep {
    /// The member the change concerns.
    pub fn member(&self) -> usize {
        match self {
            RosterStep::Join { member }
            | RosterStep::RotateKey { member }
            | RosterStep::Revoke { member, .. }
            | RosterStep::Remove { member } => *member,
        }
    }
}

/// A roster change at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterChange {
    /// When it is proposed, ms after the wave starts.
    pub at_ms: i64,
    /// Who proposes it (a founder no change concerns).
    pub proposer: usize,
    /// What changes.
    pub step: RosterStep,
}

/// Roster changes (issue 11): a signed roster founded by a majority of the members present at
/// the start (the threshold is a majority), then each change proposed, approved by as many
/// members as `tanoa_core::roster::rules::required_signatures` asks (plus `extra_approvers`, in
/// case some are down) through roster carriers gossiped like any item, and published as a
/// version by its proposer once assembled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RosterPlan {
    /// The changes, in order.
    pub changes: Vec<RosterChange>,
    /// Approvers beyond the signatures needed.
    pub extra_approvers: usize,
    /// Every member of the final version must have it in force within this many anti-entropy
    /// intervals of the last change.
    pub converge_intervals: u64,
}

impl Default for RosterPlan {
    fn default() -> Self {
        Self {
            changes: Vec::new(),
            extra_approvers: 10,
            converge_intervals: 3,
        }
    }
}

/// A fault at a time (ms after the start of the wave; negative = before it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedFault {
    /// When, in ms after the wave starts.
    pub at_ms: i64,
    /// What happens.
    pub fault: Fault,
}

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Name printed in reports and failures.
    pub name: String,
    /// Number of members (all peers of each other).
    pub members: usize,
    /// Members that are not there at the start and join (empty store) at `late_join_ms`.
    pub late_joiners: Vec<usize>,
    /// When late joiners join, ms after the wave starts.
    pub late_join_ms: i64,
    /// Sync settings of every member.
    pub sync: SyncConfig,
    /// The network (every link alike), unless `profiles` is set.
    pub link: LinkModel,
    /// The access link of every member, by index (issue 12). Empty: `link` applies to every
    /// link. Otherwise it names one profile per member, and `link` is not used (its latencies,
    /// bandwidth, loss, duplication and reordering are replaced by the profiles').
    pub profiles: Vec<LinkProfile>,
    /// Largest clock skew of a member, ± ms (each member gets a fixed skew drawn from the seed).
    pub skew_ms: u64,
    /// The items.
    pub items: ItemMix,
    /// Spread of the wave: items are published within `[0, publish_spread_ms]`.
    pub publish_spread_ms: u64,
    /// Faults.
    pub faults: Vec<TimedFault>,
    /// Longest simulated time after the wave starts.
    pub max_ms: u64,
    /// Record every message delivered to these members (transcript comparison).
    pub record_for: Vec<usize>,
    /// Leave out every item these members may not hold (the "without" run of the transcript
    /// comparison).
    pub omit_forbidden_for: Vec<usize>,
    /// Test-only mutation (see [`Mutation`]).
    pub mutation: Option<Mutation>,
    /// Roster changes (issue 11); `None`: the membership is fixed and not signed.
    pub roster: Option<RosterPlan>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "unnamed".to_string(),
            members: 50,
            late_joiners: Vec::new(),
            late_join_ms: 0,
            sync: SyncConfig::default(),
            link: LinkModel::default(),
            profiles: Vec::new(),
            skew_ms: 0,
            items: ItemMix::default(),
            publish_spread_ms: 0,
            faults: Vec::new(),
            max_ms: 20 * 30_000,
            record_for: Vec::new(),
            omit_forbidden_for: Vec::new(),
            mutation: None,
            roster: None,
        }
    }
}

/// A deliberate bug, for the mutation check: the simulator must catch it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mutation {
    /// Broken policy: AMBER goes to one extra member. The origin's driver also pushes every AMBER
    /// item it publishes to `member`, and `member`'s admit step accepts AMBER from anyone (as if
    /// `may_send`/`may_hold` said yes for it).
    LeakAmberTo {
        /// The member that wrongly receives AMBER.
        member: usize,
    },
    /// Broken roster application: a member whose roster advances keeps the items the new
    /// version makes invalid (a revoked key's, a removed member's later ones).
    KeepRevokedItems,
}

impl Scenario {
    /// Parses a scenario from TOML (every field optional, unknown keys refused).
    pub fn from_toml(text: &str) -> Result<Scenario, toml::de::Error> {
        toml::from_str(text)
    }

    fn interval(&self) -> i64 {
        i64::try_from(self.sync.interval_ms.max(1)).unwrap_or(30_000)
    }
}

/// The scenarios of issue 4 for `n` members, with `green` GREEN advisories in each wave (plus
/// two revisions and one equivocation); `backlog` sizes the backlog scenario (20 members).
pub fn presets(n: usize, green: usize, backlog: usize) -> Vec<Scenario> {
    let base = Scenario {
        members: n,
        items: ItemMix {
            green,
            ..ItemMix::default()
        },
        ..Scenario::default()
    };
    let iv = base.interval();
    let all_green = Scenario {
        name: format!("{n} members, all GREEN"),
        ..base.clone()
    };
    let mixed = Scenario {
        name: format!("{n} members, AMBER audiences + RED"),
        items: ItemMix {
            green: green.min(40),
            amber_groups: n / 5,
            amber_audience: 4,
            amber_per_group: 2,
            red: n / 4,
            red_audience: 3,
            ..ItemMix::default()
        },
        ..base.clone()
    };
    let lossy_link = LinkModel {
        loss_ppm: 200_000,
        dup_ppm: 10_000,
        reorder_ppm: 50_000,
        ..LinkModel::default()
    };
    let lossy = Scenario {
        name: format!("{n} members, 20% loss"),
        link: lossy_link.clone(),
        ..base.clone()
    };
    let lossy_red = Scenario {
        name: format!("{n} members, 20% loss, small AMBER and RED audiences"),
        link: lossy_link,
        items: ItemMix {
            green: green.min(10),
            amber_groups: n / 10,
            amber_audience: 4,
            amber_per_group: 1,
            red: n / 10,
            red_audience: 2,
            ..ItemMix::default()
        },
        // A lost push is not retried: an AMBER or RED item with a small audience reaches a member
        // whose push was lost only when anti-entropy pairs it with a holder allowed to send it
        // (round-robin over every peer: up to one interval per member for RED).
        max_ms: u64::try_from(40 * iv).unwrap_or(0),
        ..base.clone()
    };
    let partition = Scenario {
        name: format!("{n} members, 30% partition healed after 10 intervals"),
        faults: vec![
            TimedFault {
                at_ms: -1,
                fault: Fault::Partition {
                    fraction_ppm: 300_000,
                },
            },
            TimedFault {
                at_ms: 10 * iv,
                fault: Fault::Heal,
            },
        ],
        publish_spread_ms: u64::try_from(5 * iv).unwrap_or(0),
        max_ms: u64::try_from(30 * iv).unwrap_or(0),
        ..base.clone()
    };
    let churn = Scenario {
        name: format!("{n} members, 10% churn per interval"),
        faults: vec![
            TimedFault {
                at_ms: -1,
                fault: Fault::Churn {
                    fraction_ppm: 100_000,
                },
            },
            TimedFault {
                at_ms: 6 * iv,
                fault: Fault::StopChurn,
            },
        ],
        publish_spread_ms: u64::try_from(4 * iv).unwrap_or(0),
        max_ms: u64::try_from(30 * iv).unwrap_or(0),
        ..base.clone()
    };
    let vanish = Scenario {
        name: format!("{n} members, origin reaches one peer and vanishes"),
        faults: vec![TimedFault {
            at_ms: 0,
            fault: Fault::PublishAndVanish { origin: 1, peer: 2 },
        }],
        items: ItemMix {
            green: green.min(10),
            ..ItemMix::default()
        },
        ..base.clone()
    };
    let skew = Scenario {
        name: format!("{n} members, clock skew ±1 h"),
        skew_ms: 3_600_000,
        ..base.clone()
    };
    let b_members = n.clamp(2, 20);
    let backlog_s = Scenario {
        name: format!("{b_members} members, backlog of {backlog} meets a new member"),
        members: b_members,
        late_joiners: vec![b_members - 1],
        late_join_ms: 0,
        items: ItemMix {
            green: 0,
            revisions: 0,
            equivocations: 0,
            backlog,
            backlog_holders: b_members - 1,
            ..ItemMix::default()
        },
        max_ms: u64::try_from(40 * iv).unwrap_or(0),
        ..base
    };
    vec![
        all_green, mixed, lossy, partition, churn, vanish, skew, backlog_s, lossy_red,
    ]
}

/// The Pacific topology of issue 12: `partners` well-connected members on `fibre` (indices
/// `0..partners`) and `islands` members on `satellite`, the last `cable_cut` of which are on
/// `cable-cut` instead. Four scenarios: a wave of `green` GREEN advisories with small AMBER
/// audiences and RED items (every advisory carrying 24 indicators, about 2 KB signed); the same
/// with `cable_cut` islands; and a backlog of `backlog` advisories, held by everyone else, meeting
/// a new island (the last member: on `cable-cut` when `cable_cut > 0`, else on `satellite`);
/// and that catch-up again with batches (64 KiB), reconciliation frames (16 KiB) and the request
/// timeout (30 s) sized to a thin link instead of the defaults.
pub fn pacific(
    partners: usize,
    islands: usize,
    cable_cut: usize,
    green: usize,
    backlog: usize,
) -> Vec<Scenario> {
    let n = partners + islands;
    let profiles = |cut: usize| -> Vec<LinkProfile> {
        (0..n)
            .map(|m| {
                if m < partners {
                    LinkProfile::Fibre
                } else if m >= n - cut.min(islands) {
                    LinkProfile::CableCut
                } else {
                    LinkProfile::Satellite
                }
            })
            .collect()
    };
    let base = Scenario {
        members: n,
        items: ItemMix {
            green,
            amber_groups: n / 5,
            amber_audience: 4,
            amber_per_group: 2,
            red: n / 5,
            red_audience: 2,
            indicators: 24,
            ..ItemMix::default()
        },
        publish_spread_ms: 30_000,
        max_ms: 60 * 30_000,
        ..Scenario::default()
    };
    let cut = cable_cut.min(islands);
    let wave = Scenario {
        name: format!("pacific: {islands} satellite islands + {partners} fibre partners"),
        profiles: profiles(0),
        ..base.clone()
    };
    let wave_cut = Scenario {
        name: format!(
            "pacific: {} satellite + {cut} cable-cut islands + {partners} fibre partners",
            islands - cut
        ),
        profiles: profiles(cut),
        ..base.clone()
    };
    let joiner = if cut > 0 { "cable-cut" } else { "satellite" };
    let catch_up = Scenario {
        name: format!("pacific: backlog of {backlog} meets a new {joiner} island"),
        profiles: profiles(cut),
        late_joiners: vec![n - 1],
        late_join_ms: 0,
        items: ItemMix {
            green: 0,
            revisions: 0,
            equivocations: 0,
            backlog,
            backlog_holders: n - 1,
            indicators: 24,
            ..ItemMix::default()
        },
        publish_spread_ms: 0,
        max_ms: 240 * 30_000,
        ..base
    };
    // What the default settings do on a 128 kbit/s link that drops every minute is the finding
    // (a 2 MiB fetch response takes two minutes there); the same catch-up with batches and
    // frames sized to the link and a request timeout longer than a drop shows what sizing buys.
    let sized = Scenario {
        name: format!(
            "pacific: backlog of {backlog} meets a new {joiner} island, batches sized to the link"
        ),
        sync: SyncConfig {
            max_batch_bytes: 64 * 1024,
            max_frame_bytes: 16 * 1024,
            request_timeout_ms: 30_000,
            ..catch_up.sync.clone()
        },
        ..catch_up.clone()
    };
    vec![wave, wave_cut, catch_up, sized]
}

/// The roster scenarios of issue 11 at `n` members (at least 10): a GREEN wave while a member
/// joins (approved by a majority, as the rules require at this size), a member's key is rotated,
/// another's revoked (backdated over an item it published) and a fourth removed, one change
/// every two intervals; under 20% loss, then under 10% churn per interval (stopping with the
/// last change). Every member of the final roster must have it in force within 3 intervals of
/// the last change.
pub fn roster_presets(n: usize, green: usize) -> Vec<Scenario> {
    let n = n.max(10);
    let iv: i64 = 30_000;
    let (joiner, rotated, revoked, removed) = (n - 1, n - 2, n - 3, n - 4);
    let plan = RosterPlan {
        changes: vec![
            RosterChange {
                at_ms: 2 * iv,
                proposer: 0,
                step: RosterStep::Join { member: joiner },
            },
            RosterChange {
                at_ms: 4 * iv,
                proposer: 1,
                step: RosterStep::RotateKey { member: rotated },
            },
            RosterChange {
                at_ms: 6 * iv,
                proposer: 2,
                step: RosterStep::Revoke {
                    member: revoked,
                    as_of_ms: 5 * iv,
                },
            },
            RosterChange {
                at_ms: 8 * iv,
                proposer: 3,
                step: RosterStep::Remove { member: removed },
            },
        ],
        ..RosterPlan::default()
    };
    let base = Scenario {
        members: n,
        late_joiners: vec![joiner],
        late_join_ms: 2 * iv,
        items: ItemMix {
            green,
            ..ItemMix::default()
        },
        publish_spread_ms: u64::try_from(8 * iv).unwrap_or(0),
        max_ms: u64::try_from(16 * iv).unwrap_or(0),
        roster: Some(plan),
        ..Scenario::default()
    };
    let lossy = Scenario {
        name: format!("{n} members, roster changes under 20% loss"),
        link: LinkModel {
            loss_ppm: 200_000,
            dup_ppm: 10_000,
            reorder_ppm: 50_000,
            ..LinkModel::default()
        },
        ..base.clone()
    };
    let churn = Scenario {
        name: format!("{n} members, roster changes under 10% churn per interval"),
        faults: vec![
            TimedFault {
                at_ms: -1,
                fault: Fault::Churn {
                    fraction_ppm: 100_000,
                },
            },
            TimedFault {
                at_ms: 8 * iv,
                fault: Fault::StopChurn,
            },
        ],
        ..base
    };
    vec![lossy, churn]
}
