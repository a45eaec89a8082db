"""One process at a time per run directory (jaxrl.rundir, issue 19)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from jaxrl import cli, rundir


def dead_pid() -> int:
    """The id of a process that has finished (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_lock(directory, **owner):
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": 0.0} | owner
    (directory / rundir.LOCK_NAME).write_text(json.dumps(owner))


def test_a_held_directory_is_refused_and_released_after(tmp_path):
    with rundir.lock(tmp_path):
        owner = json.loads((tmp_path / rundir.LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        in_use = pytest.raises(rundir.RunDirectoryInUse, match=f"in use by process {os.getpid()}")
        with in_use, rundir.lock(tmp_path):
            pass
    assert not (tmp_path / rundir.LOCK_NAME).exists()
    with pytest.raises(RuntimeError), rundir.lock(tmp_path):  # released on errors too
        raise RuntimeError
    assert not (tmp_path / rundir.LOCK_NAME).exists()


def test_a_stale_lock_is_taken_over_and_kept_aside(tmp_path, capsys):
    pid = dead_pid()
    write_lock(tmp_path, pid=pid)
    with rundir.lock(tmp_path):
        assert json.loads((tmp_path / rundir.LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"taking over a stale lock of process {pid}" in capsys.readouterr().out
    assert json.loads((tmp_path / (rundir.LOCK_NAME + ".stale")).read_text())["pid"] == pid
    assert not (tmp_path / rundir.LOCK_NAME).exists()


def test_a_lock_from_another_host_is_refused_with_how_to_clear_it(tmp_path):
    write_lock(tmp_path, host="elsewhere", pid=dead_pid())
    refused = pytest.raises(rundir.RunDirectoryInUse, match="on elsewhere .*delete .*jaxrl.lock")
    with refused, rundir.lock(tmp_path):
        pass
    assert (tmp_path / rundir.LOCK_NAME).exists()  # not ours to remove


def test_a_second_training_process_is_refused_before_compiling(tmp_path, capsys):
    """Before, both processes crashed with orbax errors, and one could delete a
    checkpoint the other was about to restore."""
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            tmp_path.mkdir(exist_ok=True)
            write_lock(tmp_path, pid=other.pid)
            with pytest.raises(SystemExit) as exit_info:
                cli.main(["train", "ppo", "--env", "GridWorld-Empty-8x8", "--out", str(tmp_path)])
            assert exit_info.value.code == 2
            assert f"is in use by process {other.pid}" in capsys.readouterr().err
            assert sorted(p.name for p in tmp_path.iterdir()) == [rundir.LOCK_NAME]
        finally:
            other.kill()
