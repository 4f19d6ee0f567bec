"""The CPU fast path of training (emo.fastpath) and progressive resizing: the same expectation as torch's
dropout, gradients through the same mask, the same weights, and the smaller crops only where asked."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from emo.fastpath import BitsDropout, keep_freed_memory, use_fast_path
from emo.network import build_model
from emo.trainer import Trainer
from tests.conftest import TINY, tiny_config


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_bits_dropout_keeps_each_value_with_probability_one_minus_p_and_preserves_the_mean(p):
    torch.manual_seed(0)
    x = torch.ones(64, 32, 24, 24)
    y = BitsDropout(p).train()(x)
    kept = (y != 0).float().mean().item()
    n = x.numel()
    assert abs(kept - (1 - p)) < 5 * (p * (1 - p) / n) ** 0.5  # within 5 standard errors of a Bernoulli mean
    assert y.mean().item() == pytest.approx(1.0, abs=5 * (p / (1 - p) / n) ** 0.5)
    assert torch.allclose(y[y != 0], torch.tensor(65536 / (65536 - round(p * 65536))))


def test_bits_dropout_masks_are_independent_of_position():
    """Neighbouring elements (the 4 int16 lanes of one 64-bit draw) are not correlated."""
    torch.manual_seed(1)
    y = BitsDropout(0.5).train()(torch.ones(1 << 20)) != 0
    a, b = y[0::2].float(), y[1::2].float()
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
    assert abs(corr) < 0.01


def test_bits_dropout_gradient_goes_through_the_same_mask_and_follows_the_memory_layout():
    torch.manual_seed(2)
    x = torch.randn(8, 16, 6, 6).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y = BitsDropout(0.2).train()(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.sum().backward()
    scale = 65536 / (65536 - round(0.2 * 65536))
    assert torch.equal(x.grad, (y != 0).float() * scale)
    assert torch.allclose(y, x.detach() * x.grad)


def test_bits_dropout_is_seeded_by_torch_and_is_the_identity_when_evaluating():
    d = BitsDropout(0.3)
    x = torch.randn(4, 8, 5, 5)
    torch.manual_seed(3)
    a = d.train()(x)
    torch.manual_seed(3)
    assert torch.equal(a, d(x))
    assert not torch.equal(a, d(x))  # the next call draws other masks
    assert d.eval()(x) is x and BitsDropout(0.0).train()(x) is x
    with pytest.raises(ValueError, match="p=1"):
        BitsDropout(1)


def test_the_fast_path_swaps_every_dropout_and_leaves_the_weights_and_predictions_alone():
    model = build_model(TINY).eval()
    x = torch.randn(3, 1, 48, 48)
    before, state = model(x), {k: v.clone() for k, v in model.state_dict().items()}
    use_fast_path(model)
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert sum(isinstance(m, BitsDropout) for m in model.modules()) == len(TINY.widths) + 1
    drops = [m.p for m in model.modules() if isinstance(m, BitsDropout)]
    assert drops == [TINY.block_dropout] * len(TINY.widths) + [TINY.head_dropout]
    assert torch.equal(model(x), before)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert keep_freed_memory() is True  # (glibc on Linux: where this suite runs)


def test_progressive_resizing_trains_early_epochs_on_smaller_crops_and_validates_at_full_size(tmp_path,
                                                                                             synthetic_splits):
    t = Trainer(tiny_config(epochs=2, progressive=0.5, progressive_size=24), tmp_path, "cpu",
                splits=synthetic_splits, progress=False)
    assert [type(m) for m in t.model.modules() if "Dropout" in type(m).__name__][0] is BitsDropout
    seen: list[tuple[int, bool, int]] = []
    t.model.stem.register_forward_pre_hook(lambda m, a: seen.append((t.epoch, m.training, a[0].shape[-1])))
    t.fit()
    assert {s for e, training, s in seen if training and e == 0} == {24}
    assert {s for e, training, s in seen if training and e == 1} == {48}
    assert {s for e, training, s in seen if not training} == {48}
    assert len(t.history) == 2


def test_the_fast_path_can_be_turned_off_and_a_run_resumes_only_as_it_started(tmp_path, synthetic_splits):
    t = Trainer(tiny_config(epochs=1, fast_path=False), tmp_path, "cpu", splits=synthetic_splits, progress=False)
    assert any(type(m) is nn.Dropout for m in t.model.modules())
    t.fit()
    with pytest.raises(ValueError, match="with --no-fast-path"):
        Trainer(tiny_config(epochs=1), tmp_path, "cpu", splits=synthetic_splits, progress=False).fit(resume=True)
    from emo.trainer import _said
    assert _said("--swa", True) == "with --swa" and _said("--no-fast-path", True) == "without --no-fast-path"


@pytest.mark.parametrize("kw, match", [({"progressive": 1.0}, "progressive=1.0"),
                                       ({"progressive": 0.5, "progressive_size": 64}, "progressive_size=64"),
                                       ({"progressive": -0.1}, "progressive=-0.1")])
def test_bad_progressive_settings_are_refused_in_one_line(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**kw)


def test_progressive_schedule_by_epoch():
    cfg = tiny_config(epochs=10, progressive=0.6, progressive_size=32)
    assert [cfg.input_size_at(e) for e in range(10)] == [32] * 6 + [48] * 4
    assert tiny_config(epochs=10).input_size_at(0) == 48


def test_implicit_bfloat16_is_scoped_to_the_block_and_only_where_the_cpu_has_amx():
    from emo.fastpath import has_amx, implicit_bf16
    conv = torch.nn.Conv2d(64, 128, 1).to(memory_format=torch.channels_last)  # (as the network's convs run)
    x = torch.randn(32, 64, 24, 24).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        exact = conv(x)
        with implicit_bf16() as on:
            assert on == has_amx()
            inside = conv(x)
        assert torch.backends.mkldnn.conv.fp32_precision == "none"  # restored: evaluation stays float32
        assert torch.equal(conv(x), exact)
        with implicit_bf16(enabled=False) as off:
            assert off is False and torch.equal(conv(x), exact)
    if on:  # bfloat16 products: close to float32, not equal (bfloat16 keeps 8 bits of mantissa)
        assert not torch.equal(inside, exact) and torch.allclose(inside, exact, rtol=0.05, atol=0.05)
