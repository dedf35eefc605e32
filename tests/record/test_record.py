"""The record written by ``pmpm conda_install``, ``pmpm record``, and the environment id."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clihelp import REPO, pmpm, write_env
from tests.recordhelp import env_id, make_project, record_of


@pytest.fixture
def project(tmp_path, demo_channel):
    return make_project(tmp_path, demo_channel.path)


def test_record_holds_packages_sources_flags_and_files(tmp_path, project):
    import jsonschema

    prefix = tmp_path / "p"
    project.install(prefix)
    record = record_of(prefix)
    schema = json.loads((REPO / "docs" / "record.schema.json").read_text())
    jsonschema.validate(record, schema)

    conda = {p["name"]: p for p in record["conda_packages"]}
    assert set(conda) == {"libdemo", "python", "demo-data"}
    assert conda["libdemo"]["version"] == "2.0" and len(conda["libdemo"]["sha256"]) == 64
    assert conda["libdemo"]["url"].startswith("file://")

    compiled = {p["name"]: p for p in record["compiled_packages"]}
    hello, greet = compiled["hello"], compiled["greet"]
    assert hello["build"].startswith("pmpm_")
    assert hello["recipe"]["text"] == (project.root / "recipes" / "hello.yaml").read_text()
    assert hello["source"]["kind"] == "path" and hello["source"]["identity"].startswith("tree:")
    assert "-march=" in hello["flags"]["cflags"] and hello["target"] == record["host"]["target"]
    assert "gcc" in hello["compilers"]["cc"] or "clang" in hello["compilers"]["cc"]
    files = {f["path"]: f for f in greet["files"]}
    lib = prefix / "lib" / "libgreet.so"
    # the rpath is relative ($ORIGIN), so the library names no prefix and needs no relocation
    assert "prefix" not in files["lib/libgreet.so"] and b"$ORIGIN" in lib.read_bytes()
    import hashlib

    assert files["lib/libgreet.so"]["sha256"] == hashlib.sha256(lib.read_bytes()).hexdigest()
    assert record["env_file"]["sha256"] == hashlib.sha256(project.env.read_bytes()).hexdigest()
    assert record["env_file"]["normalized"]["_pmpm"]["packages"] == ["hello"]
    assert record["host"]["glibc"] and record["host"]["os"]

    shown = pmpm("record", prefix)
    assert shown.code == 0, shown.text
    assert f"environment id: {record['environment_id']}" in shown.out
    assert "hello 2.0 pmpm_" in shown.out and "libdemo 2.0 0" in shown.out
    as_json = pmpm("record", prefix, "--json")
    assert json.loads(as_json.out) == record


def test_two_prefixes_from_one_env_file_have_one_id(tmp_path, project):
    # prefixes of different lengths: the id does not depend on where the environment lives
    first, second = tmp_path / "a" / "p", tmp_path / "a-much-longer-folder-name" / "p"
    project.install(first)
    project.install(second)
    assert env_id(first) == env_id(second)
    assert (first / "share" / "hello" / "where.txt").read_text() != (
        second / "share" / "hello" / "where.txt"
    ).read_text()  # a text file naming the prefix: normalised for the id


def test_a_flag_a_source_byte_or_a_conda_package_changes_the_id(tmp_path, project):
    prefix = tmp_path / "p"
    project.install(prefix)
    original = env_id(prefix)
    seen = {original}

    project.write_env(greet_options="target: x86_64_v2")  # other -march flags for greet
    project.install(prefix)
    greet = {p["name"]: p for p in record_of(prefix)["compiled_packages"]}["greet"]
    assert "-march=x86-64-v2" in greet["flags"]["cflags"] and greet["target"] == "x86_64_v2"
    seen.add(env_id(prefix))

    project.write_env()
    source = project.greet_c.read_text()
    project.greet_c.write_text(source.replace("hello, world", "hello, world!"))  # one byte more
    project.install(prefix)
    seen.add(env_id(prefix))

    project.greet_c.write_text(source)
    project.write_env(conda="libdemo <2")  # libdemo 1.0 instead of 2.0
    project.install(prefix, "--update")
    seen.add(env_id(prefix))
    assert len(seen) == 4

    project.write_env()
    project.install(prefix, "--update")
    assert env_id(prefix) == original  # back to the same content, back to the same id


def test_no_op_run_keeps_the_record_and_a_failed_run_does_not_touch_it(tmp_path, project, demo_channel):
    conda_only = tmp_path / "conda-only"
    write_env(tmp_path / "plain.yml", [demo_channel.path], ["demo-tool"])
    assert pmpm("conda_install", conda_only, "--file", tmp_path / "plain.yml").code == 0
    path = conda_only / "conda-meta" / "pmpm" / "record.json"
    before = path.read_bytes()
    again = pmpm("conda_install", conda_only, "--file", tmp_path / "plain.yml")
    assert "is up to date" in again.out
    assert path.read_bytes() == before

    prefix = tmp_path / "p"
    project.install(prefix)  # local source trees: every run re-plans, and re-records
    path = prefix / "conda-meta" / "pmpm" / "record.json"
    before = path.read_bytes()
    project.install(prefix)
    assert path.read_bytes() == before  # nothing changed: the record (and its time) stays

    (project.root / "src" / "hello" / "hello.c").write_text("int main(void) { this is not C }\n")
    failed = pmpm("conda_install", prefix, "--file", project.env)
    assert failed.code == 1
    assert path.read_bytes() == before


def test_environment_id_reads_only_the_record(tmp_path, project):
    prefix = tmp_path / "p"
    project.install(prefix)
    code = (
        "import sys, pmpm, pmpm.record.api as r; from pathlib import Path\n"
        f"print(pmpm.environment_id({str(prefix)!r}), r.environment_id(Path({str(prefix)!r})))\n"
        f"print(r.environment_id(Path({str(tmp_path)!r})))\n"
        "print(sorted(m for m in ('rattler', 'archspec', 'typer', 'yaml') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    ident = env_id(prefix)
    assert out.splitlines() == [f"{ident} {ident}", "None", "[]"]


def test_record_errors_are_clear(tmp_path, project):
    missing = pmpm("record", tmp_path / "nowhere")
    assert missing.code == 1 and "error:" in missing.err and "Traceback" not in missing.text
    empty = tmp_path / "empty"
    (empty / "conda-meta").mkdir(parents=True)
    result = pmpm("record", empty)
    assert result.code == 1 and "has no pmpm record" in result.err and "Traceback" not in result.text

    prefix = tmp_path / "p"
    project.install(prefix)
    (prefix / "conda-meta" / "pmpm" / "record.json").write_text('{"environment_id": ')
    broken = pmpm("record", prefix)
    assert broken.code == 1 and "not valid JSON" in broken.err and "Traceback" not in broken.text
    assert pmpm("verify", prefix).code == 1


def test_record_module_is_documented_in_the_schema():
    schema = json.loads((REPO / "docs" / "record.schema.json").read_text())
    from dataclasses import fields

    from pmpm.record.api import Record

    assert {f.name for f in fields(Record)} == set(schema["properties"])
    assert Path(REPO / "docs" / "record.md").is_file()


def _compiled_prefix(tmp_path: Path, stored: dict) -> Path:
    """A prefix holding one compiled package's conda-meta record and its stored build inputs,
    as the compile stage leaves them (no build needed to read them back)."""
    from pmpm import paths

    prefix = tmp_path / "p"
    (prefix / "conda-meta").mkdir(parents=True)
    meta = {"name": "greet", "version": "1.0", "build": "pmpm_0123456789ab", "files": [], "paths_data": {}}
    (prefix / "conda-meta" / "greet-1.0-pmpm_0123456789ab.json").write_text(json.dumps(meta))
    where = paths.build_inputs_file(prefix, "greet")
    where.parent.mkdir(parents=True)
    where.write_text(json.dumps(stored))
    return prefix


def test_the_record_holds_the_build_inputs_as_stored_and_reads_older_ones(tmp_path):
    from pmpm.build.inputs import FORMAT, BuildInputs
    from pmpm.env.layout import conda_layout
    from pmpm.record.api import Record, build
    from tests.build.test_plan import INPUTS

    details = {"recipe_text": "name: greet\n", "recipe_origin": "/r/greet.yaml", "source": {"kind": "url"}}
    prefix = _compiled_prefix(tmp_path, {**INPUTS.as_dict(), "record": details})
    record = build(conda_layout(prefix))
    [package] = record.compiled_packages
    assert package.inputs == INPUTS.as_dict() and package.inputs["format"] == FORMAT
    assert BuildInputs.from_dict(package.inputs, where="record") == INPUTS
    assert package.build_key == INPUTS.key and package.recipe["text"] == "name: greet\n"
    assert (package.target, package.flags, package.requires["conda"]) == (
        INPUTS.target,
        INPUTS.flags,
        INPUTS.conda,
    )
    again = Record.from_dict(json.loads(record.to_json()), where="written")
    assert again.compiled_packages[0].inputs == INPUTS.as_dict()

    # a record written before the inputs joined it: read as it is
    old = json.loads(record.to_json())
    del old["compiled_packages"][0]["inputs"]
    assert Record.from_dict(old, where="old").compiled_packages[0].inputs is None

    # inputs of the older format (no plugins, no builder) still describe the package
    older = {k: v for k, v in INPUTS.as_dict().items() if k not in ("builder", "recipe_plugin")}
    prefix = _compiled_prefix(tmp_path / "older", {**older, "format": 1, "record": details})
    [package] = build(conda_layout(prefix)).compiled_packages
    assert package.inputs == {**older, "format": 1} and package.target == INPUTS.target


def test_build_inputs_of_an_unknown_format_are_an_error_naming_the_file(tmp_path):
    from pmpm import paths
    from pmpm.env.layout import conda_layout
    from pmpm.errors import PmpmError
    from pmpm.record.api import build
    from tests.build.test_plan import INPUTS

    prefix = _compiled_prefix(tmp_path, {**INPUTS.as_dict(), "format": 99})
    with pytest.raises(PmpmError) as caught:
        build(conda_layout(prefix))
    assert "build inputs format 99 is not one this pmpm reads" in caught.value.message
    assert caught.value.where == str(paths.build_inputs_file(prefix, "greet"))
