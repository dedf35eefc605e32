"""BuildInputs: every field joins the build key, and a change of each is named by the plan."""

from __future__ import annotations

import dataclasses

from pmpm.build.inputs import FORMAT, BuildInputs

SAMPLE = BuildInputs(
    recipe="r" * 64,
    recipe_plugin="pmpm-site-recipes 1.0",
    builder={"name": "make", "provider": "pmpm 0.1.0", "commands": "c" * 64},
    source="git:" + "a" * 40,
    flags={"cflags": "-O2 -march=x86-64-v3", "ldflags": ""},
    compilers={"cc": "gcc 12.2.0 /usr/bin/gcc (gcc (Debian 12.2.0-14) 12.2.0)"},
    mpi="Open MPI 4.1.4 /usr/bin/mpicc",
    python="/usr/bin/python3.11 3.11.2",
    target="x86_64_v3",
    options={"precision": "double"},
    prefix="relocatable",
    recipes={"greet": "k" * 64},
    conda={"libdemo": "2.0-0"},
)

#: what `pmpm plan` must say for a change of each field (written here, not taken from the module)
SAID = {
    "recipe": "recipe changed",
    "recipe_plugin": "recipe plugin changed (pmpm-site-recipes 1.0 -> ",
    "builder": "build system",
    "source": "source changed (git:",
    "flags": "flags changed",
    "compilers": "compiler changed",
    "mpi": "MPI changed",
    "python": "python changed",
    "target": "target changed (x86_64_v3 -> ",
    "options": "options changed",
    "prefix": "prefix moved",
    "recipes": "dependency ",
    "conda": "conda package ",
    "format": "pmpm's build format changed",
}


def _changed(value):
    if isinstance(value, bool) or value is None:
        return "something else"
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "-other"
    assert isinstance(value, dict)
    first = sorted(value)[0]
    return {**value, first: str(value[first]) + "-other"}


def test_each_field_changes_the_key_and_is_named_by_the_plan() -> None:
    names = [f.name for f in dataclasses.fields(BuildInputs)]
    assert set(names) == set(SAID), "every field needs a reason a user understands"
    stored = SAMPLE.as_dict()
    assert SAMPLE.format == FORMAT and SAMPLE.reasons(stored) == ["inputs changed"]
    keys = {SAMPLE.key}
    for name in names:
        other = dataclasses.replace(SAMPLE, **{name: _changed(getattr(SAMPLE, name))})
        assert other.key not in keys, f"changing {name} leaves the key as it was"
        keys.add(other.key)
        reasons = other.reasons(stored)
        assert len(reasons) == 1 and reasons[0].startswith(SAID[name]), (name, reasons)


def test_a_builder_upgrade_names_both_distributions() -> None:
    upgraded = dataclasses.replace(SAMPLE, builder={**SAMPLE.builder, "provider": "pmpm 0.2.0"})
    assert upgraded.reasons(SAMPLE.as_dict()) == [
        "build system changed (make from pmpm 0.1.0 -> make from pmpm 0.2.0)"
    ]


def test_inputs_of_an_older_format_say_so() -> None:
    old = {k: v for k, v in SAMPLE.as_dict().items() if k not in ("builder", "recipe_plugin")}
    assert SAMPLE.reasons({**old, "format": 1}) == ["pmpm's build format changed"]
    assert SAMPLE.reasons(None) == []


def test_commands_that_follow_from_another_change_are_not_a_reason_of_their_own() -> None:
    other = dataclasses.replace(
        SAMPLE,
        flags={**SAMPLE.flags, "cflags": "-O3"},
        builder={**SAMPLE.builder, "commands": "d" * 64},  # the flags are on the command lines
    )
    assert other.reasons(SAMPLE.as_dict()) == ["flags changed"]
