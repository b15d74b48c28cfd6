"""Table 1 architectures, Auto-pool and the triplet loss."""

from __future__ import annotations

import pytest
import torch

from trackrank.learn.losses import triplet_loss
from trackrank.learn.models import AutoPool, AutoPoolTripletNet, AutoTagger, TripletNet, build_model


@pytest.fixture(scope="module")
def patch():
    torch.manual_seed(0)
    return torch.randn(2, 96, 512) * 20 - 50  # dB-like values


@torch.no_grad()
def test_the_auto_tagger_at_paper_width_gives_m_likelihoods(patch):
    model = AutoTagger(n_tags=488, width=1.0).eval()
    out = model(patch)
    assert out.shape == (2, 488) and ((out > 0) & (out < 1)).all()
    assert [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)] == [128, 256, 512, 1024, 2048]


@torch.no_grad()
def test_tl_at_paper_width_gives_unit_norm_d_128_embeddings(patch):
    out = TripletNet(dim=128, width=1.0).eval()(patch)
    assert out.shape == (2, 128)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


@torch.no_grad()
def test_tl_autopool_at_paper_width_keeps_32_time_steps(patch):
    model = AutoPoolTripletNet(dim=128, width=1.0).eval()
    assert model.frames(patch).shape == (2, 32, 128)
    assert [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)] == [64, 128, 256, 512, 1024]
    out = model(patch)
    assert out.shape == (2, 128)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_width_scales_every_layer():
    model = build_model("triplet", width=0.125)
    assert [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)] == [16, 32, 64, 128, 256]


def test_autopool_is_the_mean_at_alpha_zero_and_tends_to_the_max():
    torch.manual_seed(0)
    x = torch.stack([torch.randperm(32 * 8).float().reshape(32, 8) / 4 for _ in range(3)])  # gaps >= 0.25
    pool = AutoPool(8)
    torch.testing.assert_close(pool(x), x.mean(dim=1))
    with torch.no_grad():
        pool.alpha.fill_(200.0)
    torch.testing.assert_close(pool(x), x.max(dim=1).values, atol=1e-3, rtol=0)
    with torch.no_grad():
        pool.alpha.fill_(-200.0)
    torch.testing.assert_close(pool(x), x.min(dim=1).values, atol=1e-3, rtol=0)


def test_triplet_loss_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # d(a,p)^2 = 2, 0
    n = torch.tensor([[-1.0, 0.0], [0.0, 1.0]])  # d(a,n)^2 = 4, 2
    # max(2 - 4 + 0.5, 0) = 0 ; max(0 - 2 + 0.5, 0) = 0
    assert triplet_loss(a, p, n, margin=0.5).item() == 0.0
    # swap p and n: max(4 - 2 + .5, 0) = 2.5 ; max(2 - 0 + .5, 0) = 2.5
    assert triplet_loss(a, n, p, margin=0.5).item() == pytest.approx(2.5)
    assert triplet_loss(a, a, a, margin=0.5).item() == pytest.approx(0.5)


def test_autopool_alpha_is_learnt():
    model = AutoPoolTripletNet(dim=8, width=0.0625)
    patches = torch.randn(4, 96, 512)
    loss = triplet_loss(model(patches[:2]), model(patches[2:3]).expand(2, -1), model(patches[3:]).expand(2, -1))
    loss.backward()
    assert model.pool.alpha.grad is not None and model.pool.alpha.grad.abs().sum() > 0


@pytest.mark.parametrize("architecture", ["fcn5_tagger", "triplet", "autopool_triplet"])
@torch.no_grad()
def test_weights_saved_from_a_contiguous_model_load_and_give_the_same_outputs(architecture, patch):
    """The trunk keeps channels-last weights (speed); a checkpoint written before that, with contiguous
    weights, loads into it and the network computes the same function."""
    torch.manual_seed(1)
    old = build_model(architecture, n_tags=12, width=0.0625).to(memory_format=torch.contiguous_format)
    for module in old.modules():  # non-trivial batch-norm statistics, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    assert all(p.is_contiguous() for p in old.parameters())
    new = build_model(architecture, n_tags=12, width=0.0625)
    new.load_state_dict(old.state_dict())
    convolutions = [m for m in new.trunk.modules() if isinstance(m, torch.nn.Conv2d)][1:]  # the first has 1 channel
    assert all(conv.weight.is_contiguous(memory_format=torch.channels_last) for conv in convolutions)
    assert not old.trunk.blocks[4].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(new.eval()(patch), old.eval()(patch), rtol=1e-4, atol=1e-5)
