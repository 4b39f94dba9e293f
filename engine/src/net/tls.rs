//! TLS 1.3 with raw Ed25519 public keys on both sides (wire.md §1).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls13_signature_with_raw_key};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::identity::{NodeId, SecretKey};
use crate::wire::ALPN;

/// The name clients put in the handshake; identity comes from the key, not the name.
pub(super) const SERVER_NAME: &str = "swarm";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified(
    secret: &SecretKey,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(secret.to_pkcs8().into()))?;
    let cert = CertificateDer::from(secret.node_id().to_spki());
    Ok(Arc::new(CertifiedKey::new(vec![cert], key)))
}

/// Server side: present our key, require and check the client's.
pub(super) fn server_config(secret: &SecretKey) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = provider();
    let key = certified(secret, &provider)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(PeerKeyVerifier {
            provider: provider.clone(),
            expected: None,
            seen: None,
        }))
        .with_cert_resolver(Arc::new(
            rustls::server::AlwaysResolvesServerRawPublicKeys::new(key),
        ));
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// Client side: present our key; accept the server's if it is a valid
/// Ed25519 key and, when `expected` is given, exactly that one.
/// `seen` receives the key the server presented, so a mismatch can be
/// reported with both ids.
pub(super) fn client_config(
    secret: &SecretKey,
    expected: Option<NodeId>,
    seen: Arc<std::sync::Mutex<Option<NodeId>>>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = provider();
    let key = certified(secret, &provider)?;
    let verifier = PeerKeyVerifier {
        provider,
        expected,
        seen: Some(seen),
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(verifier.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(
            rustls::client::AlwaysResolvesClientRawPublicKeys::new(key),
        ));
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// The node id a finished handshake authenticated.
pub(super) fn peer_id(conn: &quinn::Connection) -> Option<NodeId> {
    let any = conn.peer_identity()?;
    let certs = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    NodeId::from_spki(certs.first()?.as_ref())
}

/// Checks a raw Ed25519 public key and the handshake signature made with it.
#[derive(Debug)]
struct PeerKeyVerifier {
    provider: Arc<CryptoProvider>,
    expected: Option<NodeId>,
    seen: Option<Arc<std::sync::Mutex<Option<NodeId>>>>,
}

impl PeerKeyVerifier {
    fn check_key(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let id = NodeId::from_spki(cert.as_ref()).ok_or(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ))?;
        if let Some(Ok(mut s)) = self.seen.as_ref().map(|s| s.lock()) {
            *s = Some(id);
        }
        match self.expected {
            Some(want) if want != id => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(()),
        }
    }

    fn verify13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(cert.as_ref()),
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
}

impl ServerCertVerifier for PeerKeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            ));
        }
        self.check_key(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

impl ClientCertVerifier for PeerKeyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            ));
        }
        self.check_key(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}
