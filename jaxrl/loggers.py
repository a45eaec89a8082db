"""Host-side loggers for the rows ``jaxrl.progress.Progress`` reports during a run.

A row is a flat dict of floats (``update``, ``env_steps``, ``steps_per_second``,
``episodes``, ``return_mean`` and every metric averaged over the runs), written
about ``progress.REPORTS`` times per run, so logs stay small whatever the run's
length. CSV and JSON Lines are built in; TensorBoard (``tensorboardX``) and
Weights & Biases (``wandb``) are optional extras, imported only when used.

Files are opened for appending: a run resumed from a checkpoint continues its
log, and the updates between the last checkpoint and the interruption appear
twice (the later rows are the ones the resumed run trained).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` as strict JSON data: every non-finite float (NaN, +-inf) becomes
    None (``null``), numpy scalars and arrays Python numbers and lists. Python's
    ``json`` writes ``NaN`` and ``Infinity`` tokens otherwise, which most parsers
    outside Python reject; a null says "no value" (e.g. no episode ended)."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Logger(Protocol):
    def log(self, row: dict[str, float]) -> None: ...

    def close(self, failed: bool = False) -> None:
        """Flush and release; ``failed``: the run ended by an exception (a logger that
        records a run's outcome, such as W&B, marks it failed rather than finished)."""
        ...


class JSONLLogger:
    """One strict JSON object per line (NaN and infinities written as null)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a")  # noqa: SIM115 (closed by close())

    def log(self, row: dict[str, float]) -> None:
        self._file.write(json.dumps(json_safe(row), allow_nan=False) + "\n")
        self._file.flush()

    def close(self, failed: bool = False) -> None:
        self._file.close()


class CSVLogger:
    """A CSV file whose columns are the first row's keys (a header unless appending to
    a file that has one); later keys that are new are refused, so columns never shift."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._columns: list[str] | None = None
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path) as f:
                self._columns = next(csv.reader(f))
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 (closed by close())
        self._writer: Any = None

    def log(self, row: dict[str, float]) -> None:
        if self._columns is None:
            self._columns = list(row)
            csv.writer(self._file).writerow(self._columns)
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, self._columns, restval="")
        unknown = set(row) - set(self._columns)
        if unknown:
            raise ValueError(
                f"CSVLogger({self.path}): columns {sorted(unknown)} are not in its header "
                f"{self._columns}"
            )
        self._writer.writerow(row)
        self._file.flush()

    def close(self, failed: bool = False) -> None:
        self._file.close()


class TensorBoardLogger:
    """Scalars to a TensorBoard event directory, by env steps (needs ``tensorboardX``:
    ``pip install jaxrl[tensorboard]``)."""

    def __init__(self, logdir: str | Path):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as error:
            raise ImportError(
                "TensorBoardLogger needs tensorboardX: pip install 'jaxrl[tensorboard]'"
            ) from error
        self._writer = SummaryWriter(str(logdir))

    def log(self, row: dict[str, float]) -> None:
        step = int(row["env_steps"])
        for name, value in row.items():
            if name not in ("update", "env_steps") and not math.isnan(value):
                self._writer.add_scalar(name, value, step)
        self._writer.flush()

    def close(self, failed: bool = False) -> None:
        self._writer.close()


class WandbLogger:
    """Rows to a Weights & Biases run, by env steps (needs ``wandb``: ``pip install
    jaxrl[wandb]``); ``kwargs`` go to ``wandb.init`` (project, name, config, dir,
    mode="offline", ...). NaNs (no episode ended) are left out, as in TensorBoard."""

    def __init__(self, **kwargs: Any):
        try:
            import wandb
        except ImportError as error:
            raise ImportError("WandbLogger needs wandb: pip install 'jaxrl[wandb]'") from error
        self.run = wandb.init(**kwargs)
        """The ``wandb`` run, for anything else to log to it (artifacts, tables)."""

    def log(self, row: dict[str, float]) -> None:
        # A row is a whole step: commit it now. With a step and no commit, wandb holds the
        # row open until a later step arrives, so the dashboard and summary lag one report.
        self.run.log(
            {k: v for k, v in row.items() if not math.isnan(v)},
            step=int(row["env_steps"]),
            commit=True,
        )

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)
