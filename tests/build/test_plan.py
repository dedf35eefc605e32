"""The build plan (pmpm.build.plan) in-process: the order of the recipes, the decision for each
package and its reasons -- the fields in which two BuildInputs differ -- and the stored inputs
read back. Real recipe files in a folder; no CLI, no build."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pmpm import paths
from pmpm.build.inputs import FORMAT, BuildInputs
from pmpm.build.plan import (
    BuildPlan,
    Step,
    build_string,
    decide,
    order,
    recipe_for,
    stored_inputs,
)
from pmpm.build.recipe import RecipeBook
from pmpm.build.result import BuildResult
from pmpm.builders import Flags
from pmpm.errors import PmpmError

INPUTS = BuildInputs(
    recipe="r" * 64,
    recipe_plugin=None,
    builder={"name": "make", "provider": "pmpm 0.1.0", "commands": "c" * 64},
    source="sha256:" + "a" * 64,
    flags={"cflags": "-O2", "cxxflags": "-O2", "fflags": "-O2", "ldflags": "", "cppflags": ""},
    compilers={"cc": "gcc 12.2.0 /usr/bin/gcc (gcc (Debian 12.2.0-14) 12.2.0)"},
    mpi=None,
    python=None,
    target="x86_64_v3",
    options={},
    prefix="relocatable",
    recipes={},
    conda={"libdemo": "2.0-0"},
)


def _recipe(folder: Path, name: str, requires: list[str]) -> None:
    needs = f"requires: {{recipes: [{', '.join(requires)}]}}\n" if requires else ""
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\nversion: '1.0'\nsource: {{path: ../src/{name}}}\n{needs}build: {{system: make}}\n"
    )


@pytest.fixture
def book(tmp_path: Path) -> RecipeBook:
    """app requires lib and base, lib requires base; loop-a and loop-b require each other."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    for name, requires in {
        "app": ["lib", "base"],
        "lib": ["base"],
        "base": [],
        "tool": [],
        "loop-a": ["loop-b"],
        "loop-b": ["loop-a"],
    }.items():
        _recipe(folder, name, requires)
    return RecipeBook([folder])


def _requires(book: RecipeBook):
    def requires(name: str) -> list[str]:
        recipe, _ = recipe_for(book, name, {}, {}, where=None, requires_only=True)
        return recipe.requires_recipes

    return requires


def test_requirements_come_first_each_once(book: RecipeBook) -> None:
    assert order({"app": None, "tool": None}, book, _requires(book)) == ["base", "lib", "app", "tool"]
    assert order({"tool": None, "lib": None, "app": None}, book, _requires(book)) == [
        "tool",
        "base",
        "lib",
        "app",
    ]


def test_a_cycle_is_an_error_that_names_it(book: RecipeBook) -> None:
    with pytest.raises(PmpmError) as caught:
        order({"loop-a": None}, book, _requires(book))
    assert caught.value.message == "recipes require each other in a cycle: loop-a -> loop-b -> loop-a"
    assert "requires.recipes" in (caught.value.hint or "")


def test_the_recipe_is_rendered_for_the_request(book: RecipeBook) -> None:
    recipe, options = recipe_for(book, "app", {}, {}, where=None)
    assert (recipe.name, recipe.version, recipe.system) == ("app", "1.0", "make")
    assert recipe.requires_recipes == ["lib", "base"] and options == {}
    assert recipe.origin == str(book.find("app").origin)


def test_the_decision_follows_what_prefix_holds() -> None:
    now = build_string(INPUTS)
    older = dataclasses.replace(INPUTS, target="x86_64_v2")
    cached = Path("/cache/linux-64/app-1.0-x.conda")
    assert decide(INPUTS, installed_build=None, stored=None) == ("new", ())
    assert decide(INPUTS, installed_build=now, stored=INPUTS) == ("up to date", ())
    assert decide(INPUTS, installed_build=build_string(older), stored=older) == (
        "rebuild",
        ("target changed (x86_64_v2 -> x86_64_v3)",),
    )
    assert decide(INPUTS, installed_build=None, stored=None, cached=cached) == (
        "from cache",
        ("built before: /cache",),
    )
    # forced: built again even when up to date, and never taken from the cache
    assert decide(INPUTS, installed_build=now, stored=INPUTS, forced="--fresh", cached=cached) == (
        "rebuild",
        ("forced by --fresh",),
    )
    assert decide(INPUTS, installed_build=None, stored=None, forced="--rebuild") == (
        "new",
        ("forced by --rebuild",),
    )


def test_the_reasons_are_the_fields_in_which_two_inputs_differ() -> None:
    other = dataclasses.replace(
        INPUTS,
        flags={**INPUTS.flags, "cflags": "-O3"},
        conda={"libdemo": "2.1-0"},
        source="sha256:" + "b" * 64,
    )
    differ = [
        f.name for f in dataclasses.fields(BuildInputs) if getattr(other, f.name) != getattr(INPUTS, f.name)
    ]
    assert differ == ["source", "flags", "conda"]
    _, reasons = decide(other, installed_build=build_string(INPUTS), stored=INPUTS)
    assert reasons == (
        f"source changed ({INPUTS.source} -> {other.source})",
        "flags changed",
        "conda package libdemo changed (2.0-0 -> 2.1-0)",
    )
    # nothing recorded of the build PREFIX holds: rebuilt without a reason to give
    assert decide(other, installed_build=build_string(INPUTS), stored=None) == ("rebuild", ())


def test_stored_inputs_read_back_as_they_were_written(tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    stored = paths.build_inputs_file(prefix, "app")
    stored.parent.mkdir(parents=True)
    assert stored_inputs(prefix, "app") is None
    # as the builds keep them: the inputs with their format, and the record's details beside
    stored.write_text(json.dumps({**INPUTS.as_dict(), "record": {"recipe_text": None}}))
    back = stored_inputs(prefix, "app")
    assert back == INPUTS and back is not None and back.key == INPUTS.key and back.format == FORMAT


def test_inputs_of_an_older_format_read_and_say_so(tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    stored = paths.build_inputs_file(prefix, "app")
    stored.parent.mkdir(parents=True)
    old = {k: v for k, v in INPUTS.as_dict().items() if k not in ("builder", "recipe_plugin")}
    stored.write_text(json.dumps({**old, "format": 1}))
    back = stored_inputs(prefix, "app")
    assert back is not None and back.format == 1 and back.builder is None and back.target == INPUTS.target
    assert decide(INPUTS, installed_build="pmpm_0123456789ab", stored=back) == (
        "rebuild",
        ("pmpm's build format changed",),
    )


def test_inputs_of_an_unknown_format_are_an_error_naming_the_file(tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    stored = paths.build_inputs_file(prefix, "app")
    stored.parent.mkdir(parents=True)
    stored.write_text(json.dumps({**INPUTS.as_dict(), "format": FORMAT + 1}))
    with pytest.raises(PmpmError) as caught:
        stored_inputs(prefix, "app")
    assert f"build inputs format {FORMAT + 1} is not one this pmpm reads" in caught.value.message
    assert caught.value.where == str(stored) and "--rebuild" in (caught.value.hint or "")


def test_the_plan_and_the_result_are_frozen_values(book: RecipeBook) -> None:
    recipe, _ = recipe_for(book, "base", {}, {}, where=None)
    flags = Flags(cflags="-O2", cxxflags="-O2", fflags="-O2", ldflags="", cppflags="")
    step = Step("base", recipe, None, INPUTS.source, "x86_64_v3", INPUTS, None, flags, decision="up to date")
    plan = BuildPlan((step,), trees={"/src/base": "stamp"})
    assert plan.idle and plan.names == {"base"} and list(plan) == [step] and len(plan) == 1
    assert step.key == INPUTS.key and step.filename == f"base-1.0-{build_string(INPUTS)}.conda"
    assert step.explain() == "base 1.0: up to date"
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.decision = "rebuild"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.steps = ()  # type: ignore[misc]
    rebuilt = dataclasses.replace(step, decision="rebuild", reasons=("flags changed",))
    assert not BuildPlan((rebuilt,)).idle and rebuilt.explain() == "base 1.0: rebuild (flags changed)"
    result = BuildResult(plan, up_to_date=("base",))
    assert result.tools == {"base": {"mpi": None, "python": None}}
