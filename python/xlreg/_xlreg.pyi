"""Type stubs of the extension module ``xlreg._xlreg`` (the Rust core)."""

import os
import socket
from pathlib import Path
from typing import Any, Awaitable, Dict, List, Optional, Tuple, Union, final

__version__: str

_Path = Union[str, "os.PathLike[str]"]
_RegCredLike = Union["RegCred", str, "os.PathLike[str]"]
_Buffer = Union[bytes, bytearray, memoryview]

@final
class RegCred:
    """Registry credentials (a regCred.dat file)."""

    @staticmethod
    def load(path: _Path) -> RegCred: ...
    @staticmethod
    def parse(text: str) -> RegCred: ...
    def save(self, path: _Path) -> None: ...
    def to_text(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def endpoints(self) -> List[str]: ...
    @property
    def address(self) -> Optional[str]: ...
    @property
    def version(self) -> str: ...
    @property
    def comms_key_pem(self) -> str: ...
    @property
    def sig_key_pem(self) -> str: ...
    @property
    def fingerprints(self) -> Dict[str, str]: ...
    @property
    def path(self) -> Optional[Path]: ...

@final
class Node:
    """A member's identity: name, node ID, RSA keys, endpoints."""

    @staticmethod
    def load_or_create(
        dir: _Path,
        name: Optional[str] = None,
        endpoints: Optional[List[str]] = None,
        key_bits: int = 2048,
    ) -> Node: ...
    @staticmethod
    def load(dir: _Path) -> Node: ...
    @staticmethod
    def generate(
        name: Optional[str] = None,
        endpoints: Optional[List[str]] = None,
        key_bits: int = 2048,
        key_pool: Optional[_Path] = None,
    ) -> Node: ...
    def save(self, dir: _Path) -> Node: ...
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def endpoints(self) -> List[str]: ...
    @property
    def comms_key_pem(self) -> str: ...
    @property
    def sig_key_pem(self) -> str: ...
    @property
    def comms_private_key_pem(self) -> str: ...
    @property
    def sig_private_key_pem(self) -> str: ...
    @property
    def key_bits(self) -> int: ...
    @property
    def fingerprints(self) -> Dict[str, str]: ...
    @property
    def dir(self) -> Optional[Path]: ...
    @property
    def created(self) -> bool: ...

@final
class Member:
    """One member of a cluster."""

    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def attrs(self) -> int: ...
    @property
    def endpoints(self) -> List[str]: ...
    @property
    def comms_key_pem(self) -> str: ...
    @property
    def sig_key_pem(self) -> str: ...
    @property
    def comms_key_sha256(self) -> str: ...
    @property
    def sig_key_sha256(self) -> str: ...
    @property
    def fingerprints(self) -> Dict[str, str]: ...

@final
class ClusterView:
    """Everything a booted member knows about its cluster."""

    @property
    def cluster_id(self) -> str: ...
    @property
    def cluster_name(self) -> Optional[str]: ...
    @property
    def max_size(self) -> int: ...
    @property
    def endpoint_count(self) -> int: ...
    @property
    def attrs(self) -> int: ...
    @property
    def self_index(self) -> int: ...
    @property
    def version(self) -> int:
        """The cluster's version (views from :func:`watch`), else 0."""
    @property
    def me(self) -> Member: ...
    @property
    def members(self) -> List[Member]: ...
    @property
    def peers(self) -> List[Member]: ...
    @property
    def is_complete(self) -> bool: ...
    def member(self, index: int) -> Optional[Member]: ...
    def to_json(self) -> str: ...
    def __len__(self) -> int: ...

@final
class ClusterInfo:
    """A cluster as described by a CreateReply or JoinReply."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def max_size(self) -> int: ...
    @property
    def endpoint_count(self) -> int: ...
    @property
    def attrs(self) -> int: ...

@final
class MemberList:
    """A cluster's members, read without joining."""

    @property
    def cluster_id(self) -> str: ...
    @property
    def members(self) -> List[Member]: ...
    def to_json(self) -> str: ...
    def __len__(self) -> int: ...

@final
class Session:
    """One registry session, one protocol step per call."""

    def __init__(self, regcred: _RegCredLike, *, timeout: Optional[float] = None) -> None: ...
    @property
    def address(self) -> str: ...
    @property
    def is_open(self) -> bool: ...
    def register(self, node: Node, attrs: int = 0) -> str: ...
    def create(self, name: str, size: int, endpoints: int = 1) -> ClusterInfo: ...
    def join(self, cluster: Optional[str] = None, *, cluster_id: Optional[str] = None) -> ClusterInfo: ...
    def get_members(self, cluster_id: str, indexes: Optional[List[int]] = None) -> List[Member]: ...
    def delete_cluster(self, cluster: Optional[str] = None, *, cluster_id: Optional[str] = None) -> None: ...
    def bye(self) -> None: ...
    def __enter__(self) -> Session: ...
    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None: ...

@final
class UpEnv:
    """The environment `xlreg up -- CMD` gives each member program."""

    @staticmethod
    def from_env() -> UpEnv: ...
    @property
    def regcred_path(self) -> Path: ...
    @property
    def cluster_name(self) -> str: ...
    @property
    def cluster_id(self) -> str: ...
    @property
    def cluster_size(self) -> int: ...
    @property
    def member_name(self) -> str: ...
    @property
    def member_index(self) -> int: ...
    @property
    def endpoints(self) -> List[str]: ...
    @property
    def node_dir(self) -> Path: ...
    def regcred(self) -> RegCred: ...
    def node(self) -> Node: ...
    def boot(self, wait: Optional[float] = 30.0, *, timeout: Optional[float] = None) -> ClusterView: ...
    def boot_async(
        self, wait: Optional[float] = 30.0, *, timeout: Optional[float] = None
    ) -> Awaitable[ClusterView]: ...
    @staticmethod
    def take_listeners() -> Optional[List[socket.socket]]: ...

@final
class LocalRegistry:
    """An in-process registry (context manager)."""

    def __init__(
        self,
        *,
        data_dir: Optional[_Path] = None,
        hold: Optional[float] = None,
        cluster_ttl: Optional[float] = None,
        ephemeral_ttl: Optional[float] = None,
    ) -> None: ...
    def restart(self) -> None:
        """Stop and start again on the same address and ``data_dir``."""
    @property
    def data_dir(self) -> Optional[Path]: ...
    @property
    def regcred(self) -> RegCred: ...
    @property
    def regcred_path(self) -> Path: ...
    @property
    def address(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def stop(self) -> None: ...
    def __enter__(self) -> LocalRegistry: ...
    def __exit__(self, *args: Any) -> None: ...

@final
class LocalMember:
    """A booted member of a LocalCluster."""

    @property
    def node(self) -> Node: ...
    @property
    def view(self) -> ClusterView: ...
    @property
    def index(self) -> int: ...
    @property
    def endpoints(self) -> List[str]: ...
    def take_listeners(self) -> List[socket.socket]: ...

@final
class LocalCluster:
    """An in-process registry and a booted cluster (context manager)."""

    def __init__(
        self,
        size: int,
        endpoints: int = 2,
        key_bits: int = 1024,
        key_pool: Optional[_Path] = None,
        *,
        name: Optional[str] = None,
        regcred: Optional[_RegCredLike] = None,
        wait: float = 30.0,
        faults: bool = False,
    ) -> None: ...
    @property
    def members(self) -> List[LocalMember]: ...
    @property
    def views(self) -> List[ClusterView]: ...
    @property
    def info(self) -> ClusterInfo: ...
    @property
    def cluster_id(self) -> str: ...
    @property
    def cluster_name(self) -> Optional[str]: ...
    @property
    def regcred(self) -> RegCred: ...
    @property
    def regcred_path(self) -> Optional[Path]: ...
    @property
    def address(self) -> str: ...
    @property
    def timings(self) -> Dict[str, float]: ...
    @property
    def keys_reused(self) -> int: ...
    @property
    def keys_generated(self) -> int: ...
    def shutdown(self) -> None: ...
    def member_in(self, slot: int) -> Optional[LocalMember]:
        """The member in ``slot``, or None (an empty slot)."""
    def resize(self, size: int) -> int:
        """Resize to ``size`` as the cluster's creator; growing boots members
        (``m03``, ...) into the new slots, shrinking needs the slots from
        ``size`` up empty (``RegistryError`` names the member in the way).
        Returns the version once every member's watch saw it; ``UsageError``
        with ``faults=True``."""
    def evict(self, slot: int) -> int:
        """Stop the member in ``slot`` (its listeners not taken close) and
        evict it; the others keep their slots. Returns the new version."""
    def replace(self, slot: int) -> LocalMember:
        """Stop and evict the member in ``slot``, boot a new member (new ID,
        keys, endpoints) into that slot, wait until every member saw it;
        returns the newcomer."""
    def partition(self, groups: List[List[int]]) -> None:
        """Members in different groups cannot reach each other; a member in no
        group reaches no one (needs ``faults=True``)."""
    def isolate(self, i: int) -> None:
        """Member ``i`` reaches no one and no one reaches it."""
    def cut(self, i: int, j: int, one_way: bool = False) -> None:
        """Stop the bytes between ``i`` and ``j`` (only ``i`` -> ``j`` with ``one_way``)."""
    def delay(self, i: int, j: int, seconds: float, jitter: float = 0.0) -> None:
        """Bytes from ``i`` to ``j`` arrive ``seconds`` (+ up to ``jitter``) later."""
    def drop(self, i: int, j: int, probability: float) -> None:
        """Each chunk ``i`` -> ``j`` is lost with ``probability`` (arrives 200 ms late)."""
    def heal(self) -> None:
        """Remove every fault, on open connections too."""
    def current(self) -> List[str]:
        """The faults in force, in the words of ``xlreg fault``."""
    def nemesis(self, kind: str, every: float, seed: int) -> Nemesis:
        """Every ``every`` s a fault of ``kind`` (``"partition-halves"``,
        ``"isolate-one"``) chosen from ``seed``, then a heal."""
    def __len__(self) -> int: ...
    def __enter__(self) -> LocalCluster: ...
    def __exit__(self, *args: Any) -> None: ...

def create_cluster(
    regcred: _RegCredLike,
    name: str,
    size: int,
    endpoints: int = 1,
    *,
    admin: Optional[Node] = None,
    exist_ok: bool = False,
    timeout: Optional[float] = None,
) -> ClusterInfo:
    """Create cluster ``name`` as ``admin`` (default: one identity per process);
    ``ClusterExistsError`` if the name has another shape, unless ``exist_ok``.
    ``timeout``: seconds for connecting and each request (default 15)."""
def create_cluster_async(
    regcred: _RegCredLike,
    name: str,
    size: int,
    endpoints: int = 1,
    *,
    admin: Optional[Node] = None,
    exist_ok: bool = False,
    timeout: Optional[float] = None,
) -> Awaitable[ClusterInfo]: ...
def register(regcred: _RegCredLike, node: Node, *, timeout: Optional[float] = None) -> str: ...
def register_async(regcred: _RegCredLike, node: Node, *, timeout: Optional[float] = None) -> Awaitable[str]: ...
def boot(
    regcred: _RegCredLike,
    node: Node,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    wait: Optional[float] = 30.0,
    attrs: int = 0,
    timeout: Optional[float] = None,
) -> ClusterView: ...
def boot_async(
    regcred: _RegCredLike,
    node: Node,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    wait: Optional[float] = 30.0,
    attrs: int = 0,
    timeout: Optional[float] = None,
) -> Awaitable[ClusterView]: ...
def read_members(
    regcred: _RegCredLike,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    reader: Optional[Node] = None,
    timeout: Optional[float] = None,
) -> MemberList: ...
def read_members_async(
    regcred: _RegCredLike,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    reader: Optional[Node] = None,
    timeout: Optional[float] = None,
) -> Awaitable[MemberList]: ...
@final
class Connection:
    """An authenticated peer channel (see :mod:`xlreg.peer`); a context manager."""

    @property
    def peer(self) -> Optional[Member]:
        """The member proven on the other end; None for an anonymous client."""
    @property
    def peer_address(self) -> Tuple[str, int]:
        """The peer's ``(host, port)``."""
    @property
    def handshake_time(self) -> float:
        """Seconds from TCP connect (or accept) to the authenticated channel."""
    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
    def sendall(self, data: _Buffer) -> None:
        """Send all of ``data``."""
    def recv(self, n: int) -> bytes:
        """Up to ``n`` bytes (waits for at least one); ``b""`` at the end."""
    def shutdown(self) -> None:
        """End our direction (TLS close_notify); we can still receive."""
    def close(self) -> None:
        """Close (a recv/sendall in progress elsewhere fails). Idempotent."""
    def _relay(self) -> _Relay: ...
    def __enter__(self) -> Connection: ...
    def __exit__(self, *args: object) -> None: ...

@final
class _Relay:
    """A channel's in-process relay, driven by ``xlreg.aio.peer``'s transport."""

    def fileno(self) -> int: ...
    def poll(
        self, take: bool
    ) -> Tuple[Optional[memoryview], bool, Optional[Exception], bool]: ...
    def write(self, data: Union[bytes, bytearray]) -> bool: ...
    def buffer_size(self) -> int: ...
    def set_limits(self, high: int, low: int) -> None: ...
    def write_eof(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...

@final
class Listener:
    """A peer listener on a member endpoint (see :mod:`xlreg.peer`); a context manager."""

    def accept(self, timeout: Optional[float] = None) -> Connection:
        """The next authenticated peer (``PeerTimeoutError`` after ``timeout`` s;
        a refused dialer raises ``PeerRefusedError``, the listener stays usable)."""
    def _accept_async(self, timeout: Optional[float] = None) -> Awaitable[Connection]: ...
    @property
    def address(self) -> Tuple[str, int]:
        """The ``(host, port)`` listened on."""
    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
    def close(self) -> None:
        """Stop listening. Idempotent."""
    def __enter__(self) -> Listener: ...
    def __exit__(self, *args: object) -> None: ...

def _peer_listen(
    view: ClusterView, node: Node, fd: Optional[int] = None, allow_anonymous: bool = False
) -> Listener: ...
def _peer_connect(
    view: ClusterView, node: Node, index: int, timeout: float = 10.0, *, endpoint: int = 0
) -> Connection: ...
def _peer_connect_async(
    view: ClusterView, node: Node, index: int, timeout: float = 10.0, *, endpoint: int = 0
) -> Awaitable[Connection]: ...
def _peer_connect_anonymous(
    members: MemberList, index: int, timeout: float = 10.0, *, endpoint: int = 0
) -> Connection: ...
def _peer_connect_anonymous_async(
    members: MemberList, index: int, timeout: float = 10.0, *, endpoint: int = 0
) -> Awaitable[Connection]: ...
def cli_main(argv: List[str]) -> int: ...

@final
class Nemesis:
    """A running nemesis of ``LocalCluster.nemesis`` (context manager)."""

    @property
    def seed(self) -> int: ...
    def stop(self) -> None:
        """End the schedule and heal the cluster (idempotent)."""
    def __enter__(self) -> Nemesis: ...
    def __exit__(self, *args: Any) -> None: ...

@final
class _AsyncSession:
    """The core of `xlreg.aio.Session` (each step returns an awaitable)."""

    def __init__(self) -> None: ...
    @property
    def address(self) -> Optional[str]: ...
    @property
    def is_open(self) -> bool: ...
    def connect(self, regcred: _RegCredLike, timeout: Optional[float] = None) -> Awaitable[None]: ...
    def register(self, node: Node, attrs: int) -> Awaitable[str]: ...
    def create(self, name: str, size: int, endpoints: int) -> Awaitable[ClusterInfo]: ...
    def join(self, cluster: Optional[str], cluster_id: Optional[str]) -> Awaitable[ClusterInfo]: ...
    def get_members(self, cluster_id: str, indexes: Optional[List[int]]) -> Awaitable[List[Member]]: ...
    def delete_cluster(self, cluster: Optional[str], cluster_id: Optional[str]) -> Awaitable[None]: ...
    def bye(self) -> Awaitable[None]: ...

# Clusters that change (issue 23).
@final
class Watch:
    """Each new version of a cluster (see :func:`watch`); an iterator and a
    context manager."""

    @property
    def version(self) -> int:
        """The last version seen (or ``since``)."""
    def __iter__(self) -> "Watch": ...
    def __next__(self) -> ClusterView: ...
    def next_async(self) -> Awaitable[Optional[ClusterView]]:
        """The next view, or None at the end (what :func:`xlreg.aio.watch` iterates)."""
    def close(self) -> None:
        """Stop watching. Idempotent."""
    def __enter__(self) -> "Watch": ...
    def __exit__(self, *args: object) -> None: ...

def resize(
    regcred: _RegCredLike,
    size: int,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    admin: Optional[Node] = None,
    timeout: Optional[float] = None,
) -> int:
    """Resize the cluster as its creator; returns its version after the change."""
def resize_async(
    regcred: _RegCredLike,
    size: int,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    admin: Optional[Node] = None,
    timeout: Optional[float] = None,
) -> Awaitable[int]: ...
def evict(
    regcred: _RegCredLike,
    member: Union[int, str],
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    admin: Optional[Node] = None,
    timeout: Optional[float] = None,
) -> int:
    """Evict a member (slot index or name) as the creator; returns the new version."""
def evict_async(
    regcred: _RegCredLike,
    member: Union[int, str],
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    admin: Optional[Node] = None,
    timeout: Optional[float] = None,
) -> Awaitable[int]: ...
def leave(
    regcred: _RegCredLike,
    node: Node,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    timeout: Optional[float] = None,
) -> int:
    """``node`` leaves the cluster (its slot frees); returns the new version."""
def leave_async(
    regcred: _RegCredLike,
    node: Node,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    timeout: Optional[float] = None,
) -> Awaitable[int]: ...
def watch(
    regcred: _RegCredLike,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    node: Optional[Node] = None,
    since: int = 0,
    timeout: Optional[float] = None,
) -> Watch:
    """Watch the cluster change: iterate the result for each new version."""
