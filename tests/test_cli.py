import pytest

from nehmap import __version__
from nehmap.cli import COMMANDS, build_parser, main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"nehmap {__version__}"
    assert [line.split()[0] for line in lines[1:]] == ["torch", "MONAI", "ANTsPy", "device"]
    import torch

    assert lines[1] == f"torch {torch.__version__}"
    assert lines[4].split()[1] in ("cpu", "cuda", "mps")


def test_every_command_has_help(capsys):
    parser = build_parser()
    text = parser.format_help()
    for name in COMMANDS:
        assert name in text
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        assert "usage: nehmap" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--null-n", "0", "must be at least 1"), ("--preset", "slow", "invalid choice: 'slow'")],
)
def test_validate_recurrence_refuses_bad_options_before_reading(capsys, option, value, message):
    parser = build_parser()
    line = ["validate", "recurrence", "cohort", "--preop-seg", "a", "--recurrence-seg", "b"]
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([*line, "-o", "out", option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert option in err and message in err
