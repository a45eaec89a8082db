"""Two JAX processes on localhost, joined by ``jaxrl.distributed.initialize`` with CPU
collectives over gloo, two CPU devices each: a collective across both, and a checkpoint
saved and restored by both (``multihost_worker.py``)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("multihost_worker.py")
NUM_PROCESSES = 2
LOCAL_DEVICES = 2
TIMEOUT_S = 180  # a hung collective fails the test instead of hanging CI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> list[dict]:
    """What each process computed, by process index."""
    work_dir = tmp_path_factory.mktemp("multihost")
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={LOCAL_DEVICES}",
    }
    coordinator = f"localhost:{free_port()}"
    logs = [work_dir / f"process_{i}.log" for i in range(NUM_PROCESSES)]
    procs = []
    for i, log in enumerate(logs):
        args = [sys.executable, str(WORKER), coordinator, str(NUM_PROCESSES), str(i), work_dir]
        with open(log, "w") as out:
            procs.append(subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for p in procs:
            p.kill()
    output = "\n".join(f"--- process {i}:\n{log.read_text()[-3000:]}" for i, log in enumerate(logs))
    assert codes is not None, f"the processes did not finish in {TIMEOUT_S} s\n{output}"
    assert codes == [0] * NUM_PROCESSES, f"exit codes {codes}\n{output}"
    return [json.loads((work_dir / f"process_{i}.json").read_text()) for i in range(NUM_PROCESSES)]


def test_every_process_sees_every_device(results):
    for i, r in enumerate(results):
        assert r["process_index"] == i
        assert r["process_count"] == NUM_PROCESSES
        assert r["devices"] == NUM_PROCESSES * LOCAL_DEVICES
        assert r["local_devices"] == LOCAL_DEVICES
        assert r["cpu_collectives"] == "gloo"
    assert [r["is_main"] for r in results] == [True, False]


def test_pmean_over_both_processes_agrees(results):
    devices = NUM_PROCESSES * LOCAL_DEVICES
    x = np.arange(2.0 * devices)
    shard_sums = x.reshape(devices, -1).sum(1)
    process_sums = shard_sums.reshape(NUM_PROCESSES, -1).sum(1)
    # Each process held only its own shards, so the mean needed the other's.
    assert [r["collective"]["local_sum"] for r in results] == process_sums.tolist()
    assert [r["collective"]["pmean"] for r in results] == [shard_sums.mean()] * NUM_PROCESSES


@pytest.mark.parametrize("target", ["same", "replicated"])
def test_checkpoint_saved_by_both_is_restored_by_both(results, target):
    devices = NUM_PROCESSES * LOCAL_DEVICES
    expected = {
        "key": [0, 7],  # the key data of jax.random.key(7)
        "replicated": [1.5, -2.0],
        "sharded": np.arange(6.0 * devices).reshape(-1, 3).tolist(),
    }
    for r in results:
        assert r["checkpoints"]["saved"] == expected
        restored = r["checkpoints"][target]
        assert restored["update"] == 3
        assert restored["state"] == expected
        assert restored["metrics"] == {"loss": [[0.5, 0.25]]}
        assert all(restored["shardings_as_asked"])


def test_ppo_split_over_both_processes_trains_one_set_of_parameters(results):
    # One PPO run whose 8 envs are split over the 4 devices of both processes, trained
    # in checkpointed chunks: every device of both processes holds the same parameters
    # (pmean'd gradients over gloo), and both processes saw the same episodes.
    first, second = (r["training"] for r in results)
    for r in (first, second):
        assert r["params_devices"] == r["env_devices"] == NUM_PROCESSES * LOCAL_DEVICES
        assert np.sum(r["episodes"]) > 0
    assert first["params"] == second["params"]
    assert first["obs_mean"] == second["obs_mean"]
    assert first["episodes"] == second["episodes"]
