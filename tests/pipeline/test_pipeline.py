"""The pipeline's stages called one by one (pmpm.pipeline): what each hands the next, beside the
CLI scenarios that run them all."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pmpm import pipeline
from pmpm.commands import conda_install
from pmpm.env import state
from pmpm.env.layout import conda_layout
from pmpm.pipeline.conda_stage import changes, solve
from pmpm.pipeline.locked import LockedBuild, LockedRequest, locked_spec
from pmpm.pipeline.prepare import load, prepare
from pmpm.spec.envfile import load_env_file
from tests.build.test_compile_stage import project  # noqa: F401  (the recipes-and-sources fixture)


def _request(prefix: Path, env: Path, **options: object) -> pipeline.Request:
    opts = conda_install.Options(prefix=prefix, file=env, **options)  # type: ignore[arg-type]
    layout = conda_layout(prefix)
    want = state.expected(env.read_bytes(), opts.fingerprint())
    return pipeline.Request(layout, opts, want)


def test_the_recipes_conda_specs_join_the_solve_and_the_solved_prefix_feeds_the_plan(
    tmp_path,
    project,  # noqa: F811
    monkeypatch,
):
    # a cache of its own: the builds this test makes must not serve other tests' builds
    monkeypatch.setenv("PMPM_CACHE_DIR", str(tmp_path / "cache"))
    env, _ = project
    prefix = tmp_path / "p"
    said: list[str] = []
    loaded = load(_request(prefix, env), said.append)
    assert loaded.opts.backend == "rattler" and loaded.layout.root == prefix.absolute()

    prepared = prepare(loaded, said.append)
    assert prepared.recipe_specs == ("demo-data",)  # hello's `requires: {conda: [demo-data]}`
    assert prepared.specs == ["libdemo"]
    solved = solve(prepared, said.append)
    assert {r.name.normalized for r in solved.records} >= {"libdemo", "demo-data"}
    assert solved.installed == [] and solved.compiled_side == []
    todo = changes(solved)
    assert todo.conda and todo.steps is None  # planned after the conda stage changed the prefix
    assert not todo.nothing(solved)
    assert not prefix.exists()  # the stages up to here change nothing

    assert conda_install.run(loaded.opts, said.append) == 0
    again = prepare(load(_request(prefix, env), said.append), said.append)
    solved = solve(again, said.append)
    todo = changes(solved)
    assert todo.conda == [] and todo.compiled == {"greet", "hello"}
    assert todo.steps is not None and [s.decision for s in todo.steps] == ["up to date", "up to date"]
    assert todo.nothing(solved)


def test_the_hand_offs_are_frozen(tmp_path, project):  # noqa: F811
    env, _ = project
    loaded = load(_request(tmp_path / "p", env), print)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.layout = conda_layout(tmp_path / "q")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        prepare(loaded, print).recipe_specs = ()  # type: ignore[misc]


def test_a_lock_gives_the_build_stage_what_the_env_file_reader_would(tmp_path):
    """The lock's requests become an EnvSpec directly: the same values and types the reader
    makes of the same request written as an env file."""
    source = tmp_path / "src" / "greet"
    source.mkdir(parents=True)
    builds = (
        LockedBuild(
            name="greet",
            recipe_text="name: greet\nversion: '1.0'\nsource: {path: ../src/greet}\nbuild: {system: make}\n",
            request={"version": "1.0", "path": str(source), "shared": True, "jobs_cap": 3, "ref": None},
            identity="tree:abc",
            flags={},
        ),
        LockedBuild(
            name="zlib",
            recipe_text=None,  # a built-in recipe
            request={"version": "1.3.1", "url": "https://example.invalid/z.tar.gz", "sha256": "9a93"},
            identity="sha256:9a93",
            flags={},
        ),
    )
    settings = {"mpi": {"external": {"mpicc": "mpicc"}}, "compilers": {"cc": "gcc"}, "tests": False}
    request = LockedRequest(
        layout=conda_layout(tmp_path / "p"),
        lock_path=tmp_path / "env.lock",
        records=[],
        requested=[],
        variables={},
        env_file_text=None,
        builds=builds,
        settings=settings,
        target="x86_64_v3",
    )
    work = tmp_path / "work"
    spec = locked_spec(request, work / "recipes")
    assert (work / "recipes" / "greet.yaml").read_text() == builds[0].recipe_text
    assert not (work / "recipes" / "zlib.yaml").exists()

    written = {
        "channels": [],
        "dependencies": [],
        "_pmpm": {
            "recipes": ["recipes"],
            "packages": [
                {b.name: {**{k: v for k, v in b.request.items() if v is not None}, "target": "x86_64_v3"}}
                for b in builds
            ],
            **settings,
        },
    }
    (work / "env.yml").write_text(yaml.safe_dump(written, sort_keys=False))
    read = load_env_file(work / "env.yml")
    assert [(p.name, p.options) for p in spec.pmpm.packages] == [
        (p.name, p.options) for p in read.pmpm.packages
    ]
    assert [type(v) for p in spec.pmpm.packages for v in p.options.values()] == [
        type(v) for p in read.pmpm.packages for v in p.options.values()
    ]
    assert spec.pmpm.recipes == read.pmpm.recipes
    assert (spec.pmpm.mpi, spec.pmpm.compilers, spec.pmpm.tests) == (
        read.pmpm.mpi,
        read.pmpm.compilers,
        read.pmpm.tests,
    )
    assert spec.dependencies == [] and spec.channels == []
