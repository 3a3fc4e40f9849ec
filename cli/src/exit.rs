//! Exit codes and error reporting: the one place that maps failures (gRPC statuses included)
//! to exit codes and `hint:` lines.
//!
//! Owns: the exit-code contract (0 success, 1 operation failed, 2 bad usage or bad input) and
//! the wording of `error:`/`hint:` lines on stderr.
//! Must never: print to stdout (that is for results), or exit the process itself (`main` does).

use std::fmt;

use tonic::Code;

/// The operation succeeded.
pub const SUCCESS: u8 = 0;
/// The operation failed: the daemon refused it, something was not found, verification failed,
/// or the daemon could not be reached.
pub const FAILED: u8 = 1;
/// Bad usage or bad input: wrong arguments (clap also exits 2) or an input file that cannot be
/// read or is invalid.
pub const USAGE: u8 = 2;

/// Text shown under `tanoa --help` and in cli/README.md.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the operation failed: the daemon refused it, not found, verification failed,
     cannot connect to the daemon
  2  bad usage or bad input file (wrong arguments, unreadable or invalid advisory,
     envelope or key)

Connection (first match wins): --endpoint with --ca/--cert/--key (TCP + mTLS),
--socket / TANOA_SOCKET, the operator socket named in --config / TANOA_CONFIG,
else $TANOA_HOME/tanoad.toml (TANOA_HOME defaults to ./.tanoa).
Every command accepts --json for machine-readable output on stdout; errors go to stderr.";

/// A failure with its exit code and, when there is one, what to do next.
#[derive(Debug)]
pub struct Failure {
    /// Exit code (`FAILED` or `USAGE`).
    pub code: u8,
    /// What went wrong (one line, or several for lists of problems).
    pub message: String,
    /// What to do next.
    pub hint: Option<String>,
}

impl Failure {
    /// The operation failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: FAILED,
            message: message.into(),
            hint: None,
        }
    }

    /// Bad usage or bad input (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: USAGE,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint line.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Exit code for a gRPC status returned by the daemon. `InvalidArgument` and `OutOfRange` mean
/// the request or its input file was bad (2); every other refusal is a failed operation (1).
pub fn status_exit_code(code: Code) -> u8 {
    match code {
        Code::Ok => SUCCESS,
        Code::InvalidArgument | Code::OutOfRange => USAGE,
        _ => FAILED,
    }
}

/// What to do next after the daemon answered with `status` (`what` names the object in the
/// not-found hint).
pub fn status_hint(code: Code, what: &str) -> Option<String> {
    match code {
        // The daemon answered (a lost connection is a transport failure, hinted apart): it is
        // shutting down, or still restoring its own advisories from its peers.
        Code::Unavailable => Some(
            "tanoad cannot do this right now (shutting down, or still restoring this member's \
             own advisories from its peers: `tanoa status` shows Restoring); try again shortly"
                .into(),
        ),
        Code::NotFound => Some(format!(
            "`tanoa list --withdrawn` shows {what} this node holds"
        )),
        Code::InvalidArgument => {
            Some("correct what the daemon named above and run it again".into())
        }
        Code::PermissionDenied | Code::Unauthenticated => Some(
            "use the operator socket (mode 0600, same user as tanoad) or an operator certificate \
             (URI SAN tanoa://operator/<name>) issued by the CA tanoad trusts"
                .into(),
        ),
        Code::AlreadyExists => Some("the node already holds it; `tanoa show` it".into()),
        Code::DeadlineExceeded => Some("the daemon is slow or overloaded; try again".into()),
        _ => None,
    }
}

/// Turns any error into a `Failure`: the first `Failure` or gRPC status in the chain decides the
/// exit code and hint (statuses through `status_exit_code`), anything else is a failed
/// operation. Context added with anyhow stays in front of the message.
pub fn classify(err: &anyhow::Error) -> Failure {
    let mut parts = Vec::new();
    for cause in err.chain() {
        if let Some(status) = cause.downcast_ref::<tonic::Status>() {
            let code = status.code();
            let text = status_message(status);
            if is_transport_failure(status) {
                parts.push(format!("lost the connection to tanoad: {text}"));
                return Failure::failed(parts.join(": ")).hint(TRANSPORT_HINT);
            }
            parts.push(format!("daemon refused: {text}"));
            return Failure {
                code: status_exit_code(code),
                message: parts.join(": "),
                hint: status_hint(code, "what"),
            };
        }
        if let Some(f) = cause.downcast_ref::<Failure>() {
            parts.push(f.message.clone());
            return Failure {
                code: f.code,
                message: parts.join(": "),
                hint: f.hint.clone(),
            };
        }
        parts.push(cause.to_string());
    }
    Failure::failed(parts.join(": "))
}

/// Hint after the connection broke under a request.
pub const TRANSPORT_HINT: &str = "if tanoad is running, it may have refused the client \
     certificate: over --endpoint it needs an operator certificate (URI SAN \
     tanoa://operator/<name>) issued by its client_ca and within its validity; see its log";

/// True when the status reports a broken connection rather than an answer of the daemon.
pub fn is_transport_failure(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal
    ) && status_message(status).contains("transport error")
}

/// The status message, with a readable fallback for an empty one.
/// A transport failure also names its causes (e.g. the TLS alert the daemon sent).
pub fn status_message(status: &tonic::Status) -> String {
    let msg = status.message().trim();
    let mut out = if msg.is_empty() {
        format!("{:?}", status.code())
    } else {
        msg.to_string()
    };
    let mut cause = std::error::Error::source(status);
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Prints `error: …` (and `hint: …`) to stderr. Multi-line messages are indented.
pub fn report(f: &Failure) {
    eprintln!("{}", render(f));
}

/// The text `report` prints.
pub fn render(f: &Failure) -> String {
    let mut out = String::from("error: ");
    for (i, line) in f.message.lines().enumerate() {
        if i > 0 {
            out.push_str("\n  ");
        }
        out.push_str(line);
    }
    if let Some(h) = &f.hint {
        out.push_str("\nhint: ");
        out.push_str(h);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use anyhow::Context;

    #[test]
    fn grpc_codes_map_to_documented_exit_codes() {
        assert_eq!(status_exit_code(Code::Ok), 0);
        assert_eq!(status_exit_code(Code::InvalidArgument), 2);
        assert_eq!(status_exit_code(Code::OutOfRange), 2);
        for c in [
            Code::NotFound,
            Code::Unavailable,
            Code::PermissionDenied,
            Code::FailedPrecondition,
            Code::AlreadyExists,
            Code::Internal,
            Code::Unknown,
            Code::DeadlineExceeded,
        ] {
            assert_eq!(status_exit_code(c), 1, "{c:?}");
        }
    }

    #[test]
    fn classify_maps_statuses_failures_and_other_errors() {
        let e = anyhow::Error::new(tonic::Status::not_found("no advisory ws-2026-9"));
        let f = classify(&e);
        assert_eq!(f.code, 1);
        assert!(f.message.contains("no advisory ws-2026-9"), "{}", f.message);
        assert!(f.hint.unwrap().contains("tanoa list"));

        let e = anyhow::Error::new(tonic::Status::invalid_argument("title: must not be empty"))
            .context("publish apt40.toml");
        let f = classify(&e);
        assert_eq!(f.code, 2);
        assert!(
            f.message.starts_with("publish apt40.toml: "),
            "{}",
            f.message
        );
        assert!(f.message.contains("title: must not be empty"));

        let e = anyhow::Error::new(Failure::usage("bad file").hint("fix it"));
        let f = classify(&e);
        assert_eq!((f.code, f.hint.as_deref()), (2, Some("fix it")));

        let e = anyhow::Error::new(Failure::usage("bad file")).context("reading x");
        let f = classify(&e);
        assert_eq!(f.code, 2);
        assert_eq!(f.message, "reading x: bad file");

        let e = anyhow::anyhow!("disk on fire");
        assert_eq!(classify(&e).code, 1);
        let r: anyhow::Result<()> = Err(std::io::Error::other("x")).context("y");
        assert_eq!(classify(&r.unwrap_err()).message, "y: x");
    }

    #[test]
    fn broken_connections_are_not_called_refusals() {
        let e = anyhow::Error::new(tonic::Status::unknown("transport error")).context("status");
        let f = classify(&e);
        assert_eq!(f.code, 1);
        assert_eq!(
            f.message,
            "status: lost the connection to tanoad: transport error"
        );
        assert!(f.hint.unwrap().contains("operator certificate"));
        let e = anyhow::Error::new(tonic::Status::unavailable("tanoad is shutting down"));
        assert!(classify(&e).message.starts_with("daemon refused: "));
    }

    #[test]
    fn a_daemon_that_is_restoring_is_not_called_not_running() {
        let err = anyhow::Error::new(tonic::Status::unavailable(
            "this member is restoring its own advisories from its peers (still waiting for to-cert)",
        ));
        let f = classify(&err);
        assert_eq!(f.code, FAILED);
        assert!(f.message.starts_with("daemon refused: "), "{}", f.message);
        let hint = f.hint.unwrap();
        assert!(hint.contains("tanoa status"), "{hint}");
        assert!(!hint.contains("is tanoad running"), "{hint}");
    }

    #[test]
    fn render_prints_error_and_hint_lines() {
        let f = Failure::usage("advisory file x.toml is invalid:\ntitle: empty\ntlp: missing")
            .hint("see examples/apt40-advisory.toml");
        let text = render(&f);
        assert_eq!(
            text,
            "error: advisory file x.toml is invalid:\n  title: empty\n  tlp: missing\n\
             hint: see examples/apt40-advisory.toml"
        );
    }
}
