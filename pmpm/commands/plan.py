"""``pmpm plan``: what conda_install would do to PREFIX, as text, JSON, or an exit code for CI.

``conda_install --dry-run`` prints the same text (:func:`pmpm.pipeline.dry_run` calls
:func:`compute` and :func:`show`), so the two cannot disagree. Nothing is changed and no lock
is taken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmpm.commands import jsonout

if TYPE_CHECKING:
    from pmpm.pipeline.types import Loaded

Say = Callable[[str], None]

#: what a compiled package's decision is when its build would not run
UNCHANGED = "up to date"


@dataclass
class Plan:
    """What a run would do: the conda stack's changes and each compiled package's decision."""

    root: Path
    conda_prefix: Path | None  # None: no conda stack
    compile_prefix: Path
    system: bool
    exists: bool  # the stack the plan is about already holds an environment
    conda_packages: int = 0
    conda_changes: list[Any] = field(default_factory=list)  # pmpm.conda.engine.Change
    steps: list[Any] = field(default_factory=list)  # pmpm.build.plan.Step

    @property
    def changes(self) -> bool:
        """Would a run change anything? (``plan --check`` exits 1 when it would.)"""
        return (
            not self.exists
            or bool(self.conda_changes)
            or any(step.decision != UNCHANGED for step in self.steps)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefix": str(self.root),
            "exists": self.exists,
            "changes": self.changes,
            "conda": None
            if self.conda_prefix is None
            else {
                "prefix": str(self.conda_prefix),
                "packages": self.conda_packages,
                "changes": [
                    {"kind": c.kind, "name": c.name, "old": c.old, "new": c.new} for c in self.conda_changes
                ],
            },
            "compiled": {
                "prefix": str(self.compile_prefix),
                "packages": [
                    {
                        "name": s.name,
                        "version": str(s.recipe.version),
                        "decision": s.decision,
                        "reasons": list(s.reasons),
                        "target": s.target,
                        "build_key": s.key,
                    }
                    for s in self.steps
                ],
            },
        }


def _holds_environment(prefix: Path) -> bool:
    return (prefix / "conda-meta").is_dir()


def compute(loaded: Loaded, say: Say) -> Plan:
    """Solve and plan the builds as a run would; change nothing."""
    from pmpm.conda import engine as conda
    from pmpm.pipeline.conda_stage import solve
    from pmpm.pipeline.prepare import prepare

    layout = loaded.layout
    solved = solve(prepare(loaded, say), say)
    compiler = solved.prepared.compiler
    installed = [r for r in solved.installed if not conda.is_compiled(r)]
    return Plan(
        root=layout.root,
        conda_prefix=layout.conda,
        compile_prefix=layout.compile,
        system=layout.kind == "system",
        exists=_holds_environment(layout.conda or layout.compile),
        conda_packages=len(solved.records),
        conda_changes=conda.diff(installed, solved.records),
        steps=list(compiler.plan(solved.compiled_side).steps) if compiler else [],
    )


def show(plan: Plan, say: Say) -> None:
    """The plan as ``--dry-run`` prints it."""
    where = plan.conda_prefix or plan.root
    if not plan.exists:
        what = f"{plan.conda_packages} conda packages" if plan.conda_prefix is not None else "no conda stack"
        colon = ":" if plan.conda_changes else ""
        say(f"dry run: would create {where} ({what}; nothing was changed){colon}")
    elif plan.conda_changes:
        say(f"dry run: would change {where} as follows (nothing was changed):")
    elif plan.conda_prefix is not None:
        say(f"dry run: {where} already has these {plan.conda_packages} conda packages; nothing to change")
    for change in plan.conda_changes:
        say(str(change))
    if plan.steps:
        say("compiled packages" + (f" (into {plan.compile_prefix}):" if plan.system else ":"))
        for step in plan.steps:
            say(f"  {step.explain()}")


def run(prefix: Path, file: Path, offline: bool, as_json: bool, check: bool, say: Say) -> int:
    """``pmpm plan``: 0, or with ``check`` 1 when a run would change anything."""
    from pmpm import pipeline
    from pmpm.commands.conda_install import Options, layout_fingerprint, read_env_file
    from pmpm.env import state
    from pmpm.env.layout import conda_layout

    progress = jsonout.to_stderr if as_json else say
    opts = Options(prefix=prefix, file=file, dry_run=True, offline=offline)
    layout = conda_layout(prefix)
    want = state.expected(read_env_file(file), {**opts.fingerprint(), **layout_fingerprint(layout)})
    plan = compute(pipeline.load(pipeline.Request(layout, opts, want), progress), progress)
    if as_json:
        jsonout.emit("plan", plan.to_dict(), say)
    else:
        show(plan, say)
        if check:
            say("would change the environment" if plan.changes else "up to date: nothing would change")
    return 1 if check and plan.changes else 0
