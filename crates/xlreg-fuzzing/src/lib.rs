//! Fuzz target bodies, shared by the cargo-fuzz targets in `fuzz/` and by
//! `tests/fuzz_corpus.rs` (which replays the committed seed corpus through
//! the same functions under plain `cargo test`).
//!
//! Every target takes arbitrary bytes, must never panic, and asserts the
//! invariants of the code it drives (round trips, the spec §8.3 table, the
//! cluster size limit, `Which`/token agreement, ...). A failed assertion is
//! a finding, exactly like a panic in the code under test.
//!
//! All key material here is fixed test data (1024-bit keys embedded below),
//! so that the seed corpus — real Hello ciphertexts, sealed messages and
//! signed tokens made by this crate's own encoders — is reproducible and
//! keeps decrypting in every run. Never use these keys for anything else.
//!
//! See `docs/fuzzing.md` for how to run the targets.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use prost::Message;

use xlreg::goconfig::GoRegistryConfig;
use xlreg::limits::{MAX_CLUSTER_SIZE, MAX_ENDPOINT_COUNT, MIN_CLUSTER_SIZE};
use xlreg::regcred::RegCred;
use xlreg::registry::{
    Answer, Backend, BackendError, BackendExt, BoxFuture, Change, ClusterTarget, GetCluster,
    IdOwner, Members, Policy, Register, Registry, RegistryService, Request, Store, StoreCause,
    StoreError,
};
use xlreg::server::internals::{respond, Reply};
use xlreg::server::internals::{texts, Effect, ServerSession, SessionConfig, State};
use xlreg::wire::internals::{aes_cbc_seal, plausible_sealed_len, sealed_len};
use xlreg::wire::{
    digest_input, signed_token, verify_token, DecimalVersion, Framing, Hello, HelloReply, NodeId,
    PrivateKey, PublicKey, Reassembler, SessionKey, Tag, Token, Which, XlRegMsg, EXT_VERSION,
    GO_SERVER_VERSION, LEGACY_MAX_MESSAGE,
};

/// A fuzz target: arbitrary bytes in, panics on a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name of its cargo-fuzz binary and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("hello", hello),
    ("hello_reply", hello_reply),
    ("session_msg", session_msg),
    ("server_session", server_session),
    ("regcred", regcred),
    ("goconfig", goconfig),
    ("reassembler", reassembler),
];

/// Run the target called `name`; false if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => {
            f(data);
            true
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------
// Fixed test material

/// Fixed 1024-bit RSA keys (PKCS#1 PEM). Key 0 is the fuzz registry's
/// comms key; keys 1..=3 are member sig keys.
const KEY_PEMS: [&str; 4] = [
    "-----BEGIN RSA PRIVATE KEY-----\n\
MIICXAIBAAKBgQDH0Z5JRf1DmNwO4Ver1w5fxZI2RDcAPKLTW+DuqVC/w6XCWwQ1\n\
Thj0bHlw78ppH7ODHN3IF8Y8D/b1SLbpH1kGuH4YczHCC6ZJEefuTwkYF3t+h8kf\n\
+EbER9773UkEmNwkehzJpzCmazvfSh3SVpi5I2I6QE4T5YUYTRKi+OSCtQIDAQAB\n\
AoGBAMHdPhUZMn9C7z4Ao261V9zTcufzhulT6yXlHnZvD0j+KPRIGe0duFhsZeaM\n\
v3T+rMuoVgSsDEh5tMCFq/DB2TxRx6mbRHcot0wLTr7iYKw23QNgrWl8xVuthc9C\n\
FIlIqwgw7TDxtqndWDEGSLZ3hJP6tELmRQttZwcxDkZ4jfQBAkEA//OVRq7OoehK\n\
qZqN28sf/Lc1Rhc8DEwZDVX479PmnsOnWztZmKBIEVPh2TO90G0FOHGgAGnTWIqs\n\
aUq5cKWdbQJBAMfbT+KAjrzptwVgRlsmuDw6MhM+7Sg3H8AiNk1MGd2KcSevLv+W\n\
khAz8j0Eoj6OmoomVl/PshxtxuGBFfQhFWkCQGs9YOc7qOIXlOjZE+Tqh514Gb8j\n\
TwqL+9cllWbO7wrISV+lT1XumiOAdNlvn3ErrItIuFRUArRPbguzvlzfV0UCQDsF\n\
P1AqmvybIJuL1PsyMhJHNWaNnMfVj6DT+alWIgVUzxnjGEQOmVADpzPx3GARCP5n\n\
V/avhW/z01nhHzSbWJECQBtNNiWKZvRJlOVCxUv/osspxr4fUTqRW290bFS7iPUP\n\
a6SkzWuz/vYbTNUH/SMyukyHoMfLm31mVyGYp80A6kg=\n\
-----END RSA PRIVATE KEY-----\n\
",
    "-----BEGIN RSA PRIVATE KEY-----\n\
MIICXwIBAAKBgQDO8M1Bm2uD3rKtqUBE397562+pkJeCbviKBI+y/KM0nl7QcKHo\n\
ioi5YQlSc9K2SmZTCh2Umm7S1xIDB9fRDHSOOGJEb7cmMbsMJt5UHUHw6wASCtG3\n\
TfBnZqd0SPhov0XZ4uHIsT3MdUZVk0VBOQB5BkfgjPiC7Rm8jvx4s/2OXQIDAQAB\n\
AoGBALOLj7qVe0INzR8JUt6vEgnqcJZBAoNDftZYwMi9k2iK456bqo5U6+1TOMBW\n\
B4LrqD3x79pH51F9En6YpnIVCWXuV2Cq1jtklRhlg/XI+dgjADJBB5p9wYFmvsyt\n\
3SeMjwAa+yhJE20mIUy67QiuRghUGwUdd1s27SEvBnUfvSMBAkEA/YauytPAvn0K\n\
xamCiknoZHhnIbvmu0HBSNHvN3LVDZcbWKZIhUqayeqSgUWLtWoHVouLg6fQDa/e\n\
0mEO+LySQQJBAND1vzCC2+LU62I44yWA/pOKMlu+Wj6N0pVuBpEjOW9jvlixhltO\n\
NIMjYajXhQT0k/mDA3oKFBsI41v7edbnvR0CQQDeJi/vRlE0GTlhLkFWj6B0uRQV\n\
eSKanumQt3PXsGWDvQ6XRU1yjobHuyWY5Kmg00GO0kPznw4tkBe9XJLT3diBAkEA\n\
vvLSc5IhPXc0Yd16NJtcB5cRzaR08xTGiqaweZCmu5N6LbKMBIPCmNOMOq43b//P\n\
+QIv+yWamdnVagiznh7GQQJBAMHuEfZrBApcxz5kTdeY0B9k7P3pH9dfSX2grmO7\n\
9xuR7r5UXeQTQBAYEhjtlTPWrx2SaqlKESftpOEkYUHeHAQ=\n\
-----END RSA PRIVATE KEY-----\n\
",
    "-----BEGIN RSA PRIVATE KEY-----\n\
MIICXgIBAAKBgQDOq3bG6LrtGLDLAH+bd5oJ9QBfVMBAvX73/b2wSgHbZPMTy/Zx\n\
E/KOtPoJ1ECnKuYw7MFmC0cjdqWFk4uCQ3BqvRC5hrPjKDU7kuPKLTKQTQ3UqXnJ\n\
gQxy7VCVNhkJRVPfSjBiZBHde7ZO2XSYmRTF2c2vBvd09cHGVuQ8Jr/6EQIDAQAB\n\
AoGBAMlqhCzg3mR6PrrpdnQPARoZI87E60VtKRQJwFfSGLM4VEqD6l9UIH4CVPlF\n\
WelRvtwJsYaBEUi3tiNTo5BFp4UuuRBgY/2Fp3A67JhlZ/CIJ17uXjty2ukl50Ea\n\
4WOy8d2CsCaNwzVHmUGJj5tqoxFOhvBoNHmShyX3/gZeeysdAkEA7ftEPq2sF7zO\n\
rMtrPKHzWjVkvqomPUVjgvUa+2nYuu1X+w84+YnrVsVuZWv74cSAnWKQF33agEHI\n\
PNONCjL5hwJBAN5RSlMvcEPaqOweuvsxZsNVhmQ+Qeh9/SnVa1GSjr2821MAsP1g\n\
P+v981kbVoeVWprNv3ZiJymewbEFfvwH9acCQQDKB0lEPIOgEzURFA+RhZrltfY0\n\
tpWH5mQ4RIQHcy/+YIcUJzQjA6a6Hxk9GJLYcs0MzyOsDbd0smOe36kYQ3X5AkA3\n\
xnk5KXum6mLa6lLK1ngLpZdT6vKqG4G6Txrfmj9JhuoXhuLgjpc647l7r4oj9eqH\n\
T/sq/jEJFhVODizvmiedAkEA0Dz2qyekMl+Gma3cc3ObtpaLtziMagXxamwjzEei\n\
s1WulnXnJt00HigpAoNHeBga7TUyEbmcavaN187p6kUTFQ==\n\
-----END RSA PRIVATE KEY-----\n\
",
    "-----BEGIN RSA PRIVATE KEY-----\n\
MIICXgIBAAKBgQDUK32/7pKo4mc5YSnPzYK6Am05ihNQx/stGw9pdme0IeGKacsB\n\
bqhs4j48eYKmQHfc6c5koPnWvim/2BiMHQEScUMgWPT8tfSht+TvMADauG5SifJm\n\
Lqd77oynbIi6AQ68e53JUiaarPXe2tb/dC1E8gzNQaAKxJ9T9MLJwFsuAQIDAQAB\n\
AoGAZwvweUWP6YJ8i/vK6Ohxc5I2JloPY46dSZz48UnWuEA0YJtdQ4bROoDvpUOG\n\
1uQ80wije3BLp6aYdFqqIXL8z2uOJw4qzSkCLFmV3ky2C9llHQqCZJ1ZVYWsp49B\n\
RGg1FeyQV26CRwt7yu911bM5xVrbGJDgffW878/RyOAglzkCQQD1fcMvBhYxYD3w\n\
fJCWcI0R8wUGXYp1lIddEyF3dxTnTZ974F11bv2mIPXFof3lQee9qg9JSwRsUt41\n\
vjT8pDP7AkEA3UCS1qC26A61bj6IPY1WzrQhEqqITkyZPjcIO+9OIXq9BRggk045\n\
ntk77c691HomZX2wmm7Nk9b90rGTF6MJMwJBAJiH246MKZ3kPpf9zZirtftBFA4w\n\
cKc98h1Slai0xLgy8rT1YxxkKhXexNZXIHohyOt/jp/rjIQBuS+LT0DqhaECQQCQ\n\
sQkWWXYkXnIiTby1XDhX5471cRbA9fEFseGtqHtVA7qXmUa8btzZ2EEL7TdRvCxe\n\
FQuogyvoMiI+ZqjGPXXnAkEAqgi6dw2MoQiA6EbCGxuHDHoOMUbDEAltwS+bv0A5\n\
YEXO8a97aln0kOuxgBlcQYkR04g0vTiSREWT/BzTveo7sQ==\n\
-----END RSA PRIVATE KEY-----\n\
",
];

/// key1 of the fuzz handshake (protects the HelloReply).
pub const HELLO_KEY1: [u8; 32] = [0x11; 32];
/// key2 of the fuzz session (every session message).
pub const SESSION_KEY2: [u8; 32] = [0x22; 32];
/// The fuzz registry's own ID.
const REGISTRY_ID: [u8; 20] = [0xee; 20];

/// Pre-made test material, built once per process.
struct Fixture {
    keys: Vec<PrivateKey>,
    /// Signed member tokens (see [`token_specs`]).
    tokens: Vec<Token>,
}

/// Name, endpoints, ID (None: ask the registry), sig key index.
type TokenSpec = (String, Vec<String>, Option<Vec<u8>>, usize);

/// The pre-made tokens: a few special ones, then 64 ordinary members so
/// that full 64-member clusters are reachable.
fn token_specs() -> Vec<TokenSpec> {
    let ep =
        |n: usize| -> Vec<String> { (0..n).map(|i| format!("127.0.0.1:{}", 40000 + i)).collect() };
    let mut v: Vec<TokenSpec> = vec![
        ("alpha".into(), ep(1), Some(vec![0xa1; 20]), 1),
        ("beta".into(), ep(2), Some(vec![0xb2; 20]), 2),
        ("gamma".into(), vec![], None, 3),
        // Same name as "alpha", other key: a name clash in a cluster.
        ("alpha".into(), ep(2), Some(vec![0xc3; 20]), 2),
        // More endpoints than a token may have.
        ("delta".into(), ep(17), Some(vec![0xd4; 20]), 1),
        ("".into(), ep(1), Some(vec![0xe5; 32]), 1),
        // Big endpoints: big tokens, to exercise the reply byte budget.
        (
            "big".into(),
            (0..3)
                .map(|i| format!("{}.example:{}", "h".repeat(240), i))
                .collect(),
            Some(vec![0xf6; 20]),
            3,
        ),
    ];
    for i in 0..64u8 {
        let mut id = vec![0x40; 20];
        id[19] = i;
        v.push((
            format!("m{i}"),
            ep(1 + i as usize % 3),
            Some(id),
            1 + i as usize % 3,
        ));
    }
    v
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let keys: Vec<PrivateKey> = KEY_PEMS
            .iter()
            .map(|p| PrivateKey::from_pem(p.as_bytes()).expect("embedded test key"))
            .collect();
        let comms = keys[0].public();
        let tokens = token_specs()
            .into_iter()
            .map(|(name, eps, id, k)| {
                let id = id.map(|b| NodeId::from_bytes(&b).expect("test ID"));
                signed_token(&name, 7, id.as_ref(), &comms, &keys[k], &eps).expect("sign")
            })
            .collect();
        Fixture { keys, tokens }
    })
}

/// Pre-made signed member token `i` (modulo their number).
pub fn test_token(i: usize) -> Token {
    let t = &fixture().tokens;
    t[i % t.len()].clone()
}

/// The fuzz registry's comms key (decrypts the Hello).
pub fn registry_key() -> &'static PrivateKey {
    &fixture().keys[0]
}

/// Its public half.
pub fn registry_public() -> PublicKey {
    registry_key().public()
}

fn registry_id() -> NodeId {
    NodeId::from_bytes(&REGISTRY_ID).expect("20 bytes")
}

// ---------------------------------------------------------------------------
// A little reader over the fuzz input: never fails, yields zeros at the end.

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn le<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let b = self.take(N);
        out[..b.len()].copy_from_slice(b);
        out
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.le())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.le())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.le())
    }
    /// A byte string of up to 255 bytes (1-byte length).
    fn blob(&mut self) -> &'a [u8] {
        let n = self.u8() as usize;
        self.take(n)
    }
    /// A byte string of up to 64 KiB (2-byte length).
    fn long_blob(&mut self) -> &'a [u8] {
        let n = self.u16() as usize;
        self.take(n)
    }
}

/// Builds inputs in the formats the targets read (used by the seed corpus
/// generator, so that the format is written in one place).
#[derive(Default, Clone)]
pub struct InputBuilder(pub Vec<u8>);

impl InputBuilder {
    /// Append one byte.
    pub fn u8(mut self, b: u8) -> Self {
        self.0.push(b);
        self
    }
    /// Append a little-endian u16.
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Append a little-endian u32.
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Append a little-endian u64.
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Append a 1-byte-length byte string (at most 255 bytes).
    pub fn blob(mut self, b: &[u8]) -> Self {
        assert!(b.len() <= 255, "blob too long");
        self.0.push(b.len() as u8);
        self.0.extend_from_slice(b);
        self
    }
    /// Append a 2-byte-length byte string.
    pub fn long_blob(mut self, b: &[u8]) -> Self {
        self = self.u16(u16::try_from(b.len()).expect("long blob too long"));
        self.0.extend_from_slice(b);
        self
    }
    /// Append raw bytes.
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

// ---------------------------------------------------------------------------
// Target: the Hello decoder (spec §4)

/// Hello decoder. First byte: 0 = the rest is a ciphertext for the fuzz
/// registry key; 1 = the rest is a plaintext, encrypted here, which must
/// decode iff it is 44 bytes; 2 = the rest is a plaintext for
/// `Hello::from_plaintext`.
pub fn hello(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = registry_key();
    match mode % 3 {
        0 => {
            if let Ok(h) = Hello::open(key, rest) {
                assert_eq!(rest.len(), key.size());
                check_hello(&h);
            }
        }
        1 => {
            let seed = [mode; 20];
            match registry_public().oaep_encrypt_with_seed(rest, &seed) {
                Ok(ct) => {
                    assert_eq!(ct.len(), key.size());
                    let h = Hello::open(key, &ct);
                    assert_eq!(h.is_ok(), rest.len() == 44, "{h:?}");
                    if let Ok(h) = h {
                        assert_eq!(h.to_plaintext().as_slice(), rest);
                        check_hello(&h);
                    }
                }
                Err(_) => assert!(rest.len() > key.size() - 42, "OAEP refused {}", rest.len()),
            }
        }
        _ => match Hello::from_plaintext(rest) {
            Ok(h) => {
                assert_eq!(rest.len(), 44);
                assert_eq!(h.to_plaintext().as_slice(), rest);
                check_hello(&h);
            }
            Err(_) => assert_ne!(rest.len(), 44),
        },
    }
}

fn check_hello(h: &Hello) {
    // What the server answers: the Go version to Go clients, the extension
    // version (and length-prefixed framing) only to clients that asked.
    let (framing, v) = Framing::server_negotiate(h.version);
    if h.version.major() >= EXT_VERSION.major() {
        assert_eq!((framing, v), (Framing::LengthPrefixed, EXT_VERSION));
    } else {
        assert_eq!((framing, v), (Framing::Legacy, GO_SERVER_VERSION));
    }
    let reply = HelloReply {
        key2: SESSION_KEY2,
        salt2: [0; 8],
        version: v,
    };
    let wire = reply.seal_with_iv(&h.key1, &[3; 16]);
    assert_eq!(HelloReply::open(&h.key1, &wire).as_ref(), Ok(&reply));
    assert_eq!(
        Framing::client_negotiate(h.version, v),
        framing,
        "both sides agree on the framing"
    );
    let _ = h.version.to_string();
}

// ---------------------------------------------------------------------------
// Target: the HelloReply opener (spec §5)

/// HelloReply opener. First byte even: the rest is a wire reply under
/// [`HELLO_KEY1`]; odd: the rest is a plaintext, sealed here, which must
/// open iff it is 44 bytes.
pub fn hello_reply(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(r) = HelloReply::open(&HELLO_KEY1, rest) {
            assert_eq!(rest.len(), 64);
            // Strict padding: the only bytes that open to `r` with this IV.
            let iv: [u8; 16] = rest[..16].try_into().expect("16");
            assert_eq!(r.seal_with_iv(&HELLO_KEY1, &iv), rest);
            check_reply_version(r.version);
        }
    } else {
        let iv = [mode; 16];
        let mut wire = iv.to_vec();
        wire.extend(aes_cbc_seal(&HELLO_KEY1, &iv, rest));
        let r = HelloReply::open(&HELLO_KEY1, &wire);
        assert_eq!(r.is_ok(), rest.len() == 44, "{r:?}");
        if let Ok(r) = r {
            assert_eq!(r.to_plaintext().as_slice(), rest);
            check_reply_version(r.version);
        }
    }
}

fn check_reply_version(v: DecimalVersion) {
    for proposed in [DecimalVersion(0), EXT_VERSION] {
        let f = Framing::client_negotiate(proposed, v);
        let ext = proposed.major() >= 2 && v.major() >= 2;
        assert_eq!(f == Framing::LengthPrefixed, ext);
    }
}

// ---------------------------------------------------------------------------
// Target: session-message opener + protobuf decoding (spec §6, §7)

/// Session messages. First byte even: the rest is a sealed wire message
/// under [`SESSION_KEY2`]; odd: the rest is a protobuf body, sealed here.
/// Checks open/seal and decode/encode round trips, and that the server's
/// state machine takes the message without panicking.
pub fn session_msg(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = SessionKey(SESSION_KEY2);
    if mode & 1 == 0 {
        let opened = key.open(rest);
        match key.open_body(rest) {
            Ok(body) => {
                assert!(plausible_sealed_len(rest.len()));
                assert_eq!(rest.len(), sealed_len(body.len()));
                let iv: [u8; 16] = rest[..16].try_into().expect("16");
                assert_eq!(key.seal_body_with_iv(&iv, &body), rest, "strict padding");
                check_body(&body, opened);
            }
            Err(_) => assert!(opened.is_err()),
        }
    } else {
        let wire = key.seal_body_with_iv(&[mode; 16], rest);
        assert_eq!(wire.len(), sealed_len(rest.len()));
        assert_eq!(key.open_body(&wire).as_deref(), Ok(rest));
        check_body(rest, key.open(&wire));
    }
}

fn check_body(body: &[u8], opened: Result<XlRegMsg, xlreg::wire::WireError>) {
    let m = match XlRegMsg::from_bytes(body) {
        Ok(m) => m,
        Err(_) => {
            assert!(opened.is_err());
            return;
        }
    };
    assert_eq!(opened.as_ref(), Ok(&m));
    // Re-encoding is canonical: decode(encode(m)) == m, and stable.
    let b2 = m.to_bytes();
    assert_eq!(b2.len(), m.encoded_len());
    let m2 = XlRegMsg::from_bytes(&b2).expect("re-encoded message decodes");
    assert_eq!(m2, m);
    assert_eq!(m2.to_bytes(), b2);
    let _ = (m.tag(), m.err_text(), m.tokens_match_which());
    for t in m.member_specs.iter().chain(&m.tokens) {
        let _ = digest_input(t);
        if let Ok(v) = verify_token(t) {
            assert_eq!(v.token.dig_sig, None);
            assert_eq!(v.id.map(|i| i.as_bytes().to_vec()), t.id);
        }
    }
    // A fresh session takes any message without panicking; an Error reply
    // always closes it.
    let cfg = session_config(true, LEGACY_MAX_MESSAGE);
    let mut s = ServerSession::new(Framing::Legacy, Arc::new(cfg));
    if let Effect::Reply { body, close } = s.on_message(m) {
        let r = XlRegMsg::from_bytes(&body).expect("server reply decodes");
        assert_eq!(close, r.tag() == Some(Tag::Error));
        assert_eq!(close, s.state() == State::Closed);
    }
}

// ---------------------------------------------------------------------------
// Target: regCred.dat parser (spec §12)

/// regCred parser: whatever parses must write back (Go format) to a text
/// that parses to the same value.
pub fn regcred(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(rc) = RegCred::parse(&text) else {
        return;
    };
    let out = rc.to_go_format();
    let back = RegCred::parse(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(back, rc);
    assert_eq!(back.to_go_format(), out);
    let _ = (rc.connect_addr(), rc.to_string());
}

// ---------------------------------------------------------------------------
// Target: the Go reg.config parser (spec §13.3)

/// reg.config parser: whatever parses must write back to a text that
/// parses to the same identity.
pub fn goconfig(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(c) = GoRegistryConfig::parse(&text) else {
        return;
    };
    let out = c.to_go_format();
    let b = GoRegistryConfig::parse(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(
        (&b.name, b.id, &b.endpoints, &b.lfs),
        (&c.name, c.id, &c.endpoints, &c.lfs)
    );
    assert_eq!(b.comms_key.public(), c.comms_key.public());
    assert_eq!(b.sig_key.public(), c.sig_key.public());
    assert_eq!(b.to_go_format(), out);
}

// ---------------------------------------------------------------------------
// Target: the reassembly helper (spec §2.2)

/// Reassembler. First byte: bit 0 framing (1 = length-prefixed), bits 1-2
/// the size limit (framing maximum, 64 KiB, 64 bytes, or a u16 that
/// follows), bit 3 the mode:
/// * raw (0): chunks `len:u8 bytes`, each pushed and drained, compared with
///   a model of the framing rules;
/// * messages (1): `body:long_blob iv:u8 ncuts:u8 cut:u8*`: each body is sealed,
///   framed and pushed in pieces; a whole message must come out equal to
///   the body's decoding, and (length-prefixed) never before its last byte.
pub fn reassembler(data: &[u8]) {
    let mut inp = Input(data);
    let flags = inp.u8();
    let framing = if flags & 1 == 1 {
        Framing::LengthPrefixed
    } else {
        Framing::Legacy
    };
    let max = match (flags >> 1) & 3 {
        0 => framing.max_message(),
        1 => 64 * 1024,
        2 => 64,
        _ => inp.u16() as usize,
    };
    let limit = max.min(framing.max_message());
    let key = SessionKey(SESSION_KEY2);
    let mut r = Reassembler::with_limit(framing, max);
    if flags & 8 == 0 {
        // Raw chunks against a model.
        let mut model: Vec<u8> = Vec::new();
        while !inp.is_empty() {
            let chunk = inp.blob();
            r.push(chunk);
            model.extend_from_slice(chunk);
            loop {
                let want = model_next(framing, limit, &key, &mut model);
                let got = r.try_next(&key);
                match (&want, &got) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b),
                    (Err(_), Err(_)) => {}
                    _ => panic!("model {want:?} != reassembler {got:?}"),
                }
                assert_eq!(r.buffered(), model.len());
                match got {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => return, // the connection closes
                }
            }
        }
        return;
    }
    // Whole messages, split.
    while !inp.is_empty() {
        let body = inp.long_blob().to_vec();
        let iv = [inp.u8(); 16];
        let wire = match framing {
            Framing::Legacy => key.seal_body_with_iv(&iv, &body),
            Framing::LengthPrefixed => {
                let sealed = key.seal_body_with_iv(&iv, &body);
                let mut w = (sealed.len() as u32).to_be_bytes().to_vec();
                w.extend(sealed);
                w
            }
        };
        let ncuts = inp.u8() % 4;
        let mut cuts: Vec<usize> = (0..ncuts)
            .map(|_| inp.u8() as usize % (wire.len() + 1))
            .collect();
        cuts.push(wire.len());
        cuts.sort_unstable();
        // Legacy framing also needs a ClusterMembers to be complete (as many
        // tokens as Which has bits); length-prefixed framing is exact.
        let expect = XlRegMsg::from_bytes(&body).ok().filter(|m| {
            framing == Framing::LengthPrefixed
                || m.tag() != Some(Tag::ClusterMembers)
                || m.tokens_match_which()
        });
        let too_long = match framing {
            Framing::Legacy => wire.len() > limit,
            Framing::LengthPrefixed => wire.len() - 4 > limit,
        };
        let mut pos = 0;
        let mut got = None;
        for &c in &cuts {
            r.push(&wire[pos..c.max(pos)]);
            pos = c.max(pos);
            match r.try_next(&key) {
                Ok(Some(m)) => {
                    got = Some((m, pos));
                    break;
                }
                Ok(None) => {}
                Err(_) => {
                    // Only an oversized message or (framed) an undecodable
                    // one may end the stream.
                    assert!(too_long || (framing == Framing::LengthPrefixed && expect.is_none()));
                    return;
                }
            }
        }
        match (framing, got) {
            (Framing::LengthPrefixed, Some((m, at))) => {
                assert_eq!(at, wire.len(), "message taken before its last byte");
                assert_eq!(Some(m), expect);
                assert_eq!(r.buffered(), 0);
            }
            (Framing::LengthPrefixed, None) => {
                panic!("framed message not delivered ({} bytes)", wire.len())
            }
            (Framing::Legacy, Some((m, at))) => {
                assert_eq!(r.buffered(), 0);
                if at == wire.len() {
                    assert_eq!(Some(m), expect);
                } else {
                    // A proper prefix that happens to decode cleanly: the
                    // known ambiguity of unframed Go messages (spec §2.2);
                    // the rest is garbage for this test, start over.
                    r = Reassembler::with_limit(framing, max);
                }
            }
            (Framing::Legacy, None) => {
                assert!(expect.is_none() || too_long, "legacy message not delivered");
                // Undecodable bytes stay buffered until the peer gives up.
                r = Reassembler::with_limit(framing, max);
            }
        }
    }
}

/// The framing rules, written plainly: what the next `try_next` yields.
fn model_next(
    framing: Framing,
    limit: usize,
    key: &SessionKey,
    buf: &mut Vec<u8>,
) -> Result<Option<XlRegMsg>, ()> {
    match framing {
        Framing::Legacy => {
            if buf.len() > limit {
                return Err(());
            }
            if buf.len() < 32 || (buf.len() - 16) % 16 != 0 {
                return Ok(None);
            }
            match key.open(buf) {
                Ok(m) if m.tag() != Some(Tag::ClusterMembers) || m.tokens_match_which() => {
                    buf.clear();
                    Ok(Some(m))
                }
                _ => Ok(None),
            }
        }
        Framing::LengthPrefixed => {
            if buf.len() < 4 {
                return Ok(None);
            }
            let len = u32::from_be_bytes(buf[..4].try_into().expect("4")) as usize;
            if len > limit {
                return Err(());
            }
            if buf.len() < 4 + len {
                return Ok(None);
            }
            let m = key.open(&buf[4..4 + len]);
            buf.drain(..4 + len);
            m.map(Some).map_err(|_| ())
        }
    }
}

// ---------------------------------------------------------------------------
// Target: the server's per-session state machine (spec §8, §9)

/// Commands of the [`server_session`] input format. A step is a head byte
/// `cmd * 4 + session` (4 sessions) followed by the command's fields.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub enum Cmd {
    /// `cfg:u8 [limit:u16]`: (re)open the session. cfg bit 0 =
    /// length-prefixed framing, bit 1 = anonymous reads, bits 2-3 = legacy
    /// reply limit 16384 / 4096 / 1000 / 256 + u16 % 20000.
    Open = 0,
    /// `body:long_blob`: any protobuf body as a request.
    Raw = 1,
    /// `token:u8 idmode:u8 [...]`: Member with a pre-made signed token.
    /// idmode % 8: 0 the token's ID, 1 none, 2 cluster j (`j:u8`), 3 the
    /// registry's ID, 4 20 raw bytes, 5 `blob`, 6 token j's ID (`j:u8`),
    /// 7 empty. idmode / 8 % 4: 0 intact, 1 flip a signature bit,
    /// 2 rename (`blob`), 3 drop the signature.
    Member = 2,
    /// `token:blob`: Member with any token.
    MemberRaw = 3,
    /// `flags:u8 ...`: Create. bit 0 name present, bit 1 name from the list
    /// (`i:u8`) else `blob`, bit 2 max size (`u8` if bit 5 else `u32`),
    /// bit 3 attrs `u64`, bit 4 endpoint count `u8`.
    Create = 4,
    /// `mode:u8 ...`: Join. mode % 6: 0 nothing, 1 cluster j (`j:u8`),
    /// 2 name from the list (`i:u8`), 3 raw ID `blob`, 4 name `blob`,
    /// 5 cluster j plus another name (`j:u8 i:u8`).
    Join = 5,
    /// `cmode:u8 [...] wmode:u8 [...]`: GetCluster. cmode % 7: 0 no ID,
    /// 1 cluster j (`j:u8`), 2 `blob`, 3 the joined cluster, 4 the
    /// registry's ID, 5 no ID but a name from the list (`i:u8`), 6 no ID
    /// but a name `blob`. wmode % 4: 0 absent, 1 all, 2 `u8`, 3 `u64`.
    Get = 6,
    /// Bye.
    Bye = 7,
    /// `op:u8 fields:blob`: any op (as i8) with any other fields.
    Op = 8,
    /// RegCredRequest.
    RegCred = 9,
    /// The client goes away: drop the session.
    Drop = 10,
    /// The store fails to commit the next registry change.
    FailStore = 11,
    /// The registry service is closed for the next registry call.
    CloseService = 12,
}

const CMDS: u8 = 13;
const SESSIONS: usize = 4;
const CLUSTER_NAMES: [&[u8]; 4] = [b"alpha-cluster", b"b", b"c", b"xlCluster"];

impl Cmd {
    /// The head byte of this command for session `sid` (0..4).
    pub fn head(self, sid: u8) -> u8 {
        self as u8 * SESSIONS as u8 + sid % SESSIONS as u8
    }
}

fn session_config(anon: bool, limit: usize) -> SessionConfig {
    SessionConfig {
        allow_anonymous_reads: anon,
        legacy_reply_limit: limit,
        registry_token: Token {
            name: Some(b"xlReg".to_vec()),
            attrs: Some(0),
            id: Some(REGISTRY_ID.to_vec()),
            ..Default::default()
        },
        version: GO_SERVER_VERSION,
        hold: std::time::Duration::ZERO,
        idle_timeout: std::time::Duration::from_secs(60),
        key_limits: Default::default(),
    }
}

/// The store under the fuzzed registry: keeps nothing (like an ephemeral
/// registry's) and fails an append while `fail` is set.
#[derive(Debug)]
struct FaultyStore {
    fail: Arc<AtomicBool>,
}

impl Store for FaultyStore {
    fn load(&mut self) -> Result<Vec<Change>, StoreError> {
        Ok(Vec::new())
    }

    fn append(&mut self, _changes: &[Change]) -> Result<(), StoreError> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(StoreError::new(
                "<fuzz>",
                "append",
                StoreCause::Malformed("injected failure".into()),
            ));
        }
        Ok(())
    }

    fn waits_for_device(&self) -> bool {
        false
    }

    fn location(&self) -> &str {
        "<fuzz>"
    }
}

/// The fuzzed backend: the real [`RegistryService`] (rules, commit and
/// rollback) with faults injected for the next registry write: a store
/// failure, or a closed service.
#[derive(Debug)]
struct FaultyBackend {
    svc: Arc<RegistryService>,
    /// Fail the store during the next Register, Create or Join.
    fail_store: AtomicBool,
    /// Answer the next Register, Create or Join with "shutting down".
    closed: AtomicBool,
    /// The store's switch, set for the duration of one write.
    store_fails: Arc<AtomicBool>,
    /// What the last request asked and got, for the checks.
    seen: std::sync::Mutex<Seen>,
}

/// The registry calls one request made, with their results.
#[derive(Debug, Default)]
struct Seen {
    register: Option<(Register, Result<NodeId, BackendError>)>,
    get: Option<(GetCluster, Result<Members, BackendError>)>,
}

impl FaultyBackend {
    fn new() -> Self {
        let store_fails = Arc::new(AtomicBool::new(false));
        let store = FaultyStore {
            fail: store_fails.clone(),
        };
        FaultyBackend {
            svc: RegistryService::start(Box::new(store), registry_id(), Policy::default())
                .expect("an empty store loads"),
            fail_store: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            store_fails,
            seen: Default::default(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run one write with the faults armed for it (and only for it).
    async fn write<T>(
        &self,
        f: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let fail = self.fail_store.swap(false, Ordering::Relaxed);
        if self.closed.swap(false, Ordering::Relaxed) {
            return Err(BackendError::Closed);
        }
        self.store_fails.store(fail, Ordering::Relaxed);
        let r = f.await;
        self.store_fails.store(false, Ordering::Relaxed);
        r
    }
}

impl Backend for FaultyBackend {
    fn perform(&self, req: Request) -> BoxFuture<'_, Result<Answer, BackendError>> {
        Box::pin(async move {
            match req {
                Request::Register(r) => {
                    let out = self.write(self.svc.call(r.clone())).await;
                    self.seen().register = Some((r, out.clone()));
                    out.map(Answer::Registered)
                }
                Request::GetCluster(g) => {
                    let out = self.svc.call(g.clone()).await;
                    self.seen().get = Some((g, out.clone()));
                    out.map(Answer::Members)
                }
                req => self.write(self.svc.perform(req)).await,
            }
        })
    }

    fn subscribe(&self, cluster: &NodeId) -> tokio::sync::watch::Receiver<u64> {
        self.svc.subscribe(cluster)
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.svc.shutdown()
    }

    fn location(&self) -> String {
        self.svc.location()
    }
}

/// Run a future that cannot wait (an inline registry, GetCluster without
/// hold) to its end.
fn at_once<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the fuzzed registry waited"),
    }
}

/// What happened while a request's effects were executed.
#[derive(Default)]
struct Done {
    /// The sig key hash a Member registered with.
    registered: Option<[u8; 32]>,
    /// The token budget of a GetCluster.
    budget: Option<usize>,
    /// The cluster ID a GetCluster read (echoed in ClusterMembers).
    echoed: Option<Vec<u8>>,
}

struct Sess {
    s: ServerSession,
    framing: Framing,
    anon: bool,
    limit: usize,
}

struct World<'t> {
    trace: Option<&'t mut Vec<String>>,
    backend: FaultyBackend,
    /// Cluster IDs in the order CreateReplies announced them.
    clusters: Vec<NodeId>,
    sessions: [Option<Sess>; SESSIONS],
}

/// Server state machine, several sessions sharing one in-memory registry.
/// Requests go through the server's own dispatch path
/// ([`xlreg::server::internals::respond`], the function the connection loop
/// calls) on a [`RegistryService`], run to the end at once: decide,
/// append, then commit — or roll back when a store failure is injected.
/// Input format: see [`Cmd`].
pub fn server_session(data: &[u8]) {
    drive(data, None);
}

/// [`server_session`], also returning one line per request: session,
/// op, state before, and the reply (for checking what the corpus reaches).
pub fn server_session_trace(data: &[u8]) -> Vec<String> {
    let mut trace = Vec::new();
    drive(data, Some(&mut trace));
    trace
}

fn drive(data: &[u8], trace: Option<&mut Vec<String>>) {
    let mut w = World {
        trace,
        backend: FaultyBackend::new(),
        clusters: Vec::new(),
        sessions: Default::default(),
    };
    let mut inp = Input(data);
    let mut steps = 0;
    while !inp.is_empty() && steps < 512 {
        steps += 1;
        let head = inp.u8();
        let sid = head as usize % SESSIONS;
        let cmd = head / SESSIONS as u8 % CMDS;
        if cmd == Cmd::Open as u8 {
            let cfg = inp.u8();
            let limit = match (cfg >> 2) & 3 {
                0 => LEGACY_MAX_MESSAGE,
                1 => 4096,
                2 => 1000,
                _ => 256 + inp.u16() as usize % 20000,
            };
            w.open(sid, cfg & 1 == 1, cfg & 2 == 2, limit);
            continue;
        }
        let msg = match cmd {
            1 => match XlRegMsg::from_bytes(inp.long_blob()) {
                Ok(m) => m,
                Err(_) => continue,
            },
            2 => XlRegMsg::member(w.premade_token(&mut inp)),
            3 => match Token::decode(inp.blob()) {
                Ok(t) => XlRegMsg::member(t),
                Err(_) => continue,
            },
            4 => w.create_msg(&mut inp),
            5 => w.join_msg(&mut inp),
            6 => w.get_msg(&mut inp, sid),
            7 => XlRegMsg::bye(),
            8 => {
                let op = inp.u8() as i8 as i32;
                let mut m = XlRegMsg::from_bytes(inp.blob()).unwrap_or_default();
                m.op = Some(op);
                m
            }
            9 => XlRegMsg::reg_cred_request(),
            10 => {
                w.sessions[sid] = None;
                continue;
            }
            11 => {
                w.backend.fail_store.store(true, Ordering::Relaxed);
                continue;
            }
            _ => {
                w.backend.closed.store(true, Ordering::Relaxed);
                continue;
            }
        };
        w.request(sid, msg);
        w.check_registry();
    }
}

impl World<'_> {
    fn open(&mut self, sid: usize, framed: bool, anon: bool, limit: usize) {
        let framing = if framed {
            Framing::LengthPrefixed
        } else {
            Framing::Legacy
        };
        self.sessions[sid] = Some(Sess {
            s: ServerSession::new(framing, Arc::new(session_config(anon, limit))),
            framing,
            anon,
            limit,
        });
    }

    fn cluster_ref(&self, j: u8) -> Vec<u8> {
        match self.clusters.get(j as usize % self.clusters.len().max(1)) {
            Some(id) => id.as_bytes().to_vec(),
            None => vec![0x5c; 20],
        }
    }

    fn premade_token(&self, inp: &mut Input<'_>) -> Token {
        let f = fixture();
        let mut t = f.tokens[inp.u8() as usize % f.tokens.len()].clone();
        let mode = inp.u8();
        t.id = match mode % 8 {
            0 => t.id,
            1 => None,
            2 => Some(self.cluster_ref(inp.u8())),
            3 => Some(REGISTRY_ID.to_vec()),
            4 => Some(inp.le::<20>().to_vec()),
            5 => Some(inp.blob().to_vec()),
            6 => f.tokens[inp.u8() as usize % f.tokens.len()].id.clone(),
            _ => Some(vec![]),
        };
        match mode / 8 % 4 {
            0 => {}
            1 => {
                if let Some(s) = t.dig_sig.as_mut() {
                    let i = inp.u8() as usize % s.len();
                    s[i] ^= 1 << (i % 8);
                }
            }
            2 => t.name = Some(inp.blob().to_vec()),
            _ => t.dig_sig = None,
        }
        t
    }

    fn create_msg(&self, inp: &mut Input<'_>) -> XlRegMsg {
        let flags = inp.u8();
        let mut m = XlRegMsg {
            op: Some(Tag::Create as i32),
            ..Default::default()
        };
        if flags & 1 != 0 {
            m.cluster_name = Some(if flags & 2 != 0 {
                CLUSTER_NAMES[inp.u8() as usize % CLUSTER_NAMES.len()].to_vec()
            } else {
                inp.blob().to_vec()
            });
        }
        if flags & 4 != 0 {
            m.cluster_max_size = Some(if flags & 32 != 0 {
                inp.u8() as u32
            } else {
                inp.u32()
            });
        }
        if flags & 8 != 0 {
            m.cluster_attrs = Some(inp.u64());
        }
        if flags & 16 != 0 {
            m.end_point_count = Some(inp.u8() as u32);
        }
        m
    }

    fn join_msg(&self, inp: &mut Input<'_>) -> XlRegMsg {
        let mut m = XlRegMsg {
            op: Some(Tag::Join as i32),
            ..Default::default()
        };
        match inp.u8() % 6 {
            0 => {}
            1 => m.cluster_id = Some(self.cluster_ref(inp.u8())),
            2 => {
                m.cluster_name =
                    Some(CLUSTER_NAMES[inp.u8() as usize % CLUSTER_NAMES.len()].to_vec())
            }
            3 => m.cluster_id = Some(inp.blob().to_vec()),
            4 => m.cluster_name = Some(inp.blob().to_vec()),
            _ => {
                m.cluster_id = Some(self.cluster_ref(inp.u8()));
                m.cluster_name =
                    Some(CLUSTER_NAMES[inp.u8() as usize % CLUSTER_NAMES.len()].to_vec());
            }
        }
        m
    }

    fn get_msg(&self, inp: &mut Input<'_>, sid: usize) -> XlRegMsg {
        let mut m = XlRegMsg {
            op: Some(Tag::GetCluster as i32),
            ..Default::default()
        };
        m.cluster_id = match inp.u8() % 7 {
            0 => None,
            1 => Some(self.cluster_ref(inp.u8())),
            2 => Some(inp.blob().to_vec()),
            3 => self.sessions[sid]
                .as_ref()
                .and_then(|s| s.s.joined())
                .map(|id| id.as_bytes().to_vec()),
            4 => Some(REGISTRY_ID.to_vec()),
            5 => {
                m.cluster_name =
                    Some(CLUSTER_NAMES[inp.u8() as usize % CLUSTER_NAMES.len()].to_vec());
                None
            }
            _ => {
                m.cluster_name = Some(inp.blob().to_vec());
                None
            }
        };
        m.which = match inp.u8() % 4 {
            0 => None,
            1 => Some(u64::MAX),
            2 => Some(inp.u8() as u64),
            _ => Some(inp.u64()),
        };
        m
    }

    /// Run `f` on the committed registry.
    fn reg<R>(&self, f: impl FnOnce(&Registry) -> R) -> R {
        self.backend.svc.with_registry(f)
    }

    fn request(&mut self, sid: usize, msg: XlRegMsg) {
        if self.sessions[sid].is_none() {
            self.open(sid, false, false, LEGACY_MAX_MESSAGE);
        }
        let mut sess = self.sessions[sid].take().expect("opened");
        let before = sess.s.state();
        let op = msg.op;
        let requested_id = msg.cluster_id.clone();
        let requested_name = msg.cluster_name.clone();
        // The server's own dispatch path (server/dispatch.rs), run to the
        // end at once; the backend records what was asked, for the checks.
        let Reply { body, close, .. } = at_once(respond(&mut sess.s, &self.backend, msg, None));
        let seen = std::mem::take(&mut *self.backend.seen());
        let mut done = Done::default();
        if let Some((req, r)) = seen.register {
            done.registered = Some(req.sig_hash);
            if let (Ok(got), Some(want)) = (&r, req.id) {
                assert_eq!(*got, want, "registry assigned another ID");
            }
        }
        if let Some((g, r)) = seen.get {
            self.check_get(&sess, &g, &requested_id, &requested_name, &mut done);
            if let Ok(m) = r {
                let echoed = m.cluster_id.as_bytes().to_vec();
                // By ID: that ID; by name (extension): the named cluster.
                match (&requested_id, &requested_name) {
                    (Some(_), _) => assert_eq!(Some(&echoed), requested_id.as_ref()),
                    (None, Some(n)) if !n.is_empty() => assert_eq!(
                        Some(m.cluster_id),
                        self.reg(|r| r.find(&ClusterTarget::Name(n[..].into())).ok())
                    ),
                    _ => panic!("GetCluster answered without a ClusterID or name"),
                }
                done.echoed = Some(echoed);
            }
        }
        if let Some(t) = self.trace.as_mut() {
            let r = XlRegMsg::from_bytes(&body).unwrap_or_default();
            let what = match r.tag() {
                Some(Tag::Error) => format!("Error({})", r.err_text()),
                Some(Tag::ClusterMembers) => format!(
                    "ClusterMembers(which {:#x}, {} tokens)",
                    r.which.unwrap_or(0),
                    r.tokens.len()
                ),
                other => format!("{other:?}"),
            };
            t.push(format!("s{sid} op {op:?} in {before:?}: {what}"));
        }
        self.check_reply(&sess, before, op, done, &body, close);
        if !close {
            self.sessions[sid] = Some(sess);
        }
    }

    /// The GetCluster a session asks the registry is what the client sent.
    fn check_get(
        &self,
        sess: &Sess,
        g: &GetCluster,
        requested_id: &Option<Vec<u8>>,
        requested_name: &Option<Vec<u8>>,
        done: &mut Done,
    ) {
        if sess.framing == Framing::LengthPrefixed {
            assert_eq!(g.budget, usize::MAX);
        }
        match (&g.cluster, requested_id) {
            (ClusterTarget::Id(id), Some(raw)) => {
                assert_eq!(id.as_bytes(), &raw[..], "GetCluster asks for what was sent")
            }
            (ClusterTarget::Name(n), None) => assert_eq!(
                Some(&n[..]),
                requested_name.as_deref(),
                "GetCluster asks for what was sent"
            ),
            (t, _) => panic!("GetCluster of {t:?} for ClusterID {requested_id:?}"),
        }
        done.budget = Some(g.budget);
    }

    fn check_reply(
        &mut self,
        sess: &Sess,
        before: State,
        op: Option<i32>,
        done: Done,
        body: &[u8],
        close: bool,
    ) {
        let svc = self.backend.svc.clone();
        svc.with_registry(|reg| self.check_reply_on(reg, sess, before, op, done, body, close));
    }

    #[allow(clippy::too_many_arguments)]
    fn check_reply_on(
        &mut self,
        reg: &Registry,
        sess: &Sess,
        before: State,
        op: Option<i32>,
        done: Done,
        body: &[u8],
        close: bool,
    ) {
        use State::*;
        let after = sess.s.state();
        let r = XlRegMsg::from_bytes(body).expect("server replies decode");
        assert_eq!(close, r.tag() == Some(Tag::Error), "close iff Error: {r:?}");
        assert_eq!(close, after == Closed, "Error iff Closed");
        assert!(
            sealed_len(body.len()) <= sess.framing.max_message(),
            "reply too long for its framing"
        );
        let live = matches!(
            before,
            HelloRcvd | ClientDetailsRcvd | CreateRequestRcvd | JoinRcvd
        );
        let allowed = match op {
            Some(1) | Some(11) => live,
            Some(3) => before == HelloRcvd,
            Some(5) => before == ClientDetailsRcvd,
            Some(7) => matches!(before, ClientDetailsRcvd | CreateRequestRcvd),
            Some(9) => {
                before == JoinRcvd
                    || (sess.anon && matches!(before, ClientDetailsRcvd | CreateRequestRcvd))
            }
            // DeleteCluster, an xlreg extension: only between xlreg peers,
            // by a registered member that has not joined yet.
            Some(14) => {
                sess.framing == Framing::LengthPrefixed
                    && matches!(before, ClientDetailsRcvd | CreateRequestRcvd)
            }
            // Resize, Evict, Leave (xlreg extensions): by the registered
            // node, in every state after MemberOK.
            Some(15..=17) => {
                sess.framing == Framing::LengthPrefixed
                    && matches!(before, ClientDetailsRcvd | CreateRequestRcvd | JoinRcvd)
            }
            // Watch (xlreg extension): gated like GetCluster.
            Some(18) => {
                sess.framing == Framing::LengthPrefixed
                    && (before == JoinRcvd
                        || (sess.anon && matches!(before, ClientDetailsRcvd | CreateRequestRcvd)))
            }
            _ => false,
        };
        if close {
            let text = r.err_text();
            assert!(!text.is_empty(), "an Error says why");
            match op {
                Some(2 | 4 | 6 | 8 | 10 | 12) => assert_eq!(text, texts::REPLY_OP),
                Some(1 | 3 | 5 | 7 | 9 | 11) if !allowed => assert_eq!(text, texts::BAD_STATE),
                Some(1 | 3 | 5 | 7 | 9 | 11) => {}
                // To a Go-framed session ops 14-18 are no ops at all.
                Some(14..=18) if sess.framing != Framing::LengthPrefixed => {
                    assert_eq!(text, texts::BAD_TAG)
                }
                Some(14..=18) if !allowed => assert_eq!(text, texts::BAD_STATE),
                // A refusal by the registry (no such cluster, not a member,
                // not the owner, a shrink over a member...).
                Some(14..=18) => {}
                _ => assert_eq!(text, texts::BAD_TAG),
            }
            return;
        }
        assert!(allowed, "op {op:?} answered in state {before:?}: {r:?}");
        match op {
            Some(1) => {
                assert_eq!(r.tag(), Some(Tag::RegCredReply));
                assert_eq!(after, before);
            }
            Some(3) => {
                assert_eq!(r.tag(), Some(Tag::MemberOk));
                assert_eq!(after, ClientDetailsRcvd);
                let id = NodeId::from_bytes(r.member_id.as_deref().unwrap_or_default())
                    .expect("MemberOK carries a valid ID");
                assert_eq!(sess.s.member_id(), Some(id));
                let hash = done.registered.expect("a member was registered");
                assert_eq!(reg.id_owner(&id), Some(IdOwner::Member(hash)));
                assert!(r.member_attrs.is_some());
            }
            Some(5) => {
                assert_eq!(r.tag(), Some(Tag::CreateReply));
                assert_eq!(after, CreateRequestRcvd);
                let id = NodeId::from_bytes(r.cluster_id.as_deref().unwrap_or_default())
                    .expect("CreateReply carries a valid ID");
                let c = reg.cluster(&id).expect("created cluster exists");
                assert_eq!(r.cluster_max_size, Some(c.max_size));
                assert_eq!(r.cluster_attrs, Some(c.attrs));
                assert_eq!(r.end_point_count, Some(c.ep_count));
                if !self.clusters.contains(&id) {
                    self.clusters.push(id);
                }
            }
            Some(7) => {
                assert_eq!(r.tag(), Some(Tag::JoinReply));
                assert_eq!(after, JoinRcvd);
                let id = NodeId::from_bytes(r.cluster_id.as_deref().unwrap_or_default())
                    .expect("JoinReply carries a valid ID");
                assert_eq!(sess.s.joined(), Some(id));
                let me = sess.s.member_id().expect("joined members are registered");
                let c = reg.cluster(&id).expect("joined cluster exists");
                assert!(
                    c.members().any(|(_, m)| m.id == me),
                    "the member is in the cluster it joined"
                );
                assert_eq!(r.cluster_max_size, Some(c.max_size));
                assert_eq!(r.end_point_count, Some(c.ep_count));
            }
            Some(9) => {
                assert_eq!(r.tag(), Some(Tag::ClusterMembers));
                assert_eq!(after, before);
                assert_eq!(r.cluster_id, done.echoed, "ClusterID is echoed");
                let which = Which(r.which.expect("Which is always present"));
                assert!(r.tokens_match_which(), "token count == popcount(Which)");
                let id = NodeId::from_bytes(done.echoed.as_deref().unwrap_or_default())
                    .expect("only known clusters answer");
                let c = reg.cluster(&id).expect("cluster exists");
                assert!(
                    which.minus(c.present()).is_empty(),
                    "Which names only existing members"
                );
                for (t, i) in r.tokens.iter().zip(which.iter()) {
                    let m = c.member(i).expect("Which names occupied slots");
                    let stored = Token::decode(&*m.token).expect("stored token");
                    assert_eq!(t, &stored, "token {i} is member {i}'s");
                    assert_eq!(t.dig_sig, None);
                }
                // The token budget guarantees the limit whatever the tokens:
                // this reply's fields with the widest Which, plus a budget
                // filled to the byte, still fit (unless nothing fits).
                let budget = done.budget.expect("a GetCluster has a budget");
                let head = XlRegMsg::cluster_members(
                    r.cluster_id.as_deref().unwrap_or_default(),
                    Which::ALL,
                    vec![],
                );
                if sess.framing == Framing::Legacy && budget > 0 {
                    assert!(
                        sealed_len(head.to_bytes().len() + budget) <= sess.limit,
                        "a budget of {budget} allows a legacy reply of {} bytes, limit {}",
                        sealed_len(head.to_bytes().len() + budget),
                        sess.limit
                    );
                }
                if sess.framing == Framing::Legacy && !r.tokens.is_empty() {
                    assert!(
                        sealed_len(body.len()) <= sess.limit,
                        "legacy reply of {} bytes over the limit {}",
                        sealed_len(body.len()),
                        sess.limit
                    );
                }
            }
            Some(11) => {
                assert_eq!(body, XlRegMsg::ack().to_bytes());
                assert_eq!(after, ByeRcvd);
            }
            Some(14) => {
                assert_eq!(r.tag(), Some(Tag::Ack));
                assert_eq!(after, before, "a delete leaves the session where it was");
            }
            Some(15..=17) => {
                assert_eq!(r.tag(), Some(Tag::Ack));
                assert!(
                    r.cluster_version.is_some(),
                    "a change's Ack names the version"
                );
                assert_eq!(after, before, "a change leaves the session where it was");
            }
            Some(18) => {
                assert_eq!(r.tag(), Some(Tag::ClusterMembers));
                assert_eq!(after, before);
                assert!(r.tokens_match_which(), "token count == popcount(Which)");
                let id = NodeId::from_bytes(r.cluster_id.as_deref().unwrap_or_default())
                    .expect("a Watch answers with the cluster's ID");
                let c = reg.cluster(&id).expect("the watched cluster exists");
                assert_eq!(r.cluster_version, Some(c.version), "the committed version");
                assert_eq!(r.cluster_max_size, Some(c.max_size));
                let which = Which(r.which.expect("Which is always present"));
                for (t, i) in r.tokens.iter().zip(which.iter()) {
                    let m = c.member(i).expect("Which names occupied slots");
                    let stored = Token::decode(&*m.token).expect("stored token");
                    assert_eq!(t, &stored, "token {i} is member {i}'s");
                }
            }
            _ => unreachable!("allowed covers only request ops"),
        }
    }

    fn check_registry(&self) {
        self.reg(check_registry);
    }
}

/// Invariants of the committed registry after every request.
fn check_registry(reg: &Registry) {
    {
        assert!(reg.pending().is_empty(), "every batch ends committed");
        for c in reg.clusters() {
            assert!((MIN_CLUSTER_SIZE..=MAX_CLUSTER_SIZE).contains(&c.max_size));
            assert!((1..=MAX_ENDPOINT_COUNT).contains(&c.ep_count));
            assert!(
                c.len() <= c.max_size as usize,
                "cluster has {} members, max {}",
                c.len(),
                c.max_size
            );
            let m: Vec<_> = c.members().map(|(_, m)| m).collect();
            assert!(
                c.members().all(|(i, _)| i < c.max_size as usize),
                "every member's slot is below the cluster's size"
            );
            for (i, a) in m.iter().enumerate() {
                for b in &m[i + 1..] {
                    assert_ne!(a.id, b.id, "member IDs unique in a cluster");
                    assert_ne!(a.name, b.name, "member names unique in a cluster");
                }
            }
            assert_eq!(reg.id_owner(&c.id), Some(IdOwner::Cluster));
        }
    }
}

// ---------------------------------------------------------------------------
// Seed corpus

/// The seed corpus: `(target, file name, bytes)`, made with this crate's
/// own encoders from the fixed test material. Deterministic.
pub fn seed_corpus() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |t: &'static str, name: &str, data: Vec<u8>| {
        out.push((t, name.to_string(), data));
    };
    let f = fixture();
    let pk = registry_public();
    let key2 = SessionKey(SESSION_KEY2);

    // hello
    for (i, v) in [
        DecimalVersion(0),
        GO_SERVER_VERSION,
        EXT_VERSION,
        DecimalVersion(u32::MAX),
    ]
    .into_iter()
    .enumerate()
    {
        let h = Hello {
            key1: [i as u8 + 1; 32],
            salt1: [0x5a; 8],
            version: v,
        };
        let ct = pk
            .oaep_encrypt_with_seed(&h.to_plaintext(), &[i as u8; 20])
            .expect("encrypt");
        add("hello", &format!("wire-v{i}"), [&[0u8][..], &ct].concat());
        add(
            "hello",
            &format!("plain-v{i}"),
            [&[1u8][..], &h.to_plaintext()].concat(),
        );
        add(
            "hello",
            &format!("parse-v{i}"),
            [&[2u8][..], &h.to_plaintext()].concat(),
        );
    }
    let legacy60 = [7u8; 60];
    let ct = pk
        .oaep_encrypt_with_seed(&legacy60, &[9; 20])
        .expect("encrypt");
    add("hello", "wire-legacy60", [&[0u8][..], &ct].concat());
    add("hello", "wire-short", [&[0u8][..], &ct[..127]].concat());
    add("hello", "plain-legacy60", [&[1u8][..], &legacy60].concat());

    // hello_reply
    for (i, v) in [GO_SERVER_VERSION, EXT_VERSION].into_iter().enumerate() {
        let r = HelloReply {
            key2: SESSION_KEY2,
            salt2: [i as u8; 8],
            version: v,
        };
        let w = r.seal_with_iv(&HELLO_KEY1, &[i as u8 + 0x30; 16]);
        add(
            "hello_reply",
            &format!("wire-v{i}"),
            [&[0u8][..], &w].concat(),
        );
        add(
            "hello_reply",
            &format!("plain-v{i}"),
            [&[1u8][..], &r.to_plaintext()].concat(),
        );
    }
    let w = HelloReply {
        key2: [0x33; 32],
        salt2: [0x44; 8],
        version: GO_SERVER_VERSION,
    }
    .seal_with_iv(&HELLO_KEY1, &[1; 16]);
    add("hello_reply", "wire-short", [&[0u8][..], &w[..48]].concat());

    // session_msg: every op, sealed and as a body
    let cid = NodeId::from_bytes(&[0xc1; 20]).expect("id");
    let stored = |t: &Token| Token {
        dig_sig: None,
        ..t.clone()
    };
    let msgs: Vec<(&str, XlRegMsg)> = vec![
        ("member", XlRegMsg::member(f.tokens[0].clone())),
        ("member-noid", XlRegMsg::member(f.tokens[2].clone())),
        ("member-ok", XlRegMsg::member_ok(&cid, 7)),
        ("create", XlRegMsg::create("clusterA", 3, 0, 2)),
        ("create-reply", XlRegMsg::create_reply(&cid, 3, 0, 2)),
        ("join-id", XlRegMsg::join_by_id(&cid)),
        ("join-name", XlRegMsg::join_by_name("clusterA")),
        ("join-reply", XlRegMsg::join_reply(&cid, 3, 0, 2)),
        ("get", XlRegMsg::get_cluster(&cid, Which::ALL)),
        (
            "members",
            XlRegMsg::cluster_members(
                cid.as_bytes(),
                Which(0b101),
                vec![stored(&f.tokens[0]), stored(&f.tokens[1])],
            ),
        ),
        ("bye", XlRegMsg::bye()),
        ("ack", XlRegMsg::ack()),
        ("error", XlRegMsg::error(texts::BAD_STATE)),
        ("regcred-request", XlRegMsg::reg_cred_request()),
        (
            "regcred-reply",
            XlRegMsg {
                op: Some(Tag::RegCredReply as i32),
                version: Some(EXT_VERSION.0),
                member_specs: Some(stored(&f.tokens[1])),
                ..Default::default()
            },
        ),
        (
            "op99",
            XlRegMsg {
                op: Some(99),
                ..Default::default()
            },
        ),
        ("empty", XlRegMsg::default()),
    ];
    for (i, (name, m)) in msgs.iter().enumerate() {
        let body = m.to_bytes();
        let wire = key2.seal_body_with_iv(&[i as u8; 16], &body);
        add(
            "session_msg",
            &format!("wire-{name}"),
            [&[0u8][..], &wire].concat(),
        );
        add(
            "session_msg",
            &format!("body-{name}"),
            [&[1u8][..], &body].concat(),
        );
    }

    // reassembler
    for (fi, framing) in [Framing::Legacy, Framing::LengthPrefixed]
        .into_iter()
        .enumerate()
    {
        let mut raw = InputBuilder::default().u8(fi as u8);
        let mut split = InputBuilder::default().u8(fi as u8 | 8);
        for (i, (_, m)) in msgs
            .iter()
            .enumerate()
            .filter(|(i, _)| [0, 3, 8, 9, 10].contains(i))
        {
            let body = m.to_bytes();
            let sealed = key2.seal_body_with_iv(&[i as u8; 16], &body);
            let wire = match framing {
                Framing::Legacy => sealed,
                Framing::LengthPrefixed => {
                    [&(sealed.len() as u32).to_be_bytes()[..], &sealed].concat()
                }
            };
            for chunk in wire.chunks(100) {
                raw = raw.blob(chunk);
            }
            split = split.long_blob(&body).u8(i as u8).u8(2).u8(5).u8(40);
        }
        add("reassembler", &format!("raw-{fi}"), raw.0);
        add("reassembler", &format!("split-{fi}"), split.0);
    }
    let garbage = InputBuilder::default()
        .u8(4)
        .blob(&[0u8; 64])
        .blob(&[1u8; 16]);
    add("reassembler", "raw-small-limit", garbage.0);

    // server_session: scripted flows
    for (name, script) in session_scripts() {
        add("server_session", name, script.0);
    }

    // regcred
    let k1 = f.keys[1].public();
    let rc = |eps: &[&str], id: &[u8], v: &str| RegCred {
        name: "xlReg".into(),
        id: NodeId::from_bytes(id).expect("id"),
        comms_key: pk.clone(),
        sig_key: k1.clone(),
        endpoints: eps.iter().map(|s| s.to_string()).collect(),
        version: v.parse().expect("version"),
    };
    let one = rc(&["127.0.0.1:45678"], &[0x89; 20], "1.9.24").to_go_format();
    add("regcred", "go-format", one.clone().into_bytes());
    add("regcred", "lf-only", one.replace("\r\n", "\n").into_bytes());
    add(
        "regcred",
        "two-endpoints-id32",
        rc(&["10.0.0.1:1", "192.168.1.2:56789"], &[0x21; 32], "0.4.3")
            .to_go_format()
            .into_bytes(),
    );
    add(
        "regcred",
        "no-endpoints",
        rc(&[], &[0x17; 20], "1.2.3.4").to_go_format().into_bytes(),
    );
    let commented = one.replacen("\n\r\n    SigPubKey", " regcomment\n\r\n    SigPubKey", 1);
    add("regcred", "key-comment", commented.into_bytes());

    // goconfig
    let cfg = |eps: &[&str], lfs: Option<&str>| GoRegistryConfig {
        name: "xlReg".into(),
        id: NodeId::from_bytes(&[0xab; 20]).expect("id"),
        comms_key: f.keys[0].clone(),
        sig_key: f.keys[1].clone(),
        endpoints: eps.iter().map(|s| s.to_string()).collect(),
        lfs: lfs.map(str::to_string),
    };
    let g = cfg(&["127.0.0.1:45678"], Some("./myApp/xlReg")).to_go_format();
    add("goconfig", "go-format", g.clone().into_bytes());
    add("goconfig", "crlf", g.replace('\n', "\r\n").into_bytes());
    add(
        "goconfig",
        "no-lfs-3-endpoints",
        cfg(&["10.1.2.3:1", "192.168.0.1:2", "8.8.8.8:3"], None)
            .to_go_format()
            .into_bytes(),
    );
    out
}

/// Scripted state-machine flows for the seed corpus.
fn session_scripts() -> Vec<(&'static str, InputBuilder)> {
    use Cmd::*;
    let b = InputBuilder::default;
    // Member with pre-made token `t`, its own ID, in session `s`.
    let member = |x: InputBuilder, s: u8, t: u8| x.u8(Member.head(s)).u8(t).u8(0);
    // Create "alpha-cluster" of size `n` with 1 endpoint each.
    let create = |x: InputBuilder, s: u8, n: u8| {
        x.u8(Create.head(s))
            .u8(1 | 2 | 4 | 16 | 32)
            .u8(0)
            .u8(n)
            .u8(1)
    };
    let join_current = |x: InputBuilder, s: u8| x.u8(Join.head(s)).u8(0);
    let join_cluster = |x: InputBuilder, s: u8, j: u8| x.u8(Join.head(s)).u8(1).u8(j);
    let get_all = |x: InputBuilder, s: u8| x.u8(Get.head(s)).u8(3).u8(1);
    let bye = |x: InputBuilder, s: u8| x.u8(Bye.head(s));

    let mut v = Vec::new();
    // Admin: Member, Create, Join (current), Get, Bye.
    let admin = bye(
        get_all(join_current(create(member(b(), 0, 0), 0, 3), 0), 0),
        0,
    );
    v.push(("admin-flow", admin.clone()));
    // Three members fill a cluster of 3, a fourth is refused, all read it.
    let mut full = admin.clone();
    for (s, t) in [(1u8, 7u8), (2, 8), (3, 9)] {
        full = get_all(join_cluster(member(full, s, t), s, 0), s);
    }
    full = get_all(join_cluster(member(full.u8(Drop.head(1)), 1, 10), 1, 0), 1);
    v.push(("fill-cluster", full));
    // Go user client: Member, Join by ID, Get in a loop, Bye.
    let mut user = create(member(b(), 0, 1), 0, 5);
    user = get_all(join_cluster(member(user, 1, 11), 1, 0), 1);
    user = bye(get_all(get_all(user, 1), 1), 1);
    v.push(("user-flow", user));
    // Anonymous read, length-prefixed framing, small reply limit.
    let anon = b()
        .u8(Open.head(0))
        .u8(1 | 2)
        .u8(Open.head(1))
        .u8(2 | 12)
        .u16(700);
    let anon = create(member(anon, 0, 6), 0, 8);
    let anon = join_current(anon, 0);
    let anon = member(anon, 1, 12).u8(Get.head(1)).u8(1).u8(0).u8(1);
    v.push(("anon-read-limits", anon));
    // Refusals: message after Bye, bad ops, reply ops, bad IDs, bad sigs.
    let refusals = bye(b(), 0)
        .u8(Bye.head(0))
        .u8(Op.head(1))
        .u8(99)
        .blob(&[])
        .u8(Op.head(2))
        .u8(4)
        .blob(&[])
        .u8(Member.head(3))
        .u8(0)
        .u8(8 + 1)
        .u8(3);
    v.push(("refusals", refusals));
    let ids = b()
        .u8(Member.head(0))
        .u8(1)
        .u8(3)
        .u8(Member.head(1))
        .u8(2)
        .u8(5)
        .blob(&[1; 7])
        .u8(Member.head(2))
        .u8(3)
        .u8(6)
        .u8(0)
        .u8(Member.head(3))
        .u8(4)
        .u8(7);
    v.push(("member-ids", ids));
    // Store failure and a closed service in the middle of a flow.
    let fail = member(b(), 0, 0).u8(FailStore.head(0));
    let fail = create(fail, 0, 2);
    let fail = create(member(fail, 1, 1), 1, 2).u8(CloseService.head(1));
    let fail = join_current(fail, 1);
    v.push(("store-failure", fail));
    // Join by name, by raw ID, RegCred, raw protobuf request.
    let misc = create(member(b(), 0, 0), 0, 4)
        .u8(Join.head(0))
        .u8(2)
        .u8(0)
        .u8(RegCred.head(1))
        .u8(Raw.head(1))
        .long_blob(&XlRegMsg::member(fixture().tokens[13].clone()).to_bytes())
        .u8(Join.head(1))
        .u8(3)
        .blob(&[0x5c; 20])
        .u8(MemberRaw.head(2))
        .blob(&[0x0a, 0x01, b'x']);
    v.push(("misc", misc));
    v
}
