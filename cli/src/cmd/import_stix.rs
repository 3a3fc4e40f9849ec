//! `tanoa import --format stix`: a STIX bundle becomes advisories.
//!
//! Being built (issue 5); until then the command refuses with a clear error.

use crate::args::GlobalArgs;
use crate::cmd::import::ImportArgs;
use crate::exit::Failure;

/// Runs this format.
pub async fn run(_a: &ImportArgs, _g: &GlobalArgs) -> anyhow::Result<()> {
    Err(Failure::usage("--format stix is not available yet in this build").into())
}
