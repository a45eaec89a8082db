"""The optional Weights & Biases logger, run offline and read back from its transaction log.

(The CSV, JSON Lines and TensorBoard loggers are tested with ``Progress`` in test_progress.)
"""

import contextlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxrl import experiment, loggers


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """Nothing touches the network or the home directory: runs go to tmp_path/wandb."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return tmp_path


def wandb_records(run_dir: Path) -> list[dict]:
    """The records of an offline run, read back from its ``.wandb`` file by
    ``wandb leet inspect --json`` (one record per line)."""
    result = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def wandb_history(run_dir: Path) -> list[dict]:
    return [record["history"] for record in wandb_records(run_dir) if record["type"] == "history"]


def test_wandb_logger_commits_each_row_at_its_env_steps(wandb_offline):
    # Rows as Progress writes them: numpy scalars from the device, no return before the
    # first episode ends (NaN).
    rows = [
        {
            "update": u,
            "env_steps": 64 * u,
            "steps_per_second": 1000.0 * u,
            "episodes": float(u > 1),
            "return_mean": float(u) if u > 1 else math.nan,
            "loss": np.float32(0.5**u),
        }
        for u in (1, 2, 3)
    ]
    log = loggers.WandbLogger(project="jaxrl-test", dir=wandb_offline, config={"lr": 0.1})
    for row in rows:
        log.log(row)
        # Committed at once: the summary is this row's, not the one before.
        assert log.run.summary["update"] == row["update"]
        assert log.run.summary["_step"] == row["env_steps"]
    log.close()

    (run_dir,) = (wandb_offline / "wandb").glob("offline-run-*")
    (log_file,) = run_dir.glob("run-*.wandb")
    assert log_file.stat().st_size > 0
    history = wandb_history(run_dir)
    assert [h["step"]["num"] for h in history] == [64, 128, 192]
    items = [h["item"] for h in history]
    assert [item["update"] for item in items] == [1, 2, 3]
    assert "return_mean" not in items[0]
    assert [item["return_mean"] for item in items[1:]] == [2.0, 3.0]
    np.testing.assert_allclose([item["loss"] for item in items], [0.5, 0.25, 0.125])


@pytest.mark.parametrize("failed", [False, True])
def test_wandb_run_closed_after_an_exception_is_marked_failed(wandb_offline, failed):
    log = loggers.WandbLogger(project="jaxrl-test", dir=wandb_offline)
    log.log({"update": 1, "env_steps": 8, "loss": 1.0})
    # How jaxrl.experiment closes its loggers: through an ExitStack exit callback, which
    # sees the exception training raised and lets it through.
    expected = pytest.raises(RuntimeError) if failed else contextlib.nullcontext()
    with expected, contextlib.ExitStack() as closing:
        closing.push(experiment._closer(log))
        if failed:
            raise RuntimeError("training failed")
    (run_dir,) = (wandb_offline / "wandb").glob("offline-run-*")
    (exit_record,) = [r["exit"] for r in wandb_records(run_dir) if r["type"] == "exit"]
    assert exit_record.get("exit_code", 0) == int(failed)


def strict_loads(text: str):
    """``json.loads`` that refuses the NaN and Infinity tokens, as strict parsers do."""

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_written_json_is_strict(tmp_path):
    """summary.json and the JSON Lines log hold no NaN/Infinity tokens: non-finite
    numbers are null, numpy values plain numbers (issue 19)."""
    data = {
        "final_return_mean": math.nan,
        "per_seed": np.array([1.5, np.inf, -np.inf], np.float32),
        "count": np.int64(3),
        "nested": [{"value": float("-inf")}, (np.float32(0.25),)],
    }
    experiment.write_json(tmp_path / "summary.json", data)
    assert strict_loads((tmp_path / "summary.json").read_text()) == {
        "final_return_mean": None,
        "per_seed": [1.5, None, None],
        "count": 3,
        "nested": [{"value": None}, [0.25]],
    }
    log = loggers.JSONLLogger(tmp_path / "metrics.jsonl")
    log.log({"update": 1, "return_mean": math.nan, "loss": np.float32(np.inf)})
    log.close()
    (line,) = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert strict_loads(line) == {"update": 1, "return_mean": None, "loss": None}
