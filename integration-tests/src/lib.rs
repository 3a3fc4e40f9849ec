//! Helpers shared by the integration tests: build paths of the binaries, spawn daemons.
