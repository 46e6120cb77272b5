"""Contract tests for every registered model (``uebench.models``), on CPU in seconds.

Big models run at width 0.25; the layer counts are width-independent and the parameter counts are
checked at width 1 (the published sizes).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from uebench.errors import UnknownNameError
from uebench.models import MODELS, get_model, layer_names

WIDTH = 0.25
NUM_CLASSES = 7  # not 10, so a hard-coded CIFAR-10 head would show up
INPUTS = [(3, 32), (1, 28)]  # (in_channels, image side): CIFAR-like and MNIST-like
# (name, in_channels, side) combinations a model rejects with ValueError by design; none so far
UNSUPPORTED: set[tuple[str, int, int]] = set()

# the paper's "layers" = every Conv2d/Linear weight (layer_names); see docs/models.md
LAYERS = {
    "linear": 1,
    "lenet5": 5,
    "tiny": 3,
    "resnet18": 21,
    "resnet50": 54,
    "senet18": 37,
    "vit": 26,
}
# total parameters (weights, biases, BN affine, tokens) at width 1, 3x32x32 input, 10 classes
PARAMS = {
    "resnet18": 11_173_962,  # kuangliu's value
    "resnet50": 23_520_842,
    "senet18": 11_260_354,
    "vit": 9_523_722,
}
CASES = [
    (name, c, side)
    for name in MODELS.names()
    for c, side in INPUTS
    if (name, c, side) not in UNSUPPORTED
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # batches of 2 small images: intra-op threads only add contention (100x slower on a busy CPU)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name: str, in_channels: int = 3, side: int = 32, width: float = WIDTH) -> nn.Module:
    torch.manual_seed(0)
    return get_model(
        name, in_channels=in_channels, image_size=side, num_classes=NUM_CLASSES, width=width
    )


def batch(in_channels: int = 3, side: int = 32, n: int = 2) -> torch.Tensor:
    return torch.rand(n, in_channels, side, side, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("name", "in_channels", "side"), CASES)
def test_forward_shape(name: str, in_channels: int, side: int) -> None:
    out = build(name, in_channels, side)(batch(in_channels, side))
    assert out.shape == (2, NUM_CLASSES)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS.names())
def test_backward_gives_finite_grads(name: str) -> None:
    model = build(name).train()
    loss = nn.functional.cross_entropy(model(batch()), torch.tensor([0, 1]))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"


@pytest.mark.parametrize(("name", "in_channels", "side"), CASES)
def test_fx_trace_matches_eager(name: str, in_channels: int, side: int) -> None:
    # the fast SAL engine re-runs only the downstream part of a torch.fx graph
    model = build(name, in_channels, side).eval()
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        for n in (2, 3):  # the graph must not bake in the batch size
            x = batch(in_channels, side, n)
            torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS.names())
def test_layer_count(name: str) -> None:
    names = layer_names(build(name))
    assert len(names) == len(set(names)) >= 1
    if name in LAYERS:
        assert len(names) == LAYERS[name]


def test_resnet18_layers_match_the_sal_protocol() -> None:
    # docs/sal.md, "One measurement": stem, 16 block convs, 3 shortcuts, fc; 11,164,352 weights
    model = get_model("resnet18")
    names = layer_names(model)
    blocks = [f"net.layer{s}.{b}.conv{i}" for s in range(1, 5) for b in range(2) for i in (1, 2)]
    shortcuts = [f"net.layer{s}.0.shortcut.0" for s in (2, 3, 4)]
    assert names[0] == "net.conv1" and names[-1] == "net.linear"
    assert sorted(names[1:-1]) == sorted(blocks + shortcuts)
    modules = dict(model.named_modules())
    assert sum(modules[n].weight.numel() for n in names) == 11_164_352
    assert modules["net.layer2.0.shortcut.0"].weight.shape == (128, 64, 1, 1)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_param_count_at_width_1(name: str) -> None:
    model = get_model(name, num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


@pytest.mark.parametrize("name", MODELS.names())
def test_eval_mode_is_deterministic(name: str) -> None:
    model = build(name).eval()
    x = batch()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", MODELS.names())
def test_normalization_is_inside_the_model(name: str) -> None:
    mean, std = (0.1, 0.2, 0.3), (0.4, 0.5, 0.6)
    torch.manual_seed(0)
    model = get_model(name, num_classes=NUM_CLASSES, width=WIDTH, mean=mean, std=std).eval()
    state = model.state_dict()
    assert torch.equal(state["normalize.mean"].flatten(), torch.tensor(mean))
    assert torch.equal(state["normalize.std"].flatten(), torch.tensor(std))
    x = batch()
    expected = model.net(
        (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    )
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)


def test_unknown_name_lists_valid_models() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_model("resnet19")
    for name in MODELS.names():
        assert name in str(info.value)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "senet18"])
@pytest.mark.parametrize("size", [8, 64, (32, 24)])
def test_resnets_take_other_image_sizes(name: str, size: int | tuple[int, int]) -> None:
    model = get_model(name, image_size=size, width=0.125).eval()
    h, w = (size, size) if isinstance(size, int) else size
    assert model(torch.rand(2, 3, h, w)).shape == (2, 10)


def test_vit_takes_non_square_images_and_rejects_bad_sizes() -> None:
    model = get_model("vit", image_size=(32, 24), width=WIDTH).eval()
    assert model(torch.rand(2, 3, 32, 24)).shape == (2, 10)
    with pytest.raises(ValueError, match="divisible by the patch size 4"):
        get_model("vit", image_size=30)


def test_width_scales_channels() -> None:
    net = get_model("resnet18", width=0.5).net
    assert net.conv1.out_channels == 32 and net.linear.in_features == 256
    vit = get_model("vit", width=0.3).net
    assert vit.head.in_features % 8 == 0  # dim stays divisible by the 8 heads
