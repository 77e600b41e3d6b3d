"""The simulator is its own app: it must never import the gateway (`app`)."""

import ast
from pathlib import Path

import simulator


def test_no_simulator_module_imports_the_gateway():
    offenders = []
    for path in Path(simulator.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] == "app"]

    assert offenders == []
