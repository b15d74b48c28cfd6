"""The three architectures of Table 1 (paper §3.4), in PyTorch.

All take a batch of CQT patches, shape (batch, 96, 512) in dB, and share one trunk
shape: 3x3 convolutions, each followed by batch normalisation, ELU and max-pooling.

Details the paper leaves to Choi et al.'s FCN-5 (ISMIR 2016), as chosen here:
the input is batch-normalised (a learnt affine map of the dB values, so no fixed
scaling is needed); each conv block is Conv2d(3x3, padding 1) -> BatchNorm2d -> ELU ->
MaxPool; the auto-tagger has dropout 0.5 before its last layer, the embedding models none
(dropout there made ``tl_distance`` worse on music: docs/experiments.md#width-weight-decay-and-dropout).

``width`` scales every layer's filter count (1.0 = the paper's); the demo trains at a
small width on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trackrank.errors import ConfigError

N_BINS, PATCH_FRAMES = 96, 512
FCN5_FILTERS = (128, 256, 512, 1024, 2048)
FCN5_POOLS = ((2, 4), (2, 4), (2, 4), (3, 3), (4, 2))
AUTOPOOL_FILTERS = (64, 128, 256, 512, 1024)
AUTOPOOL_POOLS = ((2, 2), (2, 2), (2, 2), (2, 2), (6, 1))


def scaled(filters: tuple[int, ...], width: float) -> list[int]:
    """Filter counts scaled by ``width``, at least 4 each."""
    return [max(4, int(round(f * width))) for f in filters]


class ConvTrunk(nn.Module):
    """Input batch norm, then conv blocks: Conv(3x3) -> BN -> ELU -> MaxPool(pool)."""

    def __init__(self, filters: list[int], pools: tuple[tuple[int, int], ...]):
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1)
        layers: list[nn.Module] = []
        channels = 1
        for out, pool in zip(filters, pools):
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ELU(),
                nn.MaxPool2d(pool),
            ]
            channels = out
        self.blocks = nn.Sequential(*layers)
        self.out_channels = channels
        # Channels-last conv weights make every activation channels-last: a CPU training step of the
        # demo's width is about 1.6x faster (bench/memory_format.py); on a GPU it is the layout its
        # mixed-precision convolutions prefer. Checkpoints load into it either way (values, not strides).
        self.blocks.to(memory_format=torch.channels_last)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """(batch, 96, 512) -> (batch, channels, F', T')."""
        return self.blocks(self.input_norm(patches.unsqueeze(1)))


class AutoTagger(nn.Module):
    """AT baseline: FCN-5 trunk, FC(m) with sigmoids (trained with BCE on the tags binarised at tag_threshold)."""

    def __init__(self, n_tags: int, width: float = 1.0):
        super().__init__()
        self.trunk = ConvTrunk(scaled(FCN5_FILTERS, width), FCN5_POOLS)
        self.dropout = nn.Dropout(0.5)
        self.output = nn.Linear(self.trunk.out_channels, n_tags)

    def embedding(self, patches: torch.Tensor) -> torch.Tensor:
        """The penultimate layer, shape (batch, trunk channels): the flattened trunk output, before
        dropout and FC(m). The ``at_trunk`` reference ranks by it, without any further training."""
        return self.trunk(patches).flatten(1)

    def logits(self, patches: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(self.embedding(patches)))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Tag likelihoods, shape (batch, m), in (0, 1)."""
        return torch.sigmoid(self.logits(patches))


class TripletNet(nn.Module):
    """TL: the FCN-5 trunk, a linear FC(d) and L2 normalisation."""

    def __init__(self, dim: int = 128, width: float = 1.0):
        super().__init__()
        self.trunk = ConvTrunk(scaled(FCN5_FILTERS, width), FCN5_POOLS)
        self.output = nn.Linear(self.trunk.out_channels, dim)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Embeddings, shape (batch, d), unit L2 norm."""
        return F.normalize(self.output(self.trunk(patches).flatten(1)), dim=1)


class AutoPool(nn.Module):
    """Auto-pooling over time (McFee, Salamon & Bello 2018).

    y_d = sum_t x_{t,d} softmax_t(alpha_d x_{t,d}), with a learnt alpha per dimension:
    alpha = 0 is the mean over time, alpha -> +inf the max.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, d) -> (batch, d)."""
        weights = torch.softmax(self.alpha * x, dim=1)
        return (weights * x).sum(dim=1)


class AutoPoolTripletNet(nn.Module):
    """TL Autopool: half the filters, pools that keep 32 time steps, FC(d) per step, Auto-pool."""

    def __init__(self, dim: int = 128, width: float = 1.0):
        super().__init__()
        self.trunk = ConvTrunk(scaled(AUTOPOOL_FILTERS, width), AUTOPOOL_POOLS)
        self.output = nn.Linear(self.trunk.out_channels, dim)
        self.pool = AutoPool(dim)

    def frames(self, patches: torch.Tensor) -> torch.Tensor:
        """Per-step embeddings before pooling, shape (batch, 32, d)."""
        features = self.trunk(patches)  # (batch, channels, 1, 32)
        return self.output(features.squeeze(2).transpose(1, 2))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Embeddings, shape (batch, d), unit L2 norm."""
        return F.normalize(self.pool(self.frames(patches)), dim=1)


def build_model(
    architecture: str,
    *,
    n_tags: int = 0,
    dim: int = 128,
    width: float = 1.0,
    seed: int | None = None,
) -> nn.Module:
    """``fcn5_tagger`` | ``triplet`` | ``autopool_triplet``; with ``seed``, its initial weights drawn from that
    seed (torch's global generator is seeded first): the network a training run of that seed starts from.

    Parameters
    ----------
    architecture : ``fcn5_tagger`` (AT), ``triplet`` (TL) or ``autopool_triplet`` (TL with Auto-pool).
    n_tags : the tagger's outputs, one per tag (its only use).
    dim : the TL embedding's dimension (paper: 128).
    width : the factor on every layer's filter count, > 0 (paper: 1; the demo 1/16).
    seed : the initial weights' seed (None: torch's generator as it stands).
    """
    if seed is not None:
        torch.manual_seed(seed)
    if architecture == "fcn5_tagger":
        return AutoTagger(n_tags, width)
    if architecture == "triplet":
        return TripletNet(dim, width)
    if architecture == "autopool_triplet":
        return AutoPoolTripletNet(dim, width)
    raise ConfigError(f"unknown architecture '{architecture}' (fcn5_tagger, triplet, autopool_triplet)")
