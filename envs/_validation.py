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
    """Raise ``ValueError`` if any element of ``value`` lies outside the interval or
    is not finite (NaN and infinities are never allowed: an unbounded side is open).

    The message names the params class, the field, the offending value and the
    allowed interval, e.g. ``GridWorldParams.slip=1.5 is not allowed; it must be
    in [0, 1]``.
    """
    array = concrete(value)
    if array is None or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        return
    floating = np.issubdtype(array.dtype, np.floating)
    bad = ~np.isfinite(array) if floating else np.zeros_like(array, bool)
    if low is not None:
        bad |= array <= low if low_open else array < low
    if high is not None:
        bad |= array >= high if high_open else array > high
    if np.any(bad):
        shown = array if array.ndim == 0 else array[bad].ravel()[:4]
        low = None if low is None or np.isinf(low) else low
        high = None if high is None or np.isinf(high) else high
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(
            f"{owner}.{name}={shown} is not allowed; it must be in {left}{lo}, {hi}{right}"
        )


def check_kind(owner: str, name: str, default: Any, value: Any, optional: bool = False) -> Any:
    """``value`` if it is of the kind of the field's ``default``, else ``ValueError``:
    a string for a string field, True or False for a flag, a number (or an array of
    numbers, e.g. a batch to ``vmap`` over) for a number field, whole numbers for an
    integer field (a whole float such as 3.0 comes back as an int); None only where
    the field is ``optional`` (annotated ``... | None``). Fields whose default is not
    a string, a flag or a number are not checked here."""
    if isinstance(value, jax.core.Tracer) or (value is None and optional):
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{owner}.{name}={value!r} is not allowed; it must be a string")
        return value
    expected = concrete(default)
    if expected is None or expected.dtype.kind not in "biuf":
        return value
    given = None if isinstance(value, str) or value is None else concrete_or_list(value)
    kind = None if given is None else given.dtype.kind
    big = isinstance(value, np.ndarray | jax.Array) and np.ndim(value) > 0
    shown = f"<{value.dtype} array of shape {value.shape}>" if big else repr(value)

    def refuse(allowed: str):
        return ValueError(f"{owner}.{name}={shown} is not allowed; it must be {allowed}")

    if expected.dtype.kind == "b":
        if kind != "b":
            raise refuse("bool (True or False)")
        return value
    if kind not in ("i", "u", "f"):
        raise refuse("a number")
    if expected.dtype.kind in "iu":
        if kind == "f" and not (np.all(np.isfinite(given)) and np.all(given == np.round(given))):
            raise refuse("a whole number")
        if isinstance(value, float):
            return int(value)
    return np.asarray(value) if isinstance(value, list | tuple) else value


def concrete_or_list(value: Any) -> np.ndarray | None:
    """``concrete(value)``, also for (nested) lists and tuples of numbers."""
    if isinstance(value, list | tuple):
        try:
            array = np.asarray(value)
        except ValueError:  # ragged
            return None
        return array if array.dtype != object else None
    return concrete(value)


def apply_overrides(params: Any, overrides: dict[str, Any]) -> Any:
    """``params.replace(**overrides)``, rejecting unknown field names and values of the
    wrong kind (``check_kind``) clearly.

    The replacement re-runs the params' ``__post_init__`` checks.
    """
    import dataclasses

    fields = dataclasses.fields(params)
    names = [f.name for f in fields]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(
            f"{type(params).__name__} has no field(s) {', '.join(unknown)}; "
            f"allowed fields: {', '.join(names)}"
        )
    owner = type(params).__name__
    optional = {f.name: "None" in str(f.type) or "Optional" in str(f.type) for f in fields}
    overrides = {
        name: check_kind(owner, name, getattr(params, name), value, optional[name])
        for name, value in overrides.items()
    }
    return params.replace(**overrides) if overrides else params
