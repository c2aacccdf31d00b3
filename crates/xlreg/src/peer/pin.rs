//! The pinning rules: which peer certificates and cluster bindings are
//! accepted, as pure functions of the registry's view.
//!
//! Why pure: the rules are the security of the channel, so they are
//! tested here one by one, apart from sockets and OpenSSL callbacks; the
//! TLS layer ([`super::tls`]) only calls them.

use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::x509::{X509Ref, X509};

use super::delegation::{binding_extension, parse_binding};
use super::CLOCK_SKEW;
use super::{alpn_binds, ALPN_PREFIX, ALPN_PREFIX_V1};

/// What [`Refusal::WrongCluster`] says of a cluster known only by its keyed
/// hash.
pub const UNKNOWN_CLUSTER: &str = "another one (its keyed hash does not match ours)";
use super::verified::{Proven, ProvenBinding};
use crate::client::MemberInfo;
use crate::wire::crypto::sha256_hex;
use crate::wire::NodeId;

fn sha256(data: &[u8]) -> Option<[u8; 32]> {
    let d = openssl::hash::hash(openssl::hash::MessageDigest::sha256(), data).ok()?;
    d.as_ref().try_into().ok()
}

/// Why a peer was refused. The text says what was wrong with what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The peer presented no certificate.
    #[error("it presented no certificate (only members of cluster {cluster} may connect)")]
    NoCertificate {
        /// Cluster ID (hex).
        cluster: String,
    },
    /// The certificate's key is not a registered sig key we accept here.
    #[error(
        "its certificate key (SPKI sha256 {sha256}) is not the registered sig key of {expected}"
    )]
    KeyNotPinned {
        /// SHA-256 of the certificate's SubjectPublicKeyInfo DER, hex.
        sha256: String,
        /// Whom we expected (`member 2 (m02) of cluster …`).
        expected: String,
    },
    /// The certificate's validity ended.
    #[error("its certificate expired at {not_after}")]
    Expired {
        /// The certificate's notAfter.
        not_after: String,
    },
    /// The certificate's validity has not started (beyond the allowed skew).
    #[error("its certificate is not valid before {not_before}")]
    NotYetValid {
        /// The certificate's notBefore.
        not_before: String,
    },
    /// The certificate's key is not the sig key but carries a key binding
    /// that does not hold (forged, for another key, unreadable).
    #[error("its certificate key is not bound to the registered sig key of {expected}: {why}")]
    BadKeyBinding {
        /// What is wrong with the binding.
        why: String,
        /// Whom we expected.
        expected: String,
    },
    /// The certificate is not signed by its own key.
    #[error("its certificate is not self-signed by its key")]
    BadSelfSignature,
    /// The certificate could not be parsed.
    #[error("its certificate is unreadable: {0}")]
    Unreadable(String),
    /// The peer did not bind the connection to any cluster (no
    /// `xlreg/2/…` ALPN protocol).
    #[error("it did not bind the connection to a cluster (no ALPN {ALPN_PREFIX}<nonce><keyed hash of the cluster ID>; offered {offered})")]
    NoClusterBinding {
        /// What it offered, printable.
        offered: String,
    },
    /// The peer bound the connection to another cluster.
    #[error("it is bound to cluster {theirs}, this is cluster {ours}")]
    WrongCluster {
        /// The cluster it named: [`UNKNOWN_CLUSTER`] (the binding is a keyed
        /// hash, which does not say which cluster), or the ID an older
        /// `xlreg/1/<id>` dialer named in clear.
        theirs: String,
        /// Ours.
        ours: String,
    },
}

/// One accepted key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedKey {
    /// Member index in the cluster.
    pub index: usize,
    /// Member name.
    pub name: String,
    /// The member's registered sig key, SPKI DER.
    pub spki: Vec<u8>,
}

/// The keys a connection may present, and the cluster it must be bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pins {
    /// The cluster.
    pub cluster_id: NodeId,
    /// Accepted keys.
    pub keys: Vec<PinnedKey>,
    /// Whom these keys stand for, for messages.
    pub expected: String,
}

fn pinned(m: &MemberInfo) -> PinnedKey {
    PinnedKey {
        index: m.index,
        name: m.name.clone(),
        spki: m.sig_key.to_spki_der(),
    }
}

impl Pins {
    /// Every member of the cluster (what a listener accepts).
    pub fn all_members(cluster_id: NodeId, members: &[MemberInfo]) -> Self {
        Pins {
            cluster_id,
            keys: members.iter().map(pinned).collect(),
            expected: format!("any member of cluster {cluster_id}"),
        }
    }

    /// Exactly one member (what a dialer accepts from the member it dials).
    pub fn one_member(cluster_id: NodeId, member: &MemberInfo) -> Self {
        Pins {
            cluster_id,
            keys: vec![pinned(member)],
            expected: format!(
                "member {} ({}) of cluster {cluster_id}",
                member.index, member.name
            ),
        }
    }

    /// The member a key belongs to, if it is accepted.
    pub fn index_of(&self, spki: &[u8]) -> Option<usize> {
        self.keys.iter().find(|k| k.spki == spki).map(|k| k.index)
    }

    /// The name of an accepted member.
    pub fn name_of(&self, index: usize) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.index == index)
            .map(|k| k.name.as_str())
    }

    /// Check a peer certificate at time `now`: its key must be pinned, it
    /// must be self-signed by that key and valid now (allowing
    /// [`CLOCK_SKEW`] for a clock ahead of ours). Returns the member index.
    ///
    /// The signature checks (self-signature, key binding) are pure
    /// functions of the certificate's bytes and the signer's key, so a
    /// certificate that passed them once is remembered by the SHA-256 of
    /// its DER (`verified.rs`); every call still decides against
    /// *these* pins (is the signer registered here?) and `now` (validity,
    /// end of the binding). A member presents the same certificate for
    /// hours, so a peer's repeated handshakes skip the ECDSA and RSA-PSS
    /// verifications of it.
    pub fn check_cert(&self, cert: &X509Ref, now: SystemTime) -> Result<usize, Refusal> {
        let digest = super::verified::digest(cert);
        let proven = match digest.as_ref().and_then(super::verified::get) {
            Some(p) => p,
            None => {
                let p = std::sync::Arc::new(self.prove(cert, now)?);
                if let Some(d) = digest {
                    super::verified::put(d, p.clone());
                }
                p
            }
        };
        let index = self.decide(&proven, now)?;
        let at = |t: SystemTime| {
            let secs = match t.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_secs() as i64,
                Err(_) => 0,
            };
            Asn1Time::from_unix(secs as _).map_err(|e| Refusal::Unreadable(e.to_string()))
        };
        let now_t = at(now)?;
        let late = cert
            .not_after()
            .compare(&now_t)
            .map_err(|e| Refusal::Unreadable(format!("notAfter: {e}")))?;
        if late == std::cmp::Ordering::Less {
            return Err(Refusal::Expired {
                not_after: cert.not_after().to_string(),
            });
        }
        let soon = at(now + CLOCK_SKEW)?;
        let early = cert
            .not_before()
            .compare(&soon)
            .map_err(|e| Refusal::Unreadable(format!("notBefore: {e}")))?;
        if early == std::cmp::Ordering::Greater {
            return Err(Refusal::NotYetValid {
                not_before: cert.not_before().to_string(),
            });
        }
        Ok(index)
    }

    /// The signature checks of `cert` (no cache): its key is pinned or
    /// carries a binding a pinned key signed, and the certificate is
    /// self-signed by its key. What passed, for [`decide`](Self::decide).
    fn prove(&self, cert: &X509Ref, now: SystemTime) -> Result<Proven, Refusal> {
        let key = cert
            .public_key()
            .map_err(|e| Refusal::Unreadable(format!("public key: {e}")))?;
        let spki = key
            .public_key_to_der()
            .map_err(|e| Refusal::Unreadable(format!("public key: {e}")))?;
        let binding = match self.index_of(&spki) {
            Some(_) => None,
            None => Some(self.check_binding(cert, &spki, now)?),
        };
        match cert.verify(&key) {
            Ok(true) => {}
            _ => return Err(Refusal::BadSelfSignature),
        }
        Ok(Proven { spki, binding })
    }

    /// Decide on proven signatures with these pins at `now`: the
    /// certificate key is pinned, or the key that signed its binding is
    /// and the binding has not ended. Returns the member index.
    fn decide(&self, p: &Proven, now: SystemTime) -> Result<usize, Refusal> {
        if let Some(index) = self.index_of(&p.spki) {
            return Ok(index);
        }
        let Some(b) = &p.binding else {
            return Err(Refusal::KeyNotPinned {
                sha256: sha256_hex(&p.spki),
                expected: self.expected.clone(),
            });
        };
        let signer = self
            .keys
            .iter()
            .find(|k| k.spki == b.signer_spki)
            .ok_or_else(|| Refusal::KeyNotPinned {
                sha256: sha256_hex(&b.signer_spki),
                expected: self.expected.clone(),
            })?;
        if b.not_after < now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) {
            let end = Asn1Time::from_unix(b.not_after.min(i64::MAX as u64) as i64 as _)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| b.not_after.to_string());
            return Err(Refusal::Expired { not_after: end });
        }
        Ok(signer.index)
    }

    /// A certificate whose key is not a pinned key itself: its key binding
    /// must be signed by a pinned key, for this certificate key, and not
    /// have ended. Returns what was proven: the signer and the end.
    fn check_binding(
        &self,
        cert: &X509Ref,
        spki: &[u8],
        now: SystemTime,
    ) -> Result<ProvenBinding, Refusal> {
        let bad = |why: String| Refusal::BadKeyBinding {
            why,
            expected: self.expected.clone(),
        };
        let der = match binding_extension(cert).map_err(bad)? {
            Some(der) => der,
            None => {
                return Err(Refusal::KeyNotPinned {
                    sha256: sha256_hex(spki),
                    expected: self.expected.clone(),
                })
            }
        };
        let b = parse_binding(&der).map_err(bad)?;
        let signer = self
            .keys
            .iter()
            .find(|k| sha256(&k.spki) == Some(b.signer_sha256))
            .ok_or_else(|| Refusal::KeyNotPinned {
                sha256: hex::encode(b.signer_sha256),
                expected: self.expected.clone(),
            })?;
        let signer_key = openssl::pkey::PKey::public_key_from_der(&signer.spki)
            .map_err(|e| bad(format!("the registered key is unreadable: {e}")))?;
        if !b.verify(&signer_key, spki) {
            return Err(bad(format!(
                "the binding's signature does not verify with the sig key of member {} ({}) for this certificate key",
                signer.index, signer.name
            )));
        }
        if b.ended(now) {
            let end = Asn1Time::from_unix(b.not_after.min(i64::MAX as u64) as i64 as _)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| b.not_after.to_string());
            return Err(Refusal::Expired { not_after: end });
        }
        Ok(ProvenBinding {
            signer_spki: signer.spki.clone(),
            not_after: b.not_after,
        })
    }

    /// [`check_cert`](Self::check_cert) on a DER certificate (what
    /// Python's `getpeercert(binary_form=True)` returns), at the current
    /// time.
    pub fn check_der(&self, der: &[u8]) -> Result<usize, Refusal> {
        let cert = X509::from_der(der).map_err(|e| Refusal::Unreadable(e.to_string()))?;
        self.check_cert(&cert, SystemTime::now())
    }

    /// Check the ALPN protocols a dialer offered (a list of names): ours
    /// must be among them. Returns our protocol name, to select it.
    pub fn check_alpn_offer<'a>(&self, offered: &[&'a [u8]]) -> Result<&'a [u8], Refusal> {
        if let Some(p) = offered.iter().find(|p| alpn_binds(p, &self.cluster_id)) {
            return Ok(p);
        }
        if offered
            .iter()
            .any(|p| p.starts_with(ALPN_PREFIX.as_bytes()))
        {
            return Err(Refusal::WrongCluster {
                theirs: UNKNOWN_CLUSTER.into(),
                ours: self.cluster_id.to_hex(),
            });
        }
        let ours_v1 = format!("{ALPN_PREFIX_V1}{}", self.cluster_id.to_hex());
        if let Some(p) = offered
            .iter()
            .find(|p| p.starts_with(ALPN_PREFIX_V1.as_bytes()) && **p != ours_v1.as_bytes())
        {
            return Err(Refusal::WrongCluster {
                theirs: String::from_utf8_lossy(&p[ALPN_PREFIX_V1.len()..]).into_owned(),
                ours: self.cluster_id.to_hex(),
            });
        }
        Err(Refusal::NoClusterBinding {
            offered: printable_list(offered),
        })
    }

    /// Check the protocol the TLS handshake ended with (`None` if none was
    /// agreed): it must be ours.
    pub fn check_alpn_selected(&self, selected: Option<&[u8]>) -> Result<(), Refusal> {
        match selected {
            Some(p) => self.check_alpn_offer(&[p]).map(|_| ()),
            None => Err(Refusal::NoClusterBinding {
                offered: "nothing".into(),
            }),
        }
    }

    /// The refusal for a missing certificate.
    pub fn no_certificate(&self) -> Refusal {
        Refusal::NoCertificate {
            cluster: self.cluster_id.to_hex(),
        }
    }
}

/// Split an ALPN wire-format list (length-prefixed names) into names.
/// A malformed list yields the names before the malformation.
pub fn split_alpn(mut wire: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((&n, rest)) = wire.split_first() {
        let n = n as usize;
        if n == 0 || rest.len() < n {
            break;
        }
        out.push(&rest[..n]);
        wire = &rest[n..];
    }
    out
}

fn printable_list(names: &[&[u8]]) -> String {
    if names.is_empty() {
        return "nothing".into();
    }
    names
        .iter()
        .map(|n| format!("{:?}", String::from_utf8_lossy(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::cert::LocalCert;
    use crate::wire::crypto::test_keys;
    use crate::wire::PrivateKey;
    use std::time::Duration;

    fn cid(b: u8) -> NodeId {
        NodeId::from_bytes(&[b; 20]).unwrap()
    }

    fn member(index: usize, sig: &PrivateKey) -> MemberInfo {
        MemberInfo {
            index,
            name: format!("m{index}"),
            id: cid(index as u8),
            attrs: 0,
            endpoints: vec![],
            comms_key: test_keys().0.public(),
            sig_key: sig.public(),
        }
    }

    fn cert(key: &PrivateKey, from: SystemTime, to: SystemTime) -> LocalCert {
        LocalCert::generate_with(key, "m", from, to).unwrap()
    }

    fn now() -> SystemTime {
        SystemTime::now()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn registered_sig_key_is_accepted_and_names_its_member() {
        let k = &test_keys().1;
        let pins = Pins::all_members(cid(9), &[member(0, &test_keys().0), member(3, k)]);
        let c = cert(k, now() - HOUR, now() + HOUR);
        assert_eq!(pins.check_cert(c.cert(), now()), Ok(3));
        assert_eq!(pins.check_der(&c.cert().to_der().unwrap()), Ok(3));
        assert_eq!(pins.name_of(3), Some("m3"));
    }

    #[test]
    fn a_key_that_is_not_registered_is_refused_with_its_fingerprint() {
        let other = PrivateKey::generate(1024).unwrap();
        let pins = Pins::one_member(cid(9), &member(2, &test_keys().1));
        let c = cert(&other, now() - HOUR, now() + HOUR);
        let r = pins.check_cert(c.cert(), now()).unwrap_err();
        assert_eq!(
            r,
            Refusal::KeyNotPinned {
                sha256: other.public().fingerprint(),
                expected: format!("member 2 (m2) of cluster {}", cid(9)),
            }
        );
        // The comms key is registered too, but it is not the sig key.
        let c = cert(&test_keys().0, now() - HOUR, now() + HOUR);
        assert!(matches!(
            pins.check_cert(c.cert(), now()),
            Err(Refusal::KeyNotPinned { .. })
        ));
    }

    #[test]
    fn a_bound_certificate_is_accepted_for_its_signer_and_forgeries_are_refused() {
        use crate::peer::delegation::sign_binding;
        let (k0, k1) = (&test_keys().0, &test_keys().1);
        let pins = Pins::all_members(cid(9), &[member(0, k0), member(3, k1)]);
        let end = now() + HOUR;
        let c = LocalCert::bound_with(k1, "m", now() - HOUR, end).unwrap();
        assert_eq!(pins.check_cert(c.cert(), now()), Ok(3));
        // Signed by a key that is not registered: refused with its fingerprint.
        let other = PrivateKey::generate(1024).unwrap();
        let c = LocalCert::bound_with(&other, "m", now() - HOUR, end).unwrap();
        assert_eq!(
            pins.check_cert(c.cert(), now()),
            Err(Refusal::KeyNotPinned {
                sha256: other.public().fingerprint(),
                expected: format!("any member of cluster {}", cid(9)),
            })
        );
        // A genuine binding copied onto another key: refused.
        let genuine = LocalCert::bound_with(k1, "m", now() - HOUR, end).unwrap();
        let der = crate::peer::delegation::binding_extension(genuine.cert())
            .unwrap()
            .unwrap();
        let fresh = LocalCert::bound_with(k1, "m", now() - HOUR, end).unwrap();
        let forged =
            LocalCert::with_key_binding(fresh.key().clone(), "m", now() - HOUR, end, Some(&der))
                .unwrap();
        assert!(matches!(
            pins.check_cert(forged.cert(), now()),
            Err(Refusal::BadKeyBinding { .. })
        ));
        // Garbage in the extension: refused, not a panic.
        let garbage = LocalCert::with_key_binding(
            fresh.key().clone(),
            "m",
            now() - HOUR,
            end,
            Some(b"\x04\x01x"),
        )
        .unwrap();
        assert!(matches!(
            pins.check_cert(garbage.cert(), now()),
            Err(Refusal::BadKeyBinding { .. })
        ));
        // A binding that ended, on a certificate still valid: refused as expired.
        let spki = fresh.key().public_key_to_der().unwrap();
        let short = sign_binding(k1.openssl_pkey(), &spki, now() - HOUR).unwrap();
        let ended = LocalCert::with_key_binding(
            fresh.key().clone(),
            "m",
            now() - 2 * HOUR,
            end,
            Some(&short),
        )
        .unwrap();
        assert!(matches!(
            pins.check_cert(ended.cert(), now()),
            Err(Refusal::Expired { .. })
        ));
        // And the same key with its own, genuine binding is fine.
        let ok = sign_binding(k1.openssl_pkey(), &spki, end).unwrap();
        let ok =
            LocalCert::with_key_binding(fresh.key().clone(), "m", now() - HOUR, end, Some(&ok))
                .unwrap();
        assert_eq!(pins.check_cert(ok.cert(), now()), Ok(3));
        // No binding at all on a key that is not registered: as before.
        let bare =
            LocalCert::with_key_binding(fresh.key().clone(), "m", now() - HOUR, end, None).unwrap();
        assert!(matches!(
            pins.check_cert(bare.cert(), now()),
            Err(Refusal::KeyNotPinned { .. })
        ));
    }

    #[test]
    fn a_remembered_certificate_is_still_decided_against_the_pins_and_the_clock() {
        use crate::peer::verified;
        let (k0, k1) = (&test_keys().0, &test_keys().1);
        let end = now() + HOUR;
        let bound = LocalCert::bound_with(k1, "m", now() - HOUR, end).unwrap();
        let both = Pins::all_members(cid(9), &[member(0, k0), member(3, k1)]);
        let only_k0 = Pins::all_members(cid(9), &[member(0, k0)]);
        let only_k1 = Pins::all_members(cid(9), &[member(3, k1)]);
        assert_eq!(both.check_cert(bound.cert(), now()), Ok(3));
        let digest = verified::digest(bound.cert()).unwrap();
        let proven = verified::get(&digest).expect("remembered after passing");
        assert_eq!(
            proven.binding.as_ref().unwrap().signer_spki,
            k1.public().spki_der()
        );
        // Remembered, and still refused by a view without its signer …
        assert!(matches!(
            only_k0.check_cert(bound.cert(), now()),
            Err(Refusal::KeyNotPinned { .. })
        ));
        // … and once the certificate and its binding have ended.
        assert!(matches!(
            both.check_cert(bound.cert(), end + 2 * HOUR),
            Err(Refusal::Expired { .. })
        ));
        assert_eq!(both.check_cert(bound.cert(), now()), Ok(3));
        // The first form (the sig key itself) likewise.
        let direct = cert(k0, now() - HOUR, end);
        assert_eq!(both.check_cert(direct.cert(), now()), Ok(0));
        assert!(verified::get(&verified::digest(direct.cert()).unwrap()).is_some());
        assert!(matches!(
            only_k1.check_cert(direct.cert(), now()),
            Err(Refusal::KeyNotPinned { .. })
        ));
        // A refusal is not remembered.
        let stranger = PrivateKey::generate(1024).unwrap();
        let other = LocalCert::bound_with(&stranger, "m", now() - HOUR, end).unwrap();
        assert!(both.check_cert(other.cert(), now()).is_err());
        assert!(verified::get(&verified::digest(other.cert()).unwrap()).is_none());
    }

    #[test]
    fn expired_and_future_certificates_are_refused() {
        let k = &test_keys().1;
        let pins = Pins::all_members(cid(9), &[member(0, k)]);
        let old = cert(k, now() - 3 * HOUR, now() - HOUR);
        assert!(matches!(
            pins.check_cert(old.cert(), now()),
            Err(Refusal::Expired { .. })
        ));
        let future = cert(k, now() + HOUR, now() + 2 * HOUR);
        assert!(matches!(
            pins.check_cert(future.cert(), now()),
            Err(Refusal::NotYetValid { .. })
        ));
        // A clock a minute ahead is tolerated.
        let soon = cert(k, now() + Duration::from_secs(60), now() + HOUR);
        assert_eq!(pins.check_cert(soon.cert(), now()), Ok(0));
    }

    #[test]
    fn cluster_binding_must_name_our_cluster() {
        use crate::peer::alpn_protocol;
        let pins = Pins::all_members(cid(1), &[]);
        let ours = alpn_protocol(&cid(1));
        let theirs = alpn_protocol(&cid(2));
        assert_eq!(
            pins.check_alpn_offer(&[b"h2", &theirs, &ours]),
            Ok(ours.as_slice())
        );
        assert_eq!(
            pins.check_alpn_offer(&[&theirs]),
            Err(Refusal::WrongCluster {
                theirs: UNKNOWN_CLUSTER.into(),
                ours: cid(1).to_hex()
            })
        );
        // The first version named the cluster in clear: another cluster is
        // named back; ours is refused as no binding (it leaked the ID).
        let v1 = |c: NodeId| format!("{ALPN_PREFIX_V1}{}", c.to_hex()).into_bytes();
        assert_eq!(
            pins.check_alpn_offer(&[&v1(cid(2))]),
            Err(Refusal::WrongCluster {
                theirs: cid(2).to_hex(),
                ours: cid(1).to_hex()
            })
        );
        assert!(matches!(
            pins.check_alpn_offer(&[&v1(cid(1))]),
            Err(Refusal::NoClusterBinding { .. })
        ));
        let e = pins.check_alpn_offer(&[b"h2"]).unwrap_err();
        assert!(e.to_string().contains("\"h2\""), "{e}");
        assert!(pins.check_alpn_selected(None).is_err());
        assert!(pins.check_alpn_selected(Some(&ours)).is_ok());
    }

    #[test]
    fn alpn_wire_lists_split_and_stop_at_garbage() {
        assert_eq!(split_alpn(b"\x02h2\x03abc"), vec![&b"h2"[..], b"abc"]);
        assert_eq!(split_alpn(b"\x02h2\x09ab"), vec![&b"h2"[..]]);
        assert!(split_alpn(b"").is_empty());
        assert!(split_alpn(b"\x00ab").is_empty());
    }
}
