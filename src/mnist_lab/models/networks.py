"""The four networks. Each takes (B, in_channels, image_size, image_size) normalised images and returns
(B, num_classes) logits.

``num_classes`` (torchvision's name), ``image_size`` and ``in_channels`` are filled in from the data by the classifier
(``models.classifier.DATA_ARGUMENTS``), so a network's config never repeats them.
"""

from __future__ import annotations

from typing import Annotated, Literal, Sequence

from pydantic import Field, PositiveInt
from torch import nn

from mnist_lab.data.mnist import CLASSES, SIDE

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
Dropout = Annotated[float, Field(ge=0, lt=1)]  # the share of units dropped while training


class CNN(nn.Sequential):
    """The tutorial's CNN: two 5x5 conv + max-pool blocks, FC 1024, dropout, FC 10 (3,274,634 parameters)."""

    def __init__(
        self,
        dropout: Dropout = 0.5,
        tutorial_init: bool = False,
        num_classes: PositiveInt = CLASSES,
        image_size: PositiveInt = SIDE,
        in_channels: PositiveInt = 1,
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear((image_size // 4) ** 2 * 64, 1024),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(1024, num_classes),
        )
        if tutorial_init:
            for layer in self:
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    # tf.truncated_normal(stddev=0.1) cuts at two standard deviations.
                    nn.init.trunc_normal_(layer.weight, std=0.1, a=-0.2, b=0.2)
                    nn.init.constant_(layer.bias, 0.1)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> list[nn.Module]:
    # No conv bias: the batch norm's shift does its job.
    return [nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class DeepCNN(nn.Sequential):
    """Deotte's Kaggle MNIST CNN: 32C3-32C3-32C5S2-64C3-64C3-64C5S2-128C4, batch norm, dropout (325,994 parameters).

    About the tutorial CNN's cost per image (15 M vs 14 M multiply-adds), but strided 5x5
    convolutions learn the down-sampling that max-pool fixes, and batch norm keeps it trainable.
    """

    def __init__(
        self,
        dropout: Dropout = 0.4,
        width: Annotated[float, Field(gt=0)] = 1.0,  # multiplies every layer's channels
        num_classes: PositiveInt = CLASSES,
        image_size: Annotated[int, Field(ge=13)] = SIDE,  # the least that leaves the last convolution a pixel
        in_channels: PositiveInt = 1,
    ) -> None:
        a, b, c = (max(1, round(n * width)) for n in (32, 64, 128))
        # The last convolution spans what the others leave, one c-vector per image (4x4 of 28x28): each block
        # takes 4 pixels (two unpadded 3x3), then halves, rounding up (5x5, stride 2, padding 2).
        last = ((image_size - 4 + 1) // 2 - 4 + 1) // 2
        super().__init__(
            *_conv_bn(in_channels, a, 3),
            *_conv_bn(a, a, 3),
            *_conv_bn(a, a, 5, stride=2, padding=2),
            nn.Dropout(dropout),
            *_conv_bn(a, b, 3),
            *_conv_bn(b, b, 3),
            *_conv_bn(b, b, 5, stride=2, padding=2),
            nn.Dropout(dropout),
            *_conv_bn(b, c, last),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c, num_classes),
        )


class LogReg(nn.Sequential):
    """Softmax (multinomial logistic) regression: 784 -> 10 (7,850 parameters)."""

    def __init__(
        self, num_classes: PositiveInt = CLASSES, image_size: PositiveInt = SIDE, in_channels: PositiveInt = 1
    ) -> None:
        super().__init__(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, num_classes))


class MLP(nn.Sequential):
    """784 -> hidden... -> 10; the default is the tutorial's 10 sigmoid units (7,960 parameters)."""

    def __init__(
        self,
        hidden: PositiveInt | Sequence[PositiveInt] = (10,),  # a number: one layer that wide
        activation: Literal[tuple(ACTIVATIONS)] = "sigmoid",  # type: ignore[valid-type]
        dropout: Dropout = 0.0,
        num_classes: PositiveInt = CLASSES,
        image_size: PositiveInt = SIDE,
        in_channels: PositiveInt = 1,
    ) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for size in [hidden] if isinstance(hidden, int) else hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
