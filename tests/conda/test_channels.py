"""Channel resolution as users write it: names under an alias, ``channel::pkg``, http, offline."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from pmpm.build.package import PackageMeta
from tests.clihelp import installed, pmpm, write_env


@pytest.fixture
def mirror(channel_factory):
    """Two channels side by side under one folder, as on a site mirror."""
    base = channel_factory("mirror").path
    channels = {}
    for name, version in (("chan-a", "1.0"), ("chan-b", "2.0")):
        from tests.factories import LocalChannel

        channel = LocalChannel(base / name)
        channel.add(PackageMeta("tool", version, "0", noarch="generic"), {"share/tool/version": version})
        channel.add(PackageMeta(f"only-{name}", "1.0", "0", noarch="generic"), {f"share/{name}": name})
        channel.index()
        channels[name] = channel
    return base, channels


def test_names_resolve_under_the_channel_alias(tmp_path, mirror):
    base, _ = mirror
    env = write_env(tmp_path / "env.yml", ["chan-a", "chan-b"], ["tool", "only-chan-b"])
    result = pmpm("conda_install", tmp_path / "p", "--file", env, "--channel-alias", base.as_uri())
    assert result.code == 0, result.text
    assert installed(tmp_path / "p") == {"tool": "1.0-0", "only-chan-b": "1.0-0"}  # chan-a has priority

    via_env = pmpm("conda_install", tmp_path / "q", "--file", env, env={"PMPM_CHANNEL_ALIAS": base.as_uri()})
    assert via_env.code == 0, via_env.text
    assert installed(tmp_path / "q") == installed(tmp_path / "p")


def test_channel_prefix_in_a_spec_picks_that_channel(tmp_path, mirror):
    base, _ = mirror
    env = write_env(tmp_path / "env.yml", ["chan-a"], ["chan-b::tool"])
    result = pmpm("conda_install", tmp_path / "p", "--file", env, "--channel-alias", base.as_uri())
    assert result.code == 0, result.text
    assert installed(tmp_path / "p") == {"tool": "2.0-0"}


@pytest.mark.parametrize(
    "written", ["chan-b::tool=2.0=0", "chan-b::tool 2.0", "tool[channel=chan-b,version=2.0]"]
)
def test_channel_prefix_with_conda_export_forms(tmp_path, mirror, written):
    """`conda env export` writes `name=version=build`; with a channel it still goes through the alias."""
    base, _ = mirror
    env = write_env(tmp_path / "env.yml", ["chan-a"], [written])
    result = pmpm("conda_install", tmp_path / "p", "--file", env, "--channel-alias", base.as_uri())
    assert result.code == 0, result.text
    assert installed(tmp_path / "p") == {"tool": "2.0-0"}


def test_unknown_alias_channel_fails_naming_the_line(tmp_path, mirror):
    base, _ = mirror
    env = write_env(tmp_path / "env.yml", ["chan-a", "no-such-channel"], ["tool"])
    result = pmpm("conda_install", tmp_path / "p", "--file", env, "--channel-alias", base.as_uri())
    assert result.code == 1
    assert "no-such-channel" in result.err
    assert f"{env}:3" in result.err
    assert "Traceback" not in result.text
    assert not (tmp_path / "p").exists()


def test_relative_local_folder_is_relative_to_the_env_file(tmp_path, mirror, monkeypatch):
    base, _ = mirror
    env = write_env(base / "env.yml", ["./chan-b"], ["tool"])
    monkeypatch.chdir(tmp_path)
    result = pmpm("conda_install", tmp_path / "p", "--file", env)
    assert result.code == 0, result.text
    assert installed(tmp_path / "p") == {"tool": "2.0-0"}


@pytest.fixture
def http_channel(mirror):
    """chan-a served over real HTTP on the loopback interface."""
    _, channels = mirror
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(channels["chan-a"].path))

    class Quiet(handler.func):  # type: ignore[misc, name-defined]
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=handler.keywords["directory"])
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_http_channel_then_offline_from_the_cache(tmp_path, http_channel):
    server, url = http_channel
    env = write_env(tmp_path / "env.yml", [url], ["tool"])
    cache = {"PMPM_CACHE_DIR": str(tmp_path / "cache")}
    result = pmpm("conda_install", tmp_path / "p", "--file", env, env=cache)
    assert result.code == 0, result.text
    assert installed(tmp_path / "p") == {"tool": "1.0-0"}
    assert (tmp_path / "p" / "share" / "tool" / "version").read_text() == "1.0"

    server.shutdown()
    server.server_close()
    offline = pmpm("conda_install", tmp_path / "q", "--file", env, "--offline", env=cache)
    assert offline.code == 0, offline.text
    assert installed(tmp_path / "q") == {"tool": "1.0-0"}

    no_cache = pmpm(
        "conda_install",
        tmp_path / "r",
        "--file",
        env,
        "--offline",
        env={"PMPM_CACHE_DIR": str(tmp_path / "empty")},
    )
    assert no_cache.code == 1
    assert "--offline" in no_cache.err and "Traceback" not in no_cache.text
    assert not (tmp_path / "r").exists()


def test_virtual_packages_honour_conda_overrides(tmp_path, channel_factory):
    channel = channel_factory()
    channel.add(PackageMeta("needs-new-glibc", "1.0", "0", depends=("__glibc >=99",)), {"share/x": "x"})
    channel.index()
    env = write_env(tmp_path / "env.yml", [channel.path], ["needs-new-glibc"])
    refused = pmpm("conda_install", tmp_path / "p", "--file", env)
    assert refused.code == 1
    assert "__glibc" in refused.err
    result = pmpm("conda_install", tmp_path / "p", "--file", env, env={"CONDA_OVERRIDE_GLIBC": "99.1"})
    assert result.code == 0, result.text
    assert installed(tmp_path / "p") == {"needs-new-glibc": "1.0-0"}
