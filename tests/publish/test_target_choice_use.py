"""An environment with a compiled stack per CPU target picks one at use: ``pmpm activate``,
``pmpm run``, the Lmod and Tcl modules (through the real module tools) and the Jupyter kernel.

The environment is the demo env (tests/publish/conftest.py) as the shared conda stack, with two
hand-made target stacks whose program and Python package say which target they are. The detected
CPU is made a given one: for pmpm's own choice through :func:`pmpm.host.target_choice.detect_cpu`
(the one seam), for the load-time script through a fake cpuinfo file (``PMPM_CPUINFO``, a
variable for tests only) holding archspec's features of that CPU.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import archspec.cpu
import pytest

from pmpm.env import layout as layouts
from pmpm.errors import PmpmError
from pmpm.host import target_choice
from pmpm.publish import activation, archdetect, jupyter
from tests.clihelp import pmpm
from tests.publish.pubhelp import (
    PMPM,
    TOOLS,
    _bash,
    _clean_env,
    _differences,
    _dump,
    _load_and_unload,
    _parse_env,
)

TARGETS = ("x86_64_v3", "x86_64_v4")
x86_64 = pytest.mark.skipif(
    archspec.cpu.host().family.name != "x86_64", reason="the x86_64 levels need an x86_64 host"
)
pytestmark = x86_64


def _stack(prefix: Path, target: str) -> None:
    """A target stack: a program and a Python package that say which target they are."""
    pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "bin").mkdir()
    tool = prefix / "bin" / "which-target"
    tool.write_text(f"#!/bin/sh\necho which-target={target}\n")
    tool.chmod(0o755)
    site = prefix / "lib" / pyver / "site-packages" / "target_pkg"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text(f"WHERE = {target!r}\n")


@pytest.fixture
def targets_prefix(env_prefix, tmp_path) -> Path:
    """A conda_install PREFIX with the two target stacks in PREFIX/compile/<T>."""
    prefix = tmp_path / "multi"
    shutil.copytree(env_prefix, prefix, symlinks=True)
    shutil.rmtree(prefix / "conda-meta" / "pmpm", ignore_errors=True)
    found = layouts.conda_layout(prefix, targets=TARGETS)
    for target in TARGETS:
        _stack(found.stack(target), target)
    layouts.write(found)
    assert layouts.find(prefix).targets == TARGETS
    return prefix


def _cpuinfo(tmp: Path, cpu: str) -> Path:
    """A one-processor cpuinfo with archspec's features of ``cpu`` as its flags."""
    known = archspec.cpu.TARGETS[cpu]
    vendor = known.vendor if known.vendor != "generic" else "GenuineIntel"
    flags = " ".join(sorted(f if f != "sse3" else "pni" for f in known.features))  # as Linux names it
    path = tmp / f"cpuinfo-{cpu}"
    path.write_text(
        f"processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: a fake {cpu}\nflags\t\t: {flags}\n\n"
    )
    return path


def _given_cpu(monkeypatch, cpu: str) -> None:
    monkeypatch.setattr(target_choice, "detect_cpu", lambda: archspec.cpu.TARGETS[cpu])


# --- pmpm activate / pmpm run ------------------------------------------------------------------


def test_activate_uses_the_target_the_given_cpu_runs(targets_prefix, monkeypatch):
    assert archspec.cpu.TARGETS["x86_64_v3"] in archspec.cpu.TARGETS["zen3"].ancestors
    assert archspec.cpu.TARGETS["x86_64_v4"] not in archspec.cpu.TARGETS["zen3"].ancestors
    _given_cpu(monkeypatch, "zen3")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    script, notes = activation.activate_script(targets_prefix, "bash", env)
    assert any("x86_64_v3" in n and "zen3" in n for n in notes)
    v3 = targets_prefix / "compile" / "x86_64_v3"
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script + '\nwhich-target\necho "$PATH"\n'],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "which-target=x86_64_v3" in lines
    assert lines[-1].split(":")[:2] == [str(v3 / "bin"), str(targets_prefix / "bin")]
    assert "compile/x86_64_v4" not in proc.stdout


def test_activate_with_no_fitting_target_stops_clearly(targets_prefix, monkeypatch):
    assert archspec.cpu.TARGETS["x86_64_v3"] not in archspec.cpu.TARGETS["nehalem"].ancestors
    _given_cpu(monkeypatch, "nehalem")
    with pytest.raises(PmpmError) as caught:
        activation.activate_script(targets_prefix, "bash", {"PATH": "/usr/bin:/bin"})
    text = str(caught.value)
    assert "nehalem" in text and "x86_64_v3, x86_64_v4" in text and "PMPM_TARGET" in text


def _expected_here() -> str:
    return target_choice.choose(TARGETS, env={}).target


def test_pmpm_activate_says_which_target_on_stderr_and_pmpm_target_forces(targets_prefix, tmp_path):
    check = "which-target; python -c \"import target_pkg; print('pkg=' + target_pkg.WHERE)\""
    script = f'out="$({PMPM} activate {shlex.quote(str(targets_prefix))})" || exit 9\neval "$out"\n{check}\n'
    here = _expected_here()  # the real CPU: what pmpm's own choice says
    proc = _bash(script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"which-target={here}", f"pkg={here}"]
    assert f"using target {here}" in proc.stderr
    env = {**_clean_env(tmp_path), "PMPM_TARGET": "x86_64_v3"}
    proc = _bash(script, tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["which-target=x86_64_v3", "pkg=x86_64_v3"]
    assert "PMPM_TARGET" in proc.stderr
    proc = _bash(script, tmp_path, {**env, "PMPM_TARGET": "zen4"})
    assert proc.returncode == 9 and proc.stdout == ""
    assert "PMPM_TARGET=zen4" in proc.stderr and "x86_64_v3, x86_64_v4" in proc.stderr
    assert "Traceback" not in proc.stderr
    # deactivating takes the chosen stack back off exactly
    deactivate = f'out="$({PMPM} deactivate)" && eval "$out"'
    undo = f"{_dump(tmp_path / 'a')}\n{script}{deactivate}\n{_dump(tmp_path / 'b')}\n"
    proc = _bash(undo, tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    before, after = (_parse_env((tmp_path / n).read_text()) for n in "ab")
    assert _differences(before, after) == {}


def test_pmpm_run_uses_the_chosen_target(targets_prefix, tmp_path):
    provenance = tmp_path / "prov.json"
    env = {**os.environ, "PMPM_TARGET": "x86_64_v3"}
    args = ["run", targets_prefix, "--no-verify", "--provenance", provenance, "--", "which-target"]
    result = pmpm(*args, env=env)
    assert result.code == 0, result.text
    assert "which-target=x86_64_v3" in result.out.splitlines()
    assert "using target x86_64_v3" in result.err
    assert json.loads(provenance.read_text())["target"] == "x86_64_v3"
    here = _expected_here()
    env.pop("PMPM_TARGET")
    result = pmpm("run", targets_prefix, "--no-verify", "--", "which-target", env=env)
    assert result.code == 0, result.text
    assert f"which-target={here}" in result.out.splitlines()


# --- modules -----------------------------------------------------------------------------------

CHECKS = "which-target\npython -c \"import target_pkg; print('pkg=' + target_pkg.WHERE)\""


@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_module_chooses_at_load_time_on_the_loading_cpu(kind, init, targets_prefix, tmp_path):
    moddir = tmp_path / "modules"
    result = pmpm("module", targets_prefix, f"--{kind}", moddir, "--name", "multi/1")
    assert result.code == 0, result.text
    assert archdetect.path(layouts.find(targets_prefix)).is_file()
    v3 = targets_prefix / "compile" / "x86_64_v3"

    no_v4 = _cpuinfo(tmp_path, "zen3")  # avx2, no avx512
    env = {**_clean_env(tmp_path), "PMPM_CPUINFO": str(no_v4)}
    proc, before, loaded, after = _load_and_unload(init, moddir, "multi/1", tmp_path, CHECKS, env)
    assert proc.stdout.splitlines()[-2:] == ["which-target=x86_64_v3", "pkg=x86_64_v3"]
    assert "using target x86_64_v3" in proc.stderr
    assert loaded["PATH"].split(":")[:2] == [str(v3 / "bin"), str(targets_prefix / "bin")]
    assert loaded["PMPM_MODULE_TARGET"] == "x86_64_v3"
    assert _differences(before, after) == {}

    v4_cpu = _cpuinfo(tmp_path, "icelake")
    env = {**_clean_env(tmp_path), "PMPM_CPUINFO": str(v4_cpu)}
    proc, before, loaded, after = _load_and_unload(init, moddir, "multi/1", tmp_path, CHECKS, env)
    assert proc.stdout.splitlines()[-2:] == ["which-target=x86_64_v4", "pkg=x86_64_v4"]
    assert _differences(before, after) == {}

    env["PMPM_TARGET"] = "x86_64_v3"  # forced on a CPU that runs both
    proc, before, loaded, after = _load_and_unload(init, moddir, "multi/1", tmp_path, CHECKS, env)
    assert proc.stdout.splitlines()[-2:] == ["which-target=x86_64_v3", "pkg=x86_64_v3"]
    assert _differences(before, after) == {}


@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_module_with_no_fitting_target_fails_to_load_clearly(kind, init, targets_prefix, tmp_path):
    moddir = tmp_path / "modules"
    result = pmpm("module", targets_prefix, f"--{kind}", moddir, "--name", "multi/1")
    assert result.code == 0, result.text
    old = _cpuinfo(tmp_path, "nehalem")  # no avx2: runs neither level
    script = f"{init}\nmodule use {shlex.quote(str(moddir))}\nmodule load multi/1 || exit 7\nwhich-target\n"
    env = {**_clean_env(tmp_path), "PMPM_CPUINFO": str(old)}
    proc = _bash(script, tmp_path, env)
    said = " ".join(proc.stderr.split())  # Lmod wraps long messages
    assert proc.returncode == 7, proc.stdout + proc.stderr
    assert "none of the targets" in said and "(x86_64_v4 x86_64_v3)" in said and "nehalem" in said
    assert "which-target=" not in proc.stdout
    env["PMPM_TARGET"] = "x86_64_v4"  # forcing what the CPU cannot run is refused
    proc = _bash(script, tmp_path, env)
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 7 and "PMPM_TARGET=x86_64_v4" in said and "cannot run it" in said, said


# --- the Jupyter kernel ------------------------------------------------------------------------


def test_kernel_starts_with_the_target_of_the_cpu_it_starts_on(targets_prefix, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    spec_path = jupyter.register(layouts.find(targets_prefix), say=lambda _: None)
    assert spec_path is not None
    spec = json.loads(spec_path.read_text())
    assert spec["metadata"]["pmpm"]["targets"] == list(TARGETS)
    # start the kernel command with a stand-in for the connection file: `python -m
    # ipykernel_launcher` is not installed in the demo env, so the launcher's choice is checked by
    # what it runs: its python fails to find ipykernel_launcher after the choice was made
    argv = [a.replace("{connection_file}", str(tmp_path / "conn.json")) for a in spec["argv"]]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PMPM_CPUINFO": str(_cpuinfo(tmp_path, "zen3"))}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert "the kernel uses target x86_64_v3" in proc.stderr, proc.stderr
    launcher = Path(spec["argv"][1]).read_text()
    v3_block = launcher.split("x86_64_v3)", 1)[1].split(";;", 1)[0]
    assert str(targets_prefix / "compile" / "x86_64_v3" / "lib") in v3_block  # its PYTHONPATH
    env["PMPM_CPUINFO"] = str(_cpuinfo(tmp_path, "nehalem"))
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "none of the targets" in proc.stderr


def test_the_load_time_script_chooses_as_pmpm_does(tmp_path):
    """The sh script (by features and vendor) and pmpm (by archspec's ancestry) agree, for every
    x86_64 microarchitecture archspec knows as the CPU."""
    installed = ("x86_64_v2", "x86_64_v3", "x86_64_v4", "haswell", "zen3", "icelake")
    found = layouts.conda_layout(tmp_path / "p", targets=installed)
    script = tmp_path / "archdetect.sh"
    script.write_text(archdetect.script(found))
    cpus = [t for t in archspec.cpu.TARGETS.values() if t.family.name == "x86_64" and t.name != "x86_64"]
    assert len(cpus) > 20
    chosen = set()
    for cpu in cpus:
        env = {"PATH": "/usr/bin:/bin", "PMPM_CPUINFO": str(_cpuinfo(tmp_path, cpu.name))}
        proc = subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, check=False)
        try:
            expected = target_choice.choose(installed, cpu=cpu, env={}).target
        except PmpmError:
            assert (proc.returncode, proc.stdout) == (1, ""), cpu.name
            assert proc.stderr.startswith("pmpm: none of the targets"), cpu.name
            expected = "none"
        else:
            assert (proc.returncode, proc.stdout.strip()) == (0, expected), cpu.name
        chosen.add(expected)
    assert chosen == {*installed, "none"}  # every outcome was compared


# --- end to end: one install, two targets, a module loaded on either kind of node ---------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "offline"


def _two_levels_here() -> tuple[str, str]:
    host = archspec.cpu.host()
    levels = [a.name for a in [host, *host.ancestors] if a.name.startswith("x86_64_v")]
    if len(levels) < 2:
        pytest.skip(f"this {host.name} CPU runs fewer than two x86_64 levels")
    return tuple(sorted(levels)[-2:])  # type: ignore[return-value]


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils) is not installed")
@pytest.mark.parametrize("command", ["conda_install", "system_install"])
@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_one_install_of_two_targets_loads_each_nodes_binaries(kind, init, command, tmp_path, monkeypatch):
    low, high = _two_levels_here()
    example = tmp_path / "offline"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("channel"))
    monkeypatch.setenv("PMPM_CACHE_DIR", str(tmp_path / "cache"))
    made = subprocess.run(
        [sys.executable, example / "make_channel.py"], capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stdout + made.stderr
    env_file = example / "environment.yml"
    text = env_file.read_text()
    assert "  target: host\n" in text
    moddir = tmp_path / "modules"
    env_file.write_text(
        text.replace("  target: host\n", f"  targets: [{low}, {high}]\n  modules: {{{kind}: {moddir}}}\n")
    )
    prefix = tmp_path / "demo"
    result = pmpm(command, prefix, "--file", env_file)
    assert result.code == 0, result.text
    march = "readelf -p .GCC.command.line \"$(command -v saxpy)\" | grep -o 'march=[a-z0-9-]*' | head -1"
    for node in (low, high):  # a node whose CPU is exactly that level
        env = {**_clean_env(tmp_path), "PMPM_CPUINFO": str(_cpuinfo(tmp_path, node))}
        checks = f"saxpy\ncommand -v saxpy\n{march}"
        proc, before, loaded, after = _load_and_unload(
            init, moddir, "pmpm-offline-demo", tmp_path, checks, env
        )
        lines = proc.stdout.splitlines()
        assert lines[0].startswith(f"saxpy built for {node}:"), proc.stdout
        assert lines[1] == str(layouts.find(prefix).stack(node) / "bin" / "saxpy")
        assert lines[2] == "march=" + node.replace("_", "-")  # x86_64_v3 -> -march=x86-64-v3
        assert loaded["PMPM_MODULE_TARGET"] == node
        assert _differences(before, after) == {}
