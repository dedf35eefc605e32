"""What building for the host CPU buys: pmpm's tuned builds against the generic ones users get.

Three kinds of work, each timed twice on this machine, now:

* **FFTW** 3.3.10 (double): complex 1-D and 3-D transforms, planned with ``FFTW_MEASURE``;
  pmpm's recipe (``-march=<target>``, the SIMD kernels the target allows) against Debian's
  ``libfftw3`` of the same version.
* **OpenBLAS** 0.3.21: ``cblas_dgemm`` on one thread; pmpm's recipe (``TARGET`` from the archspec
  target, no run-time dispatch) against Debian's ``libopenblas0-pthread`` of the same version.
* **your own code**: a small C kernel (Horner polynomials and a dot product over arrays that fit
  in cache) compiled with pmpm's flags for the host (``-march=<target>``) against the same
  flags with ``-march=x86-64 -mtune=generic``, the baseline every generic x86-64 binary uses.

The ratio is generic time / tuned time: above 1 the tuned build is faster. Debian's FFTW and
OpenBLAS choose their kernels at run time (FFTW's SIMD codelets, OpenBLAS's ``DYNAMIC_ARCH``),
so on these two the gap can close; the table says which kernel each OpenBLAS chose. Code a
user compiles has no such dispatch, which is what the third row measures.

Setup (once, as root; the versions match the recipes on Debian 12)::

    apt-get install -y libfftw3-dev libopenblas-dev

Run it from the repository root with the venv's interpreter::

    python benchmarks/speedup.py [--repeat 5] [--workdir DIR]

pmpm builds FFTW and OpenBLAS with ``system_install`` (no conda stack) from Debian's copies of
the upstream tarballs (``apt-get source``, see ``tests/debian_sources.py``); that takes a few
minutes the first time and is reused from ``--workdir`` afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pmpm.host.detect import detect_host  # noqa: E402
from tests.debian_sources import fetch_debian_orig  # noqa: E402

MULTIARCH = "/usr/lib/x86_64-linux-gnu"
DEBIAN_BLAS = (f"{MULTIARCH}/openblas-pthread", "/usr/include/x86_64-linux-gnu/openblas-pthread")
DEBIAN_PACKAGES = ("libfftw3-dev", "libfftw3-double3", "libopenblas-dev", "libopenblas0-pthread")

#: best of `reps` runs of `work`, in seconds, printed as "name seconds"
TIMER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec;
}
#define BEST(name, reps, work) do { double best = 1e30; \
    for (int r_ = 0; r_ < (reps); r_++) { double t0 = now(); work; double t = now() - t0; \
        if (t < best) best = t; } \
    printf("%s %.6f\n", name, best); fflush(stdout); } while (0)
"""

FFT_C = (
    TIMER_C
    + r"""
#include <fftw3.h>
static void run(const char *name, int rank, const int *n, int reps, int iters) {
    int total = 1; for (int i = 0; i < rank; i++) total *= n[i];
    fftw_complex *a = fftw_alloc_complex(total), *b = fftw_alloc_complex(total);
    fftw_plan p = fftw_plan_dft(rank, n, a, b, FFTW_FORWARD, FFTW_MEASURE);
    for (int i = 0; i < total; i++) { a[i][0] = (i % 17) * 0.25; a[i][1] = (i % 5) * 0.5; }
    BEST(name, reps, for (int k = 0; k < iters; k++) fftw_execute(p));
    fftw_destroy_plan(p); fftw_free(a); fftw_free(b);
}
int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    int n1[1] = {1 << 16}, n3[3] = {64, 64, 64};
    run("fft-1d-65536-x50", 1, n1, reps, 50);
    run("fft-3d-64^3-x20", 3, n3, reps, 20);
    return 0;
}
"""
)

DGEMM_C = (
    TIMER_C
    + r"""
#include <cblas.h>
char *openblas_get_corename(void);
int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5, n = 1536;
    double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n);
    double *c = malloc(sizeof(double) * n * n);
    for (long i = 0; i < (long)n * n; i++) { a[i] = (i % 7) * 0.5; b[i] = (i % 11) * 0.25; c[i] = 0; }
    BEST("dgemm-1536", reps, cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n,
                                          1.0, a, n, b, n, 0.0, c, n));
    printf("core %s\n", openblas_get_corename());
    return 0;
}
"""
)

KERNEL_C = (
    TIMER_C
    + r"""
#define N 4096
static float x[N], y[N];
static double u[N], v[N];
__attribute__((noinline)) static void horner(float *restrict out, const float *restrict in) {
    for (int i = 0; i < N; i++) {
        float t = in[i];
        out[i] = ((((((0.5f * t + 1.5f) * t - 2.0f) * t + 0.25f) * t - 1.0f) * t + 3.0f) * t + 0.125f);
    }
}
__attribute__((noinline)) static double dot(const double *restrict p, const double *restrict q) {
    double s = 0;
    for (int i = 0; i < N; i++) s += p[i] * q[i];
    return s;
}
int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    volatile double sink = 0;
    for (int i = 0; i < N; i++) { x[i] = (i % 13) * 0.01f; u[i] = i * 1e-3; v[i] = (i % 3) * 0.5; }
    BEST("kernel-horner", reps,
         for (int k = 0; k < 20000; k++) { horner(y, x); x[k % N] = y[k % N] * 1e-3f; });
    BEST("kernel-dot", reps, for (int k = 0; k < 20000; k++) { sink += dot(u, v); u[k % N] += 1e-9; });
    return (int)(sink < 0);
}
"""
)


@dataclass
class Row:
    work: str
    tuned: float
    generic: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.generic / self.tuned


def debian_versions() -> dict[str, str]:
    """Versions of Debian's generic packages; an empty dict names what to apt-get install."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n", *DEBIAN_PACKAGES],
        capture_output=True,
        text=True,
    ).stdout
    return {w[0]: w[1] for w in (line.split() for line in out.splitlines()) if len(w) >= 3 and w[2] == "ii"}


def build_with_pmpm(work: Path) -> Path:
    """FFTW and OpenBLAS built by pmpm for this host, into ``work/stack/compile`` (reused)."""
    mirror = work / "mirror"
    fetch_debian_orig("fftw3", mirror)  # byte-identical to the recipe's upstream tarball
    blas = fetch_debian_orig("openblas", mirror)  # repacked by Debian (+ds): given as the source
    sha = hashlib.sha256(blas.read_bytes()).hexdigest()
    env_file = work / "env.yml"
    env_file.write_text(
        "dependencies: []\n"
        "_pmpm:\n"
        "  conda: false\n"
        "  mpi: none\n"
        "  packages:\n"
        "    - fftw\n"
        f"    - openblas: {{lapack: false, fortran: false, url: '{blas.as_uri()}', sha256: {sha}}}\n"
    )
    root = work / "stack"
    env = {**os.environ, "PMPM_SOURCE_MIRRORS": str(mirror)}
    done = subprocess.run(
        [sys.executable, "-m", "pmpm", "system_install", str(root), "--file", str(env_file), "--offline"],
        env=env,
        text=True,
        capture_output=True,
    )
    if done.returncode != 0:
        sys.exit(f"pmpm system_install failed:\n{done.stdout}\n{done.stderr}")
    return root / "compile"


def compile_c(source: str, out: Path, cflags: list[str], libs: list[str]) -> Path:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["gcc", *cflags, "-o", str(out), str(src), *libs], check=True)
    return out


def run(binary: Path, repeat: int, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **(extra_env or {})}
    out = subprocess.run([str(binary), str(repeat)], env=env, capture_output=True, text=True, check=True)
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())


def library_rows(prefix: Path, bin_dir: Path, repeat: int) -> list[Row]:
    base = ["-O2"]
    tuned_fft = compile_c(
        FFT_C,
        bin_dir / "fft-pmpm",
        [*base, f"-I{prefix}/include"],
        [f"-L{prefix}/lib", f"-Wl,-rpath,{prefix}/lib", "-lfftw3", "-lm"],
    )
    generic_fft = compile_c(FFT_C, bin_dir / "fft-debian", base, [f"-L{MULTIARCH}", "-lfftw3", "-lm"])
    tuned_blas = compile_c(
        DGEMM_C,
        bin_dir / "dgemm-pmpm",
        [*base, f"-I{prefix}/include"],
        [f"-L{prefix}/lib", f"-Wl,-rpath,{prefix}/lib", "-lopenblas"],
    )
    lib, include = DEBIAN_BLAS
    generic_blas = compile_c(
        DGEMM_C,
        bin_dir / "dgemm-debian",
        [*base, f"-I{include}"],
        [f"-L{lib}", f"-Wl,-rpath,{lib}", "-lopenblas"],
    )
    rows = []
    tuned, generic = run(tuned_fft, repeat), run(generic_fft, repeat)
    rows += [Row(k, float(tuned[k]), float(generic[k])) for k in tuned]
    tuned, generic = run(tuned_blas, repeat), run(generic_blas, repeat)
    note = f"OpenBLAS core: pmpm {tuned['core']}, Debian {generic['core']} (chosen at run time)"
    rows.append(Row("dgemm-1536", float(tuned["dgemm-1536"]), float(generic["dgemm-1536"]), note))
    if generic["core"].lower() != tuned["core"].lower():
        # Debian's dispatch missed this CPU: what it gives when told the kernel pmpm built for
        forced = run(generic_blas, repeat, {"OPENBLAS_CORETYPE": tuned["core"]})
        note = f"Debian's OpenBLAS told OPENBLAS_CORETYPE={tuned['core']}: it ran {forced['core']}"
        rows.append(Row("dgemm-1536 forced", float(tuned["dgemm-1536"]), float(forced["dgemm-1536"]), note))
    return rows


def kernel_rows(bin_dir: Path, repeat: int) -> tuple[list[Row], str, str]:
    tuned_flags = detect_host().flags().cflags.split()
    generic_flags = [f for f in tuned_flags if not f.startswith(("-march=", "-mtune="))]
    generic_flags += ["-march=x86-64", "-mtune=generic"]
    tuned = run(compile_c(KERNEL_C, bin_dir / "kernel-host", tuned_flags, []), repeat)
    generic = run(compile_c(KERNEL_C, bin_dir / "kernel-x86-64", generic_flags, []), repeat)
    return (
        [Row(k, float(tuned[k]), float(generic[k])) for k in tuned],
        " ".join(tuned_flags),
        " ".join(generic_flags),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing; the best is kept")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "pmpm-speedup")
    args = parser.parse_args(argv)

    versions = debian_versions()
    missing = [p for p in DEBIAN_PACKAGES if p not in versions]
    if missing:
        sys.exit(f"Debian's generic builds are missing: apt-get install -y {' '.join(missing)}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    bin_dir = args.workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    host = detect_host()
    prefix = build_with_pmpm(args.workdir)
    rows = library_rows(prefix, bin_dir, args.repeat)
    kernels, tuned_flags, generic_flags = kernel_rows(bin_dir, args.repeat)
    rows += kernels

    print(f"host target: {host.target}; one thread; best of {args.repeat} runs")
    print("generic builds: " + ", ".join(f"{p} {v}" for p, v in sorted(versions.items())))
    print(f"kernel flags: tuned `{tuned_flags}`, generic `{generic_flags}`")
    print()
    print(f"| {'work':<18} | {'pmpm, host (s)':>14} | {'generic (s)':>11} | {'generic/pmpm':>12} |")
    print(f"|{'-' * 20}|{'-' * 16}:|{'-' * 13}:|{'-' * 14}:|")
    for r in rows:
        print(f"| {r.work:<18} | {r.tuned:>14.4f} | {r.generic:>11.4f} | {r.ratio:>11.2f}x |")
    for r in rows:
        if r.note:
            print(f"\n{r.work}: {r.note}")
    chosen = next((r.note for r in rows if r.work == "dgemm-1536"), "")
    if re.search(r"pmpm (\S+), Debian \1\b", chosen, re.IGNORECASE):
        print("Debian's OpenBLAS picked the same kernels at run time (DYNAMIC_ARCH): that gap is closed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
