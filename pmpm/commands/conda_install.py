"""``pmpm conda_install``: make PREFIX the conda environment an env file describes.

A front door of the pipeline (:mod:`pmpm.pipeline`). It does the one thing that must be cheap,
the no-op check (the env file's hash and a few stats: no YAML parse, no py-rattler import),
and otherwise hands a :class:`pmpm.pipeline.Request` to the pipeline, imported only then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pmpm.conda.channels import channel_alias
from pmpm.env import state
from pmpm.env.layout import conda_layout, find
from pmpm.errors import PmpmError

TYPE_CHECKING = False  # typing's flag without importing typing: the no-op path stays cheap
if TYPE_CHECKING:
    from pmpm.env.layout import Layout
    from pmpm.spec.model import EnvSpec

Say = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    prefix: Path
    file: Path
    dry_run: bool = False
    offline: bool = False
    update: bool = False
    backend: str | None = None  # None: the env file's `_pmpm.backend`, else rattler
    channel_alias: str | None = None
    jobs: int = 0  # 0: all cores
    keep_build: bool = False
    fresh: bool = False  # rebuild every compiled package from a clean build folder
    rebuild: tuple[str, ...] = ()  # compiled packages to build again even when up to date
    slurm: bool = False  # compiled packages built as Slurm jobs first (pmpm.cluster.build_jobs)
    targets: str | None = None  # --targets a,b: over the env file's `_pmpm.targets`

    @property
    def forced(self) -> bool:
        """Work asked for even when the prefix is up to date."""
        return self.update or self.fresh or bool(self.rebuild)

    def fingerprint(self) -> dict[str, str]:
        """The options that change what PREFIX ends up holding."""
        return {
            "backend": self.backend or "",
            "channel_alias": channel_alias(self.channel_alias),
            "targets": self.targets or "",
        }


def _print(text: str) -> None:
    print(text, flush=True)  # flushed: a second run waiting on the lock must say so at once


def run(opts: Options, say: Say = _print) -> int:
    return install(provisional_layout(opts.prefix), opts, say, choose_layout=layout_chooser(opts))


def provisional_layout(prefix: Path) -> Layout:
    """The layout the no-op check reads: PREFIX's as last written (targets or not)."""
    last = find(prefix)
    return last if last.kind == "conda" else conda_layout(prefix)


def layout_chooser(opts: Options) -> Callable[[EnvSpec], Layout]:
    """How the env file decides PREFIX's stacks: one, or one per target (``_pmpm.targets``)."""

    def choose(spec: EnvSpec) -> Layout:
        from pmpm.spec.targets import targets_for  # after the no-op check: not on its path

        return conda_layout(opts.prefix, targets_for(spec.pmpm, opts.targets))

    return choose


def install(
    layout: Layout,
    opts: Options,
    say: Say = _print,
    *,
    choose_layout: Callable[[EnvSpec], Layout] | None = None,
) -> int:
    """Make ``layout``'s stacks what the env file asks for (both commands end up here).

    ``choose_layout(spec)`` lets system_install decide the stacks from the env file's ``_pmpm``
    keys once it is parsed; the no-op check runs before that, on the layout as last written.
    """
    env_bytes = read_env_file(opts.file)
    want = state.expected(env_bytes, {**opts.fingerprint(), **layout_fingerprint(layout)})
    # pmpm's state and the no-op check live with the compiled stack
    if not (opts.dry_run or opts.forced) and state.up_to_date(layout.compile, want, layout.prefixes):
        say(f"{layout.root} is up to date with {opts.file}")
        return 0

    from pmpm import pipeline

    return pipeline.run(pipeline.Request(layout, opts, want, choose_layout), say)


def read_env_file(file: Path) -> bytes:
    """The env file's bytes (the no-op state hashes them), or an error saying what to fix."""
    try:
        return file.read_bytes()
    except OSError as exc:
        raise PmpmError(
            f"cannot read the env file: {exc.strerror}",
            where=str(file),
            hint="check the path given with --file",
        ) from None


def layout_fingerprint(layout: Layout) -> dict[str, str]:
    """The stacks' places, for the no-op state (a conda_install has one prefix: nothing)."""
    targets = {"stack_targets": ",".join(layout.targets)} if layout.targets else {}
    if layout.kind == "conda":
        return targets
    return {
        "layout": layout.kind,
        "conda_prefix": str(layout.conda),
        "compile_prefix": str(layout.compile),
        **targets,
    }
