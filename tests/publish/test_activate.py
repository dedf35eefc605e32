"""``pmpm activate``/``deactivate`` in real bash, zsh and fish, next to the real conda."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clihelp import pmpm
from tests.publish.pubhelp import PMPM, _bash, _clean_env, _dump, _parse_env
from tests.real_conda import build_real_conda


def test_activate_then_deactivate_restores_bash_exactly(env_prefix, tmp_path):
    p = shlex.quote(str(env_prefix))
    script = f"""
PS1='\\u$ '
{_dump(tmp_path / "before")}
eval "$({PMPM} activate {p})" || exit 7
demo-tool; pkg-config --modversion demo; echo "var=$DEMO_VAR activated=$DEMO_ACTIVATED"
echo "PS1=$PS1"
{_dump(tmp_path / "active")}
eval "$({PMPM} activate {p})" || exit 8
{_dump(tmp_path / "again")}
eval "$({PMPM} deactivate)" || exit 9
{_dump(tmp_path / "after")}
echo "PS1=$PS1"
"""
    env = _clean_env(tmp_path)
    proc = _bash(script, tmp_path, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"PS1=({env_prefix}) \\u$ " in proc.stdout.splitlines()  # conda's prompt: the path
    assert proc.stdout.splitlines()[-1] == "PS1=\\u$ "
    assert f"demo-tool 2.0 prefix={env_prefix}" in proc.stdout
    assert "2.0" in proc.stdout.splitlines()
    assert f"var=hello world activated={env_prefix}/share/demo-activate" in proc.stdout
    before, active, again, after = (
        _parse_env((tmp_path / n).read_text()) for n in ("before", "active", "again", "after")
    )
    assert active["PATH"] == f"{env_prefix}/bin:" + before["PATH"]
    assert active["CONDA_PREFIX"] == str(env_prefix)
    assert active["CONDA_SHLVL"] == "1" and active["CONDA_DEFAULT_ENV"] == str(env_prefix)
    assert active["CONDA_PROMPT_MODIFIER"] == f"({env_prefix}) "
    assert again == active  # activating again replaces: PATH does not grow
    assert after == before


def test_deactivate_keeps_what_the_user_added_after_activation(env_prefix, tmp_path):
    p = shlex.quote(str(env_prefix))
    script = f"""
eval "$({PMPM} activate {p})" || exit 7
export PATH="/opt/mine:$PATH" MINE=1
eval "$({PMPM} deactivate)" || exit 9
echo "PATH=$PATH MINE=$MINE CP=$CONDA_PREFIX"
"""
    env = _clean_env(tmp_path)
    proc = _bash(script, tmp_path, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"PATH=/opt/mine:{env['PATH']} MINE=1 CP=/some/earlier/conda" in proc.stdout


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_activate_then_deactivate_restores_other_shells(shell, env_prefix, tmp_path):
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed")
    p = shlex.quote(str(env_prefix))
    if shell == "zsh":
        script = (f'PS1="%~ "; env -0 > before; eval "$({PMPM} activate {p} --shell zsh)"; demo-tool; '
                  f'echo "prompt=$PS1"; eval "$({PMPM} deactivate --shell zsh)"; echo "prompt=$PS1"; '
                  "env -0 > after; true")  # fmt: skip
        # (`; true`: zsh lowers SHLVL when it execs a script's last command in its place)
        prompts = [f"prompt=({env_prefix}) %~ ", "prompt=%~ "]
    else:  # fish has no PS1: without conda's hook, pmpm's wrapper of fish_prompt shows the modifier
        script = (f"function fish_prompt; echo -n '> '; end; env -0 > before; "
                  f"{PMPM} activate {p} --shell fish | source; demo-tool; echo prompt=(fish_prompt); "
                  f"{PMPM} deactivate --shell fish | source; echo prompt=(fish_prompt); "
                  "env -0 > after")  # fmt: skip
        prompts = [f"prompt=({env_prefix}) > ", "prompt=> "]
    env = _clean_env(tmp_path)
    proc = subprocess.run(
        [exe, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"prefix={env_prefix}" in proc.stdout
    assert [line for line in proc.stdout.splitlines() if line.startswith("prompt=")] == prompts
    before, after = (_parse_env((tmp_path / n).read_text()) for n in ("before", "after"))
    assert {k: v for k, v in after.items() if k != "_"} == {k: v for k, v in before.items() if k != "_"}


def test_conda_changeps1_false_leaves_the_prompt_alone(env_prefix, tmp_path):
    script = f"""PS1='$ '
eval "$({PMPM} activate {shlex.quote(str(env_prefix))})" || exit 7
echo "PS1=$PS1 modifier=[$CONDA_PROMPT_MODIFIER]"
"""
    proc = _bash(script, tmp_path, {**_clean_env(tmp_path), "CONDA_CHANGEPS1": "false"})
    assert proc.returncode == 0, proc.stderr
    assert "PS1=$  modifier=[]" in proc.stdout  # as conda with `changeps1: false`


def test_deactivate_refuses_while_a_later_conda_environment_is_active(env_prefix, tmp_path):
    """`pmpm activate P; conda activate E; pmpm deactivate` would pull P out from under E."""
    script = f"""
eval "$({PMPM} activate {shlex.quote(str(env_prefix))})" || exit 7
export CONDA_SHLVL=2 CONDA_PREFIX_1="$CONDA_PREFIX" CONDA_PREFIX=/opt/later-env
{_dump(tmp_path / "covered")}
eval "$({PMPM} deactivate)" || exit 9
{_dump(tmp_path / "after")}
"""
    proc = _bash(script, tmp_path, _clean_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "/opt/later-env was activated after" in proc.stderr and "conda deactivate" in proc.stderr
    assert _parse_env((tmp_path / "after").read_text()) == _parse_env((tmp_path / "covered").read_text())


def test_deactivate_without_an_active_env_prints_nothing():
    assert "PMPM_ACTIVE_ENV" not in os.environ
    result = pmpm("deactivate")
    assert result.code == 0 and result.out == ""
    assert "no pmpm environment is active" in result.err


def test_system_layout_activation_joins_both_stacks(system_root, tmp_path):
    script = f"""
{_dump(tmp_path / "before")}
eval "$({PMPM} activate {shlex.quote(str(system_root))})" || exit 7
sys-tool; demo-tool; python -c "import compiled_pkg; print('pkg=' + compiled_pkg.WHERE)"
eval "$({PMPM} deactivate)" || exit 9
{_dump(tmp_path / "after")}
"""
    env = _clean_env(tmp_path)
    proc = _bash(script, tmp_path, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sys-tool from compile" in proc.stdout and "pkg=compile" in proc.stdout
    before, after = (_parse_env((tmp_path / n).read_text()) for n in ("before", "after"))
    assert after == before


def test_a_second_environment_replaces_the_first_and_deactivate_steps_back(env_prefix, system_root, tmp_path):
    """As plain `conda activate`: the second replaces the first on PATH one level up; each
    deactivate goes back exactly one activation."""
    first, second = shlex.quote(str(env_prefix)), shlex.quote(str(system_root))
    script = f"""
{_dump(tmp_path / "zero")}
eval "$({PMPM} activate {first})" || exit 7
{_dump(tmp_path / "one")}
eval "$({PMPM} activate {second})" || exit 8
{_dump(tmp_path / "two")}
eval "$({PMPM} deactivate)" || exit 9
{_dump(tmp_path / "back1")}
eval "$({PMPM} deactivate)" || exit 10
{_dump(tmp_path / "back0")}
"""
    proc = _bash(script, tmp_path, _clean_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zero, one, two, back1, back0 = (
        _parse_env((tmp_path / n).read_text()) for n in ("zero", "one", "two", "back1", "back0")
    )
    path = two["PATH"].split(":")
    assert path[:2] == [str(system_root / "compile" / "bin"), str(system_root / "conda" / "bin")]
    assert str(env_prefix / "bin") not in path  # replaced, not stacked
    assert (two["CONDA_SHLVL"], two["CONDA_PREFIX_1"]) == ("2", str(env_prefix))
    assert two["CONDA_PROMPT_MODIFIER"] == f"({system_root / 'conda'}) "
    assert back1 == one and back0 == zero


# --- next to the real conda --------------------------------------------------------------------

#: conda's shell hook for each shell; conda runs as ``python -m conda`` (tests/real_conda.py)
HOOKS = {
    "bash": 'eval "$({conda} shell.bash hook)"; export CONDA_EXE={conda}',
    "zsh": 'eval "$({conda} shell.zsh hook)"; export CONDA_EXE={conda}',
    "fish": "{conda} shell.fish hook | source; set -gx CONDA_EXE {conda}",
}


@pytest.fixture(scope="session")
def real_conda(tmp_path_factory):
    return build_real_conda(tmp_path_factory)


def _conda_session(shell: str, conda, steps: list[tuple[str, str]], tmp: Path) -> list[dict[str, str]]:
    """Run ``steps`` (a name and a command each) in ``shell`` after conda's hook; the environment
    (and ``PS1``, which is not exported, as ``_PS1``) after each step."""
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed")
    lines = [HOOKS[shell].format(conda=shlex.quote(str(conda.bin_dir / "conda")))]
    if shell != "fish":
        lines.insert(0, "PS1='$ '")
    for name, command in steps:
        lines.append(command)
        lines.append(f"env -0 > {name}")
        if shell != "fish":
            lines.append(f'printf %s "$PS1" > {name}.ps1')
    proc = subprocess.run(
        [exe, "-c", "\n".join([*lines, "true"])],
        cwd=tmp,
        env={**conda.env, "PATH": f"{conda.bin_dir}:/usr/local/bin:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    found = []
    for name, _ in steps:
        env = {k: v for k, v in _parse_env((tmp / name).read_text()).items() if k not in ("_", "SHLVL")}
        if shell != "fish":
            env["_PS1"] = (tmp / f"{name}.ps1").read_text()
        found.append(env)
    return found


def _changed(a: dict[str, str], b: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    return {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}


#: what pmpm activate sets beyond conda activate (see pmpm.publish.activation)
PMPM_EXTRA = {"MANPATH", "PKG_CONFIG_PATH", "CMAKE_PREFIX_PATH", "PMPM_ACTIVE_ENV"}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_activate_over_a_conda_environment_sets_what_conda_activate_sets(
    shell, real_conda, env_prefix, tmp_path
):
    """base is active (conda's hook), then `conda activate E`; then P is activated by conda in one
    shell and by pmpm in another: conda's variables, PATH and prompt come out the same; `pmpm
    deactivate` gives back E's shell exactly; `conda deactivate` over pmpm also works."""
    other = tmp_path / "envs" / "other"
    real_conda.run("create", "--prefix", other, "--yes", "--offline")
    p, e = shlex.quote(str(env_prefix)), shlex.quote(str(other))
    s = "" if shell == "bash" else f" --shell {shell}"
    # conda runs only .fish activation scripts in fish; pmpm gives fish the .sh ones' effect too
    extra = PMPM_EXTRA | ({"DEMO_ACTIVATED", "DEMO_SEARCH_PATH"} if shell == "fish" else set())
    run = {"bash": 'eval "$({})"', "zsh": 'eval "$({})"', "fish": "{} | source"}[shell]
    activate_e = ("e", f"conda activate {e}")
    by_conda = _conda_session(
        shell, real_conda, [activate_e, ("p", f"conda activate {p}"), ("d", "conda deactivate")], tmp_path
    )
    by_pmpm = _conda_session(
        shell,
        real_conda,
        [
            activate_e,
            ("p", run.format(f"{PMPM} activate {p}{s}")),
            ("d", run.format(f"{PMPM} deactivate{s}")),
            ("p2", run.format(f"{PMPM} activate {p}{s}")),
            ("cd", "conda deactivate"),
            ("pd", run.format(f"{PMPM} deactivate{s}")),
        ],
        tmp_path,
    )
    (conda_e, conda_p, conda_d), (pmpm_e, pmpm_p, pmpm_d, pmpm_p2, pmpm_cd, pmpm_pd) = by_conda, by_pmpm
    assert conda_e == pmpm_e and conda_e["CONDA_PREFIX"] == str(other)
    by_conda_changes = _changed(conda_e, conda_p)
    assert {"CONDA_SHLVL", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "PATH", "DEMO_VAR"} <= set(by_conda_changes)
    if shell != "fish":
        assert "_PS1" in by_conda_changes
    for name, (_, value) in by_conda_changes.items():
        assert pmpm_p.get(name) == value, name
    assert set(_changed(pmpm_e, pmpm_p)) - set(by_conda_changes) <= extra
    assert pmpm_d == pmpm_e  # exactly the shell before
    assert pmpm_p2 == pmpm_p
    # conda deactivate undoes its part of a pmpm activation as it does a conda one's...
    assert {k: v[1] for k, v in _changed(pmpm_e, pmpm_cd).items()} == {
        **{k: v[1] for k, v in _changed(conda_e, conda_d).items()},
        **{k: pmpm_p[k] for k in extra if k in pmpm_p},
    }
    # ...and pmpm deactivate then takes back the rest
    assert _changed(pmpm_e, pmpm_pd) == _changed(conda_e, conda_d)
