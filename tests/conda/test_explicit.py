"""``@EXPLICIT`` lists install: what the real conda's ``conda list --explicit`` writes (plain,
``--md5``, ``--sha256``), with local ``file://`` URLs and with remote ones (served by a loopback
``http.server`` this module starts and stops), gives the same packages; a wrong digest stops
the run with the line and the package named, and PREFIX stays as it was.

The real conda is 26.7.1 from ``../shared/vendor`` (``tests/real_conda.py``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clihelp import pmpm, tree_digest, write_env
from tests.real_conda import build_real_conda


@pytest.fixture(scope="session")
def real_conda(tmp_path_factory):
    return build_real_conda(tmp_path_factory)


@pytest.fixture(scope="module")
def source_prefix(tmp_path_factory, demo_channel) -> Path:
    """A pmpm environment from the demo channel: demo-tool with libdemo and demo-data."""
    work = tmp_path_factory.mktemp("explicit-source")
    env_file = write_env(work / "env.yml", [demo_channel.path], ["demo-tool", "libdemo 2.*"])
    prefix = work / "env"
    result = pmpm("conda_install", prefix, "--file", env_file)
    assert result.code == 0, result.text
    return prefix


@pytest.fixture(scope="module")
def served_channel(demo_channel) -> Iterator[str]:
    """The demo channel over HTTP on a loopback port: a stand-in for a remote channel."""
    serve = ["-m", "http.server", "--bind", "127.0.0.1", "--directory", demo_channel.path, "0"]
    server = subprocess.Popen(
        [sys.executable, "-u", *serve],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 41234 (http://...) ..."
        match = re.search(r"port (\d+)", banner)
        assert match, f"http.server did not start: {banner!r}"
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        os.kill(server.pid, 15)
        server.wait(timeout=10)


#: the loopback server must not be reached through a proxy the machine may have set
NO_PROXY = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}


def _records(prefix: Path) -> dict[str, dict]:
    records = (json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("*.json"))
    return {r["name"]: r for r in records}


def _identity(prefix: Path) -> dict[str, tuple[str, str, str, str]]:
    """What a package is, whatever prefix it is in: its file's URL, build and digests."""
    return {n: (r["url"], r["build"], r["md5"], r["sha256"]) for n, r in _records(prefix).items()}


@pytest.mark.parametrize("digest", ["--md5", "--sha256", None])
def test_a_list_conda_wrote_installs_the_same_packages(real_conda, source_prefix, tmp_path, digest):
    args = ["list", "--explicit", *([digest] if digest else []), "-p", source_prefix]
    listed = real_conda.run(*args).stdout
    assert "@EXPLICIT" in listed
    if digest:
        assert all("#" in line for line in listed.splitlines() if line.startswith("file://"))
    list_file = tmp_path / "list.txt"
    list_file.write_text(listed)
    prefix = tmp_path / "copy"

    result = pmpm("conda_install", prefix, "--file", list_file)

    assert result.code == 0, result.text
    assert _identity(prefix) == _identity(source_prefix)
    assert {"demo-tool", "libdemo", "demo-data"} <= set(_records(prefix))
    tool = subprocess.run([prefix / "bin" / "demo-tool"], capture_output=True, text=True, check=True)
    assert tool.stdout.startswith("demo-tool 2.")  # linked against the listed libdemo 2
    # conda lists the copy as it listed the original, and pmpm's re-run is a no-op
    again = real_conda.run(*args[:-1], prefix).stdout
    assert again.splitlines()[-len(_records(prefix)) :] == listed.splitlines()[-len(_records(prefix)) :]
    rerun = pmpm("conda_install", prefix, "--file", list_file)
    assert rerun.code == 0 and "is up to date" in rerun.out, rerun.text


def _listed(real_conda, source_prefix: Path, digest: str) -> list[str]:
    return real_conda.run("list", "--explicit", digest, "-p", source_prefix).stdout.splitlines()


@pytest.mark.parametrize("digest", ["--md5", "--sha256"])
def test_a_wrong_digest_names_the_line_and_package_and_changes_nothing(
    real_conda, source_prefix, tmp_path, digest
):
    lines = _listed(real_conda, source_prefix, digest)
    number = next(i for i, line in enumerate(lines) if "/libdemo-" in line)
    url, _, value = lines[number].partition("#")
    lines[number] = f"{url}#{'0' if value[0] != '0' else '1'}{value[1:]}"
    list_file = tmp_path / "list.txt"
    list_file.write_text("\n".join(lines) + "\n")
    package = url.rsplit("/", 1)[1]

    fresh = tmp_path / "fresh"
    result = pmpm("conda_install", fresh, "--file", list_file)
    assert result.code == 1, result.text
    kind = digest.lstrip("-")
    assert f"{list_file}:{number + 1}: {kind} mismatch for package {package}" in result.err
    assert "Traceback" not in result.text
    assert not fresh.exists()

    # an existing environment is left exactly as it was
    existing = tmp_path / "existing"
    small = write_env(tmp_path / "small.yml", [url.rsplit("/", 2)[0]], ["demo-data"])
    assert pmpm("conda_install", existing, "--file", small).code == 0
    before = tree_digest(existing)
    result = pmpm("conda_install", existing, "--file", list_file)
    assert result.code == 1 and f"{kind} mismatch for package {package}" in result.err, result.text
    assert tree_digest(existing) == before


def test_remote_urls_install_the_same_packages(
    real_conda, source_prefix, served_channel, demo_channel, tmp_path
):
    local = demo_channel.path.as_uri()
    lines = _listed(real_conda, source_prefix, "--md5")
    remote = [line.replace(local, served_channel) for line in lines]
    assert any(line.startswith(served_channel) for line in remote)
    list_file = tmp_path / "remote.txt"
    list_file.write_text("\n".join(remote) + "\n")
    prefix = tmp_path / "remote-env"

    result = pmpm("conda_install", prefix, "--file", list_file, env=NO_PROXY)

    assert result.code == 0, result.text
    got, want = _identity(prefix), _identity(source_prefix)
    assert set(got) == set(want)
    for name, (url, build, md5, sha256) in want.items():
        assert got[name] == (url.replace(local, served_channel), build, md5, sha256)
    listed = real_conda.run("list", "--explicit", "--md5", "-p", prefix).stdout.splitlines()
    assert sorted(line for line in listed if line.startswith("http")) == sorted(
        line for line in remote if line.startswith("http")
    )


def test_a_remote_file_that_is_not_served_is_named(served_channel, tmp_path):
    list_file = tmp_path / "missing.txt"
    list_file.write_text(f"@EXPLICIT\n{served_channel}/noarch/nothing-1.0-0.conda\n")
    prefix = tmp_path / "env"
    result = pmpm("conda_install", prefix, "--file", list_file, env=NO_PROXY)
    assert result.code == 1, result.text
    assert f"{list_file}:2: cannot download package nothing-1.0-0.conda" in result.err
    assert "Traceback" not in result.text
    assert not prefix.exists()


def test_a_list_for_another_platform_is_refused(real_conda, source_prefix, tmp_path):
    lines = _listed(real_conda, source_prefix, "--md5")
    foreign = [re.sub(r"^# platform: .*", "# platform: win-64", line) for line in lines]
    assert foreign != lines
    list_file = tmp_path / "win.txt"
    list_file.write_text("\n".join(foreign) + "\n")
    prefix = tmp_path / "env"
    result = pmpm("conda_install", prefix, "--file", list_file)
    assert result.code == 1, result.text
    assert "the explicit package list is for win-64" in result.err
    assert not prefix.exists()
