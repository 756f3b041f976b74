//! yonder's direct data path: the agent's protocol on a TCP connection of
//! its own, inside TLS 1.3 (rustls on `ring`), past the throughput of one
//! ssh channel.
//!
//! Two ways to trust a connection, one handshake:
//!
//! * **Bootstrapped over ssh** ([`ServerIdentity::generate`] and
//!   [`Acceptor::single_use`]): the agent makes a fresh self-signed
//!   certificate and single-use secrets, and hands the certificate's
//!   SHA-256 and the secrets to the client over the ssh session, which is
//!   already authenticated. The client pins that fingerprint
//!   ([`ClientTls::pinned`]) and proves one secret; the secret is then
//!   spent.
//! * **A standalone listener** (`yonder agent --listen`, [`Acceptor::key`]):
//!   both sides hold a key file. The client takes any certificate
//!   ([`ClientTls::by_key`]) and each side proves the key; the proofs are
//!   bound to the TLS session, so a man in the middle, who runs a TLS
//!   session with each side, can relay neither.
//!
//! The proof is `HMAC-SHA256(key, label || exporter)`, where the exporter
//! is 32 bytes of keying material exported from this TLS session (RFC
//! 8446 §7.5): the client sends its proof as the first 32 bytes inside TLS,
//! the server checks it (before it reads or serves anything else) and
//! answers with its own. Then the agent's protocol starts (`Hello`).
//!
//! Why `ring` rather than `aws-lc-rs`: it builds in seconds here with no
//! cmake, Go or C++ toolchain, and for the macOS and FreeBSD cross checks
//! (which link nothing) its C needs no SDK: `./x cross` gives its build
//! script a compiler that writes empty objects (`.ci/cc-check-only`);
//! aws-lc-rs's cmake build would need the targets' toolchains.

use ring::hmac;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Length of a secret, a key and a proof.
pub const SECRET_LEN: usize = 32;

/// How long a connection has to complete TLS and prove its secret.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const EXPORTER_LABEL: &[u8] = b"EXPORTER-yonder-direct";
const CLIENT_PROOF: &[u8] = b"yonder direct client";
const SERVER_PROOF: &[u8] = b"yonder direct server";

/// The server end of an authenticated direct connection.
pub type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;
/// The client end of an authenticated direct connection.
pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    #[error("making the listener's certificate: {0}")]
    Certificate(String),
    #[error("TLS with {peer}: {source}")]
    Tls { peer: String, source: std::io::Error },
    #[error("{peer}: no proof of the secret within {HANDSHAKE_TIMEOUT:?}")]
    Timeout { peer: String },
    #[error("{peer}: {reason}")]
    Refused { peer: String, reason: String },
    #[error("reading the key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

fn provider() -> Arc<CryptoProvider> {
    // Deprecated for lacking the post-quantum hybrid key exchange, which
    // only aws-lc-rs has; its cmake and C++ build is what `ring` spares the
    // cross checks (see the crate's documentation). X25519 is what most
    // ssh sessions carrying the same data agree on too.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A listener's certificate and TLS configuration.
pub struct ServerIdentity {
    config: Arc<rustls::ServerConfig>,
    fingerprint: [u8; 32],
}

impl ServerIdentity {
    /// A fresh self-signed certificate (ECDSA P-256), never written
    /// anywhere: what the client trusts is its fingerprint, received over
    /// ssh.
    pub fn generate() -> Result<ServerIdentity, DirectError> {
        let failed = |e: &dyn std::fmt::Display| DirectError::Certificate(e.to_string());
        let certified =
            rcgen::generate_simple_self_signed(vec!["yonder".to_string()]).map_err(|e| failed(&e))?;
        let cert = certified.cert.der().clone();
        let fingerprint = sha256(&cert);
        let key = PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| failed(&e))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| failed(&e))?;
        Ok(ServerIdentity {
            config: Arc::new(config),
            fingerprint,
        })
    }

    /// SHA-256 of the certificate's DER.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Fresh random bytes for a secret or a key file.
pub fn random_secret() -> [u8; SECRET_LEN] {
    use ring::rand::SecureRandom;
    let mut secret = [0u8; SECRET_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut secret)
        .expect("the system's random source");
    secret
}

/// Reads a key file: its first [`SECRET_LEN`] bytes or more are the key
/// (`head -c 32 /dev/urandom > FILE`, or `yonder agent --gen-key FILE`).
/// Refused if shorter, or readable by others than its owner.
pub fn read_key_file(path: &std::path::Path) -> Result<Vec<u8>, DirectError> {
    let fail = |reason: String| DirectError::KeyFile {
        path: path.display().to_string(),
        reason,
    };
    let key = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| fail(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(fail(format!(
                "mode {:o} lets others read it; chmod 600 it",
                mode & 0o777
            )));
        }
    }
    if key.len() < SECRET_LEN {
        return Err(fail(format!(
            "{} bytes; a key is at least {SECRET_LEN} random bytes",
            key.len()
        )));
    }
    Ok(key)
}

/// Writes a new random key to `path` (mode 0600), refusing to replace a file.
pub fn write_key_file(path: &std::path::Path) -> Result<(), DirectError> {
    use std::io::Write;
    let fail = |e: std::io::Error| DirectError::KeyFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(&random_secret()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

fn proof(key: &[u8], label: &[u8], exporter: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(label);
    ctx.update(exporter);
    ctx.sign()
}

fn verify_proof(key: &[u8], label: &[u8], exporter: &[u8], given: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut message = label.to_vec();
    message.extend_from_slice(exporter);
    // Constant time.
    hmac::verify(&key, &message, given).is_ok()
}

fn exporter<D>(conn: &rustls::ConnectionCommon<D>, peer: &str) -> Result<[u8; 32], DirectError> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, None)
        .map_err(|e| DirectError::Refused {
            peer: peer.to_string(),
            reason: format!("exporting keying material: {e}"),
        })?;
    Ok(out)
}

/// Which keys a listener accepts.
pub struct Acceptor {
    identity: ServerIdentity,
    keys: Mutex<Keys>,
}

enum Keys {
    /// Each secret once; spent ones are kept to name a replay in the log.
    SingleUse {
        unused: Vec<Vec<u8>>,
        spent: Vec<Vec<u8>>,
    },
    /// The standalone listener's key, for every connection.
    Shared(Vec<u8>),
}

impl Acceptor {
    /// Accepts each of `secrets` once.
    pub fn single_use(identity: ServerIdentity, secrets: Vec<Vec<u8>>) -> Acceptor {
        Acceptor {
            identity,
            keys: Mutex::new(Keys::SingleUse {
                unused: secrets,
                spent: Vec::new(),
            }),
        }
    }

    /// Accepts every connection that proves `key`.
    pub fn key(identity: ServerIdentity, key: Vec<u8>) -> Acceptor {
        Acceptor {
            identity,
            keys: Mutex::new(Keys::Shared(key)),
        }
    }

    /// Secrets not spent yet (a standalone listener's key is never spent).
    pub fn remaining(&self) -> usize {
        match &*self.keys.lock().unwrap() {
            Keys::SingleUse { unused, .. } => unused.len(),
            Keys::Shared(_) => usize::MAX,
        }
    }

    /// Completes TLS on `stream` and checks the client's proof, within
    /// [`HANDSHAKE_TIMEOUT`]; nothing of the agent's protocol is read
    /// before. A secret is spent by the connection that proves it.
    pub async fn accept(&self, stream: TcpStream) -> Result<ServerStream, DirectError> {
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "unknown peer".into());
        let _ = stream.set_nodelay(true);
        self.accept_stream(stream, &peer).await
    }

    /// [`Acceptor::accept`] on any byte stream (`peer` names it in
    /// errors): what the handshake fuzz target drives.
    pub async fn accept_stream<S>(
        &self,
        stream: S,
        peer: &str,
    ) -> Result<tokio_rustls::server::TlsStream<S>, DirectError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.handshake(stream, peer)).await {
            Ok(result) => result,
            Err(_) => Err(DirectError::Timeout {
                peer: peer.to_string(),
            }),
        }
    }

    async fn handshake<S>(
        &self,
        stream: S,
        peer: &str,
    ) -> Result<tokio_rustls::server::TlsStream<S>, DirectError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.identity.config.clone());
        let mut tls = acceptor.accept(stream).await.map_err(|source| DirectError::Tls {
            peer: peer.to_string(),
            source,
        })?;
        let exported = exporter(tls.get_ref().1, peer)?;
        let mut given = [0u8; SECRET_LEN];
        tls.read_exact(&mut given)
            .await
            .map_err(|e| DirectError::Refused {
                peer: peer.to_string(),
                reason: format!("no proof of a secret: {e}"),
            })?;
        let key = self
            .spend(&given, &exported)
            .map_err(|reason| DirectError::Refused {
                peer: peer.to_string(),
                reason,
            })?;
        let ours = proof(&key, SERVER_PROOF, &exported);
        tls.write_all(ours.as_ref())
            .await
            .map_err(|source| DirectError::Tls {
                peer: peer.to_string(),
                source,
            })?;
        tls.flush().await.map_err(|source| DirectError::Tls {
            peer: peer.to_string(),
            source,
        })?;
        Ok(tls)
    }

    /// The key `given` proves, spending it if single-use.
    fn spend(&self, given: &[u8], exported: &[u8]) -> Result<Vec<u8>, String> {
        let mut keys = self.keys.lock().unwrap();
        match &mut *keys {
            Keys::Shared(key) if verify_proof(key, CLIENT_PROOF, exported, given) => Ok(key.clone()),
            Keys::Shared(_) => Err("wrong key".into()),
            Keys::SingleUse { unused, spent } => {
                if let Some(i) = unused
                    .iter()
                    .position(|key| verify_proof(key, CLIENT_PROOF, exported, given))
                {
                    let key = unused.swap_remove(i);
                    spent.push(key.clone());
                    return Ok(key);
                }
                if spent
                    .iter()
                    .any(|key| verify_proof(key, CLIENT_PROOF, exported, given))
                {
                    return Err("a secret already spent (a replayed or second connection)".into());
                }
                Err("wrong secret".into())
            }
        }
    }
}

/// The client's TLS configuration: the server pinned by fingerprint, or
/// any server that proves the shared key.
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// Trusts only the certificate whose SHA-256 is `fingerprint`.
    pub fn pinned(fingerprint: [u8; 32]) -> ClientTls {
        ClientTls::with_verifier(Pinned {
            fingerprint: Some(fingerprint),
            provider: provider(),
        })
    }

    /// Trusts the server by its proof of the key (after TLS), whatever its
    /// certificate.
    pub fn by_key() -> ClientTls {
        ClientTls::with_verifier(Pinned {
            fingerprint: None,
            provider: provider(),
        })
    }

    fn with_verifier(verifier: Pinned) -> ClientTls {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("ring supports TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        ClientTls {
            config: Arc::new(config),
        }
    }

    /// TLS on `stream`, then the proof of `key` both ways.
    pub async fn connect(&self, stream: TcpStream, key: &[u8]) -> Result<ClientStream, DirectError> {
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "unknown peer".into());
        let _ = stream.set_nodelay(true);
        let handshake = async {
            let connector = tokio_rustls::TlsConnector::from(self.config.clone());
            let name = ServerName::try_from("yonder").expect("a valid name");
            let tls_err = |source| DirectError::Tls {
                peer: peer.clone(),
                source,
            };
            let mut tls = connector.connect(name, stream).await.map_err(tls_err)?;
            let exported = exporter(tls.get_ref().1, &peer)?;
            let ours = proof(key, CLIENT_PROOF, &exported);
            tls.write_all(ours.as_ref()).await.map_err(tls_err)?;
            tls.flush().await.map_err(tls_err)?;
            let mut theirs = [0u8; SECRET_LEN];
            tls.read_exact(&mut theirs)
                .await
                .map_err(|_| DirectError::Refused {
                    peer: peer.clone(),
                    reason: "the agent refused the connection (wrong secret or key, or one already spent)"
                        .into(),
                })?;
            if !verify_proof(key, SERVER_PROOF, &exported, &theirs) {
                return Err(DirectError::Refused {
                    peer: peer.clone(),
                    reason: "the server does not know the key".into(),
                });
            }
            Ok(tls)
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(result) => result,
            Err(_) => Err(DirectError::Timeout { peer }),
        }
    }
}

/// A [`ServerCertVerifier`] that trusts one certificate by its SHA-256
/// (or, without a fingerprint, any: the key proof authenticates the
/// server then), and still checks the handshake's signature by it.
#[derive(Debug)]
struct Pinned {
    fingerprint: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.fingerprint {
            Some(pinned) if sha256(end_entity) != pinned => Err(rustls::Error::General(
                "the agent's certificate is not the one it announced over ssh".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not spoken".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
