"""The variables conda's own ``conda activate`` keeps about activation levels, and the prompt.

``pmpm activate`` follows conda 26's rules (``conda/activate.py``) so that conda, its shell hook and
prompt themes see a pmpm environment as one more conda activation:

* ``CONDA_SHLVL`` goes up by one; the environment it replaces stays in ``CONDA_PREFIX_<old level>``
  (so ``conda deactivate`` can go back to it too);
* ``CONDA_DEFAULT_ENV`` is the folder name for a prefix in an ``envs`` folder, else the full path;
* ``CONDA_PROMPT_MODIFIER`` is ``env_prompt`` (``CONDA_ENV_PROMPT``, default ``({default_env}) ``)
  and the prompt (``PS1`` in bash and zsh) gets it in place of the one before; ``CONDA_CHANGEPS1``
  set to ``false`` (conda's ``changeps1: false``) leaves both empty/untouched, as conda does;
* an env-file variable that overwrites a value already set keeps the old one in
  ``__CONDA_SHLVL_<old level>_<NAME>``, where ``conda deactivate`` looks for it.

Like plain ``conda activate`` (``auto_stack: 0``, conda's default), activation over an active
environment *replaces* it: its ``bin`` folders leave PATH and its ``deactivate.d`` scripts run
(py-rattler does both when given the active prefix); ``conda activate --stack`` is not copied.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_PROMPT = "({default_env}) "
_FALSE = {"false", "no", "off", "0", "n"}


def shlvl(env: Mapping[str, str]) -> int:
    """``CONDA_SHLVL`` as conda reads it (empty or junk counts as 0)."""
    text = env.get("CONDA_SHLVL", "").strip()
    return int(text) if text.isdigit() else 0


def default_env(prefix: str, env: Mapping[str, str]) -> str:
    """conda's ``CONDA_DEFAULT_ENV`` for ``prefix``: ``base`` for conda's own root, the name of an
    environment in an ``envs`` folder, else the path."""
    exe = env.get("CONDA_EXE")
    if exe and os.path.normpath(prefix) == os.path.dirname(os.path.dirname(exe)):
        return "base"
    path = Path(prefix)
    return path.name if path.parent.name == "envs" else prefix


def changes_prompt(env: Mapping[str, str]) -> bool:
    return env.get("CONDA_CHANGEPS1", "true").strip().lower() not in _FALSE


def prompt_modifier(env: Mapping[str, str], prefix: str) -> str:
    """What conda puts before the prompt when ``prefix`` replaces the active environment of
    ``env``: conda's prompt stack walk, for a plain (not stacked) activation."""
    if not changes_prompt(env):
        return ""
    level = shlvl(env)
    stack: list[str] = []
    for i in range(1, level + 1):
        at = env.get("CONDA_PREFIX", "") if i == level else env.get(f"CONDA_PREFIX_{i}", "").rstrip()
        if not env.get(f"CONDA_STACKED_{i}", "").strip():
            stack = stack[:-1]
        stack.append(default_env(at, env))
    name = default_env(prefix, env)
    stack = [*stack[:-1], name]
    template = env.get("CONDA_ENV_PROMPT", DEFAULT_PROMPT)
    return template.format(
        default_env=name, stacked_env=",".join(stack[::-1]), prefix=prefix, name=Path(prefix).name
    )


def level_variables(
    env: Mapping[str, str], prefix: str, env_vars: Mapping[str, str], same_level: bool
) -> dict[str, str]:
    """conda's bookkeeping for activating ``prefix`` over ``env``. ``same_level``: ``prefix`` is
    already conda's active environment, which conda re-activates in place (no new level)."""
    level = shlvl(env)
    new = {"CONDA_PREFIX": prefix, "CONDA_DEFAULT_ENV": default_env(prefix, env)}
    new["CONDA_PROMPT_MODIFIER"] = prompt_modifier(env, prefix)
    if same_level and level > 0:
        new["CONDA_SHLVL"] = str(level)
        return new
    new["CONDA_SHLVL"] = str(level + 1)
    if level > 0 and env.get("CONDA_PREFIX"):
        new[f"CONDA_PREFIX_{level}"] = env["CONDA_PREFIX"]
    for name in env_vars:
        if name in env:
            new[f"__CONDA_SHLVL_{level}_{name}"] = env[name]
    return new


def prompt_lines(shell: str, before: str | None, after: str | None) -> list[str]:
    """bash/zsh code that swaps the prompt modifier ``before`` for ``after`` in ``PS1`` as conda
    does (an unset ``PS1``, as in a script, stays unset; a powerline prompt is left alone).

    Written as shell code because ``PS1`` is not exported: ``pmpm activate`` cannot read it."""
    if shell not in ("bash", "zsh") or (before or "") == (after or ""):
        return []
    code = f"_pmpm_m={_sh(before)}; " if before else ""
    strip = '"${PS1//"$_pmpm_m"/}"' if before else '"$PS1"'
    code += 'if [ -n "${PS1+x}" ]; then case "$PS1" in *POWERLINE_COMMAND*) ;; '
    code += f"*) PS1={_sh(after) if after else ''}{strip} ;; esac; fi"
    return [code + ("; unset _pmpm_m" if before else "")]


def _sh(text: str | None) -> str:
    """``text`` as one single-quoted shell word (the same in bash and zsh)."""
    return "'" + (text or "").replace("'", "'\"'\"'") + "'"
