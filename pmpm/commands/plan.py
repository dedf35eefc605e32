"""``pmpm plan``: what conda_install would do to PREFIX, as text, JSON, or an exit code for CI;
with ``--commands`` also the commands each build would run (:mod:`pmpm.build.preview`).

``conda_install --dry-run`` prints the same text (:func:`pmpm.pipeline.dry_run` calls
:func:`compute` and :func:`show`), so the two cannot disagree. Nothing is changed and no lock
is taken.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmpm import pipeline
from pmpm.build.preview import preview
from pmpm.commands import jsonout
from pmpm.commands.conda_install import (
    Options,
    layout_chooser,
    layout_fingerprint,
    provisional_layout,
    read_env_file,
)
from pmpm.conda import engine as conda
from pmpm.env import state
from pmpm.pipeline import targets
from pmpm.pipeline.conda_stage import solve
from pmpm.pipeline.prepare import compiler_for, prepare

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
    commands: dict[str, Any] | None = None  # by package: pmpm.build.preview.BuildCommands (--commands)
    target: str | None = None  # the CPU target of ``steps`` when there are several (else None)
    others: list[Plan] = field(default_factory=list)  # the other targets' stacks, one plan each

    @property
    def stacks(self) -> list[Plan]:
        """Every compiled stack's plan: this one, then the other targets'."""
        return [self, *self.others]

    @property
    def changes(self) -> bool:
        """Would a run change anything? (``plan --check`` exits 1 when it would.)"""
        return (
            not self.exists
            or bool(self.conda_changes)
            or any(step.decision != UNCHANGED for stack in self.stacks for step in stack.steps)
        )

    def to_dict(self) -> dict[str, Any]:
        data = self._as_dict()
        if self.target is not None:  # several targets: every stack's packages, the first's too
            data["targets"] = [{"target": p.target, **p._as_dict()["compiled"]} for p in self.stacks]
        return data

    def _as_dict(self) -> dict[str, Any]:
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
                        **(
                            {"commands": self.commands[s.name].to_dict() if s.name in self.commands else None}
                            if self.commands is not None
                            else {}
                        ),
                    }
                    for s in self.steps
                ],
            },
        }


def _holds_environment(prefix: Path) -> bool:
    return (prefix / "conda-meta").is_dir()


def compute(loaded: Loaded, say: Say, *, commands: bool = False) -> Plan:
    """Solve and plan the builds as a run would; change nothing. ``commands``: also what each
    build would run."""
    layout = loaded.layout
    solved = solve(prepare(loaded, say), say)
    compiler = solved.prepared.compiler
    installed = [r for r in solved.installed if not conda.is_compiled(r)]
    steps = list(compiler.plan(solved.compiled_side).steps) if compiler else []
    previews = None
    if commands:
        previews = {b.name: b for b in preview(compiler, steps, solved.compiled_side)} if compiler else {}
    others = [_target_plan(loaded, target, say, commands) for target in layout.targets[1:]]
    return Plan(
        root=layout.root,
        conda_prefix=layout.conda,
        compile_prefix=layout.compile,
        system=layout.kind == "system",
        exists=_holds_environment(layout.conda or layout.compile),
        conda_packages=len(solved.records),
        conda_changes=conda.diff(installed, solved.records),
        steps=steps,
        commands=previews,
        target=layout.targets[0] if layout.targets else None,
        others=others,
    )


def _target_plan(loaded: Loaded, target: str, say: Say, commands: bool) -> Plan:
    """One more target's stack: its builds planned against what the run would link into it
    (in conda_install mode, the conda packages its recipes need, from the conda stack)."""
    view = loaded.layout.for_target(target)
    compiler = compiler_for(replace(loaded, layout=view), say, target)
    installed = conda.installed_records(view.compile)
    steps: list[Any] = []
    previews = None
    if compiler is not None:
        if view.kind == "conda":
            needed = targets.needed_records(compiler, conda.installed_records(view.root), installed)
            if needed is not None:
                installed = [*(r for r in installed if conda.is_compiled(r)), *needed]
        steps = list(compiler.plan(installed).steps)
        if commands:
            previews = {b.name: b for b in preview(compiler, steps, installed)}
    return Plan(
        root=view.root,
        conda_prefix=view.conda,
        compile_prefix=view.compile,
        system=True,  # said with the stack it goes into
        exists=_holds_environment(view.compile),
        steps=steps,
        commands=previews,
        target=target,
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
    for stack in plan.stacks:
        if stack.steps:
            label = "compiled packages" if stack.target is None else f"target {stack.target}"
            into = stack.system or stack.target is not None
            say(label + (f" (into {stack.compile_prefix}):" if into else ":"))
            for step in stack.steps:
                say(f"  {step.explain()}")
        if stack.commands is not None:
            show_commands(list(stack.commands.values()), say)


def show_commands(builds: list[Any], say: Say) -> None:
    """What each build would run (``--commands``), as a shell would read it."""
    if not builds:
        say("commands: none (nothing would be built)")
    for b in builds:
        say(f"commands of {b.name} {b.version} ({b.builder}; nothing was run):")
        say(f"  build folder: {b.work}")
        say(f"  source: {b.source}")
        say(f"  built for: {b.prefix}")
        say("  environment (each command's, beside the caller's own):")
        for key, value in sorted(b.environment.items()):
            say(f"    {key}={shlex.quote(value)}")
        for note in b.notes[:-1]:
            say(f"  {note}")
        for c in b.commands:
            skipped = " (skipped: same command and flags as last time)" if c.skipped else ""
            say(f"  {c.phase} in {c.cwd}{skipped}:")
            if c.env:
                say("    " + " ".join(f"{k}={shlex.quote(v)}" for k, v in c.env.items()))
            say(f"    $ {shlex.join(c.argv)}")
        if b.notes:
            say(f"  {b.notes[-1]}")


def run(
    prefix: Path, file: Path, offline: bool, as_json: bool, check: bool, say: Say, commands: bool = False
) -> int:
    """``pmpm plan``: 0, or with ``check`` 1 when a run would change anything."""
    progress = jsonout.to_stderr if as_json else say
    opts = Options(prefix=prefix, file=file, dry_run=True, offline=offline)
    layout = provisional_layout(prefix)
    want = state.expected(read_env_file(file), {**opts.fingerprint(), **layout_fingerprint(layout)})
    request = pipeline.Request(layout, opts, want, choose_layout=layout_chooser(opts))
    loaded = pipeline.load(request, progress)
    plan = compute(loaded, progress, commands=commands)
    if as_json:
        jsonout.emit("plan", plan.to_dict(), say)
    else:
        show(plan, say)
        if check:
            say("would change the environment" if plan.changes else "up to date: nothing would change")
    return 1 if check and plan.changes else 0
