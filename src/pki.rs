//! A development PKI: two certificate authorities (carriers, peer administrations), the gateway's
//! certificate and a sample carrier's, created on first start so the gateway runs out of the box.
//!
//! Identities are SAN URIs: `urn:aci:carrier:<EORI>` for carriers, `urn:aci:admin:<gateway id>`
//! for administrations. The gateway's certificate is issued by the administrations' CA and serves
//! both listeners (carriers trust that CA to reach the gateway). Tests use [`Authority`] to issue
//! whatever certificates they need, including wrong and expired ones.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

pub const CARRIER_CA_CERT: &str = "carrier-ca.pem";
/// The CA private keys live in their own directory (0700), apart from the gateway's runtime
/// files: `pki issue-carrier` and `pki revoke` use them (and the gateway, only to bring a
/// development PKI of an older layout up to date).
pub const CA_DIR: &str = "ca";
pub const CARRIER_CA_KEY: &str = "ca/carrier-ca.key";
pub const ADMIN_CA_CERT: &str = "admin-ca.pem";
pub const ADMIN_CA_KEY: &str = "ca/admin-ca.key";
/// The carrier CA's revocation list, which the gateway checks at each handshake.
pub const CARRIER_CRL: &str = "carrier-crl.pem";
/// The serials the carrier CA revoked, one per line in hex (what `CARRIER_CRL` is made from).
const CARRIER_REVOKED: &str = "ca/carrier-revoked.txt";
pub const GATEWAY_CERT: &str = "gateway.pem";
pub const GATEWAY_KEY: &str = "gateway.key";
pub const SAMPLE_CARRIER_CERT: &str = "carrier.pem";
pub const SAMPLE_CARRIER_KEY: &str = "carrier.key";
/// The EORI of the sample carrier, as filer in `schemas/examples/`.
pub const SAMPLE_CARRIER_EORI: &str = "GB123456789000";
/// How long the development PKI's leaf certificates (gateway, carriers) are valid.
pub const LEAF_DAYS: i64 = 90;

const FILES: [&str; 9] = [
    CARRIER_CA_CERT,
    CARRIER_CA_KEY,
    ADMIN_CA_CERT,
    ADMIN_CA_KEY,
    CARRIER_CRL,
    GATEWAY_CERT,
    GATEWAY_KEY,
    SAMPLE_CARRIER_CERT,
    SAMPLE_CARRIER_KEY,
];

/// The identity URI of a carrier.
pub fn carrier_uri(eori: &str) -> String {
    format!("urn:aci:carrier:{eori}")
}

/// The identity URI of an administration's gateway.
pub fn admin_uri(gateway_id: &str) -> String {
    format!("urn:aci:admin:{gateway_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir} exists but is not a complete development PKI (missing {missing})")]
    Incomplete { dir: PathBuf, missing: String },
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{0:?} is not a certificate serial number in hex")]
    Serial(String),
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (clock skew) for `days` days.
    pub fn days(days: i64) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }

    /// Ended yesterday.
    pub fn expired() -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
        }
    }
}

/// A certificate authority that can issue leaf certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

impl Authority {
    /// A new self-signed CA, valid for ten years.
    pub fn new(common_name: &str) -> Result<Authority, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let validity = Validity::days(3650);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate()?;
        let key_pem = key.serialize_pem();
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Authority {
            issuer: Issuer::new(params, key),
            cert_pem,
            key_pem,
        })
    }

    /// The CA whose certificate and key are in these PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<Authority, PkiError> {
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| PkiError::Io {
                path: path.to_owned(),
                source,
            })
        };
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        let unreadable = |path: &Path, e: rcgen::Error| PkiError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let signing_key = KeyPair::from_pem(&key_pem).map_err(|e| unreadable(key, e))?;
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, signing_key).map_err(|e| unreadable(cert, e))?;
        Ok(Authority {
            issuer,
            cert_pem,
            key_pem,
        })
    }

    /// A revocation list naming `serials` (big-endian bytes), valid for `days`.
    pub fn crl(&self, serials: &[Vec<u8>], days: i64) -> Result<String, PkiError> {
        let now = OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(days),
            crl_number: rcgen::SerialNumber::from_slice(&now.unix_timestamp().to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(serial),
                    revocation_time: now,
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }

    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A client certificate carrying `uri` as its identity.
    pub fn issue_client(&self, uri: &str, validity: Validity) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(uri);
        params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, validity)
    }

    /// A certificate for a gateway: server for `hosts` (DNS names or IP addresses) and client
    /// with the identity `uri` (a gateway is a client of its peers).
    pub fn issue_gateway(
        &self,
        hosts: &[&str],
        uri: &str,
        validity: Validity,
    ) -> Result<Issued, PkiError> {
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let mut params = CertificateParams::new(hosts)?;
        params.distinguished_name = name(uri);
        params.subject_alt_names.push(SanType::URI(uri.try_into()?));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(params, validity)
    }

    fn issue(&self, mut params: CertificateParams, validity: Validity) -> Result<Issued, PkiError> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.sign(params, validity)
    }

    /// A certificate with exactly `params` (usages, names: nothing added), for tests that need
    /// certificates the gateway must refuse.
    pub fn sign(
        &self,
        mut params: CertificateParams,
        validity: Validity,
    ) -> Result<Issued, PkiError> {
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "aci-gateway development PKI");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Makes sure `dir` holds a complete development PKI, creating it if `dir` does not exist.
/// Returns whether it was created now. A PKI made before the CA keys had a directory of their
/// own, or before it had a revocation list, is brought up to date.
pub fn ensure_dev_pki(dir: &Path, gateway_id: &str) -> Result<bool, PkiError> {
    if dir.exists() {
        upgrade(dir)?;
        let missing: Vec<&str> = FILES
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if missing.is_empty() {
            return Ok(false);
        }
        return Err(PkiError::Incomplete {
            dir: dir.to_owned(),
            missing: missing.join(", "),
        });
    }
    init(dir, gateway_id, &[])?;
    Ok(true)
}

/// Moves CA keys left beside the runtime files into `ca/`, and writes a missing CRL.
fn upgrade(dir: &Path) -> Result<(), PkiError> {
    for key in [CARRIER_CA_KEY, ADMIN_CA_KEY] {
        let Some(name) = Path::new(key).file_name() else {
            continue;
        };
        let (old, new) = (dir.join(name), dir.join(key));
        if old.is_file() && !new.exists() {
            create_private_dir(&dir.join(CA_DIR))?;
            fs::rename(&old, &new).map_err(|source| PkiError::Io { path: old, source })?;
        }
    }
    if !dir.join(CARRIER_CRL).exists() && dir.join(CARRIER_CA_KEY).is_file() {
        write_crl(dir)?;
    }
    Ok(())
}

/// Creates a development PKI in `dir`, which must not exist. The files appear all at once
/// (written to a sibling directory, synced, then renamed into place). The CA keys go to
/// `ca/` (0700), apart from what the gateway reads at run time.
/// The gateway's certificate names localhost and the loopback addresses, and `extra_hosts`
/// (the names peers and carriers reach it by, e.g. a container's service name).
pub fn init(dir: &Path, gateway_id: &str, extra_hosts: &[String]) -> Result<(), PkiError> {
    if dir.exists() {
        return Err(PkiError::Exists(dir.to_owned()));
    }
    let carrier_ca = Authority::new("aci-gateway dev carrier CA")?;
    let admin_ca = Authority::new("aci-gateway dev administrations CA")?;
    let mut hosts = vec!["localhost", "127.0.0.1", "::1"];
    hosts.extend(extra_hosts.iter().map(String::as_str));
    let validity = Validity::days(LEAF_DAYS);
    let gateway = admin_ca.issue_gateway(&hosts, &admin_uri(gateway_id), validity)?;
    let carrier = carrier_ca.issue_client(&carrier_uri(SAMPLE_CARRIER_EORI), validity)?;
    let crl = carrier_ca.crl(&[], CRL_DAYS)?;

    let parent = dir.parent().unwrap_or(Path::new("."));
    create_dir_all(parent)?;
    let staging = parent.join(format!(
        ".{}.partial-{}",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    create_dir_all(&staging)?;
    create_private_dir(&staging.join(CA_DIR))?;
    let files = [
        (CARRIER_CA_CERT, carrier_ca.cert_pem()),
        (CARRIER_CA_KEY, carrier_ca.key_pem().to_owned()),
        (ADMIN_CA_CERT, admin_ca.cert_pem()),
        (ADMIN_CA_KEY, admin_ca.key_pem().to_owned()),
        (CARRIER_CRL, crl),
        (CARRIER_REVOKED, String::new()),
        (GATEWAY_CERT, gateway.cert_pem),
        (GATEWAY_KEY, gateway.key_pem),
        (SAMPLE_CARRIER_CERT, carrier.cert_pem),
        (SAMPLE_CARRIER_KEY, carrier.key_pem),
    ];
    for (file, contents) in &files {
        let secret = file.ends_with(".key") || file.starts_with(CA_DIR);
        write_file(&staging.join(file), contents.as_bytes(), secret)?;
    }
    fs::rename(&staging, dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        source,
    })?;
    Ok(())
}

/// How long a revocation list of the development PKI is valid (it is made anew at each
/// revocation; the gateway does not refuse an outdated one).
const CRL_DAYS: i64 = 30;

/// A carrier certificate issued by the development PKI's carrier CA.
#[derive(Debug)]
pub struct IssuedCarrier {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Its serial number in hex, for `pki revoke`.
    pub serial: String,
}

/// Issues a carrier certificate for `eori` (valid [`LEAF_DAYS`]) into `dir` as
/// `carrier-<EORI>.pem` and `.key`.
pub fn issue_carrier(dir: &Path, eori: &str) -> Result<IssuedCarrier, PkiError> {
    let ca = Authority::load(&dir.join(CARRIER_CA_CERT), &dir.join(CARRIER_CA_KEY))?;
    let issued = ca.issue_client(&carrier_uri(eori), Validity::days(LEAF_DAYS))?;
    let cert = dir.join(format!("carrier-{eori}.pem"));
    let key = dir.join(format!("carrier-{eori}.key"));
    let serial = serial_of(&issued.cert_pem).ok_or_else(|| PkiError::Read {
        path: cert.clone(),
        message: "the new certificate does not parse".into(),
    })?;
    write_file(&cert, issued.cert_pem.as_bytes(), false)?;
    write_file(&key, issued.key_pem.as_bytes(), true)?;
    Ok(IssuedCarrier { cert, key, serial })
}

/// Revokes the carrier certificate with this serial (hex, as `pki issue-carrier` printed it,
/// colons allowed): adds it to the carrier CA's list and writes the CRL anew, which a running
/// gateway reloads by itself. Returns the number of serials now revoked.
pub fn revoke(dir: &Path, serial: &str) -> Result<usize, PkiError> {
    let wanted: String = serial
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if wanted.is_empty() || hex::decode(&wanted).is_err() {
        return Err(PkiError::Serial(serial.to_owned()));
    }
    let list = dir.join(CARRIER_REVOKED);
    let mut serials = revoked(dir)?;
    if !serials.contains(&wanted) {
        serials.push(wanted);
    }
    write_file(&list, (serials.join("\n") + "\n").as_bytes(), true)?;
    write_crl(dir)?;
    Ok(serials.len())
}

/// The serials revoked so far (hex).
fn revoked(dir: &Path) -> Result<Vec<String>, PkiError> {
    let list = dir.join(CARRIER_REVOKED);
    match fs::read_to_string(&list) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(PkiError::Io { path: list, source }),
    }
}

/// Writes the carrier CA's CRL from its list of revoked serials (to a temporary file renamed
/// into place, so a gateway reloading it never reads half of one).
fn write_crl(dir: &Path) -> Result<(), PkiError> {
    let ca = Authority::load(&dir.join(CARRIER_CA_CERT), &dir.join(CARRIER_CA_KEY))?;
    let serials: Vec<Vec<u8>> = revoked(dir)?
        .iter()
        .filter_map(|s| hex::decode(s).ok())
        .collect();
    let crl = ca.crl(&serials, CRL_DAYS)?;
    let path = dir.join(CARRIER_CRL);
    let staging = dir.join(format!(".{CARRIER_CRL}.new"));
    write_file(&staging, crl.as_bytes(), false)?;
    fs::rename(&staging, &path).map_err(|source| PkiError::Io { path, source })
}

/// A PEM certificate's serial number in hex.
pub fn serial_of(cert_pem: &str) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(hex::encode(cert.raw_serial()))
}

fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |source| PkiError::Io {
        path: dir.to_owned(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)
}

fn create_dir_all(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        source,
    })
}

/// Writes a file (private keys readable by the owner only) and syncs it.
pub fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_pki_is_created_once_and_complete() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pki");
        assert!(ensure_dev_pki(&dir, "GB-DEV-1").expect("create"));
        assert!(!ensure_dev_pki(&dir, "GB-DEV-1").expect("reuse"));
        let mode = fs::metadata(dir.join(GATEWAY_KEY))
            .expect("key")
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        fs::remove_file(dir.join(SAMPLE_CARRIER_KEY)).expect("remove");
        let err = ensure_dev_pki(&dir, "GB-DEV-1").expect_err("incomplete");
        assert!(err.to_string().contains(SAMPLE_CARRIER_KEY), "{err}");
        assert!(matches!(init(&dir, "X", &[]), Err(PkiError::Exists(_))));
    }

    #[test]
    fn the_gateway_certificate_names_the_extra_hosts() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pki");
        init(&dir, "GB-A", &["gateway-a".to_owned()]).expect("create");
        let pem = fs::read(dir.join(GATEWAY_CERT)).expect("cert");
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("PEM");
        let cert = pem.parse_x509().expect("X.509");
        let names: Vec<String> = cert
            .subject_alternative_name()
            .expect("SAN")
            .expect("present")
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        for expected in [
            "DNSName(gateway-a)",
            "DNSName(localhost)",
            "URI(urn:aci:admin:GB-A)",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} not in {names:?}"
            );
        }
    }
}
