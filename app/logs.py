"""Logging set-up: one line per event, secrets masked before anything is written."""

from __future__ import annotations

import contextvars
import fcntl
import json
import logging
import logging.handlers
import os
import re
import sys

from .config import Settings, check_log_file

LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5

# Midtrans keys, HTTP Basic credentials, and card-number-like digit runs.
_PATTERNS = [
    (re.compile(r"(SB-)?Mid-(server|client)-[A-Za-z0-9_\-]+"), "[REDACTED-MIDTRANS-KEY]"),
    (re.compile(r"(?i)(authorization:?\s*basic\s+)[A-Za-z0-9+/=]+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(x-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1[REDACTED]"),
    (re.compile(r"\b(\d{6})\d{3,9}(\d{4})\b"), r"\1******\2"),
]


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Redactor:
    """Masks secrets known at start-up and secret-shaped strings; escapes line breaks."""

    def __init__(self):
        self.secrets: list[str] = []

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


redactor = Redactor()
# The id of the HTTP request being served (set by app/observability.py), "-" outside one.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_base_factory = logging.getLogRecordFactory()


def _redacting_factory(*args, **kwargs) -> logging.LogRecord:
    """Every record is masked when it is made, so no handler (file, journal, test capture)
    ever sees a secret, whatever order handlers run in."""
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id_var.get()
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not hide the record
        message = str(record.msg)
    record.msg, record.args = redactor.redact(message), ()
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        record.exc_text = redactor.redact(text).replace("\\n", "\n")
    return record


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """LOG_FILE, rotated by size although several processes write it (gunicorn's workers and
    the worker service): the size is that of the file on disk; one process at a time rotates
    (a lock on the folder), and only if the file is still over the limit; every process opens
    the new file as soon as another one has rotated the old one away, so none keeps writing to
    app.log.1 or rotates the fresh file of another."""

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        self._reopen_if_moved()
        if self.maxBytes <= 0:
            return False
        try:
            return os.stat(self.baseFilename).st_size >= self.maxBytes
        except OSError:
            return False

    def doRollover(self) -> None:
        folder = os.open(os.path.dirname(self.baseFilename), os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            try:
                size = os.stat(self.baseFilename).st_size
            except FileNotFoundError:
                size = 0
            if size >= self.maxBytes:
                super().doRollover()
            else:  # another process rotated it while this one waited
                self._reopen_if_moved()
        finally:
            os.close(folder)  # releases the lock

    def _reopen_if_moved(self) -> None:
        if self.stream is None:
            return
        try:
            on_disk = os.stat(self.baseFilename)
        except FileNotFoundError:
            on_disk = None
        mine = os.fstat(self.stream.fileno())
        if on_disk is None or (on_disk.st_dev, on_disk.st_ino) != (mine.st_dev, mine.st_ino):
            self.stream.close()
            self.stream = self._open()


def configure_logging(settings: Settings) -> None:
    """stdout (systemd's journal) and, with LOG_FILE, a rotating file; a LOG_FILE that cannot
    be written is a ConfigError (one line naming it at start-up, see wsgi.py)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_gateway", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if settings.log_file:
        handlers.append(
            SharedRotatingFileHandler(
                check_log_file(settings.log_file),
                maxBytes=LOG_FILE_BYTES,
                backupCount=LOG_FILE_BACKUPS,
            )
        )
    formatter = (
        JsonFormatter()
        if settings.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    redactor.secrets = [
        s for s in (settings.midtrans.server_key, settings.secret_key) if s and len(s) >= 8
    ]
    logging.setLogRecordFactory(_redacting_factory)
    for handler in handlers:
        handler._gateway = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
