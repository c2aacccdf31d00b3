//! Python bindings of xlreg: the extension module `xlreg._xlreg`, which the
//! pure-Python package `xlreg` (python/xlreg/) re-exports with docs and
//! types. Built by maturin from python/pyproject.toml.
//!
//! Why a crate of its own: the library stays free of Python; this crate
//! only converts arguments, runs the library's futures on one background
//! tokio runtime ([`runtime`]) and turns errors into the Python exception
//! classes of `xlreg._errors` ([`errors`]).

mod change;
mod cli;
mod errors;
mod exit;
mod faults;
mod flows;
mod logging;
mod node;
mod peer;
mod regcred;
mod runtime;
mod session;
mod testing;
mod up_env;
mod view;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _xlreg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<regcred::PyRegCred>()?;
    m.add_class::<node::PyNode>()?;
    m.add_class::<view::PyMember>()?;
    m.add_class::<view::PyClusterView>()?;
    m.add_class::<view::PyClusterInfo>()?;
    m.add_class::<view::PyMemberList>()?;
    m.add_class::<session::PySession>()?;
    m.add_class::<testing::PyLocalRegistry>()?;
    m.add_class::<testing::PyLocalCluster>()?;
    m.add_class::<testing::PyLocalMember>()?;
    m.add_class::<up_env::PyUpEnv>()?;
    m.add_function(wrap_pyfunction!(flows::create_cluster, m)?)?;
    m.add_function(wrap_pyfunction!(flows::create_cluster_async, m)?)?;
    m.add_function(wrap_pyfunction!(flows::register, m)?)?;
    m.add_function(wrap_pyfunction!(flows::register_async, m)?)?;
    m.add_function(wrap_pyfunction!(flows::boot, m)?)?;
    m.add_function(wrap_pyfunction!(flows::boot_async, m)?)?;
    m.add_function(wrap_pyfunction!(flows::read_members, m)?)?;
    m.add_function(wrap_pyfunction!(flows::read_members_async, m)?)?;
    m.add_class::<peer::PyListener>()?;
    m.add_class::<peer::PyConnection>()?;
    m.add_class::<peer::PyRelay>()?;
    m.add_function(wrap_pyfunction!(peer::_peer_listen, m)?)?;
    m.add_function(wrap_pyfunction!(peer::_peer_connect, m)?)?;
    m.add_function(wrap_pyfunction!(peer::_peer_connect_async, m)?)?;
    m.add_function(wrap_pyfunction!(peer::_peer_connect_anonymous, m)?)?;
    m.add_function(wrap_pyfunction!(peer::_peer_connect_anonymous_async, m)?)?;
    m.add_function(wrap_pyfunction!(cli::cli_main, m)?)?;
    m.add_class::<faults::PyNemesis>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<session::PyAsyncSession>()?;
    exit::install(m)?;
    logging::install(m.py())?;
    m.add_class::<change::PyWatch>()?;
    m.add_function(wrap_pyfunction!(change::resize, m)?)?;
    m.add_function(wrap_pyfunction!(change::resize_async, m)?)?;
    m.add_function(wrap_pyfunction!(change::evict, m)?)?;
    m.add_function(wrap_pyfunction!(change::evict_async, m)?)?;
    m.add_function(wrap_pyfunction!(change::leave, m)?)?;
    m.add_function(wrap_pyfunction!(change::leave_async, m)?)?;
    m.add_function(wrap_pyfunction!(change::watch, m)?)?;
    Ok(())
}
