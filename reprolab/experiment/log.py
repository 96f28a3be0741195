"""The one line format of ``reprolab run``'s progress messages: ``[reprolab] ...`` on stdout, flushed at once."""

from __future__ import annotations


def log(msg: str) -> None:
    from reprolab.distributed import is_main

    if is_main():  # torchrun: rank 0 speaks for all
        print(f"[reprolab] {msg}", flush=True)
