"""Shared fixtures: local channels of genuine conda packages (see ``tests/factories.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.factories import DemoChannel, LocalChannel, build_demo_channel


@pytest.fixture(autouse=True, scope="session")
def _isolated_pmpm_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """pmpm's package cache, repodata cache and logs for this session only (CLI subprocesses too);
    the test prefixes are not registered in the user's ``~/.conda/environments.txt`` (conda's own
    switch; the registration tests turn it back on for themselves)."""
    saved = {k: os.environ.get(k) for k in ("PMPM_CACHE_DIR", "PMPM_CHANNEL_ALIAS", "CONDA_REGISTER_ENVS")}
    os.environ["PMPM_CACHE_DIR"] = str(tmp_path_factory.mktemp("pmpm-cache"))
    os.environ["CONDA_REGISTER_ENVS"] = "false"
    os.environ.pop("PMPM_CHANNEL_ALIAS", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def channel_factory(tmp_path: Path) -> Callable[..., LocalChannel]:
    """Make empty channels under this test's tmp dir: ``channel_factory(name="chan")``."""

    def make(name: str = "chan") -> LocalChannel:
        path = tmp_path / name
        if path.exists():
            raise ValueError(f"channel {name!r} already made in this test")
        path.mkdir()
        return LocalChannel(path)

    return make


@pytest.fixture(scope="session")
def demo_channel(tmp_path_factory: pytest.TempPathFactory) -> DemoChannel:
    """The compiled demo channel, built once per session; read-only (add to your own channels)."""
    return build_demo_channel(tmp_path_factory.mktemp("demo"))
