"""Logs get the same masking as every other output (:mod:`bot.domain.masking`).

:func:`install` wraps the log-record factory once per process, so every record, whatever
logger or handler it goes to (stderr, a file, pytest's capture), has private keys, AWS
access key ids and the Secret values any check of this process learned masked in its
message and its exception text before anything formats it.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.domain.masking import process_masker

_MARK = "_gitops_bot_masking"


def mask_record(record: logging.LogRecord) -> None:
    """Mask ``record``'s message (arguments merged in) and exception text in place."""
    masker = process_masker()
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it; mask the raw parts
        message = str(record.msg)
    masked = masker.text(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        record.exc_text = masker.text(text)
    if record.stack_info:
        record.stack_info = masker.text(record.stack_info)


def install() -> None:
    """Mask every log record of this process (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, _MARK, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        mask_record(record)
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)
