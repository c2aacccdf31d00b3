"""Node: identities in memory and in node directories, and the directory
format shared with the CLI (`xlreg register/join --node-dir`) both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest

import xlreg
from xlreg.testing import LocalRegistry

from conftest import run_cli


def test_generate_makes_distinct_identities_with_the_given_fields() -> None:
    a = xlreg.Node.generate(name="a", endpoints=["127.0.0.1:7001"], key_bits=1024)
    b = xlreg.Node.generate(key_bits=1024)
    assert a.name == "a" and a.endpoints == ["127.0.0.1:7001"]
    assert a.key_bits == 1024 and a.dir is None and a.created
    assert len(a.id) == 40 and a.id != b.id
    assert a.comms_key_pem != b.comms_key_pem
    assert a.comms_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert a.comms_private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")


def test_private_and_public_keys_work_with_cryptography() -> None:
    ser = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    n = xlreg.Node.generate(key_bits=1024)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    ct = ser.load_pem_public_key(n.comms_key_pem.encode()).encrypt(b"secret", oaep)
    priv = ser.load_pem_private_key(n.comms_private_key_pem.encode(), password=None)
    assert priv.decrypt(ct, oaep) == b"secret"


def test_load_or_create_keeps_the_identity_across_loads(tmp_path: Path) -> None:
    d = tmp_path / "node"
    a = xlreg.Node.load_or_create(d, name="keeper", endpoints=["127.0.0.1:7002"], key_bits=1024)
    assert a.created and a.dir == d
    assert (d / "node.json").exists()
    b = xlreg.Node.load_or_create(d)
    assert not b.created
    assert (b.id, b.name, b.endpoints, b.comms_key_pem) == (a.id, a.name, a.endpoints, a.comms_key_pem)
    c = xlreg.Node.load_or_create(d, endpoints=["127.0.0.1:7003"])
    assert c.id == a.id and c.endpoints == ["127.0.0.1:7003"]
    assert xlreg.Node.load(d).endpoints == ["127.0.0.1:7003"]


def test_a_node_directory_made_by_the_cli_is_used_by_python(
    tmp_path: Path, xlreg_cmd: List[str], cli_env: dict
) -> None:
    d = tmp_path / "cli-node"
    with LocalRegistry() as r:
        p = run_cli(
            xlreg_cmd, cli_env, "register", "--regcred", str(r.regcred_path),
            "--node-dir", str(d), "--name", "cli-made", "--endpoint", "127.0.0.1:7010",
            "--key-bits", "1024", "--json",
        )
        assert p.returncode == 0, p.stderr
        printed = json.loads(p.stdout)
        node = xlreg.Node.load(d)
        assert node.id == printed["id"]
        assert node.name == "cli-made" and node.endpoints == ["127.0.0.1:7010"]
        # The registry confirms the same ID for Python's registration.
        assert xlreg.register(r.regcred, node) == printed["id"]


def test_a_node_directory_made_by_python_is_used_by_the_cli(
    tmp_path: Path, xlreg_cmd: List[str], cli_env: dict
) -> None:
    d = tmp_path / "py-node"
    node = xlreg.Node.load_or_create(d, name="py-made", endpoints=["127.0.0.1:7011"], key_bits=1024)
    with LocalRegistry() as r:
        p = run_cli(
            xlreg_cmd, cli_env, "register", "--regcred", str(r.regcred_path),
            "--node-dir", str(d), "--json",
        )
        assert p.returncode == 0, p.stderr
        printed = json.loads(p.stdout)
        assert printed["id"] == node.id
        assert printed["name"] == "py-made"
        assert printed["endpoints"] == ["127.0.0.1:7011"]
    # The CLI did not rewrite the keys.
    assert xlreg.Node.load(d).comms_key_pem == node.comms_key_pem


def test_save_writes_a_directory_that_loads_back(tmp_path: Path) -> None:
    n = xlreg.Node.generate(name="saved", endpoints=["127.0.0.1:7012"], key_bits=1024)
    s = n.save(tmp_path / "saved")
    assert s.dir == tmp_path / "saved"
    back = xlreg.Node.load(tmp_path / "saved")
    assert (back.id, back.sig_key_pem) == (n.id, n.sig_key_pem)
