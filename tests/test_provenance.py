"""What summary.json and the test header record about the stack and the machine."""

from importlib import metadata

import jax

from jaxrl import provenance


def test_stack_versions_are_the_installed_ones():
    versions = provenance.stack_versions()
    assert set(provenance.STACK) | {"python"} == set(versions)
    assert versions["jax"] == jax.__version__
    assert versions["flax"] == metadata.version("flax")
    assert versions["jaxrl"] == metadata.version("jaxrl")


def test_machine_records_versions_cpu_and_devices():
    record = provenance.machine()
    assert record["versions"] == provenance.stack_versions()
    assert record["device_count"] == jax.device_count()
    cpu = record["cpu"]
    assert cpu["model"] and 1 <= cpu["usable_cores"] <= record["cpu_count"]
    assert set(cpu["isa"]) <= set(provenance.ISA_FLAGS)


def test_header_names_versions_and_cpu():
    header = provenance.header()
    assert f"jax={jax.__version__}" in header and "cpu: " in header
