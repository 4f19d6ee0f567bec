"""The ending every ``python -m emo.<command>`` shares (emo.cli)."""

import pytest
import torch

from emo.cli import command_line, run_command


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
