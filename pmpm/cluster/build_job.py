"""What one Slurm build job runs on its node (``python -m pmpm.cluster.build_job REQUEST``).

The job is the submitting pmpm's build stage for one target, moved to a node of that target:
first the node check (:mod:`pmpm.cluster.nodecheck`, exit 97 when the feature map lied), then
the compile stage of that target's stack, planned and built here exactly as the submitting run
would (same env file, same layout, same options), into the stack itself. The submitting run
holds the stacks' locks and journal meanwhile: the job is its delegate, so it takes no lock, and
if any job fails the submitter's journal puts every stack back. Each build also lands in pmpm's
build channel (the binary cache), in the cache folder the nodes share.

``REQUEST`` is a JSON file written by :mod:`pmpm.cluster.build_jobs` (:func:`request`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from pmpm.build import schedule
from pmpm.cluster.nodecheck import check_node, node_name
from pmpm.commands.conda_install import Options
from pmpm.conda import engine as conda
from pmpm.env import state
from pmpm.env.layout import Layout
from pmpm.errors import run_reporting
from pmpm.pipeline.prepare import compiler_for
from pmpm.pipeline.types import Loaded
from pmpm.spec.envfile import load_env_file


def request(target: str, layout: Layout, env_file: Path, options: dict[str, Any]) -> str:
    """The job's instructions: which target, the run's layout, env file and build options."""
    return json.dumps(
        {
            "target": target,
            "env_file": str(env_file),
            "layout": {
                "root": str(layout.root),
                "kind": layout.kind,
                "conda": str(layout.conda) if layout.conda is not None else None,
                "compile": str(layout.compile),
                "targets": list(layout.targets),
            },
            "options": options,
        },
        indent=1,
    )


def _layout(data: dict[str, Any]) -> Layout:
    return Layout(
        root=Path(data["root"]),
        kind=data["kind"],
        conda=Path(data["conda"]) if data["conda"] else None,
        compile=Path(data["compile"]),
        targets=tuple(data["targets"]),
    )


def _say(text: str) -> None:
    print(text, flush=True)


def _terminated(*_: object) -> None:
    print("cancelled: stopping", flush=True)
    os._exit(128 + signal.SIGTERM)


def run(request_file: Path) -> int:
    """Check the node, then plan and build the target's stack."""
    # scancel sends SIGTERM: stop at once, even with a build thread waiting on a lock (a normal
    # exit would wait for it); the submitting run's journal puts the stack back
    signal.signal(signal.SIGTERM, _terminated)
    data = json.loads(request_file.read_text())
    target = data["target"]
    name = check_node(target)
    node = node_name()
    _say(f"node {node} can run target {name}")

    layout = _layout(data["layout"])
    env_file = Path(data["env_file"])
    opts = Options(prefix=layout.root, file=env_file, **data["options"])
    spec = load_env_file(env_file)
    loaded = Loaded(spec=spec, layout=layout, opts=opts, want=state.expected(b"", {}))
    view = replace(loaded, layout=layout.for_target(target)) if layout.targets else loaded
    compiler = compiler_for(view, _say, target if layout.targets else None)
    if compiler is None:
        _say("the env file lists no packages to compile")
        return 0
    stack = view.layout.compile
    plan = compiler.plan(conda.installed_records(stack), stacks_changed=True)
    result = schedule.run(compiler, plan)
    _say(
        f"target {name} on node {node}: {len(result.built)} built, {len(result.from_cache)} from the "
        f"binary cache, {len(result.up_to_date)} up to date, in {stack}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pmpm.cluster.build_job REQUEST.json", file=sys.stderr)
        return 2
    return run_reporting(lambda: run(Path(args[0])))


if __name__ == "__main__":
    sys.exit(main())
