import pytest
import torch
import torch.nn.functional as F

from emo.losses import FocalLoss, focal_loss


def test_gamma_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(16, 7, generator=g), torch.randint(0, 7, (16,), generator=g)
    assert torch.allclose(focal_loss(logits, y, gamma=0), F.cross_entropy(logits, y), atol=1e-6)


def test_soft_targets_match_hard_ones_when_one_hot():
    logits, y = torch.randn(8, 7), torch.randint(0, 7, (8,))
    assert torch.allclose(focal_loss(logits, y), focal_loss(logits, F.one_hot(y, 7).float()))


def test_focal_down_weights_easy_examples():
    easy = torch.tensor([[6.0, 0, 0, 0, 0, 0, 0]])
    hard = torch.tensor([[0.5, 0, 0, 0, 0, 0, 0]])
    y = torch.tensor([0])
    ratio_easy = focal_loss(easy, y, 2) / focal_loss(easy, y, 0)
    ratio_hard = focal_loss(hard, y, 2) / focal_loss(hard, y, 0)
    assert ratio_easy < 0.01 < ratio_hard


def test_class_weights_and_module():
    logits, y = torch.randn(4, 7), torch.tensor([1, 1, 1, 1])
    w = torch.ones(7)
    w[1] = 3.0
    assert torch.allclose(FocalLoss(2.0, w)(logits, y), 3 * focal_loss(logits, y, 2.0))


def test_negative_gamma_is_refused():
    with pytest.raises(ValueError, match="gamma=-1"):
        focal_loss(torch.randn(2, 7), torch.tensor([0, 1]), gamma=-1)


def test_distillation_loss_is_the_tempered_kl_divergence():
    from emo.losses import distillation_loss
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(8, 7, generator=g), torch.randn(8, 7, generator=g)
    assert distillation_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(t + 3.0, t).item() == pytest.approx(0.0, abs=1e-6)  # softmax ignores a shift
    p, q = (t / 2).softmax(1), (s / 2).softmax(1)
    by_hand = (p * (p.log() - q.log())).sum(1).mean() * 4
    assert distillation_loss(s, t, temperature=2.0).item() == pytest.approx(by_hand.item(), rel=1e-5)
    # an ensemble's teacher output is a log-probability: the loss takes it as such
    assert distillation_loss(s, t.log_softmax(1)).item() == pytest.approx(distillation_loss(s, t).item(), rel=1e-5)
    with pytest.raises(ValueError, match="temperature=0"):
        distillation_loss(s, t, temperature=0)
