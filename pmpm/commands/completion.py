"""typer's zsh completion script, made to complete from the first TAB.

``pmpm --install-completion`` in zsh writes typer's script to ``~/.zfunc/_pmpm``, which zsh
autoloads as the function ``_pmpm`` on the first TAB. typer's script only defines the completer
and registers it with ``compdef`` then, so that first TAB completes nothing (the second does).
Sourced (``eval "$(pmpm --show-completion zsh)"``) it works, since registering is all that is
needed there. The script below registers the completer in both cases (so later TABs call it
directly) and, when ``zsh_eval_context`` says it was autoloaded (as click's zsh script checks),
also completes the TAB that loaded it.
"""

from __future__ import annotations

from typer import _completion_classes, _completion_shared

#: typer's last line, and what replaces it
_REGISTER = "compdef %(complete_func)s %(prog_name)s"
_EITHER = """\
compdef %(complete_func)s %(prog_name)s
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  %(complete_func)s "$@"
fi"""


def fix_zsh_script() -> None:
    """Make typer write the script above for zsh (``--install-completion``, ``--show-completion``)."""
    script = _completion_shared._completion_scripts["zsh"]
    if _REGISTER in script and "zsh_eval_context" not in script:
        fixed = script.replace(_REGISTER, _EITHER)
        _completion_shared._completion_scripts["zsh"] = fixed
        _completion_classes.ZshComplete.source_template = fixed
