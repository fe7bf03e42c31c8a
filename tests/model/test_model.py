"""The browser nets: exact parameter counts, TF padding, Glorot init, tfjs weight files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from diag.model import (
    REFERENCE_NETS,
    Conv,
    SeparableConv,
    expression_net,
    landmark_net,
    tf_same_pad,
    tiny_classifier,
    tiny_extractor,
    tiny_landmark_net,
)
from diag.model.weights import encode, load_weights, quantize, save_weights


def count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(("build", "params"), [
    (tiny_landmark_net, 77_224), (landmark_net, 356_840), (expression_net, 323_687),
    (tiny_extractor, 59_680)], ids=["tiny-landmark", "landmark", "expression", "tiny-extractor"])
def test_parameter_counts_match_face_api(build: object, params: int) -> None:
    assert count(build()) == params  # type: ignore[operator]


def test_tiny_blocks_and_k_class_head() -> None:
    blocks = list(tiny_landmark_net().features.children())
    assert [count(b) for b in blocks] == [3_584, 11_872, 44_224]
    for k in (1, 4, 7, 10):
        assert count(tiny_classifier(k)) == 59_680 + 129 * k


def test_reference_table_counts_are_true() -> None:
    for info in REFERENCE_NETS.values():
        assert count(info.build()) == info.params, info.name


def test_separable_conv_param_formula_and_no_depthwise_bias() -> None:
    conv = SeparableConv(32, 64)
    assert conv.depthwise.bias is None
    assert count(conv) == 9 * 32 + 32 * 64 + 64


@pytest.mark.parametrize("size", [112, 57, 8])
def test_tf_same_padding_stride2(size: int) -> None:
    x = torch.randn(1, 2, size, size)
    padded = tf_same_pad(x, 3, 2)
    if size % 2 == 0:
        # even input: nothing before, one row/column after (PyTorch's padding=1 differs)
        assert torch.equal(padded, F.pad(x, (0, 1, 0, 1)))
    else:
        assert torch.equal(padded, F.pad(x, (1, 1, 1, 1)))
    assert F.conv2d(padded, torch.ones(1, 2, 3, 3), stride=2).shape[-1] == -(-size // 2)


def test_tf_padding_differs_from_pytorch_symmetric_padding() -> None:
    x = torch.randn(1, 1, 8, 8)
    w = torch.randn(1, 1, 3, 3)
    ours = F.conv2d(tf_same_pad(x, 3, 2), w, stride=2)
    torch_pad = F.conv2d(x, w, stride=2, padding=1)
    assert ours.shape == torch_pad.shape and not torch.allclose(ours, torch_pad)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [48, 57, 8])
def test_layers_pad_like_tensorflow_same(stride: int, size: int) -> None:
    """Stride 1 lets the conv pad itself (no copy); both strides equal TF 'same'."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, size, size)
    conv, sep = Conv(4, 6, stride), SeparableConv(4, 6, stride)
    want = F.conv2d(tf_same_pad(x, 3, stride), conv.conv.weight, conv.conv.bias, stride=stride)
    torch.testing.assert_close(conv(x), want, rtol=0, atol=1e-6)
    depth = F.conv2d(tf_same_pad(x, 3, stride), sep.depthwise.weight, stride=stride, groups=4)
    want = F.conv2d(depth, sep.pointwise.weight, sep.pointwise.bias)
    torch.testing.assert_close(sep(x), want, rtol=0, atol=1e-6)
    assert want.shape[-1] == -(-size // stride)


def test_input_size_is_a_parameter_and_the_weights_are_shared() -> None:
    a, b = tiny_landmark_net(112, seed=3), tiny_landmark_net(48, seed=3)
    assert a.input_size == 112 and b.input_size == 48
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert b(torch.zeros(2, 3, 48, 48)).shape == (2, 136)
    assert a(torch.zeros(1, 3, 112, 112)).shape == (1, 136)


def test_glorot_normal_weights_zero_biases() -> None:
    m = landmark_net(seed=0)
    for name, p in m.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
    w = m.features.dense3.conv1.pointwise.weight  # (256, 256, 1, 1): std sqrt(2/512)
    assert float(w.detach().std()) == pytest.approx((2 / 512) ** 0.5, rel=0.05)
    dw = m.features.dense3.conv1.depthwise.weight  # tfjs [3,3,256,1]: sqrt(2/(9*256+9))
    assert float(dw.detach().std()) == pytest.approx((2 / (9 * 256 + 9)) ** 0.5, rel=0.1)


def test_same_seed_same_weights_without_touching_global_rng() -> None:
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a, b = tiny_landmark_net(seed=1), tiny_landmark_net(seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_uint8_file_is_one_byte_per_parameter(tmp_path: object) -> None:
    m = tiny_landmark_net()
    entries, shard = encode(m, "uint8")
    assert len(shard) == 77_224
    assert entries[0]["name"] == "dense0/conv0/filters" and entries[0]["shape"] == [3, 3, 3, 32]
    names = [e["name"] for e in entries]
    assert "dense1/conv0/depthwise_filter" in names and names[-2:] == ["fc/weights", "fc/bias"]
    assert len(encode(m, "uint16")[1]) == 2 * 77_224
    assert len(encode(m, None)[1]) == 4 * 77_224


@pytest.mark.parametrize("quant", [None, "uint16", "uint8"])
def test_weight_file_round_trip(tmp_path: object, quant: str | None) -> None:
    m = tiny_landmark_net(seed=0)
    manifest = save_weights(m, tmp_path, quantization=quant)  # type: ignore[arg-type]
    loaded = load_weights(tiny_landmark_net(seed=9), manifest)
    worst = max(float((p - q).detach().abs().max())
                for p, q in zip(m.parameters(), loaded.parameters(), strict=True))
    tol = {None: 0.0, "uint16": 1e-4, "uint8": 0.02}[quant]
    assert worst <= tol
    x = torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(m(x), loaded(x), atol=0.05 if quant == "uint8" else 1e-4)


@pytest.mark.parametrize("x", [[0.0, 1e-44], [-1e-44, 1e-44], [1e-30, 1.0000001e-30]])
def test_quantizing_a_subnormal_range_is_finite(x: list[float]) -> None:
    """A range so small that its scale underflows float32 (hypothesis found [0, 1e-44])."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide by zero, no invalid cast
        q = quantize(np.array(x, np.float32), "uint8")
    assert q.values.min() == 0 and q.values.max() == 255
    assert np.all(np.isfinite(q.decode()))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.integers(1, 40),
              elements=st.floats(-10, 10, width=32, allow_nan=False)),
       st.sampled_from(["uint8", "uint16"]))
def test_quantization_error_and_exact_zero(x: np.ndarray, dtype: str) -> None:
    q = quantize(x, dtype)
    decoded = q.decode()
    if x.min() == x.max():
        assert np.all(q.values == 0) and q.scale == 1.0
        assert np.allclose(decoded, x)
        return
    assert np.abs(decoded - x).max() <= q.scale * 0.5 + 1e-5 * max(1, np.abs(x).max())
    if x.min() <= 0 <= x.max():
        zero_code = round(-q.minimum / q.scale)
        assert abs(zero_code * q.scale + q.minimum) < 1e-6 * max(1.0, q.scale)
