"""Stages 5 to 7: record what made the result (inside the run's journal), publish it
(modulefiles, Jupyter kernel), then save the state that makes an identical next run a no-op.

In this order: a run that stops (or fails writing a module) before the last step leaves no
no-op state, so the next run writes the record and the modules again.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pmpm import envinfo
from pmpm.conda.engine import host_subdir
from pmpm.env import layout as layouts
from pmpm.env import state
from pmpm.env.layout import Layout
from pmpm.errors import PmpmError
from pmpm.pipeline.types import Prepared, Say
from pmpm.record.api import write_record
from pmpm.spec.model import EnvSpec

if TYPE_CHECKING:  # the build stage is not imported by a conda-only run (pmpm.pipeline.conda_stage)
    from pmpm.build.plan import BuildPlan


def record(prepared: Prepared, say: Say) -> None:
    """Write the layout and the record: part of the prefix, so a run that changed the prefix
    calls this inside its journal and a failure here (a full disk) puts the prefix back."""
    loaded = prepared.loaded
    layouts.write(loaded.layout)
    written = write_record(loaded.layout, loaded.opts.file)
    say(f"environment id: {written.environment_id}")


def finish(prepared: Prepared, plan: BuildPlan | None, say: Say) -> None:
    """Publish, and save the no-op state of a successful run (after :func:`record`): it
    watches the channels, and the files and local trees of the build ``plan`` carried out."""
    loaded = prepared.loaded
    layout = loaded.layout
    publish(loaded.spec, layout, say)

    watched: list[Path] = []
    for channel in prepared.channels:
        if channel.local_path is not None:
            for subdir in (host_subdir(), "noarch"):
                watched += [channel.local_path / subdir / "repodata.json"]
    want = loaded.want
    if plan is not None:
        watched += plan.watched
        want = replace(want, trees=dict(plan.trees))
    want = replace(want, records=state.records_digest(*layout.prefixes))
    state.watch(want, watched)
    want.save(layout.compile)


def publish(spec: EnvSpec, layout: Layout, say: Say) -> None:
    """Make the environment reachable without pmpm: modulefiles and a Jupyter kernel, as the env
    file asks. After the record, since the modules name the environment id of the new record.
    The publishers (:mod:`pmpm.publish.modules`, :mod:`pmpm.publish.jupyter`) are imported only
    by runs that ask for them: most runs do not, and each install would pay for them."""
    envinfo.save(layout, envinfo.EnvInfo.from_spec(spec))
    if spec.pmpm.modules:
        from pmpm.publish import modules

        base = spec.path.parent
        config = {
            key: str(base / Path(value).expanduser()) if key in modules.KINDS else value
            for key, value in spec.pmpm.modules.items()
        }
        try:
            modules.refresh(layout, config, say)
        except PmpmError as exc:
            exc.hint = (exc.hint + "; " if exc.hint else "") + (
                f"the environment itself is ready: write the modules with `pmpm module {layout.root}`"
            )
            raise
    if spec.pmpm.jupyter_kernel:
        from pmpm.publish import jupyter

        jupyter.register(layout, say)
