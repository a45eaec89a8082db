"""Policy export: a trained policy as a self-contained artifact that runs with
jax and numpy alone.

``export_agent`` (or ``export_policy`` for any ``act(key, obs [N, ...]) -> action``)
traces the policy once with a symbolic batch dimension ``b`` and serialises it with
``jax.export``: the result is StableHLO plus a small header, independent of the
Python code (agents, flax, envs) that produced it. ``load_policy`` reads it back
into a ``LoadedPolicy`` that needs nothing of jaxrl's training code.

An artifact is a directory::

    policy/
        spec.json          what goes in and comes out (below), versions, platforms
        policy.jaxexport   jax.export.Exported.serialize() of
                           f(key_data uint32[K], obs [b, *obs_shape]) -> action [b, ...]

``spec.json`` (format "jaxrl-policy", format_version 1) holds ``observation`` and
``action`` (``{"kind": "discrete", "n", "shape", "dtype"}`` or ``{"kind": "box",
"shape", "dtype", "low", "high"}``; a bound is a number when it is the same for
every element, else a nested list, and ``null`` where it is infinite), ``key``
(the PRNG implementation and the shape of its raw key data), ``algo``, ``env``,
``deterministic``, ``platforms``, ``jax_version``, ``jaxrl_version``,
``calling_convention_version``, ``module`` (file name, byte size and sha256,
checked on load), ``config`` (the agent config, for the record) and ``metadata``.

Parameters are baked into the module as constants rather than passed in and saved
beside it. An agent's ``make_policy`` closes over its whole training state
(optimizer state, replay buffer, env state), and only tracing finds the few arrays
the policy actually reads (the network parameters and the frozen observation
statistics); baking keeps exactly those, with no agent-specific code to pick
them, and leaves one file that cannot drift from its parameters. The module of a
64x64 MLP is about 30 KB. The price: weights are not inspectable without jax.

The key crosses the boundary as raw ``uint32`` key data (typed key arrays do not
serialise); it is wrapped back into a typed key inside the exported function, so
``load_policy(path)(obs, seed=s)`` draws exactly what ``act(jax.random.key(s), obs)``
draws. Recurrent policies (``act(key, obs, first, rnn)``) are not exported yet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import __version__ as jaxrl_version

if TYPE_CHECKING:  # loading an artifact imports no training code (jaxrl.agents)
    from jaxrl.agents import Agent

FORMAT = "jaxrl-policy"
FORMAT_VERSION = 1
SPEC_FILE = "spec.json"
MODULE_FILE = "policy.jaxexport"
DEFAULT_PLATFORMS = ("cpu", "cuda")
"""Lowered for both, so a policy trained on a GPU serves on a CPU and back."""
MAX_SEED = 2**32
"""Seeds are taken in ``[0, 2**32)``: without x64, ``jax.random.key`` keeps only the
low 32 bits of a larger seed, so larger seeds would silently collide."""


# --- spaces <-> JSON -------------------------------------------------------------


def _bound_to_json(bound: np.ndarray) -> Any:
    """A number if every element is equal, else a nested list; infinities as None."""
    flat = bound.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        bound = flat[0]
    return _map_nested(bound.tolist(), lambda x: x if np.isfinite(x) else None)


def _bound_from_json(value: Any, spec: Mapping[str, Any], side: str) -> np.ndarray:
    """Inverse of ``_bound_to_json``: ``None`` is ``-inf`` for ``low``, ``inf`` for ``high``."""
    fill = -np.inf if side == "low" else np.inf
    array = np.asarray(_map_nested(value, lambda x: fill if x is None else x), np.float64)
    return np.broadcast_to(array, tuple(spec["shape"])).astype(spec["dtype"])


def _map_nested(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return fn(value)


def space_spec(space: Any) -> dict[str, Any]:
    """The JSON description of an ``envs.spaces`` ``Discrete`` or ``Box``."""
    from envs.spaces import Box, Discrete

    dtype = np.dtype(space.dtype).name
    if isinstance(space, Discrete):
        return {"kind": "discrete", "n": space.n, "shape": [], "dtype": dtype}
    if isinstance(space, Box):
        return {
            "kind": "box",
            "shape": list(space.shape),
            "dtype": dtype,
            "low": _bound_to_json(np.asarray(space.low)),
            "high": _bound_to_json(np.asarray(space.high)),
        }
    raise ValueError(f"cannot export a policy with the space {space!r}: only Discrete and Box")


def space_bounds(spec: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(low, high)`` arrays of a ``"box"`` space spec (None for discrete)."""
    if spec["kind"] != "box":
        return None
    return _bound_from_json(spec["low"], spec, "low"), _bound_from_json(spec["high"], spec, "high")


# --- export ----------------------------------------------------------------------


def export_policy(
    act: Callable[[jax.Array, jax.Array], jax.Array],
    obs_space: Any,
    action_space: Any,
    path: str | os.PathLike,
    *,
    algo: str = "unknown",
    env_name: str = "unknown",
    deterministic: bool | None = None,
    config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
    overwrite: bool = False,
) -> Path:
    """Export ``act`` to the artifact directory ``path`` (see the module docstring).

    Args:
        act: ``act(key, obs [N, *obs_space.shape]) -> action [N, *action_space.shape]``,
            with its parameters closed over (they are baked into the artifact).
        obs_space, action_space: ``envs.spaces`` ``Discrete`` or ``Box``; observations
            are traced with the observation space's shape and dtype.
        path: the artifact directory to create.
        algo, env_name, deterministic: recorded in the spec (``deterministic``
            describes ``act``; it does not change it).
        config: the agent config as JSON-able values, recorded in the spec.
        metadata: any JSON-able values, recorded in the spec.
        platforms: the platforms to lower for ("cpu", "cuda", "rocm", "tpu").
        overwrite: replace an existing artifact at ``path`` (never another directory).

    Returns:
        ``path``. The directory is written to a temporary sibling and renamed into
        place, so a failed export leaves no partial artifact behind.
    """
    path = Path(path)
    _check_feed_forward(act)
    obs_shape = tuple(space_spec(obs_space)["shape"])
    obs_dtype = np.dtype(obs_space.dtype)
    key_impl = str(jax.random.key_impl(jax.random.key(0)))
    key_data_shape = jax.random.key_data(jax.random.key(0, impl=key_impl)).shape

    def policy(key_data: jax.Array, obs: jax.Array) -> jax.Array:
        return act(jax.random.wrap_key_data(key_data, impl=key_impl), obs)

    (batch,) = jax.export.symbolic_shape("b")
    exported = jax.export.export(jax.jit(policy), platforms=tuple(platforms))(
        jax.ShapeDtypeStruct(key_data_shape, jnp.uint32),
        jax.ShapeDtypeStruct((batch, *obs_shape), obs_dtype),
    )
    action = space_spec(action_space)
    _check_output(exported, action)
    action["dtype"] = np.dtype(exported.out_avals[0].dtype).name
    module = bytes(exported.serialize())
    spec = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "algo": algo,
        "env": env_name,
        "deterministic": deterministic,
        "observation": space_spec(obs_space),
        "action": action,
        "key": {"impl": key_impl, "shape": list(key_data_shape), "dtype": "uint32"},
        "platforms": list(exported.platforms),
        "calling_convention_version": exported.calling_convention_version,
        "jax_version": jax.__version__,
        "jaxrl_version": jaxrl_version,
        "module": {
            "file": MODULE_FILE,
            "bytes": len(module),
            "sha256": hashlib.sha256(module).hexdigest(),
        },
        "config": dict(config or {}),
        "metadata": dict(metadata or {}),
    }
    try:
        spec_bytes = json.dumps(spec, indent=2, allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise ValueError(f"config and metadata must be JSON-serialisable: {e}") from e
    _write_directory(path, {SPEC_FILE: spec_bytes, MODULE_FILE: module}, overwrite)
    return path


def _check_feed_forward(act: Callable) -> None:
    """Refuse ``act(key, obs, first, rnn)`` (recurrent) before tracing it."""
    try:
        signature = inspect.signature(act)
    except (TypeError, ValueError):  # no signature to read: tracing will tell
        return
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [
        p
        for p in signature.parameters.values()
        if p.kind in positional and p.default is inspect.Parameter.empty
    ]
    if len(required) > 2:
        raise ValueError(
            f"export_policy needs a feed-forward act(key, obs); act{signature} looks "
            "recurrent, and recurrent policies are not supported yet"
        )


def _check_output(exported: jax.export.Exported, action: Mapping[str, Any]) -> None:
    """The policy must return one array ``[b, *action_shape]`` of the right kind."""
    if len(exported.out_avals) != 1:
        raise ValueError(f"act must return one array of actions; it returned {exported.out_tree}")
    out = exported.out_avals[0]
    shape = [str(d) for d in out.shape]
    want = ["b", *map(str, action["shape"])]
    if shape != want:
        raise ValueError(
            f"act returned actions of shape ({', '.join(shape)}) for observations of batch "
            f"b; the action space needs ({', '.join(want)}) (was the state vmapped over "
            "seeds? export one seed's state)"
        )
    if action["kind"] == "discrete" and not jnp.issubdtype(out.dtype, jnp.integer):
        raise ValueError(f"act returned {out.dtype} actions for a Discrete action space")


def export_agent(
    agent: Agent,
    config: Any,
    env: Any,
    env_params: Any,
    state: Any,
    path: str | os.PathLike,
    env_name: str,
    deterministic: bool = True,
    *,
    metadata: Mapping[str, Any] | None = None,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
    overwrite: bool = False,
) -> Path:
    """Export an agent's trained policy (``agent.make_policy``) to ``path``.

    Args:
        agent: the agent's record, e.g. ``jaxrl.agents.ppo.AGENT``.
        config, env, env_params: what the agent was trained with.
        state: one seed's training state (index a seed-vmapped state first).
        path: the artifact directory to create.
        env_name: the environment's registry name, recorded in the spec.
        deterministic: export the policy's mode (True) or its sampling policy.
        metadata, platforms, overwrite: as for ``export_policy``.

    Returns:
        ``path``.
    """
    name = agent.name
    if agent.recurrent(config):
        raise ValueError(
            f"{name} with gru_size={config.gru_size} is recurrent; exporting recurrent "
            "policies is not supported yet"
        )
    act = agent.make_policy(config, env, env_params, state, deterministic)
    return export_policy(
        act,
        env.observation_space(env_params),
        env.action_space(env_params),
        path,
        algo=name,
        env_name=env_name,
        deterministic=deterministic,
        config=_jsonable(dataclasses.asdict(config)) if dataclasses.is_dataclass(config) else {},
        metadata=metadata,
        platforms=platforms,
        overwrite=overwrite,
    )


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON, writing what JSON lacks (enums, paths) as strings."""
    return json.loads(json.dumps(value, default=str))


def _write_directory(path: Path, files: Mapping[str, bytes], overwrite: bool) -> None:
    """Write ``files`` into a temporary sibling of ``path``, then rename it into place."""
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        if not _is_artifact(path):
            raise FileExistsError(f"{path} exists and is not a policy artifact; not replacing it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "artifact")
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "artifact").exists() and not path.exists():
            os.replace(old / "artifact", path)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _is_artifact(path: Path) -> bool:
    try:
        return json.loads((path / SPEC_FILE).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


# --- load ------------------------------------------------------------------------


class LoadedPolicy:
    """An exported policy: ``policy(obs, seed=0) -> actions`` (NumPy in and out).

    The module is compiled once per batch size, on first use (``warm`` compiles the
    batch of one ahead of time).

    Attributes:
        spec: the artifact's ``spec.json``.
        obs_shape, obs_dtype: one observation's shape and dtype.
    """

    def __init__(self, spec: dict[str, Any], exported: jax.export.Exported):
        self.spec = spec
        self.obs_shape = tuple(spec["observation"]["shape"])
        self.obs_dtype = np.dtype(spec["observation"]["dtype"])
        self._key_impl = spec["key"]["impl"]
        self._key_shape = tuple(spec["key"]["shape"])
        self._exported = exported
        self._call = jax.jit(exported.call)

    def __repr__(self) -> str:
        s = self.spec
        return f"LoadedPolicy(algo={s['algo']!r}, env={s['env']!r}, obs_shape={self.obs_shape})"

    def __call__(self, obs: Any, *, key: Any = None, seed: int | None = None) -> np.ndarray:
        """Actions for one observation ``obs_shape`` (returns one action) or a batch
        ``[B, *obs_shape]`` (returns ``[B, ...]``).

        Args:
            obs: array-like of numbers, cast to the observation dtype.
            key: a typed key (``jax.random.key``) or its raw ``uint32`` key data.
            seed: an int in ``[0, 2**32)``, used as ``jax.random.key(seed)``; the
                default when neither is given is seed 0. Only stochastic policies
                use the key.

        Raises:
            ValueError: the observation's shape or values do not fit the spec.
        """
        batch, single = self.check_obs(obs)
        actions = self.act_batch(batch, self.key_data(key=key, seed=seed))
        return actions[0] if single else actions

    def act_batch(self, obs: np.ndarray, key_data: np.ndarray) -> np.ndarray:
        """Actions ``[B, ...]`` of a checked batch ``[B, *obs_shape]`` (see ``check_obs``)."""
        return np.asarray(self._call(key_data, obs))

    def warm(self) -> None:
        """Compile for a batch of one now, so that the first call is fast."""
        self.act_batch(np.zeros((1, *self.obs_shape), self.obs_dtype), self.key_data())

    def check_obs(self, obs: Any) -> tuple[np.ndarray, bool]:
        """``(batch [B, *obs_shape], single)``: ``obs`` as a batch of the observation
        dtype, and whether it was one observation. Raises ``ValueError`` naming the
        expected shape if it is neither, or if its values are not finite numbers."""
        want = f"an observation of shape {self.obs_shape} or a batch of shape (B, " + (
            f"{', '.join(map(str, self.obs_shape))})" if self.obs_shape else ")"
        )
        try:
            array = np.asarray(obs)
        except (ValueError, TypeError) as e:
            raise ValueError(f"expected {want} of numbers; got a ragged value ({e})") from e
        allowed = "b" if self.obs_dtype.kind == "b" else "iuf"
        if array.dtype.kind not in allowed or not np.can_cast(
            array.dtype, self.obs_dtype, "same_kind"
        ):
            raise ValueError(f"expected {want} of {self.obs_dtype} values; got {array.dtype}")
        if array.shape == self.obs_shape:
            single = True
            array = array[None]
        elif array.shape[1:] == self.obs_shape and array.ndim == len(self.obs_shape) + 1:
            single = False
            if array.shape[0] == 0:
                raise ValueError(f"expected {want}; got an empty batch {array.shape}")
        else:
            raise ValueError(f"expected {want}; got shape {array.shape}")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ValueError("observations must be finite; got NaN or infinity")
        return np.ascontiguousarray(array, dtype=self.obs_dtype), single

    def key_data(self, key: Any = None, seed: int | None = None) -> np.ndarray:
        """The raw ``uint32`` key data the exported function takes (see ``__call__``)."""
        if key is not None and seed is not None:
            raise ValueError("give a key or a seed, not both")
        if key is None:
            seed = 0 if seed is None else seed
            if isinstance(seed, bool | np.bool_) or not isinstance(seed, int | np.integer):
                raise ValueError(f"seed must be an int in [0, 2**32); got {seed!r}")
            if not 0 <= seed < MAX_SEED:
                raise ValueError(f"seed must be an int in [0, 2**32); got {seed}")
            key = jax.random.key(int(seed), impl=self._key_impl)
        if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            if str(jax.random.key_impl(key)) != self._key_impl:
                raise ValueError(
                    f"the policy was exported with {self._key_impl} keys; got a "
                    f"{jax.random.key_impl(key)} key"
                )
            key = jax.random.key_data(key)
        data = np.asarray(key)
        if data.shape != self._key_shape or data.dtype != np.uint32:
            raise ValueError(
                f"expected a typed key or uint32 key data of shape {self._key_shape}; "
                f"got {data.dtype} {data.shape}"
            )
        return data


def load_policy(path: str | os.PathLike) -> LoadedPolicy:
    """Load an artifact written by ``export_policy``/``export_agent`` (jax and numpy only).

    Raises:
        FileNotFoundError: ``path`` is not an artifact directory.
        ValueError: the spec is of another format or version, or the module does
            not match its recorded checksum.
    """
    path = Path(path)
    spec_path = path / SPEC_FILE
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path} not found: {path} is not a policy artifact")
    spec = json.loads(spec_path.read_text())
    if spec.get("format") != FORMAT or spec.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{spec_path} is format {spec.get('format')!r} version "
            f"{spec.get('format_version')!r}; this jaxrl reads {FORMAT!r} version {FORMAT_VERSION}"
        )
    module = (path / spec["module"]["file"]).read_bytes()
    if hashlib.sha256(module).hexdigest() != spec["module"]["sha256"]:
        raise ValueError(f"{path / spec['module']['file']} does not match its sha256 in the spec")
    return LoadedPolicy(spec, jax.export.deserialize(bytearray(module)))
