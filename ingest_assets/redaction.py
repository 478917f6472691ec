"""Secrets never reach a log: every log record of the process is redacted as it is made.

Libraries log what they send at DEBUG level: urllib3 writes each request line, query string
included (an API key sent as a query parameter); botocore writes request headers (a session
token). A filter on one logger would miss the others, so the project installs a log record
factory once, the first time a secret is registered, that replaces each registered secret (and
its URL-encoded forms) by ``***`` in every record's message, at every level, from every logger.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import quote, quote_plus

#: Shorter values are not redacted: replacing them would garble every log line, and a secret
#: that short protects nothing.
MIN_SECRET_LENGTH = 4

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_installed = False


def register_secret(value: str | None) -> None:
    """Redact ``value`` (and its URL-encoded forms) from every log record from now on."""
    global _installed
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _LOCK:
        _SECRETS.update({value, quote(value, safe=""), quote_plus(value)})
        if not _installed:
            previous = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_redacting(previous))
            _installed = True


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (longest first)."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _redacting(previous: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format is left to logging itself
            return record
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return record

    return factory
