"""Choosing a compiled stack among an environment's CPU targets (pmpm.host.target_choice).

The detected CPU is made a given one by passing archspec's own microarchitecture for it
(``archspec.cpu.TARGETS[name]``); every premise about archspec's data that an expectation rests
on is asserted first, so a change in archspec's tables shows up as such.
"""

from __future__ import annotations

import subprocess
import sys

import archspec.cpu
import pytest

from pmpm.env import layout as layouts
from pmpm.errors import PmpmError
from pmpm.host.target_choice import ALLOW_FOREIGN, FORCE_VAR, choose, preference, select

TARGETS = archspec.cpu.TARGETS
LEVELS = ["x86_64_v2", "x86_64_v3", "x86_64_v4"]


def _runs(cpu: str, target: str) -> bool:
    host = TARGETS[cpu]
    return TARGETS[target] == host or TARGETS[target] in host.ancestors


def test_a_cpu_without_avx512_gets_the_v3_stack():
    assert _runs("zen3", "x86_64_v3") and not _runs("zen3", "x86_64_v4")
    for installed in (LEVELS, list(reversed(LEVELS))):
        choice = choose(installed, cpu=TARGETS["zen3"], env={})
        assert (choice.target, choice.cpu, choice.reason) == ("x86_64_v3", "zen3", "best")
        assert "x86_64_v3" in choice.describe() and "zen3" in choice.describe()


def test_the_most_specific_fitting_target_wins():
    assert _runs("icelake", "x86_64_v4") and _runs("icelake", "skylake_avx512")
    installed = ["x86_64_v3", "skylake_avx512", "x86_64_v4", "zen3"]
    assert choose(installed, cpu=TARGETS["icelake"], env={}).target == "skylake_avx512"
    assert preference(installed)[0] == "skylake_avx512"
    assert preference(installed).index("x86_64_v4") < preference(installed).index("x86_64_v3")
    # the CPU itself, when installed, is the best of all
    assert choose([*installed, "icelake"], cpu=TARGETS["icelake"], env={}).target == "icelake"


def test_pmpm_target_forces_a_stack_the_cpu_runs():
    choice = choose(LEVELS, cpu=TARGETS["icelake"], env={FORCE_VAR: "x86_64_v2"})
    assert (choice.target, choice.reason) == ("x86_64_v2", "forced")
    assert FORCE_VAR in choice.describe()


def test_pmpm_target_the_cpu_cannot_run_is_refused_unless_allowed():
    with pytest.raises(PmpmError) as caught:
        choose(LEVELS, cpu=TARGETS["zen3"], env={FORCE_VAR: "x86_64_v4"})
    text = str(caught.value)
    assert "zen3" in text and "cannot run x86_64_v4" in text and ALLOW_FOREIGN in text
    choice = choose(LEVELS, cpu=TARGETS["zen3"], env={FORCE_VAR: "x86_64_v4", ALLOW_FOREIGN: "1"})
    assert (choice.target, choice.reason) == ("x86_64_v4", "forced-foreign")
    assert "cannot run" in choice.describe()


def test_pmpm_target_that_is_not_installed_names_the_installed_ones():
    with pytest.raises(PmpmError) as caught:
        choose(["x86_64_v3", "x86_64_v4"], cpu=TARGETS["icelake"], env={FORCE_VAR: "zen4"})
    text = str(caught.value)
    assert "PMPM_TARGET=zen4" in text and "x86_64_v3, x86_64_v4" in text and "_pmpm.targets" in text


def test_no_fitting_target_names_the_cpu_the_targets_and_what_to_do():
    assert not _runs("haswell", "x86_64_v4") and not _runs("haswell", "zen3")
    with pytest.raises(PmpmError) as caught:
        choose(["x86_64_v4", "zen3"], cpu=TARGETS["haswell"], env={})
    text = str(caught.value)
    assert "haswell" in text and "x86_64_v4, zen3" in text
    assert FORCE_VAR in text and "_pmpm.targets" in text and "x86_64_v3" in text  # a level it runs


def test_the_detected_cpu_is_the_default():
    host = archspec.cpu.host()
    generic = next(a.name for a in host.ancestors if a.vendor == "generic")
    assert choose([generic, host.name], env={}).target == host.name


def test_one_target_needs_no_archspec():
    """activate and run are latency-bound: with nothing to choose archspec is not imported."""
    code = (
        "import sys; from pmpm.host.target_choice import choose\n"
        "c = choose(['x86_64_v3'], env={})\n"
        "assert c.reason == 'only' and 'archspec' not in sys.modules, sorted(sys.modules)\n"
        "import pmpm.publish.activation\n"
        "assert 'archspec' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_select_gives_the_chosen_targets_one_stack_layout(tmp_path):
    several = layouts.system_layout(tmp_path / "root", tmp_path / "root" / "conda", targets=tuple(LEVELS))
    used, choice = select(several, env={}, cpu=TARGETS["zen3"])
    assert choice is not None and choice.target == "x86_64_v3"
    assert used.targets == () and used.compile == several.stack("x86_64_v3")
    assert used.conda == several.conda and used.root == several.root
    plain = layouts.conda_layout(tmp_path / "plain")
    assert select(plain, env={FORCE_VAR: "x86_64_v4"}) == (plain, None)
