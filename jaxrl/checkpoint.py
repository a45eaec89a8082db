"""Checkpoints with exact resume: a training run in jitted chunks, saved after each.

``train_in_chunks(trainer, keys, hparams, chunk, checkpoints)`` trains a
``jaxrl.training.Trainer`` for all seeds (and hyperparameter rows) at once, in
compiled calls of ``chunk`` updates; after each, ``Checkpoints`` saves the
complete training state (parameters, optimizer state, normaliser statistics,
env state, RNG keys, replay buffer, step counters: everything the agent's state
holds), the metrics so far, and JSON metadata: the run's identity (algorithm,
env and its params, config, hyperparameters, seeds) and the jaxrl, jax and
orbax versions. Started again on the same directory, it restores the latest
checkpoint and continues; because every update sees the absolute update index
and the saved RNG keys, the result equals an uninterrupted run bit for bit
(on the same machine and versions).

Storage is orbax's ``CheckpointManager``: each save is written to a temporary
directory and renamed into place when complete, so a save killed half-way
leaves the previous checkpoints intact (its leftovers are ignored and cleaned
up); ``max_to_keep`` prunes old ones. Saves are synchronous: a chunk's state is
on disk before the next chunk starts.

Typed PRNG keys are stored as their raw ``key_data`` and wrapped again with the
default implementation on restore (recorded in the metadata, and checked).

Integrity: after each save, the SHA-256 of every file of the checkpoint goes into
``jaxrl_integrity.json`` inside it (orbax keeps no checksums). Before a restore,
``newest_good`` checks the newest checkpoints against theirs (a truncated,
bit-flipped or missing file, a lost manifest) and tries to read their metadata;
a damaged one is moved whole to ``<directory>.damaged/`` (kept, not deleted), the
run says so, and it resumes from the newest good one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

import jaxrl
from jaxrl.config import PLACEMENT_FIELDS


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def plain(tree: Any) -> Any:
    """``tree`` with its typed PRNG keys replaced by their raw ``key_data`` (uint32), e.g.
    to compare two training states with NumPy."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _saveable(tree: Any) -> Any:
    """Typed keys as their key data; empty arrays (which orbax cannot store) as None."""

    def leaf(x):
        if _is_key(x):
            x = jax.random.key_data(x)
        return None if x.size == 0 else x

    return jax.tree.map(leaf, tree)


def _restore_target(like: Any) -> Any:
    """``_saveable(like)`` as ``ShapeDtypeStruct``s with ``like``'s own shardings, so that each
    process reads the shards it holds (``jax.eval_shape`` alone turns a mesh into an
    ``AbstractMesh``, which orbax cannot place arrays on). A leaf without a concrete
    sharding gets none, and orbax uses the sharding the checkpoint was saved with."""

    def leaf(saved, x):
        if saved is None:
            return None
        sharding = getattr(x, "sharding", None)
        if isinstance(getattr(sharding, "mesh", None), jax.sharding.AbstractMesh):
            sharding = None
        return jax.ShapeDtypeStruct(saved.shape, saved.dtype, sharding=sharding)

    abstract = jax.eval_shape(_saveable, like)
    return jax.tree.map(leaf, abstract, like, is_leaf=lambda x: x is None)


def _unsaveable(restored: Any, like: Any) -> Any:
    def leaf(saved, x):
        if saved is None:  # an empty array, or a None in the state itself
            return None if x is None else jnp.zeros(x.shape, x.dtype)
        return jax.random.wrap_key_data(saved) if _is_key(x) else saved

    return jax.tree.map(leaf, restored, like, is_leaf=lambda x: x is None)


def _jsonable(value: Any) -> Any:
    """Config fields, env params and hyperparameters as JSON values (arrays as lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: _jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    if hasattr(value, "shape"):
        return np.asarray(value).tolist()
    return repr(value)


def run_identity(
    algo: str,
    env_name: str,
    env_params: Any,
    config: Any,
    hparams: Any,
    num_runs: int,
    seed: int | None = None,
) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed: everything that shapes the run,
    not where it trains (``PLACEMENT_FIELDS`` such as ``num_devices``: a run saved on
    one device resumes on four and back)."""
    return {
        "algo": algo,
        "env": env_name,
        "env_params": _jsonable(env_params),
        "config": {k: v for k, v in _jsonable(config).items() if k not in PLACEMENT_FIELDS},
        "hparams": _jsonable(hparams),
        "num_runs": num_runs,
        "seed": seed,
        "prng_impl": str(jax.config.jax_default_prng_impl),
    }


def _versions() -> dict[str, str]:
    return {"jaxrl": jaxrl.__version__, "jax": jax.__version__, "orbax": ocp.__version__}


def _major(version: str) -> str:
    """The part of a version whose change may break checkpoints: ``X`` of ``X.Y.Z``,
    or ``0.Y`` while the major version is 0 (semantic versioning)."""
    parts = version.split(".")
    return ".".join(parts[:2]) if parts[0] == "0" else parts[0]


def differences(saved: Any, current: Any, path: str = "") -> list[str]:
    """``["config.num_envs: checkpoint 4, this run 8", ...]`` between two JSON trees."""
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(saved) | set(current), key=str):
            name = f"{path}.{key}" if path else str(key)
            if key not in saved:
                out.append(f"{name}: not in the checkpoint, {current[key]!r} in this run")
            elif key not in current:
                out.append(f"{name}: {saved[key]!r} in the checkpoint, not in this run")
            else:
                out += differences(saved[key], current[key], name)
        return out
    return [] if saved == current else [f"{path}: checkpoint {saved!r}, this run {current!r}"]


class Checkpoints:
    """The checkpoints of one run directory (an orbax ``CheckpointManager``).

    Args:
        directory: where checkpoints go, one subdirectory per saved update.
        identity: ``run_identity(...)`` of this run; ``restore`` refuses a checkpoint
            whose identity, or jaxrl major version, differs, and says what differs.
        max_to_keep: the most recent checkpoints kept; older ones are deleted.
    """

    def __init__(self, directory: str | Path, identity: dict[str, Any], max_to_keep: int = 3):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep={max_to_keep} is not allowed; it must be >= 1")
        self.directory = Path(directory).absolute()
        self.identity = identity
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=False,
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)
        self._good: set[int] = set()  # updates that damage() has checked (or this run saved)

    INTEGRITY = "jaxrl_integrity.json"
    """The manifest of file digests written into each checkpoint after its save."""

    def latest(self) -> int | None:
        """The update of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def _step_dir(self, update: int) -> Path:
        return self.directory / str(update)

    def _digests(self, update: int) -> dict[str, str]:
        root = self._step_dir(update)
        return {
            str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.name != self.INTEGRITY
        }

    def damage(self, update: int) -> str | None:
        """Why the checkpoint at ``update`` cannot be trusted, or None if it checks out:
        a file of its manifest missing, changed (SHA-256) or unreadable, or metadata
        orbax cannot read. Without a manifest (saved before jaxrl wrote them, or a
        crash between orbax's save and the manifest's) only the metadata is checked."""
        if update in self._good:
            return None
        manifest = self._step_dir(update) / self.INTEGRITY
        try:
            saved = json.loads(manifest.read_text()) if manifest.exists() else {}
        except (OSError, ValueError):
            return f"its manifest {self.INTEGRITY} cannot be read"
        try:
            now = self._digests(update)
        except OSError as exc:
            return f"a file cannot be read ({exc})"
        for name, digest in saved.items():
            if name not in now:
                return f"{name} is missing"
            if now[name] != digest:
                return f"{name} has changed since it was saved (SHA-256 differs)"
        try:
            self.metadata(update)
        except Exception as exc:  # orbax raises many kinds here
            return f"its metadata cannot be read ({type(exc).__name__})"
        self._good.add(update)
        return None

    def newest_good(self, say: Callable[[str], None] = print) -> int | None:
        """The newest checkpoint that checks out (``damage``), or None; every newer one
        is moved to ``<directory>.damaged/<update>`` (replacing an older copy there),
        and ``say`` reports it."""
        for update in sorted(self._manager.all_steps(), reverse=True):
            reason = self.damage(update)
            if reason is None:
                return update
            if jax.process_count() > 1:
                raise ValueError(
                    f"checkpoint at update {update} in {self.directory} is damaged: {reason}; "
                    "move it out of the directory by hand to resume from an older one"
                )
            aside = self.directory.with_name(self.directory.name + ".damaged") / str(update)
            aside.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(aside, ignore_errors=True)
            self._step_dir(update).replace(aside)
            self._manager.reload()
            say(f"checkpoint at update {update} is damaged: {reason}; moved to {aside}")
        return None

    def all(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, update: int, state: Any, metrics: dict[str, Any]) -> None:
        """Save the state after ``update`` updates and the metrics of those updates."""
        meta = {"identity": self.identity, "versions": _versions(), "update": update}
        self._manager.save(
            update,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_saveable(state)),
                # the update count keeps the item non-empty when nothing is logged
                logged=ocp.args.StandardSave({"update": np.int64(update), "metrics": metrics}),
                meta=ocp.args.JsonSave(meta),
            ),
        )
        self._manager.wait_until_finished()
        if jax.process_index() == 0:  # the files are complete and renamed into place
            manifest = self._step_dir(update) / self.INTEGRITY
            tmp = manifest.with_name(manifest.name + ".tmp")
            tmp.write_text(json.dumps(self._digests(update), indent=1))
            tmp.replace(manifest)
        self._good.add(update)

    def metadata(self, update: int | None = None) -> dict[str, Any]:
        update = self.latest() if update is None else update
        args = ocp.args.Composite(meta=ocp.args.JsonRestore())
        return self._manager.restore(update, args=args).meta

    def check(self, meta: dict[str, Any]) -> None:
        """Raise ``ValueError`` listing how a checkpoint's metadata differs from this run."""
        problems = differences(meta["identity"], self.identity)
        saved, ours = meta["versions"]["jaxrl"], jaxrl.__version__
        if _major(saved) != _major(ours):
            problems.append(f"jaxrl version: checkpoint {saved}, this run {ours}")
        if problems:
            raise ValueError(
                f"the checkpoint in {self.directory} (update {meta['update']}) is from a "
                "different run; it cannot be resumed with this one:\n  " + "\n  ".join(problems)
            )

    def restore(self, like: Any, update: int | None = None) -> tuple[int, Any, dict[str, Any]]:
        """``(update, state, metrics)`` of the newest good (``newest_good``) or the
        given checkpoint.

        Args:
            like: the state's structure, shapes and dtypes, e.g.
                ``jax.eval_shape(init, keys, hparams)``; typed keys are rewrapped.
        """
        update = self.newest_good() if update is None else update
        if update is None:
            raise ValueError(f"no checkpoint to restore in {self.directory}")
        self.check(self.metadata(update))
        restored = self._manager.restore(
            update,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_restore_target(like)),
                logged=ocp.args.StandardRestore(),
            ),
        )
        state = _unsaveable(restored.state, like)
        return update, state, dict(restored.logged.get("metrics", {}))

    def close(self) -> None:
        self._manager.close()
