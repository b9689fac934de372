"""Logging, configured once from a dict: plain lines for journald, or JSON lines."""

from __future__ import annotations

import json
import logging
import logging.config
from typing import Any


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    # A line for every request: skip the record fields that neither format shows (the logging
    # HOWTO's "Optimization"). The caller lookup alone was ~4 % of the event loop's time
    # under bench/api.py.
    logging._srcfile = None  # no file, line and function of the caller
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                # journald adds its own timestamps; the level and logger are what it lacks.
                "text": {"format": "%(levelname)s %(name)s: %(message)s"},
                "json": {"()": JsonFormatter},
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": fmt,
                    "stream": "ext://sys.stderr",
                },
            },
            "root": {"level": level.upper(), "handlers": ["stderr"]},
            "loggers": {
                # aiohttp's own access log would repeat ours (and print query strings).
                "aiohttp.access": {"level": "WARNING"},
                "apscheduler": {"level": "WARNING"},
            },
        }
    )
