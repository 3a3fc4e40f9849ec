//! Loading the configured warning lists at start and handing them to the node core.
//!
//! Owns: turning `[warninglists]` into loaded lists off the async threads, with configuration
//! errors naming the key. Must never: fail the start for a single bad list (it is logged and
//! skipped).

use std::sync::Arc;

use crate::config::{Config, ConfigError, ConfigProblem};
use crate::publish::NodeCore;

/// Loads the lists of the config's `[warninglists]` (if any) off the async threads, logs what
/// was loaded and skipped, and hands them to `core`. A directory that holds no list, or a
/// `disabled` name that is no list, is a configuration error naming the key.
pub(super) async fn attach(core: &NodeCore, config: &Config) -> Result<(), ConfigError> {
    let Some(w) = config.warninglists.clone() else {
        return Ok(());
    };
    let file = config.path.display().to_string();
    let problem = |key: &str, message: String| {
        ConfigError::Invalid(vec![ConfigProblem {
            file: file.clone(),
            key: key.to_string(),
            message,
            line: None,
        }])
    };
    let dir = w.dir.clone();
    let loaded =
        tokio::task::spawn_blocking(move || crate::warninglist::load_dir(&w.dir, &w.disabled))
            .await
            .map_err(|e| problem("warninglists.dir", format!("loading failed: {e}")))?
            .map_err(|e| match e {
                crate::warninglist::WarningListError::Dir { dir, message } => {
                    problem("warninglists.dir", format!("{}: {message}", dir.display()))
                }
                other => problem("warninglists.dir", other.to_string()),
            })?;
    if let Some(name) = loaded.unknown_disabled.first() {
        return Err(problem(
            "warninglists.disabled",
            format!(
                "{name:?} is not a list in {} (names are directory names such as \
                 \"dynamic-dns\")",
                loaded.root.display()
            ),
        ));
    }
    for e in &loaded.skipped {
        tracing::warn!(error = %e, "warning list skipped");
    }
    for p in &loaded.entry_problems {
        tracing::debug!(list = %p.list, index = p.index, problem = %p.message, "warning-list entry");
    }
    tracing::info!(
        dir = %dir.display(),
        lists = loaded.lists.lists().len(),
        entries = loaded.lists.entries(),
        skipped = loaded.skipped.len(),
        unusable_entries = loaded.entry_problems.len(),
        "warning lists loaded"
    );
    core.set_warninglists(Arc::new(loaded.lists));
    Ok(())
}
