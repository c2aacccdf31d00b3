//! The open-file budget of `xlreg serve`: raise the soft RLIMIT_NOFILE to
//! the hard limit at start (as Go's runtime and nginx do), then make sure
//! the registry port's connections, the HTTP side door's connections, the
//! store's files and a margin fit under it, lowering the connection caps
//! (and saying so) when they do not.
//!
//! Why: every connection is an open file. When the process runs out,
//! `accept` fails on every listener at once, so a flood on one port would
//! take the other down (issue 21). With both caps under the limit, neither
//! port can take open files the other needs.

/// Open files kept free for everything that is not a connection: stdio,
/// the epoll and signal descriptors, listeners, the data-dir lock,
/// regCred.dat and token writes, a connection accepted for eviction.
pub const MARGIN: u64 = 64;

/// The smallest registry-port cap the budget may lower `--max-connections` to.
pub const MIN_PROTOCOL: u64 = 16;

/// The smallest HTTP cap the budget may lower `--http-max-connections` to.
pub const MIN_HTTP: u64 = 4;

/// The caps that fit, and what was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Registry-port connections.
    pub protocol: u64,
    /// HTTP connections (0 when the side door is off).
    pub http: u64,
    /// A warning for the operator when a cap was lowered.
    pub lowered: Option<String>,
}

/// Raise the soft open-file limit to the hard one; returns (soft, hard)
/// after the change (or as they were when the change failed).
pub fn raise_nofile() -> (u64, u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return (u64::MAX, u64::MAX);
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            } else {
                tracing::warn!(
                    soft = rl.rlim_cur,
                    hard = rl.rlim_max,
                    "cannot raise the open-file limit to its hard limit"
                );
            }
        }
    }
    (rl.rlim_cur, rl.rlim_max)
}

/// Fit `protocol` + `http` connections + `store` files + [`MARGIN`] under
/// `limit` open files. When they do not fit, the HTTP cap is lowered first
/// (to an eighth of what is left, at least [`MIN_HTTP`]) and the registry
/// port gets the rest; an error when not even the minimums fit.
pub fn fit(limit: u64, protocol: u64, http: u64, store: u64) -> Result<Budget, String> {
    let need = protocol
        .saturating_add(http)
        .saturating_add(store)
        .saturating_add(MARGIN);
    if need <= limit {
        return Ok(Budget {
            protocol,
            http,
            lowered: None,
        });
    }
    let min_http = http.min(MIN_HTTP);
    let min_total = MIN_PROTOCOL.min(protocol) + min_http + store + MARGIN;
    if limit < min_total {
        return Err(format!(
            "the open-file limit ({limit}) is below the {min_total} files xlreg serve needs \
             at least ({} registry connections, {min_http} HTTP connections, {store} for the \
             store, {MARGIN} spare); raise it (ulimit -n)",
            MIN_PROTOCOL.min(protocol)
        ));
    }
    let room = limit - store - MARGIN;
    let new_http = http.min((room / 8).max(min_http));
    let new_protocol = protocol.min(room - new_http);
    let mut what = Vec::new();
    if new_protocol < protocol {
        what.push(format!("--max-connections {protocol} to {new_protocol}"));
    }
    if new_http < http {
        what.push(format!("--http-max-connections {http} to {new_http}"));
    }
    Ok(Budget {
        protocol: new_protocol,
        http: new_http,
        lowered: Some(format!(
            "the open-file limit ({limit}) cannot hold --max-connections {protocol} + \
             --http-max-connections {http} + {store} store files + {MARGIN} spare; \
             lowered {}",
            what.join(" and ")
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_that_fit_are_kept() {
        let b = fit(20_000, 1024, 128, 3).unwrap();
        assert_eq!((b.protocol, b.http, b.lowered), (1024, 128, None));
    }

    #[test]
    fn caps_over_the_limit_are_lowered_to_fit_and_the_warning_says_which() {
        let b = fit(256, 1024, 128, 3).unwrap();
        assert!(b.protocol + b.http + 3 + MARGIN <= 256, "{b:?}");
        assert_eq!(b.http, (256 - 3 - MARGIN) / 8);
        assert_eq!(b.protocol, 256 - 3 - MARGIN - b.http);
        let w = b.lowered.unwrap();
        assert!(
            w.contains("open-file limit (256)")
                && w.contains("--max-connections 1024 to 166")
                && w.contains("--http-max-connections 128 to 23"),
            "{w}"
        );
    }

    #[test]
    fn only_the_registry_cap_is_lowered_when_http_is_off() {
        let b = fit(1024, 1024, 0, 18).unwrap();
        assert_eq!((b.protocol, b.http), (1024 - 18 - MARGIN, 0));
        let w = b.lowered.unwrap();
        assert!(!w.contains("--http-max-connections 0 to"), "{w}");
    }

    #[test]
    fn a_limit_below_the_minimums_is_an_error_naming_ulimit() {
        let e = fit(70, 1024, 128, 3).unwrap_err();
        assert!(e.contains("(70)") && e.contains("ulimit -n"), "{e}");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let (soft, hard) = raise_nofile();
        assert_eq!(soft, hard);
    }
}
