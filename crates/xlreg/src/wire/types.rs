//! Small value types of the protocol (spec §11): node IDs (20 or 32 raw
//! bytes), the decimal version (`a.b.c.d` packed into a little-endian
//! u32), the `Which` bitmap (bit i selects member index i) and endpoint
//! strings (`host:port`).
//!
//! They are plain values with strict constructors, so that every later layer
//! can rely on an ID being 20 or 32 bytes and a version string being valid.

use std::fmt;
use std::str::FromStr;

use super::WireError;

/// A node ID (member, cluster or registry): 20 or 32 raw bytes (spec §11.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    len: u8,
    bytes: [u8; 32],
}

impl NodeId {
    /// Length of the IDs the Go code (and this crate) generate.
    pub const GENERATED_LEN: usize = 20;

    /// Build an ID from raw bytes; only 20 or 32 bytes are valid.
    pub fn from_bytes(b: &[u8]) -> Result<Self, WireError> {
        if b.len() != 20 && b.len() != 32 {
            return Err(WireError::BadNodeIdLength(b.len()));
        }
        let mut bytes = [0u8; 32];
        bytes[..b.len()].copy_from_slice(b);
        Ok(NodeId {
            len: b.len() as u8,
            bytes,
        })
    }

    /// A fresh random 20-byte ID, as the Go server generates them.
    pub fn random() -> Self {
        let mut b = [0u8; 20];
        super::crypto::random_bytes(&mut b);
        NodeId::from_bytes(&b).expect("20 bytes is a valid ID length")
    }

    /// The raw bytes (20 or 32).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Lowercase hex, 40 or 64 digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.to_hex())
    }
}

impl FromStr for NodeId {
    type Err = WireError;
    /// Parse 40 or 64 hex digits (either case, surrounding white space ignored).
    fn from_str(s: &str) -> Result<Self, WireError> {
        let s = s.trim();
        let raw = hex::decode(s).map_err(|e| WireError::BadHex(format!("{s:?}: {e}")))?;
        NodeId::from_bytes(&raw)
    }
}

/// A protocol/software version: a u32 shown as `a.b.c.d` with `a` the least
/// significant byte, sent on the wire as the little-endian u32 (spec §11.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DecimalVersion(pub u32);

impl DecimalVersion {
    /// Build from the four parts `a.b.c.d`.
    pub const fn new(a: u8, b: u8, c: u8, d: u8) -> Self {
        DecimalVersion(a as u32 | (b as u32) << 8 | (c as u32) << 16 | (d as u32) << 24)
    }
    /// The four parts, `a` first.
    pub fn parts(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
    /// Wire form (little-endian u32: bytes a, b, c, d).
    pub fn to_wire(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
    /// From the 4 wire bytes.
    pub fn from_wire(b: [u8; 4]) -> Self {
        DecimalVersion(u32::from_le_bytes(b))
    }
    /// The first part (`a`), used to negotiate extensions.
    pub fn major(self) -> u8 {
        self.parts()[0]
    }
}

impl fmt::Display for DecimalVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.parts();
        if c == 0 && d == 0 {
            write!(f, "{a}.{b}")
        } else if d == 0 {
            write!(f, "{a}.{b}.{c}")
        } else {
            write!(f, "{a}.{b}.{c}.{d}")
        }
    }
}

impl fmt::Debug for DecimalVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DecimalVersion({self})")
    }
}

impl FromStr for DecimalVersion {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        let t = s.trim();
        let bad = || WireError::BadVersion(s.to_string());
        let parts: Vec<&str> = t.split('.').collect();
        if parts.is_empty() || parts.len() > 4 {
            return Err(bad());
        }
        let mut out = [0u8; 4];
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            out[i] = p.parse::<u8>().map_err(|_| bad())?;
        }
        Ok(DecimalVersion(u32::from_le_bytes(out)))
    }
}

/// The `Which` bitmap of GetCluster/ClusterMembers: bit i ↔ member index i
/// (spec §11.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Which(pub u64);

impl Which {
    /// Every member.
    pub const ALL: Which = Which(u64::MAX);

    /// Bits `0..n` set (all 64 for n ≥ 64).
    pub fn low_n(n: usize) -> Which {
        if n >= 64 {
            Which(u64::MAX)
        } else {
            Which((1u64 << n) - 1)
        }
    }
    /// Is member `i` selected?
    pub fn contains(self, i: usize) -> bool {
        i < 64 && self.0 & (1u64 << i) != 0
    }
    /// Select member `i` (ignored for i ≥ 64).
    pub fn insert(&mut self, i: usize) {
        if i < 64 {
            self.0 |= 1u64 << i;
        }
    }
    /// Number of selected members.
    pub fn count(self) -> usize {
        self.0.count_ones() as usize
    }
    /// True when nothing is selected.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Selected indexes in ascending order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |i| self.contains(*i))
    }
    /// Bits in both.
    pub fn and(self, o: Which) -> Which {
        Which(self.0 & o.0)
    }
    /// Bits in `self` but not in `o`.
    pub fn minus(self, o: Which) -> Which {
        Which(self.0 & !o.0)
    }
}

impl fmt::Debug for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Which({:#x})", self.0)
    }
}

/// Check that an endpoint is `host:port` with a numeric port, as the Go
/// clients need it (spec §11.5). Returns the string unchanged.
pub fn check_endpoint(s: &str) -> Result<&str, WireError> {
    let bad = |why: &str| WireError::BadEndpoint(format!("{s:?}: {why}"));
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    if host.contains(char::is_whitespace) {
        return Err(bad("white space in host"));
    }
    port.parse::<u16>()
        .map_err(|_| bad("port is not a number 0..65535"))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn version_examples_from_spec() {
        let cases = [
            ("1.2.3.4", 0x04030201u32),
            ("1.9.24", 0x00180901),
            ("0.4.3", 0x00030400),
            ("0.5", 0x00000500),
            ("1.8.4", 0x00040801),
            ("1.9.20", 0x00140901),
        ];
        for (s, v) in cases {
            let d: DecimalVersion = s.parse().unwrap();
            assert_eq!(d.0, v, "{s}");
            assert_eq!(d.to_string(), s);
        }
        assert_eq!(DecimalVersion(0x04030201).to_wire(), [1, 2, 3, 4]);
        assert_eq!("1".parse::<DecimalVersion>().unwrap().to_string(), "1.0");
        assert_eq!(DecimalVersion::new(1, 2, 0, 4).to_string(), "1.2.0.4");
        assert_eq!(
            " 1.9.24 \n".parse::<DecimalVersion>().unwrap().0,
            0x00180901
        );
    }

    #[test]
    fn version_rejects_bad_strings() {
        for s in [
            "",
            "1.2.3.4.5",
            "256",
            "1..2",
            "-1",
            "+1",
            "a.b",
            "1.2.",
            "1 .2",
        ] {
            assert!(s.parse::<DecimalVersion>().is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn node_id_accepts_only_20_or_32_bytes() {
        for n in [0, 1, 8, 19, 21, 31, 33, 64] {
            assert!(NodeId::from_bytes(&vec![7; n]).is_err(), "{n}");
        }
        assert_eq!(NodeId::from_bytes(&[1; 20]).unwrap().as_bytes().len(), 20);
        assert_eq!(NodeId::from_bytes(&[1; 32]).unwrap().to_hex().len(), 64);
        let id = NodeId::random();
        assert_eq!(id.to_hex().parse::<NodeId>().unwrap(), id);
        assert!("zz".parse::<NodeId>().is_err());
    }

    #[test]
    fn which_low_n_edges() {
        assert_eq!(Which::low_n(0).0, 0);
        assert_eq!(Which::low_n(3).0, 7);
        assert_eq!(Which::low_n(63).0, u64::MAX >> 1);
        assert_eq!(Which::low_n(64).0, u64::MAX);
        assert_eq!(Which::low_n(1000).0, u64::MAX);
        assert_eq!(Which(0b101).iter().collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn endpoint_check() {
        assert!(check_endpoint("127.0.0.1:40001").is_ok());
        assert!(check_endpoint("[::1]:5").is_ok());
        for s in ["", "127.0.0.1", ":80", "h:70000", "h:x", "a b:1"] {
            assert!(check_endpoint(s).is_err(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn version_string_round_trips(v in any::<u32>()) {
            let d = DecimalVersion(v);
            prop_assert_eq!(d.to_string().parse::<DecimalVersion>().unwrap(), d);
            prop_assert_eq!(DecimalVersion::from_wire(d.to_wire()), d);
        }

        #[test]
        fn which_low_n_has_n_bits(n in 0usize..200) {
            prop_assert_eq!(Which::low_n(n).count(), n.min(64));
        }

        #[test]
        fn which_iter_matches_bits(v in any::<u64>()) {
            let w = Which(v);
            let mut back = Which(0);
            for i in w.iter() { back.insert(i); }
            prop_assert_eq!(back, w);
            prop_assert_eq!(w.iter().count(), w.count());
        }
    }
}
