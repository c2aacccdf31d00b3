"""The exceptions xlreg raises.

Every failure is an :class:`XlRegError`. Network failures are also
:class:`OSError` (with ``errno`` when the OS gave one), and a timeout is also
a :class:`TimeoutError`, so ``except OSError`` and ``except TimeoutError``
work as for any socket code. A bad argument is a :class:`UsageError`, which
is also a :class:`ValueError`.
"""

from __future__ import annotations

import errno as _errno
from typing import Any, Dict, Optional, Type

__all__ = [
    "XlRegError",
    "RegCredError",
    "RegistryError",
    "IncompleteClusterError",
    "NetworkError",
    "RegistryTimeoutError",
    "RegistryUnreachableError",
    "ConnectionClosedError",
    "ProtocolError",
    "NodeError",
    "UsageError",
    "ClusterExistsError",
    "InternalError",
    "PeerRefusedError",
    "PeerTimeoutError",
]


class XlRegError(Exception):
    """Base class of every xlreg error. ``str(e)`` says what failed and where."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        for k, v in fields.items():
            setattr(self, k, v)

    def __str__(self) -> str:
        return self.message


class RegCredError(XlRegError):
    """A regCred.dat file or text that cannot be read or parsed.

    ``path`` is the file (None for text), ``line`` the 1-based line that is
    wrong (None when the file could not be read at all).
    """

    path: Optional[str] = None
    line: Optional[int] = None


class RegistryError(XlRegError):
    """The registry refused a request with an Error message.

    ``server_text`` is the registry's text verbatim; ``request`` the refused
    request (``Join``, ``GetCluster``, ...).
    """

    server_text: str = ""
    request: str = ""


class IncompleteClusterError(XlRegError):
    """The cluster did not fill up before the deadline.

    ``arrived`` members of ``expected`` had joined cluster ``cluster`` after
    ``waited`` seconds.
    """

    cluster: str = ""
    arrived: int = 0
    expected: int = 0
    waited: float = 0.0


class NetworkError(XlRegError, OSError):
    """The registry (or a peer, on the channel of :mod:`xlreg.peer`) could
    not be reached or the connection failed.

    Also an :class:`OSError`: ``errno`` is set when the OS reported one
    (e.g. ``errno.ECONNREFUSED`` when nothing listens). ``address`` is the
    registry's (or the peer's) address.
    """

    address: Optional[str] = None

    def __init__(self, message: str, errno: Optional[int] = None, **fields: Any) -> None:
        OSError.__init__(self, errno, message)
        self.message = message
        for k, v in fields.items():
            setattr(self, k, v)

    def __str__(self) -> str:
        return self.message


class RegistryTimeoutError(NetworkError, TimeoutError):
    """Nothing happened within the timeout (connecting, or a reply).

    Also a :class:`TimeoutError`; ``after`` is the timeout in seconds when
    known.
    """

    after: Optional[float] = None


class RegistryUnreachableError(NetworkError, ConnectionRefusedError):
    """Nothing listens at the registry's address (connection refused).

    Also a :class:`ConnectionRefusedError`; ``errno`` is ``ECONNREFUSED``.
    """


class ConnectionClosedError(NetworkError, ConnectionError):
    """The registry closed the connection instead of answering (a Go
    registry does this when the regCred does not match it)."""


class PeerRefusedError(XlRegError, ConnectionError):
    """A peer channel handshake was refused (:mod:`xlreg.peer`).

    Also a :class:`ConnectionError`. ``reason`` says why, in the words
    both sides use (``it presented no certificate ...``, ``its certificate
    key ... is not the registered sig key of member 1 ...``, ``it is bound
    to cluster ..., this is cluster ...``, ``it does not speak TLS``);
    ``refused_by`` is ``"us"`` when this side refused the other one and
    ``"peer"`` when the other side refused us; ``address`` names the peer.
    """

    reason: str = ""
    refused_by: str = ""
    address: Optional[str] = None

    def __init__(self, message: str, **fields: Any) -> None:
        ConnectionError.__init__(self, message)
        self.message = message
        for k, v in fields.items():
            setattr(self, k, v)


class PeerTimeoutError(NetworkError, TimeoutError):
    """A peer channel operation did not finish in time (connecting and the
    handshake, or ``Listener.accept(timeout=...)``).

    ``after`` is the timeout in seconds, ``address`` the peer or listener.
    """

    after: Optional[float] = None


class ProtocolError(XlRegError):
    """The registry sent something that is not valid xlReg protocol."""


class NodeError(XlRegError):
    """A node identity could not be created, loaded or saved (the message
    names the file)."""


class UsageError(XlRegError, ValueError):
    """A bad argument, or a step the protocol does not allow here."""


class ClusterExistsError(UsageError):
    """:func:`xlreg.create_cluster` found the name taken by a cluster of
    another size or endpoint count (pass ``exist_ok=True`` to use it).

    ``name``, and the existing cluster's ``max_size`` and
    ``endpoint_count``. Also a :class:`UsageError` / :class:`ValueError`.
    """

    name: str = ""
    max_size: int = 0
    endpoint_count: int = 0


class InternalError(XlRegError):
    """A bug in xlreg (a Rust panic, caught before it could crash Python)."""


_KINDS: Dict[str, Type[XlRegError]] = {
    "base": XlRegError,
    "regcred": RegCredError,
    "registry": RegistryError,
    "incomplete": IncompleteClusterError,
    "network": NetworkError,
    "timeout": RegistryTimeoutError,
    "closed": ConnectionClosedError,
    "protocol": ProtocolError,
    "node": NodeError,
    "usage": UsageError,
    "internal": InternalError,
    "exists": ClusterExistsError,
    "peer_refused": PeerRefusedError,
    "peer_timeout": PeerTimeoutError,
    "peer_network": NetworkError,
}


def _from_rust(kind: str, message: str, fields: Dict[str, Any]) -> XlRegError:
    """Build the exception for a Rust failure (called by the extension)."""
    cls: Type[XlRegError] = _KINDS.get(kind, XlRegError)
    if kind == "network" and fields.get("errno") == _errno.ECONNREFUSED:
        cls = RegistryUnreachableError
    return cls(message, **fields)
