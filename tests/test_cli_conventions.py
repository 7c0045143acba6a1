"""One convention for every command: shared option names and help texts, exit codes."""

from __future__ import annotations

import argparse

import pytest

from nehmap.cli import build_parser
from nehmap.commands.options import HELP_TEXTS

# Commands that define their shared options through nehmap.commands.options.
CONVERTED = {"segment", "view"}
LONG = {"segment"}  # long commands converted so far: each takes --no-progress and --quiet


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


def _options(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {s: a.help or "" for a in parser._actions for s in a.option_strings}


COMMANDS = _commands(build_parser())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_help_prints(name: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        COMMANDS[name].parse_args(["--help"])
    assert exc.value.code == 0
    assert "usage: nehmap" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(CONVERTED))
def test_shared_options_have_the_shared_names_and_help(name: str) -> None:
    options = _options(COMMANDS[name])
    shared = [o for o in HELP_TEXTS if o in options]
    assert shared
    for option in shared:
        expected = HELP_TEXTS[option].split("{")[0].split(":")[0]
        assert options[option].startswith(expected), (name, option, options[option])
    if "--out" in options:
        assert "-o" in options
    if "--quiet" in options:
        assert "-q" in options


@pytest.mark.parametrize("name", sorted(LONG))
def test_long_commands_take_no_progress_and_quiet(name: str) -> None:
    args = COMMANDS[name].parse_args(["x", "-o", "y", "--no-progress", "--quiet"])
    assert args.no_progress and args.quiet


def test_progress_only_on_a_terminal(monkeypatch) -> None:
    from nehmap.commands import options

    args = argparse.Namespace(no_progress=False, quiet=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert not options.show_progress(args)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert options.show_progress(args)
    assert not options.show_progress(argparse.Namespace(no_progress=True, quiet=False))
    assert not options.show_progress(argparse.Namespace(no_progress=False, quiet=True))
