//! Driving one handshake over tokio and naming its failures: the
//! listener's side ([`accept`]) and the dialer's ([`connect`]).
//!
//! Why its own file: turning OpenSSL's errors and the peer's alerts into
//! "who refused whom and why" is the part users read; it is kept in one
//! place for both sides.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use openssl::ssl::{SslContext, SslRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use super::pin::{Pins, Refusal};
use super::stream::{Peer, PeerStream};
use super::tls::{client_ssl, refusal_of, server_ssl};
use super::{PeerError, ACCEPTED};

/// First byte of a TLS handshake record.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a listener answers, in plain text, to a dialer that does not speak
/// TLS, before closing the connection.
pub const NOT_TLS_ANSWER: &[u8] =
    b"xlreg peer endpoint: speak TLS 1.3 with a member certificate (xlreg::peer)\n";

fn timed_out(what: &str, addr: &str, after: Duration) -> PeerError {
    PeerError::Timeout {
        what: what.into(),
        addr: addr.into(),
        after,
    }
}

/// What a TLS alert received from the peer means for us.
pub fn explain_alert(text: &str) -> Option<String> {
    let t = text.to_ascii_lowercase();
    let why = if t.contains("certificate required") {
        "it requires a certificate and we presented none (only members of the cluster may connect)"
    } else if t.contains("no application protocol") {
        "it does not serve our cluster (it refused our ALPN cluster binding: it belongs to another cluster)"
    } else if t.contains("certificate expired") {
        "it found our certificate expired"
    } else if t.contains("bad certificate")
        || t.contains("certificate unknown")
        || t.contains("unsupported certificate")
    {
        "it did not accept our certificate: our key is not the sig key registered for us in this cluster"
    } else if t.contains("protocol version") {
        "it speaks another TLS version (peers use TLS 1.3 only)"
    } else if t.contains("alert") {
        return Some(format!("TLS alert: {text}"));
    } else {
        return None;
    };
    Some(why.to_string())
}

/// Which end of the handshake we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// We accepted the connection.
    Listener,
    /// We dialed.
    Dialer,
}

/// Name a failed handshake: our own refusal (recorded by the callbacks),
/// the peer's (its alert), or another TLS error. `detail` is OpenSSL's
/// text; `who` the peer's address or description.
pub fn failure(ssl: &SslRef, pins: &Pins, detail: String, who: &str, side: Side) -> PeerError {
    if let Some(why) = refusal_of(ssl) {
        return PeerError::Refused {
            addr: who.into(),
            why,
        };
    }
    if side == Side::Listener && detail.contains("peer did not return a certificate") {
        return PeerError::Refused {
            addr: who.into(),
            why: pins.no_certificate(),
        };
    }
    if let Some(why) = explain_alert(&detail) {
        let peer = match side {
            Side::Listener => format!("dialer {who}"),
            Side::Dialer => who.to_string(),
        };
        return PeerError::RefusedByPeer { peer, why };
    }
    PeerError::Tls {
        what: "in the handshake".into(),
        addr: who.into(),
        detail,
    }
}

/// Check a finished handshake once more (the callbacks already did, but
/// nothing should depend on a callback having run): our cluster binding
/// was agreed and the peer's certificate is pinned. Returns who the peer
/// is.
pub fn established(
    ssl: &SslRef,
    pins: &Pins,
    allow_anonymous: bool,
    who: &str,
) -> Result<Peer, PeerError> {
    let refused = |why: Refusal| PeerError::Refused {
        addr: who.into(),
        why,
    };
    pins.check_alpn_selected(ssl.selected_alpn_protocol())
        .map_err(refused)?;
    match ssl.peer_certificate() {
        Some(c) => {
            let index = pins.check_cert(&c, SystemTime::now()).map_err(refused)?;
            Ok(Peer::Member {
                index,
                name: pins.name_of(index).unwrap_or_default().to_string(),
            })
        }
        None if allow_anonymous => Ok(Peer::Anonymous),
        None => Err(refused(pins.no_certificate())),
    }
}

/// The dialer's reading of the listener's answer after the handshake:
/// `read` is the result of reading one byte into `byte`.
pub fn acceptance(read: std::io::Result<usize>, byte: u8, who: &str) -> Result<(), PeerError> {
    let refused = |why: String| PeerError::RefusedByPeer {
        peer: who.into(),
        why,
    };
    match read {
        Ok(1) if byte == ACCEPTED => Ok(()),
        Ok(0) => Err(refused(
            "it closed the connection after the handshake instead of accepting us".into(),
        )),
        Ok(_) => Err(refused(format!(
            "it sent {byte:#04x} instead of the acceptance byte {ACCEPTED:#04x}"
        ))),
        Err(e) => match explain_alert(&e.to_string()) {
            Some(why) => Err(refused(why)),
            None => Err(PeerError::Io {
                what: "waiting for the acceptance of".into(),
                addr: who.into(),
                source: e,
            }),
        },
    }
}

/// The listener's side: check that the dialer speaks TLS, run the
/// handshake with the pinning callbacks, check the result once more
/// and send [`ACCEPTED`].
pub async fn accept(
    tcp: TcpStream,
    addr: SocketAddr,
    ctx: &SslContext,
    pins: Arc<Pins>,
    allow_anonymous: bool,
    timeout: Duration,
) -> Result<PeerStream, PeerError> {
    let start = Instant::now();
    let a = addr.to_string();
    tokio::time::timeout(
        timeout,
        accept_inner(tcp, addr, ctx, pins, allow_anonymous, start),
    )
    .await
    .map_err(|_| timed_out("waiting for the TLS handshake of", &a, timeout))?
}

async fn accept_inner(
    tcp: TcpStream,
    addr: SocketAddr,
    ctx: &SslContext,
    pins: Arc<Pins>,
    allow_anonymous: bool,
    start: Instant,
) -> Result<PeerStream, PeerError> {
    let a = addr.to_string();
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await.map_err(|e| PeerError::Io {
        what: "reading the first bytes of".into(),
        addr: a.clone(),
        source: e,
    })?;
    if n == 0 {
        return Err(PeerError::Io {
            what: "reading the TLS handshake of".into(),
            addr: a,
            source: std::io::ErrorKind::UnexpectedEof.into(),
        });
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        // Tell a person at `nc` what this port wants; then close.
        let mut tcp = tcp;
        let _ = tcp.write_all(NOT_TLS_ANSWER).await;
        let _ = tcp.shutdown().await;
        return Err(PeerError::NotTls {
            addr: a,
            first_byte: first[0],
        });
    }
    let (ssl, _slot) = server_ssl(ctx, pins.clone(), allow_anonymous)?;
    let mut s = SslStream::new(ssl, tcp).map_err(|e| PeerError::Tls {
        what: "starting the handshake".into(),
        addr: a.clone(),
        detail: e.to_string(),
    })?;
    if let Err(e) = Pin::new(&mut s).accept().await {
        return Err(failure(s.ssl(), &pins, e.to_string(), &a, Side::Listener));
    }
    let peer = established(s.ssl(), &pins, allow_anonymous, &a)?;
    let io = |what: &str| {
        let what = what.to_string();
        let a = a.clone();
        move |e| PeerError::Io {
            what,
            addr: a,
            source: e,
        }
    };
    s.write_all(&[ACCEPTED])
        .await
        .map_err(io("sending the acceptance to"))?;
    s.flush().await.map_err(io("sending the acceptance to"))?;
    Ok(PeerStream::new(s, peer, addr, start.elapsed()))
}

/// The dialer's side, on a connected socket: run the handshake pinning
/// the server to `pins`, check the result once more and wait for the
/// listener's [`ACCEPTED`]. `who` names the peer in messages; `start` is
/// when the TCP connect began.
pub async fn connect(
    tcp: TcpStream,
    ctx: &SslContext,
    pins: Arc<Pins>,
    who: &str,
    start: Instant,
    timeout: Duration,
) -> Result<PeerStream, PeerError> {
    let left = timeout.saturating_sub(start.elapsed());
    tokio::time::timeout(left, connect_inner(tcp, ctx, pins, who, start))
        .await
        .map_err(|_| timed_out("waiting for the TLS handshake with", who, timeout))?
}

async fn connect_inner(
    tcp: TcpStream,
    ctx: &SslContext,
    pins: Arc<Pins>,
    who: &str,
    start: Instant,
) -> Result<PeerStream, PeerError> {
    let addr = tcp.peer_addr().map_err(|e| PeerError::Io {
        what: "connecting to".into(),
        addr: who.into(),
        source: e,
    })?;
    let (ssl, _slot) = client_ssl(ctx, pins.clone())?;
    let mut s = SslStream::new(ssl, tcp).map_err(|e| PeerError::Tls {
        what: "starting the handshake".into(),
        addr: who.into(),
        detail: e.to_string(),
    })?;
    if let Err(e) = Pin::new(&mut s).connect().await {
        return Err(failure(s.ssl(), &pins, e.to_string(), who, Side::Dialer));
    }
    let peer = established(s.ssl(), &pins, false, who)?;
    let mut b = [0u8; 1];
    let r = s.read(&mut b).await;
    acceptance(r, b[0], who)?;
    Ok(PeerStream::new(s, peer, addr, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_explained_in_words() {
        let e = explain_alert("error:0A00045C:SSL routines::tlsv13 alert certificate required")
            .unwrap();
        assert!(e.contains("presented none"), "{e}");
        let e = explain_alert("ssl3_read_bytes:tlsv1 alert no application protocol").unwrap();
        assert!(e.contains("another cluster"), "{e}");
        let e = explain_alert("sslv3 alert bad certificate").unwrap();
        assert!(e.contains("not the sig key registered"), "{e}");
        assert!(explain_alert("sslv3 alert certificate expired")
            .unwrap()
            .contains("expired"));
        assert!(explain_alert("connection reset").is_none());
    }
}
