//! The peer protocol as Rust types, mapped 1:1 to `proto/tanoa/v1/peer.proto`.
//!
//! Owns: the typed peer messages, their conversion to and from the generated protobuf types,
//! and bounded decoding (size limit checked before decoding; every item id checked to be 32
//! bytes, errors naming the message and field).
//! Must never: verify envelopes or decide policy (the node verifies, `policy` decides).
//!
//! The protocol is request/response (gRPC unary calls in the daemon, simulated calls in tests and
//! the simulator): `PushRequest → PushResponse`, `ReconcileRequest → ReconcileResponse`,
//! `FetchRequest → FetchResponse`. The peer's identity is never in a message: it comes from its
//! verified TLS certificate.

use prost::Message as _;
use tanoa_proto::v1 as pb;

use crate::envelope::{Envelope, ItemId};

/// Why a peer message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The encoded message is larger than the limit (checked before decoding).
    #[error("{message} is {size} bytes, larger than the limit of {max} bytes")]
    TooLarge {
        /// Message type name.
        message: &'static str,
        /// Encoded size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The bytes are not a valid protobuf message of that type.
    #[error("{message} does not decode: {detail}")]
    Decode {
        /// Message type name.
        message: &'static str,
        /// Decoder error.
        detail: String,
    },
    /// An item id is not 32 bytes.
    #[error("{message}.{field}[{index}] is {len} bytes; an item id is 32 bytes")]
    BadItemId {
        /// Message type name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// Position in the field.
        index: usize,
        /// Length found.
        len: usize,
    },
}

fn ids_from(
    raw: Vec<Vec<u8>>,
    message: &'static str,
    field: &'static str,
) -> Result<Vec<ItemId>, MessageError> {
    raw.into_iter()
        .enumerate()
        .map(|(index, b)| {
            ItemId::from_slice(&b).ok_or(MessageError::BadItemId {
                message,
                field,
                index,
                len: b.len(),
            })
        })
        .collect()
}

fn ids_to(ids: &[ItemId]) -> Vec<Vec<u8>> {
    ids.iter().map(|i| i.0.to_vec()).collect()
}

fn decode_bounded<M: prost::Message + Default>(
    bytes: &[u8],
    max: usize,
    message: &'static str,
) -> Result<M, MessageError> {
    if bytes.len() > max {
        return Err(MessageError::TooLarge {
            message,
            size: bytes.len(),
            max,
        });
    }
    M::decode(bytes).map_err(|e| MessageError::Decode {
        message,
        detail: e.to_string(),
    })
}

/// Eager push (or offer) of items: envelopes exactly as signed by their origins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushRequest {
    /// Envelopes, untouched.
    pub envelopes: Vec<Envelope>,
}

/// Per-item result of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult {
    /// Item id.
    pub item_id: ItemId,
    /// Accepted (stored, or already held).
    pub accepted: bool,
    /// Machine-readable reason when refused (e.g. `bad_signature`, `red_relay`).
    pub reason: String,
}

/// Reply to a push: one result per envelope, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushResponse {
    /// Results.
    pub results: Vec<ItemResult>,
}

/// One reconciliation round from the initiator (a negentropy message).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconcileRequest {
    /// Session id chosen by the initiator.
    pub session: u64,
    /// Negentropy message bytes.
    pub message: Vec<u8>,
}

/// The responder's reply to a reconciliation round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconcileResponse {
    /// Session id echoed.
    pub session: u64,
    /// Negentropy message bytes.
    pub message: Vec<u8>,
}

/// Ask for items by id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchRequest {
    /// Item ids.
    pub item_ids: Vec<ItemId>,
    /// Most envelope bytes wanted in the answer (0: the answerer's `max_batch_bytes`).
    pub max_bytes: u64,
}

/// Items returned by a fetch. An id the requester may not hold is answered exactly like an
/// unknown id (in `missing`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchResponse {
    /// Envelopes served.
    pub envelopes: Vec<Envelope>,
    /// Ids unknown or not allowed (indistinguishable).
    pub missing: Vec<ItemId>,
    /// Ids held and allowed but left out because the response was full: ask again.
    pub deferred: Vec<ItemId>,
}

impl PushRequest {
    /// To protobuf.
    pub fn to_proto(&self) -> pb::PushRequest {
        pb::PushRequest {
            envelopes: self.envelopes.iter().map(Envelope::to_proto).collect(),
        }
    }

    /// From protobuf (envelopes are checked later, by verification).
    pub fn from_proto(p: pb::PushRequest) -> Self {
        Self {
            envelopes: p.envelopes.into_iter().map(Envelope::from_proto).collect(),
        }
    }
}

impl ItemResult {
    /// To protobuf.
    pub fn to_proto(&self) -> pb::ItemResult {
        pb::ItemResult {
            item_id: self.item_id.0.to_vec(),
            accepted: self.accepted,
            reason: self.reason.clone(),
        }
    }
}

impl PushResponse {
    /// To protobuf.
    pub fn to_proto(&self) -> pb::PushResponse {
        pb::PushResponse {
            results: self.results.iter().map(ItemResult::to_proto).collect(),
        }
    }

    /// From protobuf; every item id must be 32 bytes.
    pub fn from_proto(p: pb::PushResponse) -> Result<Self, MessageError> {
        let results = p
            .results
            .into_iter()
            .enumerate()
            .map(|(index, r)| {
                let len = r.item_id.len();
                let item_id = ItemId::from_slice(&r.item_id).ok_or(MessageError::BadItemId {
                    message: "PushResponse",
                    field: "results.item_id",
                    index,
                    len,
                })?;
                Ok(ItemResult {
                    item_id,
                    accepted: r.accepted,
                    reason: r.reason,
                })
            })
            .collect::<Result<_, MessageError>>()?;
        Ok(Self { results })
    }
}

impl ReconcileRequest {
    /// To protobuf.
    pub fn to_proto(&self) -> pb::ReconcileRequest {
        pb::ReconcileRequest {
            session: self.session,
            message: self.message.clone(),
        }
    }

    /// From protobuf.
    pub fn from_proto(p: pb::ReconcileRequest) -> Self {
        Self {
            session: p.session,
            message: p.message,
        }
    }
}

impl ReconcileResponse {
    /// To protobuf.
    pub fn to_proto(&self) -> pb::ReconcileResponse {
        pb::ReconcileResponse {
            session: self.session,
            message: self.message.clone(),
        }
    }

    /// From protobuf.
    pub fn from_proto(p: pb::ReconcileResponse) -> Self {
        Self {
            session: p.session,
            message: p.message,
        }
    }
}

impl FetchRequest {
    /// To protobuf.
    pub fn to_proto(&self) -> pb::FetchRequest {
        pb::FetchRequest {
            item_ids: ids_to(&self.item_ids),
            max_bytes: self.max_bytes,
        }
    }

    /// From protobuf; every id must be 32 bytes.
    pub fn from_proto(p: pb::FetchRequest) -> Result<Self, MessageError> {
        Ok(Self {
            item_ids: ids_from(p.item_ids, "FetchRequest", "item_ids")?,
            max_bytes: p.max_bytes,
        })
    }
}

impl FetchResponse {
    /// To protobuf.
    pub fn to_proto(&self) -> pb::FetchResponse {
        pb::FetchResponse {
            envelopes: self.envelopes.iter().map(Envelope::to_proto).collect(),
            missing: ids_to(&self.missing),
            deferred: ids_to(&self.deferred),
        }
    }

    /// From protobuf; every id must be 32 bytes.
    pub fn from_proto(p: pb::FetchResponse) -> Result<Self, MessageError> {
        Ok(Self {
            envelopes: p.envelopes.into_iter().map(Envelope::from_proto).collect(),
            missing: ids_from(p.missing, "FetchResponse", "missing")?,
            deferred: ids_from(p.deferred, "FetchResponse", "deferred")?,
        })
    }
}

/// Any peer message, for drivers that move messages as bytes (the simulator, transcripts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMessage {
    /// `PushRequest`.
    PushRequest(PushRequest),
    /// `PushResponse`.
    PushResponse(PushResponse),
    /// `ReconcileRequest`.
    ReconcileRequest(ReconcileRequest),
    /// `ReconcileResponse`.
    ReconcileResponse(ReconcileResponse),
    /// `FetchRequest`.
    FetchRequest(FetchRequest),
    /// `FetchResponse`.
    FetchResponse(FetchResponse),
}

impl PeerMessage {
    /// The protobuf message name.
    pub fn name(&self) -> &'static str {
        match self {
            PeerMessage::PushRequest(_) => "PushRequest",
            PeerMessage::PushResponse(_) => "PushResponse",
            PeerMessage::ReconcileRequest(_) => "ReconcileRequest",
            PeerMessage::ReconcileResponse(_) => "ReconcileResponse",
            PeerMessage::FetchRequest(_) => "FetchRequest",
            PeerMessage::FetchResponse(_) => "FetchResponse",
        }
    }

    fn tag(&self) -> u8 {
        match self {
            PeerMessage::PushRequest(_) => 1,
            PeerMessage::PushResponse(_) => 2,
            PeerMessage::ReconcileRequest(_) => 3,
            PeerMessage::ReconcileResponse(_) => 4,
            PeerMessage::FetchRequest(_) => 5,
            PeerMessage::FetchResponse(_) => 6,
        }
    }

    /// The protobuf encoding of the message (what a gRPC call carries, without framing).
    pub fn encode_body(&self) -> Vec<u8> {
        match self {
            PeerMessage::PushRequest(m) => m.to_proto().encode_to_vec(),
            PeerMessage::PushResponse(m) => m.to_proto().encode_to_vec(),
            PeerMessage::ReconcileRequest(m) => m.to_proto().encode_to_vec(),
            PeerMessage::ReconcileResponse(m) => m.to_proto().encode_to_vec(),
            PeerMessage::FetchRequest(m) => m.to_proto().encode_to_vec(),
            PeerMessage::FetchResponse(m) => m.to_proto().encode_to_vec(),
        }
    }

    /// Self-describing encoding: one tag byte (1..=6, in the order of the variants) followed by
    /// the protobuf body.
    pub fn encode(&self) -> Vec<u8> {
        let body = self.encode_body();
        let mut out = Vec::with_capacity(1 + body.len());
        out.push(self.tag());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes `encode`'s output, refusing more than `max` bytes before decoding.
    pub fn decode(bytes: &[u8], max: usize) -> Result<Self, MessageError> {
        let Some((&tag, body)) = bytes.split_first() else {
            return Err(MessageError::Decode {
                message: "PeerMessage",
                detail: "empty buffer".to_string(),
            });
        };
        Ok(match tag {
            1 => PeerMessage::PushRequest(PushRequest::from_proto(decode_bounded(
                body,
                max,
                "PushRequest",
            )?)),
            2 => PeerMessage::PushResponse(PushResponse::from_proto(decode_bounded(
                body,
                max,
                "PushResponse",
            )?)?),
            3 => PeerMessage::ReconcileRequest(ReconcileRequest::from_proto(decode_bounded(
                body,
                max,
                "ReconcileRequest",
            )?)),
            4 => PeerMessage::ReconcileResponse(ReconcileResponse::from_proto(decode_bounded(
                body,
                max,
                "ReconcileResponse",
            )?)),
            5 => PeerMessage::FetchRequest(FetchRequest::from_proto(decode_bounded(
                body,
                max,
                "FetchRequest",
            )?)?),
            6 => PeerMessage::FetchResponse(FetchResponse::from_proto(decode_bounded(
                body,
                max,
                "FetchResponse",
            )?)?),
            other => {
                return Err(MessageError::Decode {
                    message: "PeerMessage",
                    detail: format!("unknown message tag {other}"),
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn env(n: u8) -> Envelope {
        Envelope {
            payload: vec![n; 40],
            key_id: "ed25519:0011223344556677".to_string(),
            signature: vec![n; 64],
        }
    }

    #[test]
    fn every_message_round_trips() {
        let id = ItemId([7; 32]);
        let msgs = vec![
            PeerMessage::PushRequest(PushRequest {
                envelopes: vec![env(1), env(2)],
            }),
            PeerMessage::PushResponse(PushResponse {
                results: vec![ItemResult {
                    item_id: id,
                    accepted: false,
                    reason: "red_relay".to_string(),
                }],
            }),
            PeerMessage::ReconcileRequest(ReconcileRequest {
                session: 99,
                message: vec![0x61, 1, 2],
            }),
            PeerMessage::ReconcileResponse(ReconcileResponse {
                session: 99,
                message: vec![0x61],
            }),
            PeerMessage::FetchRequest(FetchRequest {
                item_ids: vec![id, ItemId([8; 32])],
                max_bytes: 65_536,
            }),
            PeerMessage::FetchResponse(FetchResponse {
                envelopes: vec![env(3)],
                missing: vec![id],
                deferred: vec![ItemId([9; 32])],
            }),
        ];
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(
                PeerMessage::decode(&bytes, 1 << 20).unwrap(),
                m,
                "{}",
                m.name()
            );
        }
    }

    #[test]
    fn short_item_id_is_refused_naming_the_field() {
        let p = pb::FetchRequest {
            item_ids: vec![vec![0; 32], vec![0; 31]],
            max_bytes: 0,
        };
        let err = FetchRequest::from_proto(p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "FetchRequest.item_ids[1] is 31 bytes; an item id is 32 bytes"
        );
    }

    #[test]
    fn oversized_and_garbage_buffers_are_refused() {
        let m = PeerMessage::ReconcileRequest(ReconcileRequest {
            session: 1,
            message: vec![0; 5000],
        });
        let bytes = m.encode();
        assert!(matches!(
            PeerMessage::decode(&bytes, 4096),
            Err(MessageError::TooLarge { size, max: 4096, .. }) if size > 4096
        ));
        assert!(matches!(
            PeerMessage::decode(&[5, 0xff, 0xff, 0xff], 4096),
            Err(MessageError::Decode { .. })
        ));
        assert!(PeerMessage::decode(&[42], 4096).is_err());
        assert!(PeerMessage::decode(&[], 4096).is_err());
    }
}
