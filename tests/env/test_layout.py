"""The layout of an environment's stacks: one target as before, several targets side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pmpm import paths
from pmpm.env import layout as layouts
from pmpm.env.layout import conda_layout, find, system_layout


def test_one_target_is_the_plain_layout(tmp_path: Path) -> None:
    prefix = conda_layout(tmp_path / "env")
    assert (prefix.compile, prefix.conda, prefix.targets) == (tmp_path / "env", tmp_path / "env", ())
    assert prefix.prefixes == [tmp_path / "env"] and not prefix.split
    assert prefix.for_target("x86_64_v3") is prefix and prefix.stack("x86_64_v3") == prefix.compile
    # a single-entry list is the simple case too
    assert conda_layout(tmp_path / "env", ("x86_64_v3",)) == prefix
    system = system_layout(tmp_path / "root", tmp_path / "root" / "conda", targets=("x86_64_v3",))
    assert system.compile == tmp_path / "root" / "compile" and system.targets == ()
    layouts.write(prefix)  # a plain prefix needs no marker
    assert not (paths.pmpm_dir(prefix.root) / layouts.LAYOUT_NAME).exists()


def test_conda_install_with_targets(tmp_path: Path) -> None:
    env = tmp_path / "env"
    layout = conda_layout(env, ("x86_64_v2", "x86_64_v3"))
    assert layout.targets == ("x86_64_v2", "x86_64_v3")
    assert layout.stack("x86_64_v3") == env / "compile" / "x86_64_v3"
    assert layout.prefixes == [env / "compile" / "x86_64_v2", env / "compile" / "x86_64_v3", env]
    view = layout.for_target("x86_64_v3")
    assert (view.compile, view.conda, view.targets, view.root) == (
        env / "compile" / "x86_64_v3",
        env,
        (),
        env,
    )
    assert view.prefixes == [env / "compile" / "x86_64_v3", env] and view.split
    assert view.meta_dir == layout.meta_dir  # the record stays the environment's
    with pytest.raises(KeyError):
        layout.stack("zen4")

    layouts.write(layout)
    for start in (env, env / "compile" / "x86_64_v2", env / "compile" / "x86_64_v3"):
        assert find(start) == layout
    layouts.write(conda_layout(env))  # back to one target: a plain prefix again
    assert find(env) == conda_layout(env)


def test_system_install_with_targets_and_format_1(tmp_path: Path) -> None:
    root = tmp_path / "root"
    layout = system_layout(root, root / "conda", "compile", ("x86_64_v2", "x86_64_v3"))
    assert layout.stacks == [root / "compile" / "x86_64_v2", root / "compile" / "x86_64_v3"]
    assert layout.for_target("x86_64_v2").prefixes == [root / "compile" / "x86_64_v2", root / "conda"]
    layouts.write(layout)
    assert json.loads((root / ".pmpm" / "layout.json").read_text())["format"] == 2
    for start in (root, root / "conda", root / "compile" / "x86_64_v3"):
        assert find(start) == layout

    old = tmp_path / "old"  # written by a pmpm before targets: format 1, no `targets`
    (old / ".pmpm").mkdir(parents=True)
    data = {
        "format": 1,
        "kind": "system",
        "root": str(old),
        "conda": str(old / "conda"),
        "compile": str(old / "compile"),
    }
    (old / ".pmpm" / "layout.json").write_text(json.dumps(data))
    assert find(old) == system_layout(old, old / "conda")
