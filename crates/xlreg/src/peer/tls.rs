//! The OpenSSL side: TLS 1.3-only contexts carrying the member's
//! certificate, and per-connection `Ssl`s whose callbacks apply the
//! pinning rules of [`super::pin`].
//!
//! Why separate from the async code: a binding (Python) or a blocking
//! program can take these contexts and drive `openssl::ssl::SslStream`
//! itself; the rules stay the same.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use openssl::ex_data::Index;
use openssl::ssl::{
    AlpnError, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslRef,
    SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::{X509StoreContextRef, X509VerifyResult};

use super::cert::{LocalCert, CERT_VALIDITY};
use super::pin::{split_alpn, Pins, Refusal};
use super::CLOCK_SKEW;
use super::{alpn_wire, PeerError};
use crate::wire::PrivateKey;

/// Where the callbacks of one connection record why they refused the peer
/// (the first reason wins).
pub type RefusalSlot = Arc<Mutex<Option<Refusal>>>;

/// OpenSSL security level: 1 accepts RSA keys from 1024 bits, the smallest
/// the project's test clusters use. Members choose their key size when they
/// register; production members use 2048 bits or more.
pub const SECURITY_LEVEL: u32 = 1;

/// TLS 1.3 cipher suites in order of preference. AES-128-GCM first: on
/// CPUs with AES-NI it is at least as fast as AES-256-GCM (fewer rounds),
/// and both ends are xlreg, so the listener's order decides.
pub const CIPHERSUITES: &str =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/// OpenSSL's read buffer per connection, with read-ahead on: room for four
/// full records, so that a bulk receiver reads the socket in large pieces
/// instead of a 5-byte record header and then its body.
pub const READ_BUFFER: usize = 4 * (16 * 1024 + 512);

extern "C" {
    // In libssl since 1.1.0 (not bound by openssl-sys).
    fn SSL_CTX_set_default_read_buffer_len(ctx: *mut openssl_sys::SSL_CTX, len: usize);
}

fn tls_err(what: &str) -> impl FnOnce(openssl::error::ErrorStack) -> PeerError + '_ {
    move |e| PeerError::Setup {
        what: what.to_string(),
        detail: e.to_string(),
    }
}

fn slot_index() -> Result<Index<Ssl, RefusalSlot>, PeerError> {
    static I: OnceLock<Result<Index<Ssl, RefusalSlot>, String>> = OnceLock::new();
    I.get_or_init(|| Ssl::new_ex_index().map_err(|e| e.to_string()))
        .clone()
        .map_err(|detail| PeerError::Setup {
            what: "OpenSSL ex-data".into(),
            detail,
        })
}

fn record(ssl: &SslRef, r: Refusal) {
    if let Ok(i) = slot_index() {
        if let Some(slot) = ssl.ex_data(i) {
            let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
            g.get_or_insert(r);
        }
    }
}

/// Why this connection's callbacks refused the peer, if they did.
pub fn refusal_of(ssl: &SslRef) -> Option<Refusal> {
    let slot = ssl.ex_data(slot_index().ok()?)?;
    let g = slot.lock().unwrap_or_else(|p| p.into_inner());
    g.clone()
}

fn base(method: SslMethod, cert: Option<&LocalCert>) -> Result<SslContextBuilder, PeerError> {
    let mut b = SslContextBuilder::new(method).map_err(tls_err("the TLS context"))?;
    b.set_min_proto_version(Some(SslVersion::TLS1_3))
        .map_err(tls_err("TLS 1.3"))?;
    b.set_max_proto_version(Some(SslVersion::TLS1_3))
        .map_err(tls_err("TLS 1.3"))?;
    b.set_security_level(SECURITY_LEVEL);
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    b.set_ciphersuites(CIPHERSUITES)
        .map_err(tls_err("the cipher suites"))?;
    b.set_read_ahead(true);
    // SAFETY: the context pointer is live (owned by `b`); the call only
    // stores a size that OpenSSL uses when it allocates read buffers.
    unsafe { SSL_CTX_set_default_read_buffer_len(b.as_ptr(), READ_BUFFER) };
    if let Some(c) = cert {
        b.set_certificate(c.cert())
            .map_err(tls_err("the certificate"))?;
        b.set_private_key(c.key())
            .map_err(tls_err("the private key"))?;
        b.check_private_key()
            .map_err(tls_err("the certificate's key"))?;
    }
    Ok(b)
}

/// The listener's context: our certificate, TLS 1.3 only, no tickets, and
/// an ALPN callback that selects `xlreg/1/<cluster>` or refuses the
/// dialer. Peer certificates are checked per connection ([`server_ssl`]).
pub fn server_context(cert: &LocalCert, pins: Arc<Pins>) -> Result<SslContext, PeerError> {
    let mut b = base(SslMethod::tls_server(), Some(cert))?;
    b.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
    b.set_num_tickets(0).map_err(tls_err("session tickets"))?;
    b.set_session_id_context(b"xlreg-peer")
        .map_err(tls_err("the session context"))?;
    b.set_alpn_select_callback(move |ssl, client| {
        let offered = split_alpn(client);
        match pins.check_alpn_offer(&offered) {
            Ok(p) => Ok(p),
            Err(r) => {
                record(ssl, r);
                Err(AlpnError::ALERT_FATAL)
            }
        }
    });
    Ok(b.build())
}

/// The dialer's context: our certificate (none for an anonymous client),
/// TLS 1.3 only.
pub fn client_context(cert: Option<&LocalCert>) -> Result<SslContext, PeerError> {
    Ok(base(SslMethod::tls_client(), cert)?.build())
}

fn verify_callback(
    pins: Arc<Pins>,
    slot: RefusalSlot,
) -> impl Fn(bool, &mut X509StoreContextRef) -> bool + Send + Sync + 'static {
    move |_openssl_ok, ctx| {
        // Only the leaf matters: trust comes from its pinned key, not from
        // a chain (a self-signed certificate never verifies as a chain).
        if ctx.error_depth() != 0 {
            return true;
        }
        let verdict = match ctx.current_cert() {
            None => Err(pins.no_certificate()),
            Some(c) => pins.check_cert(c, SystemTime::now()),
        };
        match verdict {
            Ok(_) => true,
            Err(r) => {
                let code = match r {
                    Refusal::Expired { .. } => 10, // X509_V_ERR_CERT_HAS_EXPIRED
                    _ => 28,                       // X509_V_ERR_CERT_REJECTED
                };
                // SAFETY: both are valid X509_V_ERR codes; from_raw only
                // wraps the integer.
                ctx.set_error(unsafe { X509VerifyResult::from_raw(code) });
                let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
                g.get_or_insert(r);
                false
            }
        }
    }
}

fn new_ssl(ctx: &SslContext) -> Result<(Ssl, RefusalSlot), PeerError> {
    let mut ssl = Ssl::new(ctx).map_err(tls_err("a connection"))?;
    let slot: RefusalSlot = Arc::new(Mutex::new(None));
    ssl.set_ex_data(slot_index()?, slot.clone());
    Ok((ssl, slot))
}

/// A listener-side connection: the dialer must present a certificate
/// whose key is in `pins` (or none at all when `allow_anonymous`).
pub fn server_ssl(
    ctx: &SslContext,
    pins: Arc<Pins>,
    allow_anonymous: bool,
) -> Result<(Ssl, RefusalSlot), PeerError> {
    let (mut ssl, slot) = new_ssl(ctx)?;
    let mut mode = SslVerifyMode::PEER;
    if !allow_anonymous {
        mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
    }
    ssl.set_verify_callback(mode, verify_callback(pins, slot.clone()));
    Ok((ssl, slot))
}

/// A dialer-side connection: offers only our cluster's ALPN name and
/// accepts only a certificate whose key is in `pins`.
pub fn client_ssl(ctx: &SslContext, pins: Arc<Pins>) -> Result<(Ssl, RefusalSlot), PeerError> {
    let (mut ssl, slot) = new_ssl(ctx)?;
    ssl.set_alpn_protos(&alpn_wire(&pins.cluster_id))
        .map_err(tls_err("ALPN"))?;
    ssl.set_verify_callback(SslVerifyMode::PEER, verify_callback(pins, slot.clone()));
    Ok((ssl, slot))
}

type BuildContext = dyn Fn(Option<&LocalCert>) -> Result<SslContext, PeerError> + Send + Sync;

/// A TLS context and the certificate in it, rebuilt with a fresh
/// certificate once half of the old one's validity has passed, so that
/// long-lived listeners and connectors never present an expired one.
#[derive(Clone)]
pub struct RenewingContext {
    state: Arc<Mutex<(Option<LocalCert>, SslContext)>>,
    /// Key and name to make new certificates from; `None` keeps the
    /// certificate given (or none) as it is.
    renew: Option<(PrivateKey, String)>,
    build: Arc<BuildContext>,
}

impl RenewingContext {
    /// A context presenting `cert`, built by `build`; renewed from
    /// `renew` (the node's sig key and name) when given.
    pub fn new(
        cert: Option<LocalCert>,
        renew: Option<(PrivateKey, String)>,
        build: impl Fn(Option<&LocalCert>) -> Result<SslContext, PeerError> + Send + Sync + 'static,
    ) -> Result<Self, PeerError> {
        let ctx = build(cert.as_ref())?;
        Ok(RenewingContext {
            state: Arc::new(Mutex::new((cert, ctx))),
            renew,
            build: Arc::new(build),
        })
    }

    /// The certificate presented now.
    pub fn cert(&self) -> Option<LocalCert> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0.clone()
    }

    /// The current context (renewing the certificate first if due).
    pub fn get(&self) -> Result<SslContext, PeerError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some((key, name)), Some(cert)) = (&self.renew, &st.0) {
            if cert.needs_renewal() {
                let now = SystemTime::now();
                let fresh = if cert.is_bound() {
                    LocalCert::bound_with(key, name, now - CLOCK_SKEW, now + CERT_VALIDITY)?
                } else {
                    LocalCert::generate_with(key, name, now - CLOCK_SKEW, now + CERT_VALIDITY)?
                };
                let ctx = (self.build)(Some(&fresh))?;
                *st = (Some(fresh), ctx);
            }
        }
        Ok(st.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::test_keys;
    use std::time::Duration;

    #[test]
    fn a_certificate_past_half_life_is_replaced_and_a_fixed_one_is_kept() {
        let key = &test_keys().1;
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let old = LocalCert::generate_with(key, "m", now - 3 * hour, now + hour).unwrap();
        let serial = |c: &LocalCert| c.cert().serial_number().to_bn().unwrap().to_vec();
        let r = RenewingContext::new(
            Some(old.clone()),
            Some((key.clone(), "m".into())),
            client_context,
        )
        .unwrap();
        r.get().unwrap();
        let fresh = r.cert().unwrap();
        assert_ne!(serial(&fresh), serial(&old));
        assert!(!fresh.needs_renewal());
        let fixed = RenewingContext::new(Some(old.clone()), None, client_context).unwrap();
        fixed.get().unwrap();
        assert_eq!(serial(&fixed.cert().unwrap()), serial(&old));
    }
}
