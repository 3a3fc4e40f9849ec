//! Tests of the sync core: two cores driven by hand (`pair`), the push target rules (`push`),
//! and a small deterministic network of cores (`net`, scenarios in `network`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod flow;
mod net;
mod network;
mod pair;
mod push;
mod thin;
