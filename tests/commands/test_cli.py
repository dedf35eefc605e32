"""The command line: one declaration per command, two parsers derived from it, clean help."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pmpm import cli
from pmpm.commands import catalog, fast
from pmpm.commands.declare import Command, Param
from tests.clihelp import TEST_RECIPES, pmpm, write_env

#: typer's type tags (``<bool>``, ``<list[str]>``, ``<path>``, ``<int>``...) and its ``{ARG}``
TYPE_TAG = re.compile(r"<[a-z][a-z_\[\]|, ]*>|\{[A-Za-z_]+\}")


def _help(words: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli.build(), [*words, "--help"], env={"COLUMNS": "80"}, prog_name="pmpm")
    assert result.exit_code == 0, result.output
    return result.output


def _ragged(text: str) -> list[str]:
    """Lines of a help box that end early although the next line's first word would have fitted:
    a hard line break in a help text, not the terminal's wrapping."""
    found = []
    for box in text.split("╭"):
        rows = [line[1:-1] for line in box.splitlines() if line.startswith("│") and line.endswith("│")]
        indent = [len(row) - len(row.lstrip().removeprefix("*").lstrip()) for row in rows if row.strip()]
        for above, below in itertools.pairwise(rows):
            start = len(below) - len(below.lstrip())
            words = below.split()
            if not words or start <= min(indent) or words[0].startswith("["):
                continue  # a blank line, a new row, or typer's own [default: ...] / [required] tag
            if above[start - 1] != " " or above[start] == " ":
                continue  # `below` does not continue the text column of `above`
            if len(above) - 1 - len(above.rstrip()) > len(words[0]):
                found.append(f"{above.rstrip()!r} / {words[0]!r}")
    return found


def _every_help() -> list[tuple[str, ...]]:
    return [(), *((g,) for g in catalog.GROUPS), *(c.words for c in catalog.COMMANDS)]


@pytest.mark.parametrize("words", _every_help(), ids=lambda w: " ".join(w) or "pmpm")
def test_help_reads_cleanly(words):
    text = _help(words)
    assert not TYPE_TAG.findall(text), text
    assert not _ragged(text), "\n".join(_ragged(text)) + "\n" + text
    command = next((c for c in catalog.COMMANDS if c.words == words), None)
    for param in command.params if command else ():
        shown = param.flags[0] if param.is_option else param.metavar
        assert shown in text, f"{shown} missing from the help of {words}"


def test_the_ragged_check_finds_hard_line_breaks():
    """The check above is not vacuous: help text with a hard break inside a paragraph fails it."""
    rows = [
        "│ system_install  Compile the `_pmpm` packages with the host's compilers and   │",
        "│                 MPI into PREFIX/compile, beside a                            │",
        "│                 conda stack in PREFIX/conda (or --conda-prefix, or none with │",
    ]
    assert len(_ragged("\n".join(rows))) == 1
    assert TYPE_TAG.findall("│ --jobs  -j  <int>  Parallel │ --dry-run <bool> │ {prefix}") == [
        "<int>",
        "<bool>",
        "{prefix}",
    ]


def test_declarations_have_no_hard_line_breaks_and_unique_flags():
    for command in catalog.COMMANDS:
        assert "\n" not in command.summary + command.help, command.words
        flags = [flag for param in command.params for flag in param.flags]
        assert len(flags) == len(set(flags)), command.words
        assert all(
            "\n" not in p.help and (p.kind is bool) == (not p.metavar) for p in command.params if p.flags
        )


def _sample(param: Param, index: int) -> tuple[list[str], object]:
    """Command-line words giving ``param`` a value other than its default, and that value."""
    if param.kind is bool:
        return [], True
    if param.choices:
        text = [c for c in param.choices if c != param.default][-1]
    else:
        text = {int: "3", float: "2.5"}.get(param.kind, f"value-{index}")
    value = param.kind(text)
    if param.repeat:
        return [text, text + "x"], (value, param.kind(text + "x"))
    return [text], value


def _typer_values(command: Command, argv: list[str]) -> dict[str, object] | None:
    seen: dict[str, object] = {}
    result = CliRunner().invoke(
        cli.build(lambda cmd, values: seen.update(values) if cmd is command else None),
        [*command.words, *argv],
    )
    return seen if result.exit_code == 0 else None


def _lines(command: Command) -> list[tuple[list[str], dict[str, object]]]:
    """Command lines that give every declared parameter a value, with each flag's spelling."""
    options: list[str] = []
    positional: list[str] = []
    expected: dict[str, object] = {}
    for index, param in enumerate(command.params):
        words, expected[param.name] = _sample(param, index)
        if not param.is_option:
            positional += words
        elif param.kind is bool:
            options.append(param.flags[0])
        else:
            for word in words:
                options += [param.flags[0], word]
    lines = [(options + positional, expected)]
    if positional and command.params[-1].repeat and not command.params[-1].is_option:
        lines.append((options + positional[:1] + ["--", *positional[1:], "-n"], {}))  # `run P -- cmd -n`
    for param in command.params:  # the short spelling, and --opt=value, with the rest as needed
        others = [
            w
            for p in command.params
            if p.required and p.is_option and p is not param
            for w in (p.flags[0], "x")
        ]
        value = _sample(param, 0)[0][:1]
        spellings = [[flag, *value] for flag in param.flags[1:]]
        if param.is_option and param.kind is not bool:
            spellings.append([f"{param.flags[0]}={value[0]}"])
        lines += [([*given, *others, *positional], {}) for given in spellings]
    minimal = [w for p in command.params if p.required and p.is_option for w in (p.flags[0], "x")]
    minimal += [_sample(p, 0)[0][0] for p in command.params if p.required and not p.is_option]
    lines.append((minimal, {}))  # every default
    return lines


@pytest.mark.parametrize("command", catalog.COMMANDS, ids=lambda c: " ".join(c.words))
def test_fast_parser_and_typer_read_every_option_alike(command):
    """Both parsers come from one declaration: every declared option, in each spelling, gives
    the handler the same keywords on either path."""
    for argv, expected in _lines(command):
        quick = fast.parse(command, argv)
        assert quick is not None, argv
        assert quick == _typer_values(command, argv), argv
        assert set(quick) == {p.name for p in command.params}
        for name, value in expected.items():
            assert quick[name] == value, (argv, name)


@pytest.mark.parametrize(
    "argv",
    [
        ["activate", "p", "--bogus"],
        ["activate", "p", "--shell", "csh"],
        ["activate", "p", "--shell"],
        ["activate"],
        ["activate", "p", "q"],
        ["activate", "p", "--help"],
        ["conda_install", "p", "--jobs", "many"],
        ["conda_install", "p", "--dry-run=yes"],
        ["conda_install", "p", "-fj", "e.yml"],
        ["system_install", "p"],
        ["run", "p"],
        ["cache", "prune", "--older-than", "soon"],
    ],
)
def test_lines_the_fast_parser_does_not_know_go_to_typer(argv):
    """Help and every error are typer's: the fast parser declines, typer explains (exit 2)."""
    command = fast.find(catalog.COMMANDS, argv)
    assert command is not None
    assert fast.parse(command, argv[len(command.words) :]) is None
    result = CliRunner().invoke(cli.build(lambda cmd, values: None), argv)
    assert result.exit_code == (0 if "--help" in argv else 2), result.output


def test_an_unknown_option_is_typers_error_without_a_traceback():
    result = pmpm("activate", "p", "--bogus")
    assert result.code == 2
    assert "No such option" in result.err and "--bogus" in result.err
    assert "Traceback" not in result.text


def test_slurm_with_a_lock_is_refused_not_dropped(tmp_path):
    lock = tmp_path / "env.lock.json"
    lock.write_text("{}")
    result = pmpm("conda_install", tmp_path / "p", "--lock", lock, "--slurm")
    assert result.code == 1, result.text
    assert "--slurm does not rebuild from a lock" in result.err
    assert "Traceback" not in result.text
    assert not (tmp_path / "p").exists()


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    if not TEST_RECIPES.is_dir():
        pytest.skip(f"needs the real test channel {TEST_RECIPES}")
    work = tmp_path_factory.mktemp("cli")
    env = write_env(work / "env.yml", [TEST_RECIPES], ["dependency"])
    assert pmpm("conda_install", work / "p", "--file", env).code == 0
    return work / "p"


PROBE = (
    "import sys\n"
    "from pmpm.__main__ import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'pydantic'))\n"
    "print('loaded:', heavy, 'exit:', code, file=sys.stderr)\n"
)


@pytest.mark.parametrize(
    "argv", [["activate", "{p}"], ["run", "{p}", "--", "true"], ["deactivate", "--shell", "fish"]]
)
def test_latency_bound_commands_do_not_load_typer(prefix, argv):
    """What makes them answer near the floor of starting Python: the framework stays unloaded."""
    args = [a.format(p=prefix) for a in argv]
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False)
    assert "loaded: [] exit: 0" in proc.stderr, proc.stderr
