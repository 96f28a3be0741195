"""The result of an exercise checker (:mod:`reprolab.course.check`) and the helpers the checkers share."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Result:
    ok: bool
    why: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"{'✓ right' if self.ok else '✗ not yet'}: {self.why}"

    def _repr_markdown_(self) -> str:
        return f"**{'✓ right' if self.ok else '✗ not yet'}**: {self.why}"


RIGHT, NOT_YET = (lambda why: Result(True, why)), (lambda why: Result(False, why))
NONE = "no answer yet — put yours in the answer variable of the cell above, in the form its text asks for"


def _close(a, b, tol) -> bool:
    try:
        return math.isclose(float(a), float(b), abs_tol=tol)
    except (TypeError, ValueError):
        return False


def _acc(logits, labels) -> float:
    return float((logits.argmax(-1).cpu() == labels.cpu()).float().mean())


def _tuple(answer, n):
    return isinstance(answer, (tuple, list)) and len(answer) == n
