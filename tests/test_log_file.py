"""LOG_FILE as deployed: written through the link `app.log -> logs/app.log` the install steps
make (so the user's document's `tail -f /opt/midtrans_flask/app.log` shows it), rotated inside
logs/ (the only folder the systemd units let the services write besides instance/), and shared
by several processes (gunicorn's workers and the worker service) without losing a line."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e.servers import REPO, clean_env

from app.config import ConfigError, Settings
from app.logs import SharedRotatingFileHandler, configure_logging
from bench.processes import FLASK, run


@pytest.fixture
def install(tmp_path) -> Path:
    """/opt/midtrans_flask after the README's install steps: logs/ and the app.log link."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "app.log").symlink_to("logs/app.log")
    return tmp_path


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def settings(**env: str) -> Settings:
    return Settings.from_env({"SECRET_KEY": "k" * 32, **env})


@pytest.mark.parametrize("log_file", ["logs/app.log", "app.log"])
def test_the_worker_and_the_cli_write_the_file_tail_f_app_log_shows(install, log_file):
    """Both the documented LOG_FILE and the user's document's path (the link) work."""
    env = {
        **clean_env(),
        "DATABASE_URL": f"sqlite:///{install / 'instance' / 'gateway.db'}",
        "LOG_FILE": str(install / log_file),
    }
    for args in (["db", "upgrade"], ["worker", "--once"]):
        done = run([*FLASK, *args], env=env, cwd=install)
        assert done.returncode == 0, done.stdout + done.stderr
    shown = (install / "app.log").read_text()  # what `tail -f .../app.log` reads
    assert "app.worker" in shown and "worker stopped" in shown
    assert (install / "app.log").is_symlink() and (install / "logs" / "app.log").is_file()


def test_rotation_happens_beside_the_real_file_not_beside_the_link(install, restore_logging):
    configure_logging(settings(LOG_FILE=str(install / "app.log")))
    handler = next(
        h
        for h in logging.getLogger().handlers
        if getattr(h, "_gateway", False) and isinstance(h, SharedRotatingFileHandler)
    )
    assert handler.baseFilename == str(install / "logs" / "app.log")
    handler.maxBytes = 2000
    for number in range(100):
        logging.getLogger("rotation").warning("line %03d %s", number, "x" * 60)
    assert (install / "logs" / "app.log.1").exists()
    assert (install / "app.log").is_symlink()  # the link is still the link
    assert sorted(p.name for p in install.iterdir()) == ["app.log", "logs"]
    assert "line 099" in (install / "app.log").read_text()


def test_a_log_file_that_cannot_be_written_is_a_config_error(tmp_path, restore_logging):
    with pytest.raises(ConfigError, match=r"^LOG_FILE .*missing.* does not exist"):
        configure_logging(settings(LOG_FILE=str(tmp_path / "missing" / "app.log")))
    with pytest.raises(ConfigError, match=r"^LOG_FILE .*logs/app\.log"):
        configure_logging(settings(LOG_FILE="/proc/app.log"))


WRITER = """
import logging, sys, time
from app.logs import LOG_FILE_BACKUPS, SharedRotatingFileHandler
path, size, name, count, start = sys.argv[1:]
handler = SharedRotatingFileHandler(path, maxBytes=int(size), backupCount=LOG_FILE_BACKUPS)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("writer")
log.addHandler(handler)
log.propagate = False
while time.time() < float(start):  # all together, as busy gunicorn workers
    time.sleep(0.001)
for number in range(int(count)):
    log.warning("%s-%04d %s", name, number, "." * 100)
"""


def test_several_processes_share_one_rotating_file_without_losing_a_line(tmp_path):
    """Four processes write 400 lines each at once into a file rotated every 40 kB, 5 backups
    kept, as the real LOG_FILE (10 MB): every line is kept exactly once. (Python's own
    RotatingFileHandler, each process rotating by its own count, lost up to a quarter of them
    here, and printed "Logging error" tracebacks for renames of files already moved.)"""
    path = tmp_path / "app.log"
    start = str(time.time() + 2)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), "40000", f"p{n}", "400", start],
            cwd=REPO,
            env=clean_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    for writer in writers:
        _, errors = writer.communicate(timeout=60)
        assert writer.returncode == 0 and "Logging error" not in errors, errors
    files = sorted(tmp_path.glob("app.log*"))
    lines = [line for f in files for line in f.read_text().splitlines()]
    expected = [f"p{n}-{i:04d}" for n in range(4) for i in range(400)]
    assert sorted(line.split()[0] for line in lines) == expected
    # 4 x 400 lines of ~106 bytes = ~170 kB: 5 files of about 40 kB, none much bigger.
    assert len(files) <= 6 and all(f.stat().st_size < 40000 + 4 * 200 for f in files)


def test_the_handler_is_what_configure_logging_uses(tmp_path, restore_logging):
    configure_logging(settings(LOG_FILE=str(tmp_path / "app.log")))
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "_gateway", False)]
    files = [h for h in handlers if isinstance(h, logging.FileHandler)]
    assert len(files) == 1 and isinstance(files[0], SharedRotatingFileHandler)
