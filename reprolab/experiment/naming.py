"""How methods, their chosen params and their α's are named in logs, rows and tables.

Two α's with opposite meanings appear side by side in the kit's tables, so each carries its own label:
the Residual Reprogrammer's ``α_zs`` is the weight on the ZERO-SHOT features (0 = reprogrammer, 1 = zero-shot);
WiSE-FT's ``α_ft`` is the weight on the FINE-TUNED weights (0 = zero-shot, 1 = fine-tuned).
"""

from __future__ import annotations

ALPHA_METHODS = {"residual_reprogrammer": "α_zs", "wise_ft": "α_ft"}  # α = weight on zero-shot / fine-tuned


def fmt(v) -> str:
    """A param value for labels: small floats as ``1e-4`` / ``3.5e-5``, other floats with ``g``."""
    if isinstance(v, float) and v != 0 and abs(v) < 1e-2:
        m, e = f"{v:.2e}".split("e")
        return f"{m.rstrip('0').rstrip('.')}e{int(e)}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def label(name: str, chosen: dict, alpha: float | None = None) -> str:
    """``"finetune (lr=1e-4)"``, ``"residual_reprogrammer (α_zs=0.6)"``, ``"wise_ft (α_ft=0.4)"``."""
    parts = [f"{k}={fmt(v)}" for k, v in chosen.items()]
    if alpha is not None:
        parts.append(f"{ALPHA_METHODS.get(name, 'α')}={fmt(float(alpha))}")
    return f"{name} ({', '.join(parts)})" if parts else name
