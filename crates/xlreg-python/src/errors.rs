//! Rust failures as Python exceptions.
//!
//! Why here: the exception classes live in Python (`xlreg/_errors.py`), so
//! that a network failure can also be an `OSError`/`TimeoutError` and users
//! can read and subclass them like any Python code. This file turns every
//! Rust error of the library — and a Rust panic — into one of those
//! classes, with the fields a program needs (`.server_text`, `.line`,
//! `.arrived`, `.errno`, ...), never a bare `RuntimeError` with a debug
//! string.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use xlreg::client::ClientError;
use xlreg::peer::PeerError;
use xlreg::regcred::{RegCredError, RegCredFileError};
use xlreg::server::ServerError;
use xlreg::testing::LaunchError;

/// A failure on the Rust side, converted to a Python exception when it
/// reaches Python (see [`Failure::into_pyerr`]).
#[derive(Debug)]
pub enum Failure {
    /// A client flow failed.
    Client(ClientError),
    /// A regCred file could not be read or parsed.
    RegCredFile(RegCredFileError),
    /// A regCred text did not parse.
    RegCredText(RegCredError),
    /// The in-process registry did not start.
    Server(ServerError),
    /// A local cluster could not be launched.
    Launch(LaunchError),
    /// The peer channel failed (a refusal, a timeout, a socket error).
    Peer(PeerError),
    /// `create_cluster` found the name taken by a cluster of another shape.
    Exists {
        /// The whole message.
        message: String,
        /// The cluster name.
        name: String,
        /// The existing cluster's size.
        max_size: u32,
        /// Its endpoints per member.
        endpoint_count: u32,
    },
    /// The caller passed something unusable (a `ValueError` too).
    Usage(String),
    /// A bug: a Rust panic, caught before it reached the interpreter.
    Panic(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}
impl From<RegCredFileError> for Failure {
    fn from(e: RegCredFileError) -> Self {
        Failure::RegCredFile(e)
    }
}
impl From<ServerError> for Failure {
    fn from(e: ServerError) -> Self {
        Failure::Server(e)
    }
}
impl From<LaunchError> for Failure {
    fn from(e: LaunchError) -> Self {
        Failure::Launch(e)
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> Self {
        f.into_pyerr()
    }
}

/// A `UsageError` (also a `ValueError`) with this message.
pub fn usage(msg: impl Into<String>) -> PyErr {
    Failure::Usage(msg.into()).into_pyerr()
}

/// What `xlreg._errors._from_rust` needs: the class to raise, the message
/// and the fields to set.
struct Spec {
    kind: &'static str,
    message: String,
    fields: Vec<(&'static str, Field)>,
}

enum Field {
    Str(String),
    Int(i64),
    Float(f64),
    None,
}

fn str_field(v: impl Into<String>) -> Field {
    Field::Str(v.into())
}

/// An error and its sources on one line (`a: b: c`), each source added
/// only when the text so far does not already contain it.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    msg
}

/// The cluster as the caller named it: the library quotes a name
/// (`"three"`) to tell it from an ID; Python wants the name itself.
fn unquote(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        serde_json::from_str::<String>(s).unwrap_or_else(|_| s[1..s.len() - 1].to_string())
    } else {
        s.to_string()
    }
}

/// The address a client timeout names: the text says `connecting to
/// ADDR`, `sending X to ADDR` or `waiting for X from ADDR (...)`.
fn timeout_address(what: &str) -> Option<String> {
    let at = [" to ", " from "]
        .iter()
        .filter_map(|w| what.rfind(w).map(|i| i + w.len()))
        .max()?;
    let addr = what[at..].split_whitespace().next()?;
    addr.contains(':').then(|| addr.to_string())
}

fn client_spec(e: &ClientError, context: Option<&str>) -> Spec {
    let message = match context {
        Some(c) => format!("{c}: {}", chain(e)),
        None => chain(e),
    };
    let (kind, fields) = match e {
        ClientError::Io { addr, source, .. } => {
            let timed_out = source.kind() == std::io::ErrorKind::TimedOut;
            (
                if timed_out { "timeout" } else { "network" },
                vec![
                    ("address", str_field(addr.clone())),
                    (
                        "errno",
                        source
                            .raw_os_error()
                            .map_or(Field::None, |n| Field::Int(n.into())),
                    ),
                ],
            )
        }
        ClientError::Timeout { after, what } => (
            "timeout",
            vec![
                ("after", Field::Float(after.as_secs_f64())),
                (
                    "address",
                    timeout_address(what).map_or(Field::None, str_field),
                ),
            ],
        ),
        ClientError::Closed { addr, .. } => ("closed", vec![("address", str_field(addr.clone()))]),
        ClientError::Server { request, text, .. } => (
            "registry",
            vec![
                ("server_text", str_field(text.clone())),
                ("request", str_field(*request)),
            ],
        ),
        ClientError::IncompleteCluster {
            cluster,
            have,
            want,
            waited,
            ..
        } => (
            "incomplete",
            vec![
                ("cluster", str_field(unquote(cluster))),
                ("arrived", Field::Int(*have as i64)),
                ("expected", Field::Int(*want as i64)),
                ("waited", Field::Float(waited.as_secs_f64())),
            ],
        ),
        ClientError::UnexpectedReply { .. } | ClientError::BadReply(_) | ClientError::Wire(_) => {
            ("protocol", vec![])
        }
        ClientError::Identity(_) => ("node", vec![]),
        ClientError::RegCred(_) => (
            "regcred",
            vec![("path", Field::None), ("line", Field::None)],
        ),
        ClientError::Usage(_) => ("usage", vec![]),
    };
    Spec {
        kind,
        message,
        fields,
    }
}

fn io_errno(e: &std::io::Error) -> Field {
    e.raw_os_error()
        .map_or(Field::None, |n| Field::Int(n.into()))
}

/// A peer channel failure: a refusal (either side), a timeout, a socket
/// error, a usage error, or another TLS failure.
fn peer_spec(e: &PeerError) -> Spec {
    let message = chain(e);
    let refused = |reason: String, address: &str, by: &str| {
        vec![
            ("reason", str_field(reason)),
            ("address", str_field(address)),
            ("refused_by", str_field(by)),
        ]
    };
    let (kind, fields) = match e {
        PeerError::Refused { addr, why } => ("peer_refused", refused(why.to_string(), addr, "us")),
        PeerError::RefusedByPeer { peer, why } => {
            ("peer_refused", refused(why.clone(), peer, "peer"))
        }
        PeerError::NotTls { addr, .. } => (
            "peer_refused",
            refused("it does not speak TLS".into(), addr, "us"),
        ),
        PeerError::Timeout { addr, after, .. } => (
            "peer_timeout",
            vec![
                ("address", str_field(addr.clone())),
                ("after", Field::Float(after.as_secs_f64())),
            ],
        ),
        PeerError::Io { addr, source, .. } => (
            "peer_network",
            vec![
                ("address", str_field(addr.clone())),
                ("errno", io_errno(source)),
            ],
        ),
        PeerError::Usage(_) => ("usage", vec![]),
        _ => ("base", vec![]),
    };
    Spec {
        kind,
        message,
        fields,
    }
}

impl Failure {
    fn spec(&self) -> Spec {
        match self {
            Failure::Peer(e) => peer_spec(e),
            Failure::Exists {
                message,
                name,
                max_size,
                endpoint_count,
            } => Spec {
                kind: "exists",
                message: message.clone(),
                fields: vec![
                    ("name", str_field(name.clone())),
                    ("max_size", Field::Int((*max_size).into())),
                    ("endpoint_count", Field::Int((*endpoint_count).into())),
                ],
            },
            Failure::Client(e) => client_spec(e, None),
            Failure::RegCredFile(e) => {
                let (path, line) = match e {
                    RegCredFileError::Io { path, .. } => (path, Field::None),
                    RegCredFileError::Parse { path, error } => {
                        (path, Field::Int(error.line as i64))
                    }
                };
                Spec {
                    kind: "regcred",
                    message: chain(e),
                    fields: vec![
                        ("path", str_field(path.display().to_string())),
                        ("line", line),
                    ],
                }
            }
            Failure::RegCredText(e) => Spec {
                kind: "regcred",
                message: e.to_string(),
                fields: vec![("path", Field::None), ("line", Field::Int(e.line as i64))],
            },
            Failure::Server(e) => Spec {
                kind: "base",
                message: format!("starting the registry: {}", chain(e)),
                fields: vec![],
            },
            Failure::Launch(LaunchError::Client { what, err }) => client_spec(err, Some(what)),
            Failure::Launch(LaunchError::Usage(m)) => Spec {
                kind: "usage",
                message: m.clone(),
                fields: vec![],
            },
            Failure::Launch(e) => Spec {
                kind: "base",
                message: chain(e),
                fields: vec![],
            },
            Failure::Usage(m) => Spec {
                kind: "usage",
                message: m.clone(),
                fields: vec![],
            },
            Failure::Panic(m) => Spec {
                kind: "internal",
                message: format!("internal error in xlreg (a bug, please report it): {m}"),
                fields: vec![],
            },
        }
    }

    /// The Python exception for this failure.
    pub fn into_pyerr(self) -> PyErr {
        let spec = self.spec();
        Python::attach(|py| match build(py, &spec) {
            Ok(err) => err,
            // Only if xlreg._errors itself is broken: still say what failed.
            Err(e) => e,
        })
    }
}

fn build(py: Python<'_>, spec: &Spec) -> PyResult<PyErr> {
    let fields = PyDict::new(py);
    for (k, v) in &spec.fields {
        match v {
            Field::Str(s) => fields.set_item(k, s)?,
            Field::Int(n) => fields.set_item(k, n)?,
            Field::Float(x) => fields.set_item(k, x)?,
            Field::None => fields.set_item(k, py.None())?,
        }
    }
    let exc = py.import("xlreg._errors")?.getattr("_from_rust")?.call1((
        spec.kind,
        &spec.message,
        fields,
    ))?;
    Ok(PyErr::from_value(exc))
}

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Run `f`, turning a panic into an `InternalError` instead of letting it
/// unwind into PyO3 (which would raise `PanicException`, a
/// `BaseException` that `except Exception` does not catch).
pub fn guard<T>(f: impl FnOnce() -> Result<T, Failure>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(Failure::into_pyerr),
        Err(p) => Err(Failure::Panic(panic_message(p.as_ref())).into_pyerr()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_names_the_address_its_text_names() {
        for (what, want) in [
            ("connecting to 127.0.0.1:4000", Some("127.0.0.1:4000")),
            ("waiting for the HelloReply from [::1]:9", Some("[::1]:9")),
            (
                "waiting for JoinReply from 10.0.0.1:55 (3 bytes received)",
                Some("10.0.0.1:55"),
            ),
            ("sending Bye to host:1", Some("host:1")),
            ("something else", None),
        ] {
            assert_eq!(timeout_address(what).as_deref(), want, "{what}");
        }
    }

    #[test]
    fn a_quoted_cluster_name_loses_its_quotes_and_an_id_stays() {
        assert_eq!(unquote("\"three\""), "three");
        assert_eq!(unquote("\"a \\\"b\\\"\""), "a \"b\"");
        assert_eq!(unquote("abcdef"), "abcdef");
    }
}
