"""Checks that env params are valid, run when params are built in Python.

Params are flax struct dataclasses whose ``__post_init__`` also runs whenever
JAX rebuilds the pytree (under ``jit``, ``vmap``, ``tree.map``). The checks
therefore look only at concrete values and skip tracers and placeholder leaves,
so they cost nothing inside compiled code and catch bad input before it.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def concrete(value: Any) -> np.ndarray | None:
    """``value`` as a NumPy array if it is a concrete number or array, else None."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, (bool, int, float, np.ndarray, np.generic, jax.Array)):
        try:
            return np.asarray(value)
        except Exception:  # pragma: no cover - e.g. deleted or non-addressable arrays
            return None
    return None


def check_range(
    owner: str,
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ``ValueError`` if any element of ``value`` lies outside the interval.

    The message names the params class, the field, the offending value and the
    allowed interval, e.g. ``GridWorldParams.slip=1.5 is not allowed; it must be
    in [0, 1]``.
    """
    array = concrete(value)
    if array is None or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        return
    bad = np.isnan(array) if np.issubdtype(array.dtype, np.floating) else np.zeros_like(array, bool)
    if low is not None:
        bad |= array <= low if low_open else array < low
    if high is not None:
        bad |= array >= high if high_open else array > high
    if np.any(bad):
        shown = array if array.ndim == 0 else array[bad].ravel()[:4]
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(
            f"{owner}.{name}={shown} is not allowed; it must be in {left}{lo}, {hi}{right}"
        )


def apply_overrides(params: Any, overrides: dict[str, Any]) -> Any:
    """``params.replace(**overrides)``, rejecting unknown field names clearly.

    The replacement re-runs the params' ``__post_init__`` checks.
    """
    import dataclasses

    names = [f.name for f in dataclasses.fields(params)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(
            f"{type(params).__name__} has no field(s) {', '.join(unknown)}; "
            f"allowed fields: {', '.join(names)}"
        )
    return params.replace(**overrides) if overrides else params
