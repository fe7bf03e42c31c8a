"""The face-api.js browser nets in PyTorch, their init, and tfjs-style weight files."""

from diag.model.layers import Conv, DenseBlock, SeparableConv, tf_same_pad
from diag.model.nets import (
    REFERENCE_NETS,
    BrowserNet,
    FeatureExtractor,
    NetInfo,
    expression_net,
    glorot_init_,
    landmark_net,
    tiny_classifier,
    tiny_extractor,
    tiny_landmark_net,
)

__all__ = [
    "REFERENCE_NETS",
    "BrowserNet",
    "Conv",
    "DenseBlock",
    "FeatureExtractor",
    "NetInfo",
    "SeparableConv",
    "expression_net",
    "glorot_init_",
    "landmark_net",
    "tf_same_pad",
    "tiny_classifier",
    "tiny_extractor",
    "tiny_landmark_net",
]
