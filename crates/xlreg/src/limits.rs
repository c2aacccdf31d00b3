//! The shape limits of clusters and tokens, in one place, always built.
//!
//! Why a module of its own: the client refuses what a registry would refuse
//! or clamp, the server's rules enforce it, and the CLI checks flags early;
//! all three read the numbers and the checks here, so they cannot drift
//! apart. The server's refusals keep their wire texts (`registry` maps a
//! [`LimitError`] to the text Go clients know); [`LimitError`]'s own text
//! is for users of the client and the CLI.

use std::time::Duration;

/// Smallest cluster size (spec §9.2: a registry clamps smaller sizes up).
pub const MIN_CLUSTER_SIZE: u32 = 2;
/// Largest cluster size: `Which` has 64 bits (a registry clamps larger
/// sizes down).
pub const MAX_CLUSTER_SIZE: u32 = 64;
/// Largest EndPointCount (endpoints each member registers); at least 1.
pub const MAX_ENDPOINT_COUNT: u32 = 16;
/// Longest cluster name, bytes (names are 1..=256 bytes).
pub const MAX_CLUSTER_NAME: usize = 256;
/// Longest cluster TTL a client may ask for (10 years), seconds; a
/// registry clamps longer ones to it.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;
/// Longest member token a registry accepts, encoded bytes.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// A value outside the limits above. Display names the value and the
/// allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// An empty cluster name.
    #[error("the name must be 1..={MAX_CLUSTER_NAME} bytes, not 0")]
    EmptyName,
    /// A cluster name longer than [`MAX_CLUSTER_NAME`] bytes.
    #[error("the name must be 1..={MAX_CLUSTER_NAME} bytes, not {0}")]
    NameTooLong(usize),
    /// A cluster size outside [`MIN_CLUSTER_SIZE`]..=[`MAX_CLUSTER_SIZE`].
    #[error("size {0} is not in {MIN_CLUSTER_SIZE}..={MAX_CLUSTER_SIZE}")]
    Size(u32),
    /// An EndPointCount of 0.
    #[error("0 endpoints per member is not in 1..={MAX_ENDPOINT_COUNT}")]
    NoEndpoints,
    /// An EndPointCount above [`MAX_ENDPOINT_COUNT`].
    #[error("{0} endpoints per member is not in 1..={MAX_ENDPOINT_COUNT}")]
    TooManyEndpoints(u32),
    /// A cluster TTL above [`MAX_TTL_SECS`].
    #[error("a TTL of {0} s is over the {MAX_TTL_SECS} s (10 years) a registry keeps")]
    Ttl(u64),
}

/// A cluster name: 1..=[`MAX_CLUSTER_NAME`] bytes.
pub fn check_cluster_name(name: &[u8]) -> Result<(), LimitError> {
    match name.len() {
        0 => Err(LimitError::EmptyName),
        n if n > MAX_CLUSTER_NAME => Err(LimitError::NameTooLong(n)),
        _ => Ok(()),
    }
}

/// A cluster size: [`MIN_CLUSTER_SIZE`]..=[`MAX_CLUSTER_SIZE`].
pub fn check_cluster_size(size: u32) -> Result<(), LimitError> {
    if (MIN_CLUSTER_SIZE..=MAX_CLUSTER_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(LimitError::Size(size))
    }
}

/// The size a registry gives a cluster asked for with `size` (spec §9.2:
/// clamped into [`MIN_CLUSTER_SIZE`]..=[`MAX_CLUSTER_SIZE`]).
pub fn clamp_cluster_size(size: u32) -> u32 {
    size.clamp(MIN_CLUSTER_SIZE, MAX_CLUSTER_SIZE)
}

/// An EndPointCount: 1..=[`MAX_ENDPOINT_COUNT`].
pub fn check_endpoint_count(count: u32) -> Result<(), LimitError> {
    match count {
        0 => Err(LimitError::NoEndpoints),
        n if n > MAX_ENDPOINT_COUNT => Err(LimitError::TooManyEndpoints(n)),
        _ => Ok(()),
    }
}

/// A cluster TTL: at most [`MAX_TTL_SECS`] (whole seconds on the wire; a
/// shorter one than 1 s counts as 1 s).
pub fn check_ttl(ttl: Duration) -> Result<(), LimitError> {
    match ttl.as_secs() {
        s if s > MAX_TTL_SECS => Err(LimitError::Ttl(s)),
        _ => Ok(()),
    }
}

/// The TTL a registry applies for `secs` asked (on the wire): clamped to
/// [`MAX_TTL_SECS`], in milliseconds. See [`clamp_ttl`].
pub fn clamp_ttl_ms(secs: u64) -> u64 {
    clamp_ttl(Duration::from_secs(secs))
}

/// The TTL a registry applies for `ttl` (asked, or configured): clamped
/// to [`MAX_TTL_SECS`], in whole milliseconds. The one clamp every TTL
/// goes through, so no stored TTL is ever longer.
pub fn clamp_ttl(ttl: Duration) -> u64 {
    // At most 10 years: the milliseconds fit a u64 many times over.
    ttl.min(Duration::from_secs(MAX_TTL_SECS)).as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_accepts_its_bounds_and_refuses_one_past_them() {
        assert_eq!(check_cluster_name(b""), Err(LimitError::EmptyName));
        assert!(check_cluster_name(b"c").is_ok());
        assert!(check_cluster_name(&[b'x'; MAX_CLUSTER_NAME]).is_ok());
        assert_eq!(
            check_cluster_name(&[b'x'; MAX_CLUSTER_NAME + 1]),
            Err(LimitError::NameTooLong(MAX_CLUSTER_NAME + 1))
        );
        assert!(check_cluster_size(MIN_CLUSTER_SIZE).is_ok());
        assert!(check_cluster_size(MAX_CLUSTER_SIZE).is_ok());
        assert_eq!(
            check_cluster_size(MIN_CLUSTER_SIZE - 1),
            Err(LimitError::Size(1))
        );
        assert_eq!(
            check_cluster_size(MAX_CLUSTER_SIZE + 1),
            Err(LimitError::Size(65))
        );
        assert_eq!(check_endpoint_count(0), Err(LimitError::NoEndpoints));
        assert!(check_endpoint_count(1).is_ok());
        assert!(check_endpoint_count(MAX_ENDPOINT_COUNT).is_ok());
        assert_eq!(
            check_endpoint_count(MAX_ENDPOINT_COUNT + 1),
            Err(LimitError::TooManyEndpoints(17))
        );
        assert!(check_ttl(Duration::from_secs(MAX_TTL_SECS)).is_ok());
        assert_eq!(
            check_ttl(Duration::from_secs(MAX_TTL_SECS + 1)),
            Err(LimitError::Ttl(MAX_TTL_SECS + 1))
        );
    }

    #[test]
    fn clamps_keep_sizes_and_ttls_in_range() {
        assert_eq!(clamp_cluster_size(0), MIN_CLUSTER_SIZE);
        assert_eq!(clamp_cluster_size(7), 7);
        assert_eq!(clamp_cluster_size(1000), MAX_CLUSTER_SIZE);
        assert_eq!(clamp_ttl_ms(2), 2000);
        assert_eq!(clamp_ttl_ms(u64::MAX), MAX_TTL_SECS * 1000);
        assert_eq!(clamp_ttl(Duration::from_millis(1500)), 1500);
        assert_eq!(clamp_ttl(Duration::MAX), MAX_TTL_SECS * 1000);
    }

    #[test]
    fn texts_name_the_value_and_the_range() {
        assert_eq!(
            LimitError::NameTooLong(300).to_string(),
            "the name must be 1..=256 bytes, not 300"
        );
        assert_eq!(LimitError::Size(65).to_string(), "size 65 is not in 2..=64");
        assert_eq!(
            LimitError::TooManyEndpoints(17).to_string(),
            "17 endpoints per member is not in 1..=16"
        );
    }
}
