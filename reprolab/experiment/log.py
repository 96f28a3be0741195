"""The one line format of ``reprolab run``'s progress messages: ``[reprolab] ...`` on stdout, flushed at once."""

from __future__ import annotations


def log(msg: str) -> None:
    print(f"[reprolab] {msg}", flush=True)
