"""Shell code (bash, zsh, fish) that turns one environment into another, for ``eval``.

Every variable that differs is exported or unset, ``PATH``-like ones as fish lists in fish; the
prompt follows ``CONDA_PROMPT_MODIFIER`` as conda does (:mod:`pmpm.publish.conda_level`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping

from pmpm.publish import conda_level


def _quote(shell: str, value: str) -> str:
    if shell == "fish":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return shlex.quote(value)


#: fish has no PS1: its prompt is a function. conda's fish hook (when loaded) already shows
#: CONDA_PROMPT_MODIFIER; without it, fish_prompt is wrapped once to do the same
_FISH_PROMPT = """\
if not functions -q __conda_add_prompt; and not functions -q __pmpm_fish_prompt_orig
    if functions -q fish_prompt
        functions -c fish_prompt __pmpm_fish_prompt_orig; functions -e fish_prompt
    else
        function __pmpm_fish_prompt_orig; end
    end
    function __pmpm_status; return $argv; end
    function fish_prompt
        set -l last $status
        set -q CONDA_PROMPT_MODIFIER; and echo -n $CONDA_PROMPT_MODIFIER
        __pmpm_status $last; __pmpm_fish_prompt_orig
    end
end"""


def emit(shell: str, current: Mapping[str, str], target: Mapping[str, str]) -> str:
    """The code that turns the shell's environment ``current`` into ``target``, prompt included."""
    lines = []
    for name in sorted(set(current) | set(target)):
        if current.get(name) == target.get(name):
            continue
        value = target.get(name)
        if shell == "fish":
            if value is None:
                lines.append(f"set -e {name}")
            elif name.endswith("PATH"):  # fish keeps *PATH variables as lists
                lines.append(f"set -gx {name} " + " ".join(_quote(shell, v) for v in value.split(os.pathsep)))
            else:
                lines.append(f"set -gx {name} {_quote(shell, value)}")
        elif value is None:
            lines.append(f"unset {name}")
        else:
            lines.append(f"export {name}={_quote(shell, value)}")
    before, after = current.get("CONDA_PROMPT_MODIFIER"), target.get("CONDA_PROMPT_MODIFIER")
    if conda_level.changes_prompt(current):
        lines += conda_level.prompt_lines(shell, before, after)
        if shell == "fish" and after:
            lines.append(_FISH_PROMPT)
    if shell in ("bash", "zsh"):
        lines.append("hash -r 2>/dev/null || true")  # forget cached command locations
    return "\n".join(lines) + "\n"
