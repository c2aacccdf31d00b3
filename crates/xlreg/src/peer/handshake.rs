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

use openssl::ssl::SslContext;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use super::pin::{Pins, Refusal};
use super::stream::{Peer, PeerStream};
use super::tls::{client_ssl, refusal_of, server_ssl};
use super::{PeerError, ACCEPTED};

/// First byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

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
        let detail = e.to_string();
        if let Some(why) = refusal_of(s.ssl()) {
            return Err(PeerError::Refused { addr: a, why });
        }
        if detail.contains("peer did not return a certificate") {
            return Err(PeerError::Refused {
                addr: a,
                why: pins.no_certificate(),
            });
        }
        if let Some(why) = explain_alert(&detail) {
            return Err(PeerError::RefusedByPeer {
                peer: format!("dialer {a}"),
                why,
            });
        }
        return Err(PeerError::Tls {
            what: "in the handshake".into(),
            addr: a,
            detail,
        });
    }
    // The callbacks already checked both; check again on the result, so
    // that nothing depends on a callback having run.
    let refused = |why: Refusal| PeerError::Refused {
        addr: a.clone(),
        why,
    };
    pins.check_alpn_selected(s.ssl().selected_alpn_protocol())
        .map_err(refused)?;
    let peer = match s.ssl().peer_certificate() {
        Some(c) => {
            let index = pins.check_cert(&c, SystemTime::now()).map_err(refused)?;
            Peer::Member {
                index,
                name: pins.name_of(index).unwrap_or_default().to_string(),
            }
        }
        None if allow_anonymous => Peer::Anonymous,
        None => return Err(refused(pins.no_certificate())),
    };
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
        let detail = e.to_string();
        if let Some(why) = refusal_of(s.ssl()) {
            return Err(PeerError::Refused {
                addr: who.into(),
                why,
            });
        }
        if let Some(why) = explain_alert(&detail) {
            return Err(PeerError::RefusedByPeer {
                peer: who.into(),
                why,
            });
        }
        return Err(PeerError::Tls {
            what: "in the handshake".into(),
            addr: who.into(),
            detail,
        });
    }
    let refused = |why: Refusal| PeerError::Refused {
        addr: who.into(),
        why,
    };
    pins.check_alpn_selected(s.ssl().selected_alpn_protocol())
        .map_err(refused)?;
    let cert = s
        .ssl()
        .peer_certificate()
        .ok_or_else(|| refused(pins.no_certificate()))?;
    let index = pins.check_cert(&cert, SystemTime::now()).map_err(refused)?;
    let mut b = [0u8; 1];
    match s.read(&mut b).await {
        Ok(1) if b[0] == ACCEPTED => {}
        Ok(0) => {
            return Err(PeerError::RefusedByPeer {
                peer: who.into(),
                why: "it closed the connection after the handshake instead of accepting us".into(),
            })
        }
        Ok(_) => {
            return Err(PeerError::RefusedByPeer {
                peer: who.into(),
                why: format!(
                    "it sent {:#04x} instead of the acceptance byte {ACCEPTED:#04x}",
                    b[0]
                ),
            })
        }
        Err(e) => {
            let detail = e.to_string();
            return Err(match explain_alert(&detail) {
                Some(why) => PeerError::RefusedByPeer {
                    peer: who.into(),
                    why,
                },
                None => PeerError::Io {
                    what: "waiting for the acceptance of".into(),
                    addr: who.into(),
                    source: e,
                },
            });
        }
    }
    let peer = Peer::Member {
        index,
        name: pins.name_of(index).unwrap_or_default().to_string(),
    };
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
