"""RegCred: every Go and Python regCred.dat example parses like the Rust
reader, writes back byte for byte, and bad input names the line."""

from __future__ import annotations

from pathlib import Path

import pytest

import xlreg

# file, ID prefix, ID suffix, ID length (bytes), endpoint, version, file size
EXAMPLES = [
    ("regCred-examples/xlReg_go/regCred.dat", "1782e327", "4f7a", 20, "192.168.152.254:56789", "1.9.20", 969),
    ("regCred-examples/xlReg_go/portlandRegCred.dat", "839f8276", "bec7", 20, "54.186.197.123:56789", "1.8.4", 967),
    ("regCred-examples/xlReg_go/stockton.regCred.dat", "21b95b5c", "0c24", 32, "50.18.104.7:55555", "0.4.3", 988),
    ("regCred-examples/xlreg_py/stockton.regCred.dat", "21b95b5c", "0c24", 32, "50.18.104.7:55555", "0.4.3", 988),
    ("regCred-examples/xlreg_py/portland.regCred.dat", "a8431273", "8343", 32, "192.168.240.4:55555", "0.5", 988),
    ("xlReg_go/regCred/regCred.dat", "21b95b5c", "0c24", 32, "50.18.104.7:56789", "0.4.3", 988),
    ("xlreg_py/regCred/regCred.dat", "a8431273", "8343", 32, "192.168.240.4:55555", "0.5", 988),
    ("server-state-example/regCred.dat", "89939aa9", "044f", 20, "127.0.0.1:45678", "1.9.24", 963),
]


@pytest.mark.parametrize("example", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_every_regcred_example_parses_with_the_spec_values(vectors_dir: Path, example) -> None:
    f, pre, suf, id_len, endpoint, version, size = example
    path = vectors_dir / f
    data = path.read_bytes()
    assert len(data) == size
    rc = xlreg.RegCred.load(path)
    assert rc.name == "xlReg"
    assert rc.id.startswith(pre) and rc.id.endswith(suf)
    assert len(rc.id) == 2 * id_len
    assert rc.endpoints == [endpoint]
    assert rc.address == endpoint
    assert rc.version == version
    assert rc.path == path
    # The writer is byte-exact with the Go server's.
    assert rc.to_text().encode() == data
    assert xlreg.RegCred.parse(data.decode()) == rc


def test_every_example_has_keys_that_cryptography_loads(vectors_dir: Path) -> None:
    crypto = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    for f, *_ in EXAMPLES:
        rc = xlreg.RegCred.load(vectors_dir / f)
        for pem in (rc.comms_key_pem, rc.sig_key_pem):
            assert pem.startswith("-----BEGIN PUBLIC KEY-----")
            key = crypto.load_pem_public_key(pem.encode())
            assert key.key_size == 2048
            assert key.public_numbers().e == 65537
        fp = rc.fingerprints
        assert set(fp) == {"comms_key_sha256", "sig_key_sha256"}
        assert all(len(v) == 64 for v in fp.values())


def test_save_writes_the_same_bytes_and_loads_back(vectors_dir: Path, tmp_path: Path) -> None:
    src = vectors_dir / EXAMPLES[0][0]
    rc = xlreg.RegCred.load(src)
    out = tmp_path / "copy" / "regCred.dat"
    out.parent.mkdir()
    rc.save(out)
    assert out.read_bytes() == src.read_bytes()
    assert xlreg.RegCred.load(out) == rc


def test_a_broken_file_raises_regcred_error_with_file_and_line(vectors_dir: Path, tmp_path: Path) -> None:
    lines = (vectors_dir / EXAMPLES[0][0]).read_bytes().split(b"\r\n")
    # Line 3 is the ID line: break it.
    assert lines[2].strip().startswith(b"ID:")
    lines[2] = b"    ID: not-hex"
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\r\n".join(lines))
    with pytest.raises(xlreg.RegCredError) as ei:
        xlreg.RegCred.load(bad)
    e = ei.value
    assert isinstance(e, xlreg.XlRegError)
    assert e.path == str(bad)
    assert e.line == 3
    assert "bad registry ID" in str(e) and str(bad) in str(e)


def test_truncated_text_names_the_line_after_the_end() -> None:
    with pytest.raises(xlreg.RegCredError) as ei:
        xlreg.RegCred.parse("regCred {\n    Name: xlReg\n")
    assert ei.value.line == 3
    assert ei.value.path is None
    assert "end of file" in str(ei.value)


def test_a_missing_file_raises_regcred_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "regCred.dat"
    with pytest.raises(xlreg.RegCredError) as ei:
        xlreg.RegCred.load(missing)
    assert ei.value.path == str(missing)
    assert ei.value.line is None
    assert "cannot read" in str(ei.value)


def test_functions_take_a_path_instead_of_a_regcred_and_reject_other_types(tmp_path: Path) -> None:
    node = xlreg.Node.generate(key_bits=1024)
    with pytest.raises(xlreg.RegCredError):
        xlreg.register(tmp_path / "missing.dat", node)
    with pytest.raises(TypeError) as ei:
        xlreg.register(42, node)  # type: ignore[arg-type]
    assert "regcred must be" in str(ei.value)
