"""Checkpoints: exact resume in a fresh process, atomic saves, max_to_keep, refusal of
another run's checkpoint."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
import jaxrl
from jaxrl import checkpoint, training
from jaxrl.agents import dqn, ppo

AGENTS = {
    # 2N = 6 updates in chunks of N = 3.
    "ppo": (ppo, "ppo.PPOConfig(num_envs=4, rollout_len=16, total_steps=4 * 16 * 6)"),
    # DQN: learning starts in the first chunk, so the resumed half replays the restored buffer.
    "dqn": (
        dqn,
        "dqn.DQNConfig(num_envs=2, rollout_len=4, total_steps=2 * 4 * 6, buffer_size=64, "
        "minibatch_size=8, learning_starts=16, target_update_every=2)",
    ),
}

# Trains the first N updates (``until``) or the rest from the newest checkpoint; in a
# fresh interpreter each time, as a job restarted after a time limit would.
WORKER = """
import sys
import jax
import numpy as np
import envs
from jaxrl import checkpoint, training
from jaxrl.agents import {algo}

directory, until, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
env, params = envs.make("gymnax:CartPole-v1")
config = {config}
hparams = {algo}.{hparams}()
trainer = {algo}.make_train(config, env, params)
keys = jax.random.split(jax.random.key(0), 2)
identity = checkpoint.run_identity("{algo}", "gymnax:CartPole-v1", params, config, hparams, 2, 0)
ckpts = checkpoint.Checkpoints(directory, identity, max_to_keep=2)
state, metrics, info = training.train_in_chunks(
    trainer, keys, hparams, chunk=3, checkpoints=ckpts, until=until
)
leaves = jax.tree.leaves(checkpoint.plain(state))
np.savez(out, *map(np.asarray, leaves), **{{"metric_" + k: v for k, v in metrics.items()}})
print("started at", info.start_update, "saved", info.saved)
"""


def run_worker(tmp_path, algo, until, out):
    module, config = AGENTS[algo]
    hparams = "PPOHParams" if algo == "ppo" else "DQNHParams"
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(algo=algo, config=config, hparams=hparams))
    directory = tmp_path / "ckpt"
    result = subprocess.run(
        [sys.executable, str(script), str(directory), str(until), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# DQN's case (its replay buffer restored too) runs in the slow tier, to keep the
# default run under 15 minutes.
@pytest.mark.parametrize("algo", ["ppo", pytest.param("dqn", marks=pytest.mark.slow)])
def test_resume_in_a_fresh_process_is_bit_for_bit(tmp_path, algo):
    first = run_worker(tmp_path, algo, 3, tmp_path / "first.npz")
    assert "started at 0 saved [3]" in first
    second = run_worker(tmp_path, algo, 6, tmp_path / "second.npz")
    assert "started at 3 saved [6]" in second

    module, config = AGENTS[algo]
    config = eval(config, {"ppo": ppo, "dqn": dqn})
    env, params = envs.make("gymnax:CartPole-v1")
    hparams = (ppo.PPOHParams if algo == "ppo" else dqn.DQNHParams)()
    keys = jax.random.split(jax.random.key(0), 2)
    trainer = module.make_train(config, env, params)
    state, metrics = jax.jit(jax.vmap(trainer, in_axes=(0, None)))(keys, hparams)
    expected = jax.tree.leaves(checkpoint.plain(state))
    resumed = np.load(tmp_path / "second.npz")
    assert len(expected) > 5
    for i, leaf in enumerate(expected):
        np.testing.assert_array_equal(resumed[f"arr_{i}"], np.asarray(leaf), err_msg=f"leaf {i}")
    for name, values in metrics.items():
        np.testing.assert_array_equal(resumed["metric_" + name], np.asarray(values), err_msg=name)
    # Something was learned in the resumed half: the parameters moved after update 3.
    halfway = np.load(tmp_path / "first.npz")
    assert not np.array_equal(halfway["arr_0"], resumed["arr_0"])


def small_state(seed):
    key = jax.random.key(seed)
    return {"w": jax.random.normal(key, (3, 4)), "key": jax.random.split(key, 2)}


def identity(**changes):
    config = ppo.PPOConfig(**changes.pop("config", {}))
    env = changes.pop("env", "gymnax:CartPole-v1")
    _, params = envs.make(env)
    return checkpoint.run_identity("ppo", env, params, config, ppo.PPOHParams(), 2, 0)


def assert_state_equal(a, b):
    leaves_a, leaves_b = jax.tree.leaves(checkpoint.plain(a)), jax.tree.leaves(checkpoint.plain(b))
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_max_to_keep_and_restore_of_an_older_checkpoint(tmp_path):
    ckpts = checkpoint.Checkpoints(tmp_path, identity(), max_to_keep=2)
    for update in range(1, 6):
        ckpts.save(update, small_state(update), {"loss": np.full((2, update), float(update))})
    assert ckpts.all() == [4, 5]
    update, state, metrics = ckpts.restore(small_state(0), update=4)
    assert update == 4
    assert_state_equal(state, small_state(4))
    assert jnp.issubdtype(state["key"].dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(metrics["loss"], np.full((2, 4), 4.0))


def test_a_save_killed_before_commit_leaves_the_previous_checkpoint(tmp_path):
    # The worker saves update 1, then dies (os._exit, as under SIGKILL: no cleanup)
    # after writing update 2's files but before orbax's atomic rename commits them.
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from orbax.checkpoint._src.path import atomicity
        import numpy as np
        from test_checkpoint import identity, small_state
        from jaxrl import checkpoint
        ckpts = checkpoint.Checkpoints({str(tmp_path)!r}, identity())
        ckpts.save(1, small_state(1), {{"loss": np.ones((2, 1))}})
        async def die(*args, **kwargs):
            os._exit(17)
        atomicity.AtomicRenameTemporaryPath.finalize = die
        ckpts.save(2, small_state(2), {{"loss": np.ones((2, 2))}})
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 17, result.stderr[-3000:]
    assert any("tmp" in name for name in os.listdir(tmp_path)), os.listdir(tmp_path)

    ckpts = checkpoint.Checkpoints(tmp_path, identity())
    assert ckpts.all() == [1]
    update, state, _ = ckpts.restore(small_state(0))
    assert update == 1
    assert_state_equal(state, small_state(1))


def largest_file(directory):
    return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def truncate(step):
    path = largest_file(step / "state")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(step):
    path = largest_file(step / "state")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def delete_metadata(step):
    (step / "state" / "_METADATA").unlink()


@pytest.mark.parametrize("damage", [truncate, flip_a_byte, delete_metadata])
def test_a_damaged_newest_checkpoint_is_set_aside_and_the_previous_restored(
    tmp_path, damage, capsys
):
    """Before, a damaged newest checkpoint stopped the resume with a long orbax traceback
    although the one before it was intact (issue 19)."""
    directory = tmp_path / "checkpoints"
    ckpts = checkpoint.Checkpoints(directory, identity())
    for update in (1, 2):
        ckpts.save(update, small_state(update), {"loss": np.full((2, update), float(update))})
    damage(directory / "2")
    ckpts = checkpoint.Checkpoints(directory, identity())  # as a restarted run opens them
    update, state, metrics = ckpts.restore(small_state(0))
    assert update == 1 and ckpts.all() == [1]
    assert_state_equal(state, small_state(1))
    np.testing.assert_array_equal(metrics["loss"], np.ones((2, 1)))
    out = capsys.readouterr().out
    assert "checkpoint at update 2 is damaged" in out and "checkpoints.damaged/2" in out
    assert (tmp_path / "checkpoints.damaged" / "2" / "state").is_dir()  # kept, not deleted


def test_a_checkpoint_without_a_manifest_is_still_restored(tmp_path):
    """Saved before jaxrl wrote manifests (or a crash right after orbax's save)."""
    ckpts = checkpoint.Checkpoints(tmp_path, identity())
    ckpts.save(1, small_state(1), {})
    (tmp_path / "1" / checkpoint.Checkpoints.INTEGRITY).unlink()
    update, state, _ = checkpoint.Checkpoints(tmp_path, identity()).restore(small_state(0))
    assert update == 1
    assert_state_equal(state, small_state(1))


def test_restoring_another_run_says_what_differs(tmp_path, monkeypatch):
    checkpoint.Checkpoints(tmp_path, identity()).save(1, small_state(1), {})
    other = checkpoint.Checkpoints(tmp_path, identity(config={"num_envs": 8}))
    with pytest.raises(ValueError, match=r"config\.num_envs: checkpoint 4, this run 8"):
        other.restore(small_state(0))
    other = checkpoint.Checkpoints(tmp_path, identity(env="gymnax:Acrobot-v1"))
    with pytest.raises(ValueError, match=r"env: checkpoint 'gymnax:CartPole-v1', this run"):
        other.restore(small_state(0))
    monkeypatch.setattr(jaxrl, "__version__", "1.0.0")
    with pytest.raises(ValueError, match=r"jaxrl version: checkpoint 0\.1\.0, this run 1\.0\.0"):
        checkpoint.Checkpoints(tmp_path, identity()).restore(small_state(0))


def test_bad_arguments_are_refused_before_compiling(tmp_path):
    env, params = envs.make("gymnax:CartPole-v1")
    trainer = ppo.make_train(ppo.PPOConfig(total_steps=4 * 128 * 4), env, params)
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"chunk=0 is not allowed; it must be in \[1, 4\]"):
        training.train_in_chunks(trainer, keys, ppo.PPOHParams(), chunk=0)
    with pytest.raises(ValueError, match=r"until=5 is not allowed"):
        training.train_in_chunks(trainer, keys, ppo.PPOHParams(), chunk=2, until=5)
    with pytest.raises(ValueError, match="max_to_keep=0"):
        checkpoint.Checkpoints(tmp_path, identity(), max_to_keep=0)
