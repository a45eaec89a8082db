"""Progress reports from inside a jitted, vmapped training loop."""

import io

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import progress


def toy_train(key, scale):
    """A fake agent: 25 updates whose metrics are known functions of the update."""

    def update_step(state, _):
        state = state + 1.0
        metrics = {
            "episode_return_sum": scale * state * 2.0,
            "episodes": jnp.float32(2.0),
            "loss": state + jax.random.uniform(key),
        }
        return state, metrics

    return progress.scan_updates(update_step, jnp.float32(0.0), 25)


def test_one_report_per_update_carries_every_runs_metrics():
    keys = jax.random.split(jax.random.key(0), 4)
    scales = jnp.array([1.0, 2.0, 3.0])
    train = jax.jit(jax.vmap(jax.vmap(toy_train, in_axes=(0, None)), in_axes=(None, 0)))
    stream = io.StringIO()
    with progress.Progress(25, steps_per_update=10, num_runs=12, stream=stream) as bar:
        _, metrics = jax.block_until_ready(train(keys, scales))
    assert metrics["loss"].shape == (3, 4, 25)
    # Fewer updates than REPORTS: one report per update, the last one included.
    assert [u for u, _ in bar.history] == list(range(1, 26))
    # The mean return over all 12 runs: sum(scale * u * 2) / (12 * 2) = mean(scale) * u.
    np.testing.assert_allclose([r for _, r in bar.history], 2.0 * np.arange(1, 26), rtol=1e-6)
    lines = stream.getvalue().splitlines()
    # Not a terminal: a plain line per tenth of the run, ending at the last update.
    assert 9 <= len(lines) <= 11 and lines[-1].startswith("training: 25/25 updates")
    assert "steps/s" in lines[-1] and "return 50.0" in lines[-1]


def test_reports_are_thinned_and_results_unchanged(monkeypatch):
    monkeypatch.setattr(progress, "REPORTS", 5)
    key = jax.random.key(1)
    with progress.Progress(25, 1, stream=io.StringIO()) as bar:
        state, metrics = jax.jit(toy_train)(key, 1.0)
        jax.block_until_ready(metrics)
    assert [u for u, _ in bar.history] == [5, 10, 15, 20, 25]
    # Outside a Progress the same compiled loop runs silently, with the same results.
    silent_state, silent_metrics = jax.jit(toy_train)(key, 1.0)
    np.testing.assert_array_equal(metrics["loss"], silent_metrics["loss"])
    assert float(state) == float(silent_state) == 25.0
