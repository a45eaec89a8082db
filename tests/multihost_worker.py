"""One process of the multi-process run of ``test_multihost.py``.

    python tests/multihost_worker.py COORDINATOR NUM_PROCESSES PROCESS_ID WORK_DIR

Writes what it computed to ``WORK_DIR/process_<PROCESS_ID>.json``; the test compares the
processes' files. Every process runs every step in the same order: a collective (or an
orbax barrier) that only some processes reach hangs the others.
"""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrl import checkpoint, distributed
from jaxrl.training import train_in_chunks


def global_array(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """``value`` as a global array; each process fills only the shards it holds."""
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def collective(mesh: jax.sharding.Mesh) -> dict:
    """(a) ``pmean`` over every device of every process: the mean of the shards' sums."""
    x = global_array(np.arange(2.0 * mesh.size), NamedSharding(mesh, P("d")))
    mean_of_sums = jax.jit(
        jax.shard_map(
            lambda x: jax.lax.pmean(jnp.sum(x), "d"), mesh=mesh, in_specs=P("d"), out_specs=P()
        )
    )
    local_sum = sum(float(np.sum(np.asarray(s.data))) for s in x.addressable_shards)
    return {"pmean": float(distributed.to_host(mean_of_sums(x))), "local_sum": local_sum}


def checkpoints(mesh: jax.sharding.Mesh, directory: Path) -> dict:
    """(b) A sharded array, a replicated one and a typed key saved by every process into one
    directory, restored by every process: onto the saved shardings, and with the sharded
    array replicated instead."""
    sharded, replicated = NamedSharding(mesh, P("d")), NamedSharding(mesh, P())
    state = {
        "sharded": global_array(np.arange(6.0 * mesh.size).reshape(-1, 3), sharded),
        "replicated": global_array(np.array([1.5, -2.0]), replicated),
        "key": jax.jit(lambda: jax.random.key(7), out_shardings=replicated)(),
    }
    identity = {"test": "multihost"}
    ckpts = checkpoint.Checkpoints(directory, identity)
    ckpts.save(3, state, {"loss": np.array([[0.5, 0.25]])})
    ckpts.close()

    def like(shardings):
        return jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings
        )

    out = {"saved": distributed.to_host(checkpoint.plain(state))}
    ckpts = checkpoint.Checkpoints(directory, identity)
    for name, shardings in [
        ("same", jax.tree.map(lambda x: x.sharding, state)),
        ("replicated", jax.tree.map(lambda x: replicated, state)),
    ]:
        update, restored, metrics = ckpts.restore(like(shardings))
        out[name] = {
            "update": update,
            "state": distributed.to_host(checkpoint.plain(restored)),
            "shardings_as_asked": jax.tree.leaves(
                jax.tree.map(lambda x, s: x.sharding == s, restored, shardings)
            ),
            "metrics": metrics,
        }
    ckpts.close()
    return out


def training(work_dir: Path) -> dict:
    """(c) One PPO run whose envs are split over the devices of both processes, in
    checkpointed chunks (``train_in_chunks``, as the experiment scripts train): each
    process returns its copy of the final parameters."""
    import envs
    from jaxrl.agents import ppo

    env, env_params = envs.make("gymnax:CartPole-v1")
    config = ppo.PPOConfig(
        num_envs=8, rollout_len=16, total_steps=8 * 16 * 4, num_epochs=2,
        normalize_obs=True, num_devices=len(jax.devices()),
    )  # fmt: skip
    trainer = ppo.make_train(config, env, env_params)
    keys, hp = jax.random.split(jax.random.key(0), 2), ppo.PPOHParams()
    identity = checkpoint.run_identity("ppo", "cartpole", env_params, config, hp, 2)
    ckpts = checkpoint.Checkpoints(work_dir / "ppo", identity)
    state, metrics, _ = train_in_chunks(trainer, keys, hp, 2, checkpoints=ckpts)
    ckpts.close()
    leaf = jax.tree.leaves(state.params)[0]
    return {
        "params": distributed.to_host(state.params),
        "obs_mean": distributed.to_host(state.env.norm.obs.mean),
        "episodes": np.asarray(metrics["episodes"]),
        "params_devices": len(leaf.sharding.device_set),
        "env_devices": len(state.env.obs.sharding.device_set),
    }


def main(coordinator: str, num_processes: int, process_id: int, work_dir: Path) -> None:
    distributed.initialize(coordinator, num_processes, process_id, timeout_s=60)
    mesh = jax.make_mesh((len(jax.devices()),), ("d",))
    results = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "devices": len(jax.devices()),
        "local_devices": len(jax.local_devices()),
        "cpu_collectives": jax.config.jax_cpu_collectives_implementation,
        "is_main": distributed.is_main(),
        "collective": collective(mesh),
        "checkpoints": checkpoints(mesh, work_dir / "checkpoints"),
        "training": training(work_dir),
    }
    tolist = lambda x: x.tolist() if isinstance(x, np.ndarray) else x
    text = json.dumps(jax.tree.map(tolist, results))
    (work_dir / f"process_{jax.process_index()}.json").write_text(text)


if __name__ == "__main__":
    coordinator, num_processes, process_id, work_dir = sys.argv[1:]
    main(coordinator, int(num_processes), int(process_id), Path(work_dir))
