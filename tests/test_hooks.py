"""The hook rule (emo.hooks): each extension declares its own options and keeps its own state; two extensions
that claim one deciding hook are refused before anything trains."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from emo import checkpoint
from emo.hooks import Extension, Option, check_extensions, merged_meta
from emo.inference_search import Tune
from emo.recipe import Recipe, recipe_with
from emo.swa import WeightAveraging
from emo.train import EXTENSIONS, TrainConfig, config_from_args, make_trainer, parse_args
from emo.trainer import Trainer
from tests.conftest import tiny_config


class ScoresItself(Extension):
    """An extension that, like Tune, decides how a run ends."""

    key = "scores_itself"

    def finish(self, trainer):
        return {}


def test_two_extensions_that_decide_one_hook_are_refused_before_training(tmp_path, synthetic_splits):
    with pytest.raises(ValueError, match="'tune' and 'scores_itself' both decide 'finish'") as e:
        Trainer(tiny_config(epochs=1), tmp_path, "cpu", splits=synthetic_splits, progress=False,
                extensions=[Tune(), ScoresItself()])
    assert "\n" not in str(e.value) and not (tmp_path / "last.pt").exists()
    with pytest.raises(ValueError, match="'swa' is given twice"):
        check_extensions([WeightAveraging(), WeightAveraging()])
    check_extensions([WeightAveraging(), Tune()])  # different hooks: allowed, as the command line combines them


def test_two_extensions_writing_one_checkpoint_entry_are_refused():
    class A(Extension):
        key = "a"

        def meta(self):
            return {"bn": "mine"}

    class B(A):
        key = "b"

    assert merged_meta([A()]) == {"bn": "mine"}
    with pytest.raises(ValueError, match="'a' and 'b' both write the checkpoint entry 'bn'"):
        merged_meta([A(), B()])


def test_each_option_is_declared_once_and_reaches_the_flag_the_recipe_and_the_checkpoint():
    declared = {opt.name: opt for ext in EXTENSIONS for opt in ext.options}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    core = {f.name for f in dataclasses.fields(Recipe)}
    assert set(declared) == fields - core  # every extension field comes from a declaration, and nothing else
    a = parse_args(["runs/x", "--init", "default", "--swa", "--swa-bn-faces", "64", "--teacher", "ensemble",
                    "--distill-weight", "0.25"])
    cfg = config_from_args(a)
    assert (cfg.init, cfg.swa, cfg.swa_bn_faces, cfg.teacher, cfg.distill_weight) == ("default", True, 64, "ensemble",
                                                                                       0.25)
    assert cfg.model == checkpoint.read(checkpoint.model_path("default"))["config"]  # --init's architecture
    assert {"swa", "swa_bn_faces", "teacher", "distill_weight"} <= set(cfg.to_dict())
    with pytest.raises(ValueError, match="declared twice"):
        recipe_with([WeightAveraging, WeightAveraging])
    with pytest.raises(ValueError, match="temperature=nan must be a finite number > 0"):
        tiny_config(teacher="x.pt", temperature=float("nan"))


def test_an_extension_keeps_its_state_under_its_own_key_in_last_pt(tmp_path, synthetic_splits, tiny_run):
    cfg = tiny_config(epochs=1, init=str(tiny_run[0] / "best_model.pt"), swa=True, swa_bn_faces=32)
    make_trainer(cfg, tmp_path, "cpu", splits=synthetic_splits, progress=False, tune=False).fit()
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(last["extensions"]) == {"swa"} and "swa_state" in last["extensions"]["swa"]
    assert "swa_state" not in last  # nothing of an extension's lies loose in the checkpoint


def test_an_extension_option_is_a_switch_or_takes_a_value():
    opt = Option("my_option", 0.5, "what it does", float)
    assert opt.flag == "--my-option"
    cfg = recipe_with([type("Mine", (Extension,), {"key": "mine", "options": (opt,)})])(epochs=1)
    assert cfg.my_option == 0.5 and cfg.to_dict()["my_option"] == 0.5
