"""Test-wide settings: catch silent broadcasting; ``--seed-set K`` picks the seeds of
the slow tier's learning tests; the summary records the stack and the CPU, because a
learning figure is bit-exact only on the same versions, CPU kind and thread count."""

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


def pytest_terminal_summary(terminalreporter):
    """Printed under the results, also with ``-q``, so every CI log records it."""
    line = f"jaxrl provenance: {provenance.header()} | seed set {agents_common.SEED_SET}"
    terminalreporter.write_line(line)
