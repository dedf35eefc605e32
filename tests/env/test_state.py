"""The no-op state (pmpm.env.state), called in-process: what a successful run stamps, what makes
the next run do the work again, and that a damaged state file only costs a full run.

Real files throughout: prefixes with ``conda-meta`` records, a recipe file, a plugin
distribution on ``sys.path`` and a local source tree, edited as a user would edit them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from pmpm import __version__, paths
from pmpm.build.inputs import distribution_files
from pmpm.env import journal, state

ENV = b"channels: [conda-forge]\ndependencies: [zlib]\n"
OPTIONS = {"update": "False", "backend": "rattler"}


def _prefix(root: Path, *records: str) -> Path:
    """A conda environment holding ``records`` (record file stems)."""
    (root / "conda-meta").mkdir(parents=True)
    for stem in records:
        (root / "conda-meta" / f"{stem}.json").write_text(json.dumps({"name": stem.split("-")[0]}))
    return root


def _stamp(
    prefix: Path, *, watched: Sequence[Path] = (), trees: Sequence[Path] = (), stacks: Sequence[Path] = ()
) -> state.State:
    """Save the state a successful run with ENV and OPTIONS saves (as pipeline.finish does)."""
    want = state.expected(ENV, OPTIONS)
    want = replace(want, trees={str(t): state.tree_stamp(t) for t in trees})
    want = replace(want, records=state.records_digest(*(stacks or [prefix])))
    state.watch(want, list(watched))
    want.save(prefix)
    return want


def _again(
    prefix: Path, env: bytes = ENV, options: dict[str, str] = OPTIONS, stacks: list[Path] | None = None
) -> bool:
    """Is the next run with ``env`` and ``options`` a no-op?"""
    return state.up_to_date(prefix, state.expected(env, options), stacks)


def test_a_run_stamps_its_inputs_and_the_same_run_again_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDA_OVERRIDE_GLIBC", "2.28")
    prefix = _prefix(tmp_path / "p", "zlib-1.3.1-h0_0")
    recipe = tmp_path / "recipes" / "demo.yaml"
    recipe.parent.mkdir()
    recipe.write_text("name: demo\n")
    want = _stamp(prefix, watched=[recipe, tmp_path / "absent.json"])

    stored = json.loads(paths.state_file(prefix).read_text())
    assert stored == asdict(want)  # the round trip keeps every field
    assert stored["env_sha256"] == hashlib.sha256(ENV).hexdigest()
    assert stored["options"] == {**OPTIONS, "CONDA_OVERRIDE_GLIBC": "2.28"}
    st = recipe.stat()
    assert stored["watched"] == {
        str(recipe): [st.st_size, st.st_mtime_ns],
        str(tmp_path / "absent.json"): None,
    }
    assert stored["pmpm_version"] == __version__ and stored["format"] == state.FORMAT
    assert _again(prefix)


def test_an_edit_of_the_env_file_or_another_option_or_override_is_not_a_no_op(tmp_path, monkeypatch):
    monkeypatch.delenv("CONDA_OVERRIDE_CUDA", raising=False)
    prefix = _prefix(tmp_path / "p", "zlib-1.3.1-h0_0")
    _stamp(prefix)
    assert _again(prefix)
    assert not _again(prefix, env=ENV + b"  # a comment\n")  # bytes, not meaning: no YAML parse
    assert not _again(prefix, options={**OPTIONS, "update": "True"})
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "12.4")
    assert not _again(prefix)


def test_an_edited_recipe_file_ends_the_no_op(tmp_path):
    prefix = _prefix(tmp_path / "p")
    recipe = tmp_path / "recipes" / "demo.yaml"
    recipe.parent.mkdir()
    recipe.write_text("name: demo\nversion: '1.0'\n")
    new_recipe = tmp_path / "recipes" / "later.yaml"  # watched while absent: a recipe added later
    _stamp(prefix, watched=[recipe, new_recipe])
    assert _again(prefix)

    recipe.write_text("name: demo\nversion: '1.1'\n")  # same size: the mtime tells
    assert not _again(prefix)
    _stamp(prefix, watched=[recipe, new_recipe])
    new_recipe.write_text("name: later\n")
    assert not _again(prefix)
    _stamp(prefix, watched=[recipe, new_recipe])
    recipe.unlink()
    assert not _again(prefix)


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real recipe-plugin distribution (dist-info + module) importable from ``tmp_path/site``."""
    site = tmp_path / "site"
    dist = site / "h3_state_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: h3-state-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pmpm.recipes]\nh3demo = h3_state_plugin:recipe\n")
    (site / "h3_state_plugin.py").write_text(
        textwrap.dedent(
            """\
            def recipe(context):
                return {"name": "h3demo", "version": "1.0", "source": {"path": "."}, "build": {}}
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("h3_state_plugin", None)


def test_a_changed_plugin_module_or_an_upgraded_plugin_ends_the_no_op(tmp_path, plugin):
    (ep,) = [e for e in entry_points(group="pmpm.recipes") if e.name == "h3demo"]
    ep.load()  # as the run that stamped had loaded it
    files = [Path(f) for f in distribution_files(ep)]
    module = plugin / "h3_state_plugin.py"
    metadata = plugin / "h3_state_plugin-1.0.dist-info" / "METADATA"
    assert set(files) == {module, metadata, metadata.with_name("entry_points.txt")}
    prefix = _prefix(tmp_path / "p")
    _stamp(prefix, watched=files)
    assert _again(prefix)

    module.write_text(module.read_text() + "# an edit\n")
    assert not _again(prefix)
    _stamp(prefix, watched=files)
    metadata.write_text(metadata.read_text().replace("Version: 1.0", "Version: 1.1"))  # an upgrade
    assert not _again(prefix)


def test_a_changed_prefix_ends_the_no_op(tmp_path):
    prefix = _prefix(tmp_path / "p", "zlib-1.3.1-h0_0")
    _stamp(prefix)
    (prefix / "conda-meta" / "zlib-1.3.1-h0_0.json").rename(prefix / "conda-meta" / "zlib-1.3.1-h1_0.json")
    assert not _again(prefix)  # another build of the same package
    _stamp(prefix)
    (prefix / "conda-meta" / "zlib-1.3.1-h1_0.json").unlink()  # `conda remove zlib`
    assert not _again(prefix)


def test_every_stack_of_an_environment_counts(tmp_path):
    compiled, conda = (
        _prefix(tmp_path / "compiled", "demo-1.0-pmpm_0"),
        _prefix(tmp_path / "conda", "zlib-1-0"),
    )
    stacks = [compiled, conda]
    _stamp(compiled, stacks=stacks)
    assert _again(compiled, stacks=stacks)
    (conda / "conda-meta" / "bzip2-1-0.json").write_text("{}")  # installed into the conda stack
    assert not _again(compiled, stacks=stacks)
    # a record moving from one stack to the other is a change too, though the names are the same
    (conda / "conda-meta" / "bzip2-1-0.json").unlink()
    _stamp(compiled, stacks=stacks)
    os.rename(compiled / "conda-meta" / "demo-1.0-pmpm_0.json", conda / "conda-meta" / "demo-1.0-pmpm_0.json")
    assert not _again(compiled, stacks=stacks)


def test_an_interrupted_run_on_any_stack_ends_the_no_op(tmp_path):
    compiled, conda = _prefix(tmp_path / "compiled"), _prefix(tmp_path / "conda")
    _stamp(compiled, stacks=[compiled, conda])
    journal.begin(conda)  # a run killed while changing the conda stack
    assert not _again(compiled, stacks=[compiled, conda])
    journal.commit(conda)
    assert _again(compiled, stacks=[compiled, conda])


def test_an_edit_of_a_local_source_tree_ends_the_no_op_its_build_output_does_not(tmp_path):
    tree = tmp_path / "src"
    (tree / "lib").mkdir(parents=True)
    (tree / "lib" / "a.c").write_text("int a(void) { return 1; }\n")
    (tree / "build").mkdir()  # the user's own build folder: never part of the stamp
    (tree / ".git").mkdir()
    prefix = _prefix(tmp_path / "p")
    _stamp(prefix, trees=[tree])
    assert _again(prefix)

    (tree / "build" / "a.o").write_bytes(b"\0object")
    (tree / ".git" / "index").write_bytes(b"DIRC")
    assert _again(prefix)
    (tree / "lib" / "a.c").write_text("int a(void) { return 2; }\n")  # same size
    assert not _again(prefix)
    _stamp(prefix, trees=[tree])
    (tree / "lib" / "b.c").write_text("")  # a new file
    assert not _again(prefix)
    _stamp(prefix, trees=[tree])
    (tree / "lib" / "b.c").rename(tree / "lib" / "c.c")
    assert not _again(prefix)


def test_a_local_source_tree_that_is_gone_ends_the_no_op(tmp_path):
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "a.c").write_text("int a;\n")
    prefix = _prefix(tmp_path / "p")
    _stamp(prefix, trees=[tree])
    (tree / "a.c").unlink()
    tree.rmdir()
    assert state.tree_stamp(tree) == ""
    assert not _again(prefix)


@pytest.mark.parametrize(
    "content",
    [b"", b'{"env_sha256": "ab', b"\x00" * 64, b"\xff\xfe not utf-8", b"not json at all"],
    ids=["empty", "truncated", "zeroed", "not-utf8", "garbage"],
)
def test_a_damaged_state_file_means_a_full_run_not_a_crash(tmp_path, content):
    prefix = _prefix(tmp_path / "p")
    _stamp(prefix)
    paths.state_file(prefix).write_bytes(content)
    assert not _again(prefix)


@pytest.mark.parametrize(
    "change",
    [{"format": state.FORMAT + 1}, {"pmpm_version": "0.0.0+older"}, {"volatile": True}],
    ids=["other-format", "other-pmpm", "volatile"],
)
def test_a_state_of_another_format_or_pmpm_or_a_volatile_run_is_not_trusted(tmp_path, change):
    prefix = _prefix(tmp_path / "p")
    _stamp(prefix)
    path = paths.state_file(prefix)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    assert not _again(prefix)


def test_no_state_file_is_not_a_no_op(tmp_path):
    assert not _again(_prefix(tmp_path / "p"))
    assert not _again(tmp_path / "never-made")


@pytest.mark.parametrize("content", ["null", "[]", '"text"', '{"trees": []}', '{"watched": [["a", 1]]}'])
def test_a_state_file_of_valid_json_that_is_not_a_state_means_a_full_run(tmp_path, content):
    prefix = _prefix(tmp_path / "p")
    want = _stamp(prefix)
    path = paths.state_file(prefix)
    if content.startswith("{"):
        content = json.dumps({**asdict(want), **json.loads(content)})
    path.write_text(content)
    assert not _again(prefix)
