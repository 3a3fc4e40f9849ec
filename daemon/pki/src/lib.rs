//! Federation PKI material: a CA, member and operator certificates (rcgen), as PEM strings.
//!
//! Owns: how Tanoa certificates look (URI SAN `tanoa://member/<id>` for members, with DNS
//! `localhost` and IP `127.0.0.1` so a dev federation runs on one machine; URI SAN
//! `tanoa://operator/<name>` for operators), their validity windows, and the on-disk layout that
//! `tanoa pki` writes (keys 0600, certificates 0644, never overwritten). Tests build a fresh PKI
//! in memory with `Ca::new` and `Ca::issue_*`.
//! Must never: decide whether a certificate is trusted (that is `transport`'s job), overwrite an
//! existing file, write a private key with permissions wider than 0600, or log key material.

use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use time::OffsetDateTime;

/// Current Unix time in milliseconds (certificates are issued and checked against the clock).
fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// URI SAN prefix naming a federation member (`tanoa://member/ws-cert`).
pub const MEMBER_URI_PREFIX: &str = "tanoa://member/";
/// URI SAN prefix naming an operator (`tanoa://operator/alice`).
pub const OPERATOR_URI_PREFIX: &str = "tanoa://operator/";
/// Organization written in the CA's subject.
pub const CA_ORGANIZATION: &str = "Tanoa federation";
/// Default lifetime of certificates issued by `tanoa pki`, in days.
pub const DEFAULT_DAYS: u32 = 365;
/// Default lifetime of a CA created by `tanoa pki init`, in days.
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// Maximum length of a member id or operator name in a certificate.
pub const MAX_NAME_LEN: usize = 64;
/// Certificates start being valid this long before they are issued (clock skew between members).
pub const BACKDATE_MS: i64 = 5 * 60 * 1000;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Errors building or writing PKI material; each names the subject, field or file.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A member id, operator name or CA name that cannot go into a certificate.
    #[error("{what} {name:?}: {reason}")]
    InvalidName {
        /// "member id", "operator name" or "CA name".
        what: &'static str,
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// A validity window that is empty or out of range.
    #[error("validity of {subject}: {detail}")]
    Validity {
        /// Whose certificate.
        subject: String,
        /// What is wrong.
        detail: String,
    },
    /// rcgen refused to build a key or certificate.
    #[error("could not create {what}: {detail}")]
    Generate {
        /// What was being created.
        what: String,
        /// rcgen's message.
        detail: String,
    },
    /// A PEM file or string that is not what it should be.
    #[error("{what}: {detail}")]
    Pem {
        /// Which file or input.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The file exists already: PKI material is never overwritten.
    #[error(
        "{path} already exists; refusing to overwrite PKI material (choose another --out or remove it deliberately)"
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// I/O failure on a file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A private key file that others may read (or write).
    #[error(transparent)]
    Key(#[from] tanoa_keys::KeyError),
}

/// Who a leaf certificate identifies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A federation member (a CERT's daemon): server and client authentication.
    Member(String),
    /// An operator of a daemon (a person or tool): client authentication only.
    Operator(String),
}

impl Subject {
    /// The id or name.
    pub fn name(&self) -> &str {
        match self {
            Subject::Member(s) | Subject::Operator(s) => s,
        }
    }

    /// `"member"` or `"operator"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Member(_) => "member",
            Subject::Operator(_) => "operator",
        }
    }

    /// The identity URI carried as a SAN (`tanoa://member/<id>` or `tanoa://operator/<name>`).
    pub fn uri(&self) -> String {
        match self {
            Subject::Member(id) => format!("{MEMBER_URI_PREFIX}{id}"),
            Subject::Operator(name) => format!("{OPERATOR_URI_PREFIX}{name}"),
        }
    }

    /// Checks the name can be used in a certificate URI: a member id follows the federation's
    /// member-id rule (`model::validate::check_member_id`), an operator name `check_name`.
    pub fn check(&self) -> Result<(), PkiError> {
        match self {
            Subject::Member(id) => {
                tanoa_core::model::validate::check_member_id(id).map_err(|reason| {
                    PkiError::InvalidName {
                        what: "member id",
                        name: id.clone(),
                        reason,
                    }
                })
            }
            Subject::Operator(name) => check_name("operator name", name),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// Checks a member id or operator name: 1..=64 of ASCII letters, digits, '.', '_', '-',
/// starting with a letter or digit.
pub fn check_name(what: &'static str, name: &str) -> Result<(), PkiError> {
    let bad = |reason: &str| PkiError::InvalidName {
        what,
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(&format!("longer than {MAX_NAME_LEN} characters")));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(bad(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad("must start with a letter or a digit"));
    }
    Ok(())
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// Who it identifies.
    pub subject: Subject,
    /// The certificate, PEM (`CERTIFICATE`).
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8 `PRIVATE KEY`, ECDSA P-256).
    pub key_pem: String,
    /// Start of validity, Unix ms (second precision).
    pub not_before_ms: i64,
    /// End of validity, Unix ms (second precision).
    pub not_after_ms: i64,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("subject", &self.subject)
            .field("not_before_ms", &self.not_before_ms)
            .field("not_after_ms", &self.not_after_ms)
            .finish_non_exhaustive()
    }
}

/// A federation certificate authority able to issue member and operator certificates.
pub struct Ca {
    name: String,
    cert_pem: String,
    key_pem: String,
    not_after_ms: i64,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("name", &self.name)
            .field("not_after_ms", &self.not_after_ms)
            .finish_non_exhaustive()
    }
}

fn gen_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |e| PkiError::Generate {
        what,
        detail: e.to_string(),
    }
}

fn to_datetime(ms: i64, subject: &str) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).map_err(|e| PkiError::Validity {
        subject: subject.to_string(),
        detail: format!("{ms} ms is not a representable time ({e})"),
    })
}

fn days_window(days: u32, subject: &str) -> Result<(i64, i64), PkiError> {
    if days == 0 {
        return Err(PkiError::Validity {
            subject: subject.to_string(),
            detail: "days must be at least 1".into(),
        });
    }
    let now = now_ms();
    Ok((now - BACKDATE_MS, now + i64::from(days) * DAY_MS))
}

fn ca_distinguished_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, CA_ORGANIZATION);
    dn.push(DnType::CommonName, name);
    dn
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_distinguished_name(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn check_ca_name(name: &str) -> Result<(), PkiError> {
    let bad = |reason: &str| PkiError::InvalidName {
        what: "CA name",
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.trim().is_empty() {
        return Err(bad("must not be empty"));
    }
    if name.len() > 128 {
        return Err(bad("longer than 128 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    Ok(())
}

impl Ca {
    /// A new self-signed CA named `name`, valid from a few minutes ago for `days` days.
    pub fn new(name: &str, days: u32) -> Result<Ca, PkiError> {
        let (from, until) = days_window(days, name)?;
        Ca::with_validity(name, from, until)
    }

    /// A new self-signed CA with an explicit validity window (Unix ms).
    pub fn with_validity(
        name: &str,
        not_before_ms: i64,
        not_after_ms: i64,
    ) -> Result<Ca, PkiError> {
        check_ca_name(name)?;
        check_window(name, not_before_ms, not_after_ms)?;
        let key = KeyPair::generate().map_err(gen_err(format!("key of CA {name:?}")))?;
        let mut params = ca_params(name);
        params.not_before = to_datetime(not_before_ms, name)?;
        params.not_after = to_datetime(not_after_ms, name)?;
        let cert = params
            .self_signed(&key)
            .map_err(gen_err(format!("certificate of CA {name:?}")))?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            name: name.to_string(),
            cert_pem: cert.pem(),
            key_pem,
            not_after_ms,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA written by `tanoa pki init` (its certificate and private key, PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::Pem {
            what: "CA private key".into(),
            detail: format!("not a PKCS#8 private key ({e})"),
        })?;
        let der = pem_der(cert_pem, "CA certificate")?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Pem {
            what: "CA certificate".into(),
            detail: format!("not an X.509 certificate ({e})"),
        })?;
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(PkiError::Pem {
                what: "CA private key".into(),
                detail: "it does not belong to the CA certificate".into(),
            });
        }
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(PkiError::Pem {
                what: "CA certificate".into(),
                detail: "it is not a CA certificate (basicConstraints CA:TRUE missing)".into(),
            });
        }
        let name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .ok_or_else(|| PkiError::Pem {
                what: "CA certificate".into(),
                detail: "its subject has no common name".into(),
            })?
            .to_string();
        let params = ca_params(&name);
        // The issuer name written into leaf certificates must equal the CA's subject exactly.
        let rebuilt = params
            .self_signed(&key)
            .map_err(gen_err(format!("issuer of CA {name:?}")))?;
        let (_, rebuilt_cert) =
            x509_parser::parse_x509_certificate(rebuilt.der()).map_err(|e| PkiError::Pem {
                what: "CA certificate".into(),
                detail: format!("could not re-read it ({e})"),
            })?;
        if rebuilt_cert.subject().as_raw() != cert.subject().as_raw() {
            return Err(PkiError::Pem {
                what: "CA certificate".into(),
                detail: "its subject was not written by tanoa pki; cannot issue under it".into(),
            });
        }
        let not_after_ms = cert.validity().not_after.timestamp().saturating_mul(1000);
        Ok(Ca {
            name,
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            not_after_ms,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA's common name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CA certificate, PEM: the trust anchor members and operators configure.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM (keep it offline).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// End of the CA's validity, Unix ms.
    pub fn not_after_ms(&self) -> i64 {
        self.not_after_ms
    }

    /// A member certificate (URI SAN `tanoa://member/<id>`, DNS `localhost`, IP 127.0.0.1),
    /// valid from a few minutes ago for `days` days.
    pub fn issue_member(&self, id: &str, days: u32) -> Result<IssuedCert, PkiError> {
        self.issue(&Subject::Member(id.to_string()), days)
    }

    /// An operator certificate (URI SAN `tanoa://operator/<name>`, client auth only).
    pub fn issue_operator(&self, name: &str, days: u32) -> Result<IssuedCert, PkiError> {
        self.issue(&Subject::Operator(name.to_string()), days)
    }

    /// A certificate for `subject`, valid from a few minutes ago for `days` days.
    pub fn issue(&self, subject: &Subject, days: u32) -> Result<IssuedCert, PkiError> {
        let (from, until) = days_window(days, &subject.to_string())?;
        self.issue_with_validity(subject, from, until)
    }

    /// A certificate for `subject` with an explicit validity window (Unix ms, truncated to
    /// seconds). Windows in the past or future are allowed: that is how the expired and
    /// not-yet-valid fixtures are made.
    pub fn issue_with_validity(
        &self,
        subject: &Subject,
        not_before_ms: i64,
        not_after_ms: i64,
    ) -> Result<IssuedCert, PkiError> {
        self.issue_with_sans(subject, not_before_ms, not_after_ms, &[], &[])
    }

    /// Like `issue_with_validity`, adding DNS names and IP addresses to the default SANs
    /// (e.g. a member's public host name).
    pub fn issue_with_sans(
        &self,
        subject: &Subject,
        not_before_ms: i64,
        not_after_ms: i64,
        extra_dns: &[String],
        extra_ips: &[IpAddr],
    ) -> Result<IssuedCert, PkiError> {
        let (params, key, label) =
            leaf_params(subject, not_before_ms, not_after_ms, extra_dns, extra_ips)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(gen_err(format!("certificate of {label}")))?;
        Ok(IssuedCert {
            subject: subject.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_before_ms: not_before_ms.div_euclid(1000) * 1000,
            not_after_ms: not_after_ms.div_euclid(1000) * 1000,
        })
    }
}

/// The parameters and fresh key of a leaf certificate for `subject` (CA-issued or self-signed).
fn leaf_params(
    subject: &Subject,
    not_before_ms: i64,
    not_after_ms: i64,
    extra_dns: &[String],
    extra_ips: &[IpAddr],
) -> Result<(CertificateParams, KeyPair, String), PkiError> {
    subject.check()?;
    let label = subject.to_string();
    check_window(&label, not_before_ms, not_after_ms)?;
    let key = KeyPair::generate().map_err(gen_err(format!("key of {label}")))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        match subject {
            Subject::Member(_) => "Tanoa member",
            Subject::Operator(_) => "Tanoa operator",
        },
    );
    dn.push(DnType::CommonName, subject.name());
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.not_before = to_datetime(not_before_ms, &label)?;
    params.not_after = to_datetime(not_after_ms, &label)?;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let ia5 = |s: String| {
        rcgen::string::Ia5String::try_from(s.clone()).map_err(|e| PkiError::InvalidName {
            what: "subject alternative name",
            name: s,
            reason: e.to_string(),
        })
    };
    let mut sans = vec![SanType::URI(ia5(subject.uri())?)];
    match subject {
        Subject::Member(_) => {
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            sans.push(SanType::DnsName(ia5("localhost".to_string())?));
            sans.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        }
        Subject::Operator(_) => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    for d in extra_dns {
        sans.push(SanType::DnsName(ia5(d.clone())?));
    }
    for ip in extra_ips {
        sans.push(SanType::IpAddress(*ip));
    }
    params.subject_alt_names = sans;
    Ok((params, key, label))
}

/// A self-signed member certificate (no CA): the member's TLS identity when the roster pins it
/// (`tls_pins = ["sha256:…"]`, printed by `spki_pin`). Same SANs and key usages as a CA-issued
/// member certificate, valid from a few minutes ago for `days` days.
pub fn self_signed_member(id: &str, days: u32) -> Result<IssuedCert, PkiError> {
    let subject = Subject::Member(id.to_string());
    let (from, until) = days_window(days, &subject.to_string())?;
    self_signed_member_with_validity(id, from, until)
}

/// `self_signed_member` with an explicit validity window (Unix ms; expired or future windows
/// are allowed, for negative tests).
pub fn self_signed_member_with_validity(
    id: &str,
    not_before_ms: i64,
    not_after_ms: i64,
) -> Result<IssuedCert, PkiError> {
    let subject = Subject::Member(id.to_string());
    let (mut params, key, label) = leaf_params(&subject, not_before_ms, not_after_ms, &[], &[])?;
    params.use_authority_key_identifier_extension = false;
    let cert = params
        .self_signed(&key)
        .map_err(gen_err(format!("self-signed certificate of {label}")))?;
    Ok(IssuedCert {
        subject,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_before_ms: not_before_ms.div_euclid(1000) * 1000,
        not_after_ms: not_after_ms.div_euclid(1000) * 1000,
    })
}

/// The pin of a certificate (PEM): SHA-256 of its SubjectPublicKeyInfo, what `tls_pins` holds.
pub fn spki_pin(cert_pem: &str) -> Result<tanoa_core::membership::SpkiPin, PkiError> {
    use sha2::Digest as _;
    let der = pem_der(cert_pem, "certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Pem {
        what: "certificate".to_string(),
        detail: format!("does not parse ({e})"),
    })?;
    let digest = sha2::Sha256::digest(cert.tbs_certificate.subject_pki.raw);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    Ok(tanoa_core::membership::SpkiPin(out))
}

fn check_window(subject: &str, not_before_ms: i64, not_after_ms: i64) -> Result<(), PkiError> {
    if not_after_ms <= not_before_ms {
        return Err(PkiError::Validity {
            subject: subject.to_string(),
            detail: format!(
                "not_after ({not_after_ms} ms) must be later than not_before ({not_before_ms} ms)"
            ),
        });
    }
    Ok(())
}

/// Decodes the first PEM block of `pem` (any label) to DER.
fn pem_der(pem: &str, what: &str) -> Result<Vec<u8>, PkiError> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| PkiError::Pem {
        what: what.to_string(),
        detail: format!("not PEM ({e})"),
    })?;
    if p.label != "CERTIFICATE" {
        return Err(PkiError::Pem {
            what: what.to_string(),
            detail: format!("PEM block is {:?}, expected \"CERTIFICATE\"", p.label),
        });
    }
    Ok(p.contents)
}

// ---------------------------------------------------------------------------------------------
// On-disk layout written by `tanoa pki`.

/// CA certificate file in a PKI directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// CA private key file in a PKI directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// Sub-directory holding member certificates.
pub const MEMBERS_DIR: &str = "members";
/// Sub-directory holding operator certificates.
pub const OPERATORS_DIR: &str = "operators";
/// Sub-directory holding the negative fixtures.
pub const NEGATIVE_DIR: &str = "negative";

/// One file written by `init_dir` or `write_issued`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Where.
    pub path: PathBuf,
    /// What it is, for people ("CA certificate", "member ws-cert key", …).
    pub role: String,
    /// True for a private key (mode 0600).
    pub private: bool,
}

/// What `init_dir` generates.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// CA common name.
    pub ca_name: String,
    /// CA lifetime in days.
    pub ca_days: u32,
    /// Member ids to issue certificates for.
    pub members: Vec<String>,
    /// Operator names to issue certificates for.
    pub operators: Vec<String>,
    /// Lifetime of member and operator certificates in days.
    pub days: u32,
    /// Also write the negative fixtures under `negative/`.
    pub negative: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            ca_name: "Tanoa federation CA".into(),
            ca_days: DEFAULT_CA_DAYS,
            members: Vec::new(),
            operators: Vec::new(),
            days: DEFAULT_DAYS,
            negative: false,
        }
    }
}

/// Paths of a leaf certificate and key inside a PKI directory: `members/<id>.pem` and `.key`,
/// or `operators/<name>.pem` and `.key`.
pub fn leaf_paths(dir: &Path, subject: &Subject) -> (PathBuf, PathBuf) {
    let sub = match subject {
        Subject::Member(_) => MEMBERS_DIR,
        Subject::Operator(_) => OPERATORS_DIR,
    };
    let base = dir.join(sub);
    (
        base.join(format!("{}.pem", subject.name())),
        base.join(format!("{}.key", subject.name())),
    )
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            PkiError::Exists { path: path.into() }
        } else {
            PkiError::Io {
                path: path.into(),
                source,
            }
        }
    }
}

fn write_new(path: &Path, body: &str, mode: u32) -> Result<(), PkiError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    // The umask may have narrowed the mode; make it exactly what was asked.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_err(path))?;
    f.write_all(body.as_bytes()).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    Ok(())
}

/// Writes a private key, created with mode 0600; refuses to overwrite.
pub fn write_private_pem(path: &Path, pem: &str) -> Result<(), PkiError> {
    write_new(path, pem, 0o600)
}

/// Writes a certificate, created with mode 0644; refuses to overwrite.
pub fn write_public_pem(path: &Path, pem: &str) -> Result<(), PkiError> {
    write_new(path, pem, 0o644)
}

fn refuse_existing(paths: &[&Path]) -> Result<(), PkiError> {
    for p in paths {
        if p.exists() {
            return Err(PkiError::Exists {
                path: p.to_path_buf(),
            });
        }
    }
    Ok(())
}

fn write_pair(
    cert_path: &Path,
    key_path: &Path,
    cert: &IssuedCert,
    role: &str,
    out: &mut Vec<WrittenFile>,
) -> Result<(), PkiError> {
    refuse_existing(&[cert_path, key_path])?;
    write_private_pem(key_path, &cert.key_pem)?;
    out.push(WrittenFile {
        path: key_path.into(),
        role: format!("{role} key"),
        private: true,
    });
    write_public_pem(cert_path, &cert.cert_pem)?;
    out.push(WrittenFile {
        path: cert_path.into(),
        role: format!("{role} certificate"),
        private: false,
    });
    Ok(())
}

/// Writes an issued certificate and key into the PKI layout under `dir`
/// (`members/<id>.{pem,key}` or `operators/<name>.{pem,key}`), and `ca.pem` when `ca_pem` is
/// given and `dir/ca.pem` does not exist yet. Refuses to overwrite the certificate or key.
pub fn write_issued(
    dir: &Path,
    cert: &IssuedCert,
    ca_pem: Option<&str>,
) -> Result<Vec<WrittenFile>, PkiError> {
    let (cert_path, key_path) = leaf_paths(dir, &cert.subject);
    let mut out = Vec::new();
    write_pair(
        &cert_path,
        &key_path,
        cert,
        &cert.subject.to_string(),
        &mut out,
    )?;
    if let Some(ca) = ca_pem {
        let ca_path = dir.join(CA_CERT_FILE);
        if !ca_path.exists() {
            write_public_pem(&ca_path, ca)?;
            out.push(WrittenFile {
                path: ca_path,
                role: "CA certificate (trust anchor)".into(),
                private: false,
            });
        }
    }
    Ok(out)
}

/// Loads the CA of a PKI directory (`ca.pem` and `ca.key`).
pub fn load_ca_dir(dir: &Path) -> Result<Ca, PkiError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let read = |p: &Path| std::fs::read_to_string(p).map_err(io_err(p));
    let cert = read(&cert_path)?;
    let key = read(&key_path)?;
    tanoa_keys::check_private_mode(&key_path)?;
    Ca::from_pem(&cert, &key).map_err(|e| match e {
        PkiError::Pem { what, detail } => PkiError::Pem {
            what: format!("{what} in {}", dir.display()),
            detail,
        },
        other => other,
    })
}

/// Member id used by the negative fixtures when no member is given.
pub const NEGATIVE_DEFAULT_MEMBER: &str = "ws-cert";
/// Operator name of the negative "operator certificate presented as a peer" fixture.
pub const NEGATIVE_OPERATOR: &str = "peer-impostor";

/// Generates a CA, the requested member and operator certificates and, if asked, the negative
/// fixtures, and writes them under `out`:
///
/// ```text
/// ca.pem ca.key                         federation CA (trust anchor; key stays offline)
/// members/<id>.pem members/<id>.key     one per member
/// operators/<n>.pem operators/<n>.key   one per operator
/// negative/expired-member.{pem,key}     member cert whose validity ended yesterday
/// negative/not-yet-valid-member.{pem,key}  member cert valid only from 30 days from now
/// negative/untrusted-ca.{pem,key}       a second CA nobody trusts
/// negative/untrusted-member.{pem,key}   member cert issued by the untrusted CA
/// negative/operator-as-peer.{pem,key}   valid operator cert, to be refused on the peer listener
/// ```
///
/// Refuses to start when `out/ca.pem` or `out/ca.key` exists.
pub fn init_dir(out: &Path, opts: &InitOptions) -> Result<Vec<WrittenFile>, PkiError> {
    for m in &opts.members {
        Subject::Member(m.clone()).check()?;
    }
    for o in &opts.operators {
        check_name("operator name", o)?;
    }
    let ca_cert_path = out.join(CA_CERT_FILE);
    let ca_key_path = out.join(CA_KEY_FILE);
    refuse_existing(&[&ca_cert_path, &ca_key_path])?;
    let ca = Ca::new(&opts.ca_name, opts.ca_days)?;
    // Issue everything in memory first, so a refused name leaves nothing half written.
    let mut leaves = Vec::new();
    for m in &opts.members {
        leaves.push(ca.issue_member(m, opts.days)?);
    }
    for o in &opts.operators {
        leaves.push(ca.issue_operator(o, opts.days)?);
    }
    let mut written = Vec::new();
    write_private_pem(&ca_key_path, ca.key_pem())?;
    written.push(WrittenFile {
        path: ca_key_path,
        role: "CA key".into(),
        private: true,
    });
    write_public_pem(&ca_cert_path, ca.cert_pem())?;
    written.push(WrittenFile {
        path: ca_cert_path,
        role: "CA certificate (trust anchor)".into(),
        private: false,
    });
    for leaf in &leaves {
        written.extend(write_issued(out, leaf, None)?);
    }
    if opts.negative {
        written.extend(write_negative(out, &ca, opts)?);
    }
    Ok(written)
}

fn write_negative(out: &Path, ca: &Ca, opts: &InitOptions) -> Result<Vec<WrittenFile>, PkiError> {
    let dir = out.join(NEGATIVE_DIR);
    let member = Subject::Member(
        opts.members
            .first()
            .cloned()
            .unwrap_or_else(|| NEGATIVE_DEFAULT_MEMBER.to_string()),
    );
    let now = now_ms();
    let expired = ca.issue_with_validity(&member, now - 30 * DAY_MS, now - DAY_MS)?;
    let future = ca.issue_with_validity(&member, now + 30 * DAY_MS, now + 60 * DAY_MS)?;
    let rogue = Ca::new("Untrusted CA (tanoa negative fixture)", opts.ca_days)?;
    let rogue_member = rogue.issue(&member, opts.days)?;
    let operator = ca.issue_operator(NEGATIVE_OPERATOR, opts.days)?;
    let mut written = Vec::new();
    let pair = |stem: &str| {
        (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        )
    };
    let (c, k) = pair("expired-member");
    write_pair(&c, &k, &expired, &format!("expired {member}"), &mut written)?;
    let (c, k) = pair("not-yet-valid-member");
    write_pair(
        &c,
        &k,
        &future,
        &format!("not-yet-valid {member}"),
        &mut written,
    )?;
    let (c, k) = pair("untrusted-ca");
    refuse_existing(&[&c, &k])?;
    write_private_pem(&k, rogue.key_pem())?;
    written.push(WrittenFile {
        path: k,
        role: "untrusted CA key".into(),
        private: true,
    });
    write_public_pem(&c, rogue.cert_pem())?;
    written.push(WrittenFile {
        path: c,
        role: "untrusted CA certificate".into(),
        private: false,
    });
    let (c, k) = pair("untrusted-member");
    write_pair(
        &c,
        &k,
        &rogue_member,
        &format!("untrusted-CA {member}"),
        &mut written,
    )?;
    let (c, k) = pair("operator-as-peer");
    write_pair(
        &c,
        &k,
        &operator,
        &format!("peer-impostor operator {NEGATIVE_OPERATOR}"),
        &mut written,
    )?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::X509Certificate;

    fn parse(pem: &str) -> (Vec<u8>, String) {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        (p.contents, p.label)
    }

    fn with_cert<R>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> R) -> R {
        let (der, label) = parse(pem);
        assert_eq!(label, "CERTIFICATE");
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        f(&c)
    }

    fn sans(c: &X509Certificate<'_>) -> (Vec<String>, Vec<String>, Vec<Vec<u8>>) {
        let ext = c.subject_alternative_name().unwrap().unwrap();
        let (mut uris, mut dns, mut ips) = (vec![], vec![], vec![]);
        for n in &ext.value.general_names {
            match n {
                GeneralName::URI(u) => uris.push(u.to_string()),
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
                _ => {}
            }
        }
        (uris, dns, ips)
    }

    #[test]
    fn member_certificate_carries_member_uri_localhost_and_loopback() {
        let ca = Ca::new("Test CA", 30).unwrap();
        let m = ca.issue_member("ws-cert", 10).unwrap();
        with_cert(&m.cert_pem, |c| {
            let (uris, dns, ips) = sans(c);
            assert_eq!(uris, vec!["tanoa://member/ws-cert".to_string()]);
            assert_eq!(dns, vec!["localhost".to_string()]);
            assert_eq!(ips, vec![vec![127, 0, 0, 1]]);
            assert!(!c.is_ca());
            let eku = c.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && eku.client_auth);
            let cn = c.subject().iter_common_name().next().unwrap();
            assert_eq!(cn.as_str().unwrap(), "ws-cert");
        });
        assert!(m.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn operator_certificate_is_client_only_with_operator_uri() {
        let ca = Ca::new("Test CA", 30).unwrap();
        let o = ca.issue_operator("alice", 10).unwrap();
        with_cert(&o.cert_pem, |c| {
            let (uris, dns, ips) = sans(c);
            assert_eq!(uris, vec!["tanoa://operator/alice".to_string()]);
            assert!(dns.is_empty());
            assert!(ips.is_empty());
            let eku = c.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth);
            assert!(!eku.server_auth);
        });
    }

    #[test]
    fn leaf_is_signed_by_its_ca_and_names_it_as_issuer() {
        let ca = Ca::new("Signing CA", 30).unwrap();
        let m = ca.issue_member("fj-cert", 10).unwrap();
        let (ca_der, _) = parse(ca.cert_pem());
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert!(ca_cert.is_ca());
        with_cert(&m.cert_pem, |c| {
            assert_eq!(c.issuer().as_raw(), ca_cert.subject().as_raw());
            c.verify_signature(Some(ca_cert.public_key())).unwrap();
        });
        // A leaf from another CA does not verify under this one.
        let other = Ca::new("Signing CA", 30).unwrap();
        let rogue = other.issue_member("fj-cert", 10).unwrap();
        with_cert(&rogue.cert_pem, |c| {
            assert!(c.verify_signature(Some(ca_cert.public_key())).is_err());
        });
    }

    #[test]
    fn validity_windows_are_as_requested() {
        let ca = Ca::new("Test CA", 30).unwrap();
        let now = now_ms();
        let m = ca.issue_member("ws-cert", 7).unwrap();
        with_cert(&m.cert_pem, |c| {
            let nb = c.validity().not_before.timestamp() * 1000;
            let na = c.validity().not_after.timestamp() * 1000;
            assert!(
                nb <= now && nb >= now - BACKDATE_MS - 60_000,
                "not_before {nb}"
            );
            let want = now + 7 * DAY_MS;
            assert!((na - want).abs() < 60_000, "not_after {na} vs {want}");
            assert_eq!(nb, m.not_before_ms);
            assert_eq!(na, m.not_after_ms);
            assert!(c.validity().is_valid());
        });
        let expired = ca
            .issue_with_validity(
                &Subject::Member("ws-cert".into()),
                now - 10 * DAY_MS,
                now - DAY_MS,
            )
            .unwrap();
        with_cert(&expired.cert_pem, |c| assert!(!c.validity().is_valid()));
        let bad = ca.issue_with_validity(&Subject::Member("ws-cert".into()), now, now - 1);
        assert!(matches!(bad, Err(PkiError::Validity { .. })));
        assert!(matches!(
            ca.issue_member("ws-cert", 0),
            Err(PkiError::Validity { .. })
        ));
    }

    #[test]
    fn bad_names_are_refused_with_the_name_quoted() {
        let ca = Ca::new("Test CA", 30).unwrap();
        for bad in [
            "",
            "ws cert",
            "ws/cert",
            "-lead",
            "tanoa://x",
            &"a".repeat(65),
        ] {
            let err = ca.issue_member(bad, 1).unwrap_err();
            assert!(matches!(err, PkiError::InvalidName { .. }), "{bad:?}");
            assert!(err.to_string().contains("member id"), "{err}");
        }
        assert!(ca.issue_operator("alice.ops_1", 1).is_ok());
    }

    #[test]
    fn ca_reloaded_from_pem_issues_chaining_certificates() {
        let ca = Ca::new("Reloaded CA", 30).unwrap();
        let again = Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        assert_eq!(again.name(), "Reloaded CA");
        let m = again.issue_member("to-cert", 5).unwrap();
        let (ca_der, _) = parse(ca.cert_pem());
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        with_cert(&m.cert_pem, |c| {
            assert_eq!(c.issuer().as_raw(), ca_cert.subject().as_raw());
            c.verify_signature(Some(ca_cert.public_key())).unwrap();
        });
        // A key that is not the CA's is refused.
        let other = Ca::new("Other", 30).unwrap();
        let err = Ca::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
        // A leaf certificate is not a CA.
        let err = Ca::from_pem(&m.cert_pem, &m.key_pem).unwrap_err();
        assert!(err.to_string().contains("not a CA"), "{err}");
    }

    /// Runs rustls' webpki client-certificate verification, as the transport will.
    fn rustls_accepts(ca_pem: &str, leaf_pem: &str, at_s: u64) -> Result<(), String> {
        use rustls::pki_types::{CertificateDer, UnixTime};
        use rustls::server::WebPkiClientVerifier;
        use std::sync::Arc;
        let ca: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut ca_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let leaf: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut leaf_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca[0].clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at_s));
        v.verify_client_cert(&leaf[0], &[], now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn rustls_accepts_members_and_operators_and_refuses_fixtures() {
        let now_s = u64::try_from(now_ms() / 1000).unwrap();
        let ca = Ca::new("Chain CA", 30).unwrap();
        let reloaded = Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        for leaf in [
            ca.issue_member("ws-cert", 5).unwrap(),
            ca.issue_operator("alice", 5).unwrap(),
            reloaded.issue_member("fj-cert", 5).unwrap(),
        ] {
            rustls_accepts(ca.cert_pem(), &leaf.cert_pem, now_s).unwrap();
        }
        let now = now_ms();
        let m = Subject::Member("ws-cert".into());
        let expired = ca
            .issue_with_validity(&m, now - 10 * DAY_MS, now - DAY_MS)
            .unwrap();
        let err = rustls_accepts(ca.cert_pem(), &expired.cert_pem, now_s).unwrap_err();
        assert!(err.to_lowercase().contains("expired"), "{err}");
        let future = ca
            .issue_with_validity(&m, now + DAY_MS, now + 10 * DAY_MS)
            .unwrap();
        let err = rustls_accepts(ca.cert_pem(), &future.cert_pem, now_s).unwrap_err();
        assert!(err.to_lowercase().contains("not valid yet"), "{err}");
        let rogue = Ca::new("Chain CA", 30)
            .unwrap()
            .issue_member("ws-cert", 5)
            .unwrap();
        assert!(rustls_accepts(ca.cert_pem(), &rogue.cert_pem, now_s).is_err());
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_dir_writes_layout_with_modes_and_refuses_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("pki");
        let opts = InitOptions {
            members: vec!["ws-cert".into(), "fj-cert".into()],
            operators: vec!["alice".into()],
            days: 30,
            negative: true,
            ..InitOptions::default()
        };
        let written = init_dir(&out, &opts).unwrap();
        for f in &written {
            let want = if f.private { 0o600 } else { 0o644 };
            assert_eq!(mode(&f.path), want, "{}", f.path.display());
            let body = std::fs::read_to_string(&f.path).unwrap();
            assert_eq!(
                body.contains("PRIVATE KEY"),
                f.private,
                "{}",
                f.path.display()
            );
        }
        for rel in [
            "ca.pem",
            "ca.key",
            "members/ws-cert.pem",
            "members/fj-cert.key",
            "operators/alice.pem",
            "negative/expired-member.pem",
            "negative/not-yet-valid-member.pem",
            "negative/untrusted-ca.pem",
            "negative/untrusted-member.pem",
            "negative/operator-as-peer.pem",
        ] {
            assert!(out.join(rel).is_file(), "{rel}");
        }
        let expired = std::fs::read_to_string(out.join("negative/expired-member.pem")).unwrap();
        with_cert(&expired, |c| {
            assert!(c.validity().not_after.timestamp() * 1000 < now_ms());
            assert_eq!(sans(c).0, vec!["tanoa://member/ws-cert".to_string()]);
        });
        let future =
            std::fs::read_to_string(out.join("negative/not-yet-valid-member.pem")).unwrap();
        with_cert(&future, |c| {
            assert!(c.validity().not_before.timestamp() * 1000 > now_ms());
        });
        let ca = load_ca_dir(&out).unwrap();
        let rogue = std::fs::read_to_string(out.join("negative/untrusted-member.pem")).unwrap();
        let (ca_der, _) = parse(ca.cert_pem());
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        with_cert(&rogue, |c| {
            assert!(c.verify_signature(Some(ca_cert.public_key())).is_err());
        });
        let again = init_dir(&out, &opts).unwrap_err();
        assert!(matches!(again, PkiError::Exists { .. }), "{again}");
    }

    #[test]
    fn a_ca_key_readable_by_others_is_refused_with_the_chmod_hint() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::new("Test CA", 30).unwrap();
        write_public_pem(&tmp.path().join(CA_CERT_FILE), ca.cert_pem()).unwrap();
        let key = tmp.path().join(CA_KEY_FILE);
        write_private_pem(&key, ca.key_pem()).unwrap();
        assert!(load_ca_dir(tmp.path()).is_ok());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_ca_dir(tmp.path()).map(|_| ()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "key file {k} has mode 644; a private key must be 0600 (run: chmod 600 {k})",
                k = key.display()
            )
        );
    }

    #[test]
    fn write_issued_adds_leaf_and_trust_anchor_without_overwriting() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::new("Test CA", 30).unwrap();
        let op = ca.issue_operator("bob", 3).unwrap();
        let files = write_issued(tmp.path(), &op, Some(ca.cert_pem())).unwrap();
        assert_eq!(files.len(), 3);
        let (c, k) = leaf_paths(tmp.path(), &op.subject);
        assert_eq!(mode(&k), 0o600);
        assert_eq!(mode(&c), 0o644);
        assert_eq!(mode(&tmp.path().join(CA_CERT_FILE)), 0o644);
        let err = write_issued(tmp.path(), &op, Some(ca.cert_pem())).unwrap_err();
        assert!(matches!(err, PkiError::Exists { .. }));
    }

    #[test]
    fn a_self_signed_member_certificate_is_its_own_issuer_and_has_a_stable_pin() {
        let a = self_signed_member("to-cert", 30).unwrap();
        let b = self_signed_member("to-cert", 30).unwrap();
        let der = pem_der(&a.cert_pem, "a").unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(cert.subject(), cert.issuer(), "self-signed");
        assert!(cert.verify_signature(None).is_ok(), "signed by its own key");
        let uris: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(uris, ["tanoa://member/to-cert"]);
        let pin = spki_pin(&a.cert_pem).unwrap();
        assert_eq!(pin, spki_pin(&a.cert_pem).unwrap());
        assert_ne!(pin, spki_pin(&b.cert_pem).unwrap(), "a new key, a new pin");
        assert!(pin.to_string().starts_with("sha256:") && pin.to_string().len() == 71);
        assert!(self_signed_member("bad id", 30).is_err());
        assert!(spki_pin("garbage").is_err());
    }
}
