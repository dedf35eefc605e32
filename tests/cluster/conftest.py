"""One loopback Slurm cluster (``tests/slurmhelp.py``) shared by the cluster tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.slurmhelp import LoopbackSlurm, loopback_slurm


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSlurm]:
    """A controller and nodes n1 (x86_64_v3) and n2 (x86_64_v4, icelake), idle; stopped after."""
    with loopback_slurm(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster
