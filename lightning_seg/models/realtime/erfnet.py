"""ERFNet: Efficient Residual Factorized ConvNet (Romera et al., IEEE T-ITS 2017)."""

from __future__ import annotations

from torch import Tensor, nn

from lightning_seg.models.realtime.blocks import (
    DownsamplingUnit,
    NonBottleneck1D,
    RealtimeNet,
    TransposedUpsampler,
)


class ERFNet(RealtimeNet):
    """ERFNet, the efficient residual factorized ConvNet (IEEE T-ITS 2017).

    ERFNet (Romera, Álvarez, Bergasa, Arroyo, "ERFNet: Efficient Residual Factorized ConvNet for
    Real-Time Semantic Segmentation", IEEE T-ITS 19(1), 2017).

    Encoder (Table I, layers 1–16): downsampling units to 16 and 64 channels, five non-bottleneck-1D units
    at 64, a downsampling unit to 128, and two rounds of non-bottleneck-1D units dilated 2, 4, 8, 16.
    Decoder (layers 17–23): transposed-convolution upsampling to 64 and 16 channels, each followed by two
    non-bottleneck-1D units, and a 2×2 transposed convolution to the classes at full resolution.
    Dropout 0.03 in the 64-channel units and 0.3 in the 128-channel ones, as the paper trains it.
    Convolutions carry biases as in the authors' code; 2.07 M parameters at 19 classes (the paper's
    figure), output stride 8.

    Args:
        num_classes: output classes.
        in_channels: image channels.

    Shape:
        ``N×in_channels×H×W`` → logits ``N×num_classes×H×W`` (inputs are padded to a multiple of 8).
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__(num_classes, in_channels, stride=8)
        self.encoder = nn.Sequential(
            DownsamplingUnit(in_channels, 16),
            DownsamplingUnit(16, 64),
            *(NonBottleneck1D(64, dropout=0.03) for _ in range(5)),
            DownsamplingUnit(64, 128),
            *(NonBottleneck1D(128, dilation=d, dropout=0.3) for d in (2, 4, 8, 16) * 2),
        )
        self.decoder = nn.Sequential(
            TransposedUpsampler(128, 64),
            NonBottleneck1D(64),
            NonBottleneck1D(64),
            TransposedUpsampler(64, 16),
            NonBottleneck1D(16),
            NonBottleneck1D(16),
            nn.ConvTranspose2d(16, num_classes, 2, stride=2),
        )

    def forward_padded(self, image: Tensor) -> Tensor:
        return self.decoder(self.encoder(image))
