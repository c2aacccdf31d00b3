"""A cluster client: not a member, it reads the cluster from the registry
and calls one member over the encrypted channel (:mod:`xlreg.peer`).

Run it against a cluster whose member 0 listens for anonymous clients, for
example one ``xlreg peer listen --anonymous``::

    python examples/python/cluster_client.py regCred.dat CLUSTER [INDEX] [MESSAGE]

The client registers a throw-away identity to read the members
(:func:`xlreg.read_members`), dials member INDEX (default 0) without a
certificate (:func:`xlreg.peer.connect_anonymous`): the member proves it
holds the sig key the registry lists for it, the client stays anonymous.
The message goes in the framing of ``xlreg peer send`` (4-byte big-endian
length, the bytes; the member answers ``K``). Exits 0 once the member
confirmed the message.
"""

from __future__ import annotations

import sys
from typing import List

import xlreg
import xlreg.peer


def main(argv: List[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    regcred, cluster = argv[1], argv[2]
    index = int(argv[3]) if len(argv) > 3 else 0
    text = argv[4] if len(argv) > 4 else "hello from a cluster client"
    members = xlreg.read_members(regcred, cluster)
    print(f"cluster {cluster}: {len(members)} members: {[m.name for m in members.members]}")
    with xlreg.peer.connect_anonymous(members, index) as conn:
        assert conn.peer is not None
        xlreg.peer.send_message(conn, text.encode())
        print(f"sent {len(text)} bytes to member {conn.peer.index} ({conn.peer.name}), "
              f"authenticated by its registered sig key")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
