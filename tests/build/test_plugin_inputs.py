"""Plugins are build inputs: a recipe or builder plugin that is upgraded or edited rebuilds what
it built (the no-op check sees it too), and the binary cache does not serve its old builds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.clihelp import installed, pmpm

MODULE = '''\
from pmpm.builders import Step


def recipe(context):
    return {{"name": "plugged", "version": "1.0", "source": {{"path": {src!r}}},
            "build": {{"system": "mybuild", "env": {{"GREETING": {greeting!r}}}}}}}


class Builder:
    """Copies one of the tree's tools: which one is this plugin's behaviour."""

    name = "mybuild"

    def supports(self, source_dir):
        return False

    def steps(self, ctx):
        bin = ctx.staged_prefix / "bin"
        return [
            Step("install", ("mkdir", "-p", str(bin)), ctx.build_dir),
            Step("install", ("cp", str(ctx.source_dir / {tool!r}), str(bin / "tool")), ctx.build_dir),
        ]
'''


def _plugin(folder: Path, version: str, src: Path, *, tool: str, greeting: str = "hi") -> None:
    """A real distribution on a PYTHONPATH folder: dist-info with entry points, and its module."""
    for old in folder.glob("pmpm_test_inputs-*.dist-info"):
        shutil.rmtree(old)  # an upgrade replaces the distribution's metadata, as pip does
    info = folder / f"pmpm_test_inputs-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pmpm-test-inputs\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[pmpm.recipes]\nplugged = pmpm_test_inputs:recipe\n\n"
        "[pmpm.builders]\nmybuild = pmpm_test_inputs:Builder\n"
    )
    (folder / "pmpm_test_inputs.py").write_text(MODULE.format(src=str(src), tool=tool, greeting=greeting))


def _tool(prefix: Path) -> str:
    return subprocess.run(
        [prefix / "bin" / "tool"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_plugin_upgrades_and_edits_rebuild(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name, says in (("tool", "one"), ("tool2", "two")):
        (src / name).write_text(f"#!/bin/sh\necho {says} {tmp_path.name}\n")
        (src / name).chmod(0o755)
    plugins = tmp_path / "plugins"
    _plugin(plugins, "0.1", src, tool="tool")
    extra = {"PYTHONPATH": str(plugins)}
    env = tmp_path / "env.yml"
    env.write_text("dependencies: []\n_pmpm:\n  packages: [plugged]\n")
    prefix = tmp_path / "p"
    first = pmpm("conda_install", prefix, "--file", env, env=extra)
    assert first.code == 0, first.text
    assert _tool(prefix) == f"one {tmp_path.name}"
    again = pmpm("conda_install", prefix, "--file", env, env=extra)
    assert again.code == 0 and "building" not in again.out, again.text

    # upgrade: version 0.2 copies the other tool
    _plugin(plugins, "0.2", src, tool="tool2")
    plan = pmpm("plan", prefix, "--file", env, env=extra)
    assert plan.code == 0, plan.text
    assert (
        "build system changed (mybuild from pmpm-test-inputs 0.1 -> mybuild from pmpm-test-inputs 0.2)"
        in plan.out
    )
    # a new prefix: the cache holds the old plugin's build of the same recipe, which must not serve
    other = tmp_path / "p2"
    fresh = pmpm("conda_install", other, "--file", env, env=extra)
    assert fresh.code == 0, fresh.text
    assert "building plugged" in fresh.out and "binary cache" not in fresh.out
    assert _tool(other) == f"two {tmp_path.name}"
    # the first prefix is not "up to date": it gets the new plugin's build (now in the cache)
    upgraded = pmpm("conda_install", prefix, "--file", env, env=extra)
    assert upgraded.code == 0, upgraded.text
    assert "installed plugged 1.0 from the binary cache" in upgraded.out, upgraded.text
    assert _tool(prefix) == f"two {tmp_path.name}"

    # the same version, only the module edited (a plugin under development): not a no-op
    build = next((prefix / "conda-meta").glob("plugged-*.json")).name
    _plugin(plugins, "0.2", src, tool="tool2", greeting="hello there")
    plan = pmpm("plan", prefix, "--file", env, env=extra)
    assert "plugged 1.0: rebuild (recipe changed)" in plan.out, plan.text
    edited = pmpm("conda_install", prefix, "--file", env, env=extra)
    assert edited.code == 0, edited.text
    assert "building plugged" in edited.out and "binary cache" not in edited.out
    assert next((prefix / "conda-meta").glob("plugged-*.json")).name != build
    assert installed(prefix)["plugged"].startswith("1.0-pmpm_")
