"""Host profile: real archspec, the real compilers of this machine, no mocks.

Expected flags are always archspec's own answer for the detected compiler, never a hard-coded
string, so the tests hold on any CPU and with any archspec release.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import archspec.cpu
import pytest

from pmpm.errors import PmpmError
from pmpm.host import detect as hostmod
from pmpm.host.detect import (
    Compiler,
    HostProfile,
    detect_host,
    find_compilers,
    known_targets,
    parse_version_text,
    resolve_target,
    target_flags,
)

HOST = archspec.cpu.host()
X86_64 = HOST.family.name == "x86_64"
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
needs_x86_64 = pytest.mark.skipif(not X86_64, reason="x86_64 generic levels need an x86_64 host")
GCC_NOTE = "This is free software; see the source for copying conditions.  There is NO"
ALLOW = {**os.environ, "PMPM_ALLOW_FOREIGN_TARGET": "1"}


def gcc_version() -> str:
    return subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def gcc_host() -> HostProfile:
    if shutil.which("gcc") is None or shutil.which("g++") is None:
        pytest.skip("gcc and g++ are not installed")
    return detect_host(compilers={"cc": "gcc", "cxx": "g++"})


def test_host_target_is_a_concrete_name(gcc_host: HostProfile) -> None:
    assert gcc_host.target == HOST.name == gcc_host.detected
    assert gcc_host.target in archspec.cpu.TARGETS or gcc_host.target == HOST.name
    assert gcc_host.target != "native"
    assert gcc_host.family == HOST.family.name
    assert gcc_host.vendor == HOST.vendor
    assert gcc_host.features == tuple(sorted(HOST.features))


def test_host_flags_are_archspecs_for_gcc(gcc_host: HostProfile) -> None:
    cc = gcc_host.compilers["cc"]
    assert cc.vendor == "gcc"
    expected = HOST.optimization_flags("gcc", cc.version)
    flags = gcc_host.flags()
    assert flags.cflags == f"-O2 {expected} -frecord-gcc-switches"
    assert flags.cxxflags == f"-O2 {expected} -frecord-gcc-switches"
    assert flags.ldflags == ""
    assert gcc_host.arch_flags("cc") == expected
    assert "native" not in " ".join([flags.cflags, flags.cxxflags, flags.fflags])
    if X86_64:
        assert re.search(r"-march=\S+", flags.cflags)
    assert gcc_host.flags(optimize="-O3").cflags.startswith("-O3 ")


def test_flags_are_recorded_in_the_object(gcc_host: HostProfile, tmp_path: Path) -> None:
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) is not installed")
    source = tmp_path / "tiny.c"
    source.write_text("int tiny(int x) { return x * 3; }\n")
    cc = gcc_host.compilers["cc"]
    cflags = gcc_host.flags().cflags
    subprocess.run([cc.path, *cflags.split(), "-c", str(source), "-o", str(tmp_path / "tiny.o")], check=True)
    dump = subprocess.run(
        ["readelf", "-p", ".GCC.command.line", str(tmp_path / "tiny.o")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    arch = gcc_host.arch_flags("cc").split()
    assert arch, "archspec gave no tuning flags for the host"
    for flag in arch:
        assert flag in dump


@needs_gcc
@needs_x86_64
def test_generic_level_override_uses_archspecs_flags() -> None:
    level = archspec.cpu.TARGETS["x86_64_v3"]
    if not level <= HOST:
        pytest.skip(f"this {HOST.name} host cannot run x86_64_v3")
    profile = detect_host("x86_64_v3", compilers={"cc": "gcc"})
    assert profile.target == "x86_64_v3"
    assert profile.detected == HOST.name
    assert profile.vendor == "generic"
    assert profile.arch_flags("cc") == level.optimization_flags("gcc", gcc_version())
    assert profile.flags().cflags == f"-O2 {profile.arch_flags('cc')} -frecord-gcc-switches"


def test_unknown_target_suggests_the_closest_names() -> None:
    with pytest.raises(PmpmError) as info:
        resolve_target("skylakee")
    assert "skylake" in info.value.message
    assert "pmpm host --targets" in (info.value.hint or "")


def test_gcc_spelling_of_generic_levels_is_accepted() -> None:
    assert resolve_target("x86-64-v2").name == "x86_64_v2"
    assert resolve_target("host") == HOST
    assert resolve_target("native") == HOST  # resolved to a name, never passed on as "native"


@needs_x86_64
def test_gcc_spelling_detects_on_x86_64() -> None:
    assert detect_host("x86-64-v2", compilers={}).target == "x86_64_v2"


def test_known_targets() -> None:
    names = known_targets()
    assert names == sorted(archspec.cpu.TARGETS)
    assert HOST.family.name in known_targets(HOST.family.name)
    assert all(archspec.cpu.TARGETS[n].family == HOST.family for n in known_targets(HOST.family.name))


def test_other_family_is_refused_unless_allowed() -> None:
    other = "aarch64" if HOST.family.name != "aarch64" else "x86_64"
    with pytest.raises(PmpmError) as info:
        detect_host(other, compilers={}, env=dict(os.environ))
    assert "would not run" in info.value.message
    assert HOST.family.name in info.value.message
    assert "PMPM_ALLOW_FOREIGN_TARGET=1" in (info.value.hint or "")
    assert detect_host(other, compilers={}, env=ALLOW).target == other


def _newer_sibling() -> archspec.cpu.Microarchitecture | None:
    """A target of this family that is not the host nor an ancestor and has features it lacks."""
    preferred = ["zen4", "sapphirerapids", "zen5", "graniterapids", "neoverse_v2", "power10le"]
    pool = [archspec.cpu.TARGETS[n] for n in preferred if n in archspec.cpu.TARGETS]
    pool += [archspec.cpu.TARGETS[n] for n in sorted(archspec.cpu.TARGETS)]
    for candidate in pool:
        newer = candidate.family == HOST.family and not candidate <= HOST
        if newer and set(candidate.features) - set(HOST.features):
            return candidate
    return None


def test_target_that_is_not_an_ancestor_is_refused_with_missing_features() -> None:
    foreign = _newer_sibling()
    if foreign is None:
        pytest.skip(f"no target of the {HOST.family.name} family is newer than {HOST.name}")
    with pytest.raises(PmpmError) as info:
        detect_host(foreign.name, compilers={}, env=dict(os.environ))
    message = info.value.message
    assert foreign.name in message and HOST.name in message
    if "lacks " in message:
        missing = message.split("lacks ", 1)[1].split(", ")
        assert missing and set(missing) <= set(foreign.features)
        assert not set(missing) & set(HOST.features)
    else:  # every feature present: refused for the vendor
        assert foreign.vendor in message
    assert detect_host(foreign.name, compilers={}, env=ALLOW).target == foreign.name


def test_ancestors_are_allowed() -> None:
    for ancestor in HOST.ancestors[:3]:
        assert detect_host(ancestor.name, compilers={}, env={"PATH": ""}).target == ancestor.name


def _old_gcc(lang: str = "cc") -> Compiler:
    return Compiler(lang=lang, path="/usr/bin/gcc", vendor="gcc", version="4.4.0", version_string="gcc 4.4.0")


def test_compiler_too_old_for_the_target_suggests_a_generic_level() -> None:
    try:
        HOST.optimization_flags("gcc", "4.4.0")
    except archspec.cpu.UnsupportedMicroarchitecture:
        pass
    else:
        pytest.skip(f"gcc 4.4.0 can build for {HOST.name}")
    with pytest.raises(PmpmError) as info:
        target_flags(HOST, _old_gcc())
    err = info.value
    assert "gcc 4.4.0" in err.message and HOST.name in err.message and "/usr/bin/gcc" in err.message
    suggested = re.search(r"set the target to (\S+)", err.hint or "")
    assert suggested, err.hint
    generic = archspec.cpu.TARGETS[suggested.group(1)]
    assert generic.vendor == "generic" and generic <= HOST
    assert generic.optimization_flags("gcc", "4.4.0")  # the suggestion works with that compiler
    minimums = {entry["versions"].split(":")[0] for entry in HOST.compilers.get("gcc", [])}
    newer = re.search(r"gcc (\S+) or newer", err.hint or "")
    assert newer and newer.group(1) in minimums


def test_too_old_compiler_surfaces_in_flags_and_describe(gcc_host: HostProfile) -> None:
    try:
        HOST.optimization_flags("gcc", "4.4.0")
    except archspec.cpu.UnsupportedMicroarchitecture:
        pass
    else:
        pytest.skip(f"gcc 4.4.0 can build for {HOST.name}")
    old = dataclasses.replace(gcc_host, compilers={**gcc_host.compilers, "cc": _old_gcc()})
    with pytest.raises(PmpmError, match="cannot build for target"):
        old.flags()
    rows = dict(old.describe())
    assert rows["cflags"].startswith("unavailable: ")
    assert rows["cxxflags"] == gcc_host.flags().cxxflags  # the good compiler is still shown


def test_version_range_upper_bound_includes_patch_releases() -> None:
    """archspec's tuple comparison puts 12.2.0 outside ``10.3:12.2``; the range means it in."""
    zen4 = archspec.cpu.TARGETS["zen4"]
    gcc = dataclasses.replace(_old_gcc(), version="12.2.0")
    assert target_flags(zen4, gcc) == zen4.optimization_flags("gcc", "12.2")
    newer = dataclasses.replace(gcc, version="13.2.0")
    assert target_flags(zen4, newer) == zen4.optimization_flags("gcc", "13.2.0")


def test_unknown_vendor_gets_no_tuning_flags() -> None:
    cray = Compiler(
        lang="cc", path="/opt/cray/pe/craype/bin/cc", vendor="cce", version="16.0.1", version_string=""
    )
    assert target_flags(HOST, cray) == ""


def test_explicit_compiler_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "opt" / "bin" / "gcc"
    with pytest.raises(PmpmError) as info:
        find_compilers({"cc": str(missing)})
    assert str(missing) in info.value.message
    assert info.value.where == "compilers: cc"


def test_explicit_compiler_name_not_on_path() -> None:
    with pytest.raises(PmpmError, match="not on PATH"):
        find_compilers({"fc": "no-such-fortran-compiler"})
    with pytest.raises(PmpmError, match="unknown compiler language"):
        find_compilers({"f77": "gfortran"})


@needs_gcc
def test_explicit_gcc_by_name() -> None:
    found = find_compilers({"cc": "gcc"}, path=os.environ["PATH"])
    cc = found["cc"]
    assert cc.vendor == "gcc"
    assert cc.version == gcc_version()
    assert os.path.isabs(cc.path) and os.path.samefile(cc.path, shutil.which("gcc"))
    assert not os.path.islink(cc.path)  # symlinks resolved: the record names the real compiler
    assert cc.version in cc.version_string


@needs_gcc
def test_explicit_compiler_that_is_not_a_compiler(tmp_path: Path) -> None:
    with pytest.raises(PmpmError, match="does not answer --version"):
        find_compilers({"cc": shutil.which("true") or "/bin/true"})


@needs_gcc
def test_path_search_finds_a_c_compiler() -> None:
    found = find_compilers()
    assert "cc" in found and found["cc"].lang == "cc"
    assert os.path.isfile(found["cc"].path)
    assert found["cc"].vendor in ("gcc", "clang")


def test_empty_path_finds_nothing() -> None:
    assert find_compilers(path="") == {}


@needs_gcc
def test_link_named_like_cxx_driver_is_not_resolved_to_the_c_driver(tmp_path: Path) -> None:
    """``clang++ -> clang`` links C++ only when called as clang++: keep the link's name."""
    real = os.path.realpath(shutil.which("clang") or shutil.which("gcc"))
    link = tmp_path / "bin" / "myc++"
    link.parent.mkdir()
    link.symlink_to(real)
    cxx = find_compilers({"cxx": str(link)})["cxx"]
    assert cxx.path == str(link.parent.resolve() / link.name)
    cc = find_compilers({"cc": str(link)})["cc"]  # a C compiler has no such concern
    assert cc.path == real


@needs_gcc
def test_link_to_a_launcher_is_not_resolved(tmp_path: Path) -> None:
    """``gcc -> ccache`` must stay ``gcc``: recording ccache would name the wrong program."""
    launcher = tmp_path / "libexec" / "ccache"
    launcher.parent.mkdir()
    launcher.write_text(f'#!/bin/sh\nexec {shutil.which("gcc")} "$@"\n')
    launcher.chmod(0o755)
    link = tmp_path / "bin" / "gcc"
    link.parent.mkdir()
    link.symlink_to(launcher)
    cc = find_compilers(path=str(link.parent))["cc"]
    assert cc.path == str(link.parent.resolve() / "gcc")
    assert cc.vendor == "gcc"


@needs_gcc
def test_fortran_flags_come_from_the_fortran_compiler() -> None:
    if shutil.which("gfortran") is None:
        pytest.skip("gfortran is not installed")
    profile = detect_host(compilers={"fc": "gfortran"})
    fc = profile.compilers["fc"]
    assert fc.vendor == "gcc"
    expected = HOST.optimization_flags("gcc", fc.version)
    assert profile.flags().fflags == f"-O2 {expected} -frecord-gcc-switches"


def test_clang_records_its_command_line() -> None:
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed")
    profile = detect_host(compilers={"cc": "clang"})
    cc = profile.compilers["cc"]
    assert cc.vendor in ("clang", "apple-clang", "aocc")
    if cc.vendor == "clang":
        assert profile.flags().cflags.endswith(" -frecord-command-line")


def test_describe_lists_compilers_versions_and_flags(gcc_host: HostProfile) -> None:
    rows = gcc_host.describe()
    table = dict(rows)
    assert rows[0] == ("target", gcc_host.target)
    assert table["vendor"] == gcc_host.vendor
    assert table["features"] == " ".join(gcc_host.features)
    flags = gcc_host.flags()
    for lang, flag_name, value in (("cc", "cflags", flags.cflags), ("cxx", "cxxflags", flags.cxxflags)):
        compiler = gcc_host.compilers[lang]
        assert compiler.version in table[lang] and compiler.path in table[lang]
        assert compiler.vendor in table[lang]
        assert table[flag_name] == value


def test_describe_shows_the_detected_host_when_overridden() -> None:
    if not HOST.ancestors:
        pytest.skip(f"{HOST.name} has no ancestor to target")
    ancestor = HOST.ancestors[0]
    table = dict(detect_host(ancestor.name, compilers={}, env={"PATH": ""}).describe())
    assert table["target"] == ancestor.name and table["detected"] == HOST.name
    assert table["cc"].startswith("(no C compiler")


def test_as_template(gcc_host: HostProfile) -> None:
    assert gcc_host.as_template() == {
        "name": gcc_host.target,
        "vendor": gcc_host.vendor,
        "family": gcc_host.family,
        "features": list(gcc_host.features),
        "detected": gcc_host.detected,
    }


def test_arch_flags_for_a_missing_language() -> None:
    profile = detect_host(compilers={}, env={"PATH": ""})
    with pytest.raises(PmpmError, match="no Fortran compiler"):
        profile.arch_flags("fc")
    assert profile.flags().fflags == ""


@needs_gcc
def test_detection_is_fast() -> None:
    detect_host(compilers={"cc": "gcc", "cxx": "g++"})  # warm the disk cache
    hostmod._IDENTITIES.clear()
    start = time.perf_counter()
    detect_host(compilers={"cc": "gcc", "cxx": "g++"})
    assert time.perf_counter() - start < 0.2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"gcc (Debian 12.2.0-14) 12.2.0\nCopyright (C) 2022 Free Software Foundation, Inc.\n{GCC_NOTE}",
            ("gcc", "12.2.0"),
        ),
        (
            f"gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-4)\nFree Software Foundation\n{GCC_NOTE}",
            ("gcc", "8.5.0"),
        ),
        ("GNU Fortran (GCC) 13.2.0\nCopyright (C) 2023 Free Software Foundation, Inc.", ("gcc", "13.2.0")),
        ("Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu", ("clang", "14.0.6")),
        ("Apple clang version 15.0.0 (clang-1500.1.0.2.5)\nTarget: arm64", ("apple-clang", "15.0.0")),
        ("Intel(R) oneAPI DPC++/C++ Compiler 2024.0.2 (2024.0.2.20231213)", ("oneapi", "2024.0.2")),
        ("ifx (IFX) 2024.0.2 20231213\nCopyright (C) 1985-2023 Intel Corporation.", ("oneapi", "2024.0.2")),
        ("icc (ICC) 2021.10.0 20230609\nCopyright (C) 1985-2023 Intel Corporation.", ("intel", "2021.10.0")),
        (
            "\nnvc 23.9-0 64-bit target on x86-64 Linux -tp znver3\nNVIDIA Compilers and Tools",
            ("nvhpc", "23.9"),
        ),
        ("AMD clang version 14.0.6 (CLANG: AOCC_4.0.0-Build#434 2022_10_28)", ("aocc", "4.0.0")),
        ("Cray clang version 16.0.1  (5ddc8e0)", ("cce", "16.0.1")),
        ("Cray Fortran : Version 16.0.1", ("cce", "16.0.1")),
        ("flang-new version 17.0.6\nTarget: x86_64-unknown-linux-gnu", ("clang", "17.0.6")),
        ("GNU bash, version 5.2.15(1)-release", None),
        ("true (GNU coreutils) 9.1\nCopyright (C) 2022 Free Software Foundation, Inc.", None),
        ("", None),
    ],
)
def test_parse_version_text(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_version_text(text) == expected
