"""Test-wide settings: catch silent broadcasting; ``--seed-set K`` picks the seeds of
the slow tier's learning tests; the summary records the stack and the CPU, because a
learning figure is bit-exact only on the same versions, CPU kind and thread count."""

import os

import agents_common
import jax

from jaxrl import provenance

jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_addoption(parser):
    parser.addoption(
        "--seed-set",
        type=int,
        default=0,
        help="learning tests train seeds split from jax.random.key(K) (default 0, the one "
        "CI checks; the README reports sets 0, 1 and 2)",
    )


def pytest_configure(config):
    agents_common.SEED_SET = config.getoption("--seed-set")
    fast_compile(config.option.markexpr)
    no_compile_cache()
    # Start jax's backend now, with its default single CPU device: the command line's
    # one-device-per-core default (jaxrl.parallel.use_every_core) then leaves this
    # process alone whichever test calls it first (subprocesses get the default).
    jax.devices()


#: XLA's backend (LLVM) optimisation level for the default tier.
FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"


def fast_compile(markexpr: str) -> None:
    """The default tier compiles more than it runs: there, XLA skips LLVM's
    optimisations (about 30% less time on compile-bound files, e.g. test_td3.py 90 s
    -> 64 s here), for this process and the subprocesses it starts. Results are the
    same properties, possibly not the same floats: the slow tier and the notebooks,
    whose figures the README states, keep the compiler's defaults, as do runs
    that set the level in ``XLA_FLAGS`` themselves. Set before any computation,
    when jax reads ``XLA_FLAGS``."""
    if "not slow" not in markexpr or "not notebooks" not in markexpr:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE_FLAG}".strip()


def no_compile_cache() -> None:
    """Tests compile from scratch, as CI's fresh machine does: jax's persistent cache,
    on by default for the command line (``jaxrl.parallel.use_compile_cache``), is off
    for this process and its subprocesses unless ``JAXRL_CACHE_DIR`` is set (the
    test of the cache sets its own)."""
    os.environ.setdefault("JAXRL_CACHE_DIR", "")


def pytest_terminal_summary(terminalreporter):
    """Printed under the results, also with ``-q``, so every CI log records it."""
    line = f"jaxrl provenance: {provenance.header()} | seed set {agents_common.SEED_SET}"
    terminalreporter.write_line(line)
