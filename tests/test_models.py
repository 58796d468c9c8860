from __future__ import annotations

import inspect

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate

from mnist_lab.building import build
from mnist_lab.errors import ConfigError
from mnist_lab.models.classifier import ImageClassifier
from mnist_lab.models.networks import CNN, MLP, DeepCNN, LogReg
from mnist_lab.models.schedules import piecewise_lr
from mnist_lab.validation import check_arguments
from support import MODELS, NETWORKS, bars_config


@pytest.mark.parametrize(
    "net, params",
    [
        (CNN(), 3_274_634),
        (DeepCNN(), 325_994),
        (DeepCNN(width=1.5), 731_674),
        (LogReg(), 7_850),
        (MLP(), 7_960),
        (MLP(hidden=[64, 32], activation="relu"), 52_650),
    ],
)
def test_networks_have_the_tutorial_sizes_and_give_ten_logits(net, params):
    assert sum(p.numel() for p in net.parameters()) == params
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)


NETWORK_CLASSES = [get_class(target) for target in sorted(set(NETWORKS.values()))]  # conf/model's networks


@pytest.mark.parametrize("network", NETWORK_CLASSES)
@pytest.mark.parametrize("size", [13, 32, 64])
def test_every_network_reads_images_of_its_data_size(network, size):
    net = network(num_classes=3, image_size=size)
    assert net(torch.randn(2, 1, size, size)).shape == (2, 3)


def test_tutorial_init_uses_truncated_normal_and_constant_bias():
    net = CNN(tutorial_init=True)
    weights = torch.cat([m.weight.flatten() for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))])
    assert weights.abs().max() <= 0.2 and 0.08 < weights.std() < 0.1
    assert all(torch.all(m.bias == 0.1) for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))


@pytest.mark.parametrize("network", [n for n in NETWORK_CLASSES if "dropout" in inspect.signature(n).parameters])
def test_every_network_refuses_dropout_outside_unit_interval(network):
    target = f"{network.__module__}.{network.__name__}"
    with pytest.raises(ConfigError, match="model.net.dropout=1.0 is not allowed: input should be less than 1"):
        check_arguments({"_target_": target, "dropout": 1.0}, where="model.net")


class LossProbe(L.Callback):
    """The loss a training step returns, and what cross-entropy with ``smoothing`` gives for the same batch."""

    def __init__(self, smoothing: float) -> None:
        self.smoothing, self.pairs = smoothing, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batch = batch

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        x, y = self.batch
        with torch.no_grad():
            expected = F.cross_entropy(pl_module(x), y, label_smoothing=self.smoothing)
        self.pairs.append((float(loss), float(expected)))


def test_label_smoothing_reaches_the_training_loss(make_cfg):
    from mnist_lab.training.run import train

    probe = LossProbe(smoothing=0.3)
    cfg = make_cfg("model=logreg", "+model.label_smoothing=0.3", "debug=fast", "data.batch_size=64", "test=false")
    train(cfg, callbacks=[probe])
    assert probe.pairs and all(loss == pytest.approx(expected, rel=1e-5) for loss, expected in probe.pairs)


def test_piecewise_lr_gives_one_rate_per_epoch():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=5e-4)
    sched = piecewise_lr(opt, [5e-4, 3e-4, 1e-4])
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([5e-4, 3e-4, 1e-4, 1e-4])


@pytest.mark.parametrize("model", MODELS)
def test_every_model_learns_what_it_is_shown(tmp_path, model):
    """Three classes of bars, learnt in seconds: every model in conf/model beats chance (a third) by far."""
    from mnist_lab.training.run import train

    metrics, _ = train(bars_config(tmp_path, "trainer.max_epochs=5", model=model, side=16, count=192))
    assert metrics["test_acc"] >= 0.9 and metrics["val_acc_best"] >= 0.9
    assert metrics["test_loss"] < 0.9  # below the ~1.1 of a uniform guess over three classes


def test_module_forward_normalises_inputs_in_unit_range():
    model = instantiate(
        {
            "_target_": "mnist_lab.models.classifier.ImageClassifier",
            "_recursive_": False,
            "net": {"_target_": "mnist_lab.models.networks.LogReg"},
            "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
        }
    )
    assert isinstance(model, ImageClassifier)
    x = torch.rand(2, 1, 28, 28)
    expected = model.net((x - 0.1307) / 0.3081)
    assert torch.allclose(model(x), expected)


def test_channels_last_changes_the_memory_layout_not_the_logits():
    def classifier(channels_last: bool) -> ImageClassifier:
        net = {"_target_": "mnist_lab.models.networks.DeepCNN"}
        return ImageClassifier(
            net, {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}, channels_last=channels_last
        )

    nhwc, nchw = classifier(True).eval(), classifier(False).eval()
    nchw.load_state_dict(nhwc.state_dict())
    assert nhwc.net[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert not nchw.net[3].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(nhwc(x), nchw(x), atol=1e-5)


def test_a_network_gets_the_datas_class_count_and_one_with_the_wrong_outputs_is_refused():
    optimizer = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}
    three = ImageClassifier(net={"_target_": "mnist_lab.models.networks.MLP"}, optimizer=optimizer, classes=list("abc"))
    assert three.net[-1].out_features == 3 and three(torch.rand(2, 1, 28, 28)).shape == (2, 3)
    fixed = {"_target_": "torch.nn.Sequential"}  # no num_classes: its outputs are what they are
    with pytest.raises(ConfigError, match=r"model.net gives outputs of shape \(1, 28, 28\) .* the data has 3 classes"):
        ImageClassifier(net=fixed, optimizer=optimizer, classes=list("abc"))


def test_a_network_refuses_the_datas_image_size_it_cannot_take_in_one_line():
    optimizer = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}
    deep = {"_target_": "mnist_lab.models.networks.DeepCNN"}  # its last convolution needs 13 px at least
    with pytest.raises(ConfigError, match=r"model.net.image_size=12 is not allowed: .* \(it is the data's: choose"):
        ImageClassifier(net=deep, optimizer=optimizer, image_size=12)
    assert ImageClassifier(net=deep, optimizer=optimizer, image_size=13)(torch.rand(2, 1, 13, 13)).shape == (2, 10)


def test_a_checkpoint_of_a_renamed_class_is_migrated():
    from mnist_lab.migration import migrate

    stored = {"model": {"_target_": "mnist_lab.models.classifier.DigitClassifier"}}
    stored["data"] = {"_target_": "mnist_lab.data.datamodule.MNISTDataModule"}
    assert build(migrate(stored)["data"]).classes == [str(d) for d in range(10)]
    assert migrate(stored)["model"]["_target_"] == "mnist_lab.models.classifier.ImageClassifier"
