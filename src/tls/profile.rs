//! The certificate profile both listeners require beyond webpki's chain, validity and
//! revocation checks: the purpose (clientAuth, or serverAuth for a peer's server), the
//! digitalSignature key usage, and one identity URI at most; and the identity a certificate
//! names.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::Identity;
use crate::ids::Eori;

/// Why a certificate that chains and is not revoked is still refused: it is not made for the
/// use it is put to.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("the certificate lacks the {0} extended key usage")]
    Purpose(&'static str),
    #[error("the certificate's key usage lacks digitalSignature")]
    KeyUsage,
    #[error("the certificate names {0} identities (urn:aci:...); it must name exactly one")]
    Identities(usize),
    #[error("the certificate does not parse")]
    Unparsable,
}

impl ProfileError {
    /// A few stable words for the handshake-failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            ProfileError::Purpose(_) | ProfileError::KeyUsage => "wrong_usage",
            ProfileError::Identities(_) => "several_identities",
            ProfileError::Unparsable => "bad_certificate",
        }
    }
}

/// Checks a leaf certificate's profile: the extended key usage `purpose` present (webpki
/// accepts a certificate without any), digitalSignature among its key usages, and at most one
/// identity URI (with two, which one counts would be a guess).
fn check_profile(cert: &CertificateDer<'_>, client: bool) -> Result<(), ProfileError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| ProfileError::Unparsable)?;
    let eku = parsed
        .extended_key_usage()
        .map_err(|_| ProfileError::Unparsable)?;
    let purpose_present = eku.is_some_and(|eku| {
        if client {
            eku.value.client_auth
        } else {
            eku.value.server_auth
        }
    });
    if !purpose_present {
        return Err(ProfileError::Purpose(if client {
            "clientAuth"
        } else {
            "serverAuth"
        }));
    }
    if client {
        let signs = parsed
            .key_usage()
            .map_err(|_| ProfileError::Unparsable)?
            .is_some_and(|ku| ku.value.digital_signature());
        if !signs {
            return Err(ProfileError::KeyUsage);
        }
        let identities = identity_uris(&parsed).len();
        if identities > 1 {
            return Err(ProfileError::Identities(identities));
        }
    }
    Ok(())
}

fn profile_refusal(error: ProfileError) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(error),
    )))
}

/// The handshake-signature methods of a verifier wrapper: webpki's (its `inner`), as they are.
macro_rules! signatures_checked_by_inner {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// The client certificate verifier of both listeners: webpki's chain, validity and revocation
/// checks, then [`check_profile`].
#[derive(Debug)]
pub(super) struct ProfileVerifier {
    pub(super) inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for ProfileVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_profile(end_entity, true).map_err(profile_refusal)?;
        Ok(verified)
    }

    signatures_checked_by_inner!();
}

/// The verifier of peers' server certificates: webpki's checks, then the serverAuth purpose.
#[derive(Debug)]
pub(super) struct ServerProfileVerifier {
    pub(super) inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for ServerProfileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        check_profile(end_entity, false).map_err(profile_refusal)?;
        Ok(verified)
    }

    signatures_checked_by_inner!();
}

/// The certificate's SAN URIs that name an identity of ours.
fn identity_uris<'a>(cert: &'a x509_parser::certificate::X509Certificate<'_>) -> Vec<&'a str> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri)
                if uri.starts_with("urn:aci:carrier:") || uri.starts_with("urn:aci:admin:") =>
            {
                Some(*uri)
            }
            _ => None,
        })
        .collect()
}

/// The identity named by a certificate's SAN URI: none if it names none, or more than one.
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let [uri] = identity_uris(&parsed)[..] else {
        return None;
    };
    if let Some(eori) = uri.strip_prefix("urn:aci:carrier:") {
        Eori::parse(eori).map(Identity::Carrier)
    } else {
        uri.strip_prefix("urn:aci:admin:")
            .filter(|id| !id.is_empty())
            .map(|id| Identity::Admin(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Authority, Validity};
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType};
    use rustls_pki_types::pem::PemObject;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM")
    }

    #[test]
    fn a_peer_server_certificate_needs_server_auth_and_a_client_one_client_auth() {
        let ca = Authority::new("test CA").expect("CA");
        let day = Validity::days(1);
        // The gateway's own certificate serves both ends.
        let gateway = ca
            .issue_gateway(&["localhost"], "urn:aci:admin:GW", day)
            .expect("gateway");
        assert!(check_profile(&der(&gateway.cert_pem), false).is_ok());
        assert!(check_profile(&der(&gateway.cert_pem), true).is_ok());
        // A carrier's certificate is no server's.
        let carrier = ca
            .issue_client("urn:aci:carrier:GB123456789000", day)
            .expect("carrier");
        assert!(check_profile(&der(&carrier.cert_pem), true).is_ok());
        assert!(matches!(
            check_profile(&der(&carrier.cert_pem), false),
            Err(ProfileError::Purpose("serverAuth"))
        ));
        // A server-only certificate is no client's.
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params
            .subject_alt_names
            .push(SanType::URI("urn:aci:admin:GW".try_into().expect("uri")));
        let server_only = ca.sign(params, day).expect("server-only");
        assert!(matches!(
            check_profile(&der(&server_only.cert_pem), true),
            Err(ProfileError::Purpose("clientAuth"))
        ));
        assert!(check_profile(&der(&server_only.cert_pem), false).is_ok());
    }
}
