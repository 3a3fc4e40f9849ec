//! `tanoa export --format stix`: advisories as a STIX 2.1 bundle.
//!
//! Being built (issue 5); until then the command refuses with a clear error.

use crate::args::GlobalArgs;
use crate::cmd::export::ExportArgs;
use crate::exit::Failure;

/// Runs this format.
pub async fn run(_a: &ExportArgs, _g: &GlobalArgs) -> anyhow::Result<()> {
    Err(Failure::usage("--format stix is not available yet in this build").into())
}
