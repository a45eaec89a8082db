"""Progress reports from inside a jitted, vmapped training loop."""

import io
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import progress, training


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


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_stream_gets_the_bar_and_stdout_nothing(capsys):
    stream = FakeTerminal()
    # A jit of its own: the number of reports is fixed when a loop is traced, and a cached
    # jit(toy_train) would carry it into the test that changes it.
    train = jax.jit(lambda key, scale: toy_train(key, scale))
    with progress.Progress(25, steps_per_update=10, stream=stream):
        jax.block_until_ready(train(jax.random.key(0), 1.0))
    assert "25/25" in stream.getvalue()  # the bar's last refresh, in the stream given
    assert capsys.readouterr().out == ""


def test_reports_are_thinned_and_results_unchanged(monkeypatch):
    monkeypatch.setattr(progress, "REPORTS", 5)
    key = jax.random.key(1)
    train = jax.jit(lambda key, scale: toy_train(key, scale))  # traced here, with REPORTS 5
    with progress.Progress(25, 1, stream=io.StringIO()) as bar:
        state, metrics = train(key, 1.0)
        jax.block_until_ready(metrics)
    assert [u for u, _ in bar.history] == [5, 10, 15, 20, 25]
    # Outside a Progress the same compiled loop runs silently, with the same results.
    silent_state, silent_metrics = train(key, 1.0)
    np.testing.assert_array_equal(metrics["loss"], silent_metrics["loss"])
    assert float(state) == float(silent_state) == 25.0


def test_reports_are_at_most_reports_plus_the_last(monkeypatch):
    # 25 updates, 10 reports: every 3rd update (every 2nd would make 12), and the last.
    monkeypatch.setattr(progress, "REPORTS", 10)
    train = jax.jit(lambda key, scale: toy_train(key, scale))  # not jit's cached toy_train
    with progress.Progress(25, 1, stream=io.StringIO()) as bar:
        jax.block_until_ready(train(jax.random.key(1), 1.0))
    assert [u for u, _ in bar.history] == [3, 6, 9, 12, 15, 18, 21, 24, 25]


def test_loggers_get_one_row_per_report_with_metrics_averaged_over_runs(tmp_path):
    from jaxrl import loggers

    keys = jax.random.split(jax.random.key(0), 4)
    train = jax.jit(jax.vmap(toy_train, in_axes=(0, None)))
    logs = [loggers.CSVLogger(tmp_path / "p.csv"), loggers.JSONLLogger(tmp_path / "p.jsonl")]
    logs.append(loggers.TensorBoardLogger(tmp_path / "tb"))
    with progress.Progress(25, 10, num_runs=4, stream=io.StringIO(), loggers=logs):
        _, metrics = jax.block_until_ready(train(keys, 3.0))
    for log in logs:
        log.close()
    import pandas as pd

    table = pd.read_csv(tmp_path / "p.csv")
    assert table["update"].tolist() == list(range(1, 26))
    assert table["env_steps"].tolist() == [10 * u for u in range(1, 26)]
    # return: sum over runs of 3 * u * 2 / (4 runs * 2 episodes) = 3u; 8 episodes per update.
    np.testing.assert_allclose(table["return_mean"], 3.0 * np.arange(1, 26), rtol=1e-6)
    assert (table["episodes"] == 8).all()
    np.testing.assert_allclose(table["loss"], np.asarray(metrics["loss"]).mean(0), rtol=1e-6)
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [row["update"] for row in rows] == table["update"].tolist()
    assert rows[-1]["loss"] == pytest.approx(table["loss"].iloc[-1])
    assert any(path.name.startswith("events.out") for path in (tmp_path / "tb").iterdir())


def test_csv_logger_appends_under_its_header_and_refuses_new_columns(tmp_path):
    from jaxrl import loggers

    log = loggers.CSVLogger(tmp_path / "p.csv")
    log.log({"update": 1, "loss": 0.5})
    log.close()
    log = loggers.CSVLogger(tmp_path / "p.csv")  # a resumed run
    log.log({"update": 2, "loss": 0.25})
    with pytest.raises(ValueError, match=r"columns \['extra'\] are not in its header"):
        log.log({"update": 3, "loss": 0.1, "extra": 1.0})
    log.close()
    assert (tmp_path / "p.csv").read_text().splitlines() == ["update,loss", "1,0.5", "2,0.25"]


class Rows:
    """A logger that keeps its rows."""

    def __init__(self):
        self.rows = []

    def log(self, row):
        self.rows.append(row)

    def close(self):
        pass


def test_a_report_sends_one_array(monkeypatch):
    # The callback copies each argument on the host (a few hundred us apiece mid-run):
    # the update and the metrics go as one int32 array [1 + metric, *runs].
    shapes = []
    callback = jax.debug.callback

    def spy(fn, *args, **kwargs):
        shapes.append([(x.shape, x.dtype) for x in jax.tree.leaves(args)])
        return callback(fn, *args, **kwargs)

    monkeypatch.setattr(jax.debug, "callback", spy)
    keys = jax.random.split(jax.random.key(0), 4)
    train = jax.jit(jax.vmap(jax.vmap(toy_train, in_axes=(0, None)), in_axes=(None, 0)))
    jax.eval_shape(train, keys, jnp.array([1.0, 2.0, 3.0]))
    # (custom_vmap traces the report at each level of vmap; the last is the one compiled.)
    assert all(len(args) == 1 for args in shapes)
    assert shapes[-1] == [((1 + 3, 3, 4), np.int32)]


def test_integer_boolean_and_no_metrics_are_reported():
    def update_step(state, update):
        metrics = {
            "episodes": jnp.int32(3),
            "episode_return_sum": jnp.float32(6.0),
            "flag": update % 2 == 0,
        }
        return state, metrics

    rows = Rows()
    with progress.Progress(4, 1, stream=io.StringIO(), loggers=[rows]) as bar:
        jax.block_until_ready(jax.jit(lambda: progress.scan_updates(update_step, 0, 4))())
    assert [(r["update"], r["episodes"], r["flag"]) for r in rows.rows] == [
        (1, 3.0, 1.0), (2, 3.0, 0.0), (3, 3.0, 1.0), (4, 3.0, 0.0)
    ]  # fmt: skip
    assert bar.history == [(u, 2.0) for u in range(1, 5)]
    # An agent that logs nothing still moves the bar.
    with progress.Progress(4, 1, stream=io.StringIO()) as bar:
        jax.block_until_ready(jax.jit(lambda: progress.scan_updates(lambda s, u: (s, {}), 0, 4))())
    assert bar.updates_seen == 4


def test_update_numbers_past_float32_precision_arrive_exactly():
    # 20_000_003 is not a float32: the update travels as an int32 beside the metrics' bits.
    total = 20_000_003

    def update_step(state, update):
        return state, {"loss": jnp.float32(-1.5), "nan": jnp.float32(jnp.nan)}

    rows = Rows()
    run = jax.jit(lambda: progress.scan_updates(update_step, 0, 3, start=total - 3, total=total))
    with progress.Progress(total, 1, stream=io.StringIO(), loggers=[rows]) as bar:
        jax.block_until_ready(run())
    assert bar.updates_seen == total
    assert [r["update"] for r in rows.rows] == [total]
    assert rows.rows[0]["loss"] == -1.5 and np.isnan(rows.rows[0]["nan"])


# Reports from the host (train_in_chunks inside a Progress): no host callback in the
# compiled program, so that jax's persistent cache can keep it (issue 20).


def test_host_piece_divides_every_call_and_lies_near_report_every():
    assert progress.report_every(976) == 20
    assert progress.host_piece(976, 1, {976}) == 16  # 976 = 16 x 61: 61 calls of 16
    assert progress.host_piece(200, 1, {200}) == 4
    assert progress.host_piece(100, 1, {60, 40}) == 2  # chunks of 60, then 40
    assert progress.host_piece(1000, 50, {1000}) == 50  # a multiple of log_every
    assert progress.host_piece(997, 1, {997}) is None  # prime: report from inside
    assert progress.host_piece(1000, 1, {7, 1000}) is None  # every 7th: too many calls


def counting_trainer(updates: int, log_every: int = 1):
    """A Trainer whose metrics are known functions of the update and the run's key."""
    from jaxrl.training import Trainer

    def init(key, hparams):
        return {"params": jnp.float32(0.0), "key": key}

    def step(state, hparams, update):
        u = update.astype(jnp.float32) + 1.0
        noise = jax.random.uniform(jax.random.fold_in(state["key"], update))
        metrics = {"episode_return_sum": 2.0 * u, "episodes": jnp.float32(2.0), "loss": noise}
        return {"params": state["params"] + u, "key": state["key"]}, metrics

    return Trainer(init, step, num_updates=updates, log_every=log_every)


@pytest.mark.parametrize("log_every", [1, 4])
def test_train_in_chunks_reports_from_the_host_as_the_compiled_loop_does(tmp_path, log_every):
    from jaxrl import loggers

    keys = jax.random.split(jax.random.key(0), 3)
    trainer = counting_trainer(200, log_every)
    reported = {}
    for route in ("inside", "host"):
        rows = loggers.CSVLogger(tmp_path / f"{route}.csv")
        with progress.Progress(200, 1, 3, stream=io.StringIO(), loggers=[rows]) as bar:
            if route == "inside":
                state, metrics = jax.jit(jax.vmap(trainer, in_axes=(0, None)))(keys, None)
                jax.block_until_ready(metrics)
            else:
                state, metrics, _ = training.train_in_chunks(trainer, keys, None, chunk=200)
        rows.close()
        reported[route] = (bar.history, state["params"], metrics)
    import pandas as pd

    inside, host = (pd.read_csv(tmp_path / f"{r}.csv") for r in ("inside", "host"))
    if log_every == 1:  # the same updates reported, with the same numbers
        assert reported["host"][0] == reported["inside"][0]
        assert host["update"].tolist() == list(range(4, 201, 4))
        columns = ["update", "env_steps", "episodes", "return_mean", "loss"]
        pd.testing.assert_frame_equal(host[columns], inside[columns])
    else:  # the last logged interval of every 4 updates: 4 updates' episodes
        assert host["update"].tolist() == list(range(4, 201, 4))
        assert (host["episodes"] == 3 * 2 * 4).all()
        np.testing.assert_allclose(host["return_mean"], np.arange(4, 201, 4) - 1.5)
    np.testing.assert_array_equal(reported["host"][1], reported["inside"][1])
    for name in reported["host"][2]:
        np.testing.assert_array_equal(reported["host"][2][name], reported["inside"][2][name])


def test_programs_reporting_from_the_host_enter_the_persistent_compile_cache(tmp_path):
    """jax writes no persistent cache entry for a program with a host callback; the
    chunks of a run inside a Progress must have none (and, as a check of the check, a
    run reporting from inside has one)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import io, logging, sys
        import jax
        jax.config.update("jax_compilation_cache_dir", sys.argv[1])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        jax.config.update("jax_explain_cache_misses", True)
        sys.path.insert(0, sys.argv[2])
        from test_progress import counting_trainer
        from jaxrl import checkpoint, progress, training
        keys = jax.random.split(jax.random.key(0), 2)
        with progress.Progress(200, 1, 2, stream=io.StringIO()):
            training.train_in_chunks(counting_trainer(200), keys, None, chunk=200)
            print("HOST DONE", file=sys.stderr, flush=True)
            training.train_in_chunks(counting_trainer(997), keys, None, chunk=997)
        """
    )
    tests = str(Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache"), tests],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    host, inside = done.stderr.split("HOST DONE")
    refused = "because it uses host callbacks"
    assert refused not in host and refused in inside
    assert any((tmp_path / "cache").iterdir())
