"""nnU-Net ResEnc M: the plan follows nnU-Net v2's planner rules, and the model is the package's
``ResidualEncoderUNet`` built with that plan (minus the deep-supervision heads it never runs)."""

import csv
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet
from dynamic_network_architectures.building_blocks.residual import BasicBlockD

from baselines.nnunet_resenc import resenc_arch_kwargs, resenc_plan
from models import create_model
from models.complexity import count_params
from models.registry import ModelArgumentError

ROWS = {r["name"]: r for r in csv.DictReader((Path(__file__).parents[1] / "baselines" / "reference_sizes.csv").open())}

# What nnUNetPlannerResEncM writes into a 2D plan's arch_kwargs for 224 x 224 images (isotropic spacing)
PLANNER_224 = {
    "n_stages": 6,
    "features_per_stage": (32, 64, 128, 256, 512, 512),
    "conv_op": nn.Conv2d,
    "kernel_sizes": ((3, 3),) * 6,
    "strides": ((1, 1),) + ((2, 2),) * 5,
    "n_blocks_per_stage": (1, 3, 4, 6, 6, 6),
    "n_conv_per_stage_decoder": (1,) * 5,
    "conv_bias": True,
    "norm_op": nn.InstanceNorm2d,
    "norm_op_kwargs": {"eps": 1e-5, "affine": True},
    "dropout_op": None,
    "dropout_op_kwargs": None,
    "nonlin": nn.LeakyReLU,
    "nonlin_kwargs": {"inplace": True},
}


@pytest.mark.parametrize(
    ("size", "features", "blocks", "divisor"),
    [
        (224, (32, 64, 128, 256, 512, 512), (1, 3, 4, 6, 6, 6), 32),  # 7 x 7 bottleneck: 7 < 8 stops
        (256, (32, 64, 128, 256, 512, 512, 512), (1, 3, 4, 6, 6, 6, 6), 64),  # 8 pools once more to 4
        (512, (32, 64, 128, 256, 512, 512, 512, 512), (1, 3, 4, 6, 6, 6, 6, 6), 128),
    ],
)
def test_square_plans(size, features, blocks, divisor):
    plan = resenc_plan(size)
    n = len(features)
    assert plan.n_stages == n
    assert plan.features_per_stage == features
    assert plan.n_blocks_per_stage == blocks
    assert plan.strides == ((1, 1),) + ((2, 2),) * (n - 1)
    assert plan.kernel_sizes == ((3, 3),) * n
    assert plan.n_conv_per_stage_decoder == (1,) * (n - 1)
    assert plan.size_divisor == (divisor, divisor)
    assert plan.patch_size == (size, size)


def test_arch_kwargs_at_224_are_the_planners():
    assert resenc_arch_kwargs(resenc_plan(224)) == PLANNER_224


def test_one_axis_pools_alone_only_down_to_12():
    # after four joint pools (192, 64) -> (12, 4): 12 >= 3 x 4 pools alone once more; (160, 64) -> (10, 4) stops
    assert resenc_plan((192, 64)).strides[-1] == (2, 1)
    assert resenc_plan((192, 64)).size_divisor == (32, 16)
    assert resenc_plan((160, 64)).strides == ((1, 1),) + ((2, 2),) * 4


@pytest.mark.parametrize(
    ("size", "message"),
    [(200, r"multiples of 32; nnU-Net would pad its patch to 224 x 224"), (6, "too small"), (0, "positive int")],
)
def test_sizes_the_plan_cannot_take_are_argument_errors(size, message):
    # ModelArgumentError: the pipeline prints its message as one line naming the params.yaml entry (exit 2)
    with pytest.raises(ModelArgumentError, match=f"^nnunet_resenc: image_size .*{message}") as err:
        create_model("nnunet_resenc", image_size=size)
    assert "\n" not in str(err.value)


def test_forward_backward_at_64():
    torch.manual_seed(0)
    model = create_model("nnunet_resenc", image_size=64).train()
    assert model.plan.n_stages == 5
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1, 64, 64)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 48)).shape == (1, 1, 32, 48)  # any multiple of 16 with a 2-pixel bottleneck
        with pytest.raises(ValueError, match="divisible by 16"):
            model(torch.randn(1, 3, 64, 40))
        with pytest.raises(ValueError, match=r"pools 16 x 16 to 1 x 1, .* \(image_size=16\)"):
            model(torch.randn(1, 3, 16, 16))


def _live_params(model: nn.Module, x: torch.Tensor) -> int:
    """Parameters of the modules a forward pass runs."""
    ran = set()
    hooks = [m.register_forward_hook(lambda mod, *_: ran.add(mod)) for m in model.modules()]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return sum(p.numel() for p in {p for m in ran for p in m.parameters(recurse=False)})


def test_is_the_reference_network_with_its_live_parameters():
    torch.manual_seed(0)
    reference = ResidualEncoderUNet(input_channels=3, num_classes=1, deep_supervision=False, **PLANNER_224)
    reference.apply(reference.initialize)
    ours = create_model("nnunet_resenc")
    x = torch.randn(1, 3, 64, 64)
    live = _live_params(reference, x)
    assert count_params(ours) == live == int(ROWS["nnunet_resenc"]["params_live"])
    unused_heads = tuple(f"decoder.seg_layers.{i}." for i in range(4))  # of five; only the last one runs
    dead = {k for k in reference.state_dict() if k.startswith(unused_heads)}
    assert count_params(reference) - live == sum(reference.state_dict()[k].numel() for k in dead)
    # same keys less the unused heads; the reference's weights give the reference's output
    ours.load_state_dict({k: v for k, v in reference.state_dict().items() if k not in dead}, strict=True)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), reference.eval()(x))


def test_initialised_as_nnunet_trains_it():
    # ResidualEncoderUNet.initialize: each residual block's last norm starts at zero (an identity block)
    blocks = [m for m in create_model("nnunet_resenc").modules() if isinstance(m, BasicBlockD)]
    assert len(blocks) == 1 + 3 + 4 + 6 + 6 + 6
    assert all(not b.conv2.norm.weight.any() and not b.conv2.norm.bias.any() for b in blocks)
