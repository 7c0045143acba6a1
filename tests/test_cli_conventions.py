"""One convention for every command: shared option names and help texts, exit codes."""

from __future__ import annotations

import argparse

import pytest

from nehmap.cli import build_parser
from nehmap.commands.options import HELP_TEXTS

SHORT = {"models", "view", "validate", "import-weights"}
"""Commands that draw no progress bar (one file each; ``validate`` only dispatches)."""


def _commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> dict[str, argparse.ArgumentParser]:
    """Every command and sub-command parser, by its full name (``validate rcbv``...)."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}".strip()
                out[full] = sub
                out.update(_commands(sub, full))
    return out


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


COMMANDS = _commands(build_parser())


def test_every_command_is_walked() -> None:
    assert {"segment", "view", "validate rcbv", "validate recurrence", "synth", "train"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_help_prints(name: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        COMMANDS[name].parse_args(["--help"])
    assert exc.value.code == 0
    assert "usage: nehmap" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_shared_options_have_the_shared_names_and_help(name: str, capsys) -> None:
    options = _options(COMMANDS[name])
    for option, text in HELP_TEXTS.items():
        if option not in options:
            continue
        expected = text.split("{")[0]
        if option == "--overwrite":
            expected = expected.split(":")[0]
        assert (options[option].help or "").startswith(expected), (name, option)
    # the short forms go with the long ones
    for short, long in (("-o", "--out"), ("-q", "--quiet")):
        if long in options:
            assert options[short] is options[long], (name, short)
    # and the help text shows them as shared
    COMMANDS[name].print_help()
    assert "--quiet" in capsys.readouterr().out or name in SHORT


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - SHORT))
def test_long_commands_take_no_progress_and_quiet(name: str) -> None:
    options = _options(COMMANDS[name])
    assert "--no-progress" in options and "--quiet" in options and "-q" in options


SEEDED = sorted(n for n, p in COMMANDS.items() if "--seed" in _options(p))


def test_some_commands_take_a_seed() -> None:
    assert {"synth", "train", "demo", "validate recurrence"} <= set(SEEDED)


@pytest.mark.parametrize("name", SEEDED)
def test_a_seed_is_a_non_negative_integer(name: str) -> None:
    seed = _options(COMMANDS[name])["--seed"]
    assert seed.type("7") == 7 and seed.type("0") == 0
    for bad, why in (("-1", "at least 0"), ("1.5", "not an integer")):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            seed.type(bad)


def test_progress_only_on_a_terminal(monkeypatch) -> None:
    from nehmap.commands import options

    args = argparse.Namespace(no_progress=False, quiet=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert not options.show_progress(args)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert options.show_progress(args)
    assert not options.show_progress(argparse.Namespace(no_progress=True, quiet=False))
    assert not options.show_progress(argparse.Namespace(no_progress=False, quiet=True))


def test_case_bars_count_cases_on_stderr_and_only_when_asked(capsys) -> None:
    from nehmap.bars import case_bar

    assert list(case_bar(["a", "b"], "cases", False)) == ["a", "b"]
    assert capsys.readouterr() == ("", "")
    assert list(case_bar(["a", "b", "c"], "checking", True)) == ["a", "b", "c"]
    out, err = capsys.readouterr()
    assert out == "" and "checking" in err and "3/3" in err and "case" in err
    bar = case_bar(None, "study", True, total=4)
    bar.update(2)
    bar.close()
    assert "2/4" in capsys.readouterr().err


def test_nothing_could_start_is_exit_code_2(tmp_path, capsys) -> None:
    from nehmap.cli import main

    missing = str(tmp_path / "missing")
    for argv in (
        ["segment", missing, "-o", str(tmp_path / "o")],
        ["view", missing],
        ["evaluate", missing, missing, "-o", str(tmp_path / "o")],
        ["cases", missing],
    ):
        assert main(argv) == 2, argv
        assert "error" in capsys.readouterr().err
