//! gRPC services of the daemon: the operator API and the peer API of the federation.
//!
//! Owns: the tonic service implementations (`operator`, `peer`), every conversion between protobuf
//! messages and domain types of the API (`convert`), and the single mapping from errors to
//! `tonic::Status` (`error`).
//! Must never: sign, verify or store by itself (it calls `publish::NodeCore` and the store
//! through `NodeCore::blocking`), or build a `Status` from an error anywhere but `error`.

pub mod convert;
pub mod error;
pub mod operator;
pub mod peer;
mod roster;

pub use operator::OperatorApi;
pub use peer::PeerApi;
