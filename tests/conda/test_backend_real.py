"""``--backend conda`` with the real conda 26.7.1 (``tests/real_conda.py``), end to end.

conda creates and updates the prefix from the demo channel (really compiled, padded-prefix
packages); pmpm's record, verify and no-op run work on what conda made, and compiled packages
are built and kept beside conda's. The runs are online as a user's would be (no ``--offline``):
nothing may reach for a server when every channel is a local folder.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.clihelp import installed, pmpm, write_env
from tests.real_conda import RealConda, build_real_conda
from tests.recordhelp import make_project


@pytest.fixture(scope="session")
def real_conda(tmp_path_factory):
    return build_real_conda(tmp_path_factory)


def _by_conda(conda: RealConda, *args: str | Path) -> str:
    """``pmpm ARGS --backend conda`` with the real conda first on PATH; its output."""
    result = pmpm(*args, "--backend", "conda", env=conda.env)
    assert result.code == 0, result.text
    return result.out


def _verify(prefix: Path, conda: RealConda) -> dict:
    result = pmpm("verify", prefix, "--json", env=conda.env)
    report = json.loads(result.out)
    assert result.code == 0 and report["ok"], result.text
    return report


def _history(prefix: Path) -> list[str]:
    return (prefix / "conda-meta" / "history").read_text().split("==> ")[1:]


def _demo_tool(prefix: Path) -> str:
    return subprocess.run([prefix / "bin" / "demo-tool"], capture_output=True, text=True, check=True).stdout


def test_conda_creates_and_updates_the_prefix(real_conda, demo_channel, tmp_path):
    env = write_env(
        tmp_path / "env.yml",
        [demo_channel.path],
        ["libdemo 1.*", "demo-tool"],
        "variables:\n  DEMO_MODE: fast\n",
    )
    prefix = tmp_path / "p"
    _by_conda(real_conda, "conda_install", prefix, "--file", env)
    assert installed(prefix) == {"libdemo": "1.0-0", "demo-tool": "1.0-0", "demo-data": "1.0-0"}
    assert _demo_tool(prefix) == f"demo-tool 1.0 prefix={prefix}\n"  # conda relocated the binary
    created = _history(prefix)[0]
    assert "# conda version: 26.7.1" in created and " env update -p " in created  # conda's work
    vars_out = real_conda.run("env", "config", "vars", "list", "-p", prefix).stdout
    assert "DEMO_MODE = fast" in vars_out
    first = _verify(prefix, real_conda)["environment_id"]
    record = pmpm("record", prefix, env=real_conda.env)
    assert record.code == 0 and "libdemo 1.0 0" in record.out and first in record.out
    again = pmpm("conda_install", prefix, "--file", env, "--backend", "conda", env=real_conda.env)
    assert again.code == 0 and again.out.strip().endswith(f"up to date with {env}"), again.text
    assert len(_history(prefix)) == 2  # the no-op run did not call conda

    write_env(env, [demo_channel.path], ["libdemo 2.*", "demo-tool"], "variables:\n  DEMO_MODE: slow\n")
    plan = pmpm("plan", prefix, "--file", env, env=real_conda.env)
    assert plan.code == 0 and "libdemo 1.0-0 -> 2.0-0" in plan.out, plan.text
    _by_conda(real_conda, "conda_install", prefix, "--file", env)
    assert installed(prefix) == {"libdemo": "2.0-0", "demo-tool": "1.0-0", "demo-data": "1.0-0"}
    assert _demo_tool(prefix) == f"demo-tool 2.0 prefix={prefix}\n"
    assert "# conda version: 26.7.1" in _history(prefix)[-2]  # conda updated it, pmpm wrote after
    assert "DEMO_MODE = slow" in real_conda.run("env", "config", "vars", "list", "-p", prefix).stdout
    assert _verify(prefix, real_conda)["environment_id"] != first
    assert pmpm("plan", prefix, "--file", env, "--check", env=real_conda.env).code == 0


def test_compiled_packages_build_beside_what_conda_installs(real_conda, demo_channel, tmp_path):
    """conda's ``env update --prune`` removes the compiled packages (they are not in the file it is
    given); pmpm puts them back from its binary cache in the same run."""
    project = make_project(tmp_path / "project", demo_channel.path)
    env = project.env
    env.write_text(env.read_text().replace("  - python\n", ""))  # conda would add pip, not in the channel
    prefix = tmp_path / "p"
    # a binary cache of its own: other tests of the session build the same recipes
    own = {**real_conda.env, "PMPM_CACHE_DIR": str(tmp_path / "cache")}
    result = pmpm("conda_install", prefix, "--file", env, "--backend", "conda", env=own)
    assert result.code == 0, result.text
    out = result.out
    assert "building hello 2.0" in out and "building greet 1.0" in out
    hello = subprocess.run([prefix / "bin" / "hello"], capture_output=True, text=True, check=True)
    assert hello.stdout == "hello, world\n"
    listed = real_conda.run("list", "-p", prefix).stdout
    assert {"greet", "hello", "libdemo", "demo-data"} <= {
        line.split()[0] for line in listed.splitlines() if line[0] != "#"
    }
    first = _verify(prefix, real_conda)["environment_id"]

    env.write_text(env.read_text().replace("  - libdemo\n", "  - libdemo 1.*\n  - demo-tool\n"))
    result = pmpm("conda_install", prefix, "--file", env, "--backend", "conda", env=own)
    assert result.code == 0, result.text
    out = result.out
    assert "building" not in out, out  # no compiled package changed: none is rebuilt
    pruned = _history(prefix)[-2]  # conda's entry, then pmpm's
    assert "# conda version: 26.7.1" in pruned and "\n-file://" in pruned and "::hello-2.0-pmpm_" in pruned
    assert "installed hello 2.0 from the binary cache" in out
    assert installed(prefix)["libdemo"] == "1.0-0" and installed(prefix)["demo-tool"] == "1.0-0"
    assert {"greet", "hello"} <= installed(prefix).keys()
    hello = subprocess.run([prefix / "bin" / "hello"], capture_output=True, text=True, check=True)
    assert hello.stdout == "hello, world\n"
    assert _verify(prefix, real_conda)["environment_id"] != first
    again = pmpm("conda_install", prefix, "--file", env, "--backend", "conda", env=own)
    assert again.code == 0 and "up to date" in again.out, again.text


def test_the_sites_condarc_channels_do_not_change_the_env_file(real_conda, demo_channel, tmp_path):
    """A ``.condarc`` naming other channels (here another local channel with a newer libdemo, and
    one that does not exist) is not read into the env file's solve: pmpm hands conda the file's
    channels and ``nodefaults``."""
    from pmpm.build.package import PackageMeta
    from tests.factories import LocalChannel

    elsewhere = LocalChannel(tmp_path / "elsewhere")
    elsewhere.add(PackageMeta("libdemo", "9.0", "0"), {"share/libdemo-9/README": "not the env file's\n"})
    elsewhere.index()
    condarc = tmp_path / "condarc"
    condarc.write_text(
        "solver: classic\nauto_update_conda: false\nnotify_outdated_conda: false\n"
        f"channels:\n  - {elsewhere.url}\n  - {(tmp_path / 'missing').as_uri()}\n"
    )
    env = write_env(tmp_path / "env.yml", [demo_channel.path], ["libdemo"])
    prefix = tmp_path / "p"
    result = pmpm(
        "conda_install",
        prefix,
        "--file",
        env,
        "--backend",
        "conda",
        env={**real_conda.env, "CONDARC": str(condarc)},
    )
    assert result.code == 0, result.text
    assert installed(prefix) == {"libdemo": "2.0-0"}
    assert _verify(prefix, real_conda)
