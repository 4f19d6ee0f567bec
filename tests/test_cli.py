"""The ending every ``python -m emo.<command>`` shares, and the arguments of those that combine checkpoints
(emo.cli)."""


import pytest
import torch

from emo.cli import checkpoints_parser, command_line, run_command
from emo.files import PROJECT_ROOT, RUNS_DIR


def test_run_command_turns_bad_input_into_one_line_and_exit_2_and_lets_bugs_through(capsys):
    threads = torch.get_num_threads()
    try:
        assert run_command(lambda: None, threads=1) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)

    def missing() -> None:
        raise FileNotFoundError("no model at x.pt: train one first")

    assert run_command(missing) == 2
    assert capsys.readouterr().err == "error: no model at x.pt: train one first\n"
    with pytest.raises(ZeroDivisionError):  # a bug is not a bad input: its traceback must reach the user
        run_command(lambda: 1 / 0)


def test_run_command_passes_on_the_exit_status_the_action_returns():
    assert run_command(lambda: 3) == 3
    assert run_command(lambda: {"a": 1}) == 0  # what an action returns besides an int is not an exit status
    assert run_command(lambda: True) == 0


def test_command_line_quotes_what_the_shell_would_split():
    assert command_line("emo.train", ["runs/a b", "--epochs", "5"]) == "python -m emo.train 'runs/a b' --epochs 5"


def test_checkpoints_parser_takes_several_checkpoints_and_names_its_default_in_the_project(capsys, monkeypatch):
    default = RUNS_DIR / "soup" / "best_model.pt"
    monkeypatch.chdir(PROJECT_ROOT)  # the default is shown as typed from where the command runs
    p = checkpoints_parser("emo.soup", "Average weights.\n\nMore.", "the checkpoints", default)
    a = p.parse_args(["a.pt", "b.pt", "--threads", "2"])
    assert (a.checkpoints, a.out, a.data, a.threads) == (["a.pt", "b.pt"], str(default), "auto", 2)
    p.print_help()
    help_text = " ".join(capsys.readouterr().out.split())
    assert help_text.startswith("usage: python -m emo.soup")
    assert "Average weights." in help_text and "More." not in help_text
    assert "(default: runs/soup/best_model.pt)" in help_text
    assert "--data NAME" in help_text and "--source" not in help_text  # the first name still works, unshown
    assert p.parse_args(["a.pt", "--data", "mine"]).data == p.parse_args(["a.pt", "--source", "mine"]).data == "mine"
