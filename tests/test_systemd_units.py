"""The systemd units ops install: valid for systemd-analyze, and as the README describes them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNITS = ["midtrans-gateway.service", "midtrans-gateway-worker.service"]


def directives(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (REPO / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("unit", UNITS)
def test_unit_runs_from_the_install_folder_hardened(unit):
    d = directives(unit)
    assert d["WorkingDirectory"] == ["/opt/midtrans_flask"]
    assert d["EnvironmentFile"] == ["/opt/midtrans_flask/.env"]
    assert d["User"] == ["midtrans"]
    assert d["Restart"] == ["on-failure"]
    assert any("db upgrade" in v for v in d["ExecStartPre"])
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }.items():
        assert d[key] == [value], key
    assert "/opt/midtrans_flask/instance" in d["ReadWritePaths"][0]


def test_gateway_runs_gunicorn_with_the_shipped_config_and_worker_runs_the_worker():
    assert "gunicorn --config gunicorn.conf.py" in directives(UNITS[0])["ExecStart"][0]
    assert directives(UNITS[1])["ExecStart"][0].endswith("flask --app wsgi worker")


def test_systemd_analyze_verify_passes(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing on CI (apt-get install systemd)")
        pytest.skip("systemd-analyze is not installed")
    # Point the units at this checkout so the programs they start exist here.
    (tmp_path / ".env").write_text("")
    for unit in UNITS:
        text = (REPO / unit).read_text().replace("/opt/midtrans_flask/.env", str(tmp_path / ".env"))
        (tmp_path / unit).write_text(text.replace("/opt/midtrans_flask", str(REPO)))
    result = subprocess.run(
        [tool, "verify", *(str(tmp_path / unit) for unit in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "midtrans-gateway" not in result.stderr, result.stderr
