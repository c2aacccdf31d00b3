"""The type stubs (`_xlreg.pyi`) describe exactly what the extension has."""

from __future__ import annotations

import ast
from pathlib import Path

import xlreg
from xlreg import _xlreg

STUB = Path(xlreg.__file__).with_name("_xlreg.pyi")
DUNDERS = {"__enter__", "__exit__", "__len__", "__iter__", "__next__"}


def public(names: object) -> set:
    return {n for n in names if not n.startswith("__") or n in DUNDERS}  # type: ignore[union-attr]


def test_every_class_and_function_of_the_extension_is_in_the_stub_and_back() -> None:
    tree = ast.parse(STUB.read_text())
    stub_top = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert public(dir(_xlreg)) == stub_top
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            stub_members = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} - {"__init__"}
            assert public(dir(getattr(_xlreg, node.name))) == stub_members, node.name


def test_the_package_ships_its_stub_and_py_typed_marker() -> None:
    assert STUB.is_file()
    assert STUB.with_name("py.typed").is_file()


def test_the_package_example_and_benchmark_type_check_strictly(repo: Path) -> None:
    import pytest

    api = pytest.importorskip("mypy.api")
    for target in (
        ["-p", "xlreg"],
        [
            str(repo / "examples" / "python" / "ring.py"),
            str(repo / "examples" / "python" / "cluster_client.py"),
            str(repo / "python" / "bench" / "formation.py"),
            str(repo / "python" / "bench" / "peer.py"),
        ],
    ):
        out, err, status = api.run(["--strict", "--no-incremental", *target])
        assert status == 0, out + err
