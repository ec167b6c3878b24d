"""Folding inference-mode BatchNorm into the convolution before it.

A BatchNorm in eval mode is the per-channel affine map ``y = (x - mean) * g / sqrt(var + eps) + b``;
after a convolution (weight ``W``: (C_out, C_in / groups, kh, kw), bias ``c``) it can be folded into
the convolution: ``W' = W * s[:, None, None, None]``, ``c' = (c - mean) * s + b`` with
``s = g / sqrt(var + eps)``. The folded model computes the same function with one pass less over
every feature map.

:func:`fuse_conv_bn` finds the pairs in three forms:

- Detectron2's ``Conv2d`` with a BatchNorm (any ``_BatchNorm`` or ``FrozenBatchNorm2d``) as
``norm``;
- ``nn.Sequential`` children ``[conv, bn]`` next to each other;
- modules that name their pairs in a ``conv_bn_pairs`` attribute: tuples ``(conv_name, bn_name)`` of
  attribute names, for blocks whose forward calls ``bn(conv(x))`` on separate attributes.

The BatchNorm is replaced by ``nn.Identity`` (or ``norm = None``). Convolutions here are any module
with a 4-D ``weight``: ``nn.Conv2d``, ``nn.ConvTranspose2d`` and the deformable convs of this
package.
"""

from typing import Optional

import torch
from detectron2.layers import Conv2d, FrozenBatchNorm2d
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvTransposeNd

__all__ = ["fold_bn_into_conv", "fuse_conv_bn"]


def _is_bn(module: Optional[nn.Module]) -> bool:
    return isinstance(module, (_BatchNorm, FrozenBatchNorm2d))


def _is_conv(module: Optional[nn.Module]) -> bool:
    weight = getattr(module, "weight", None)
    return isinstance(weight, torch.Tensor) and weight.dim() == 4


@torch.no_grad()
def fold_bn_into_conv(conv: nn.Module, bn: nn.Module) -> None:
    """Fold ``bn`` (eval statistics, C_out channels) into ``conv`` in place: weight (C_out, ...) or,
    for a transposed convolution (groups = 1), (C_in, C_out, kh, kw)."""
    weight = conv.weight
    transposed = isinstance(conv, _ConvTransposeNd)
    out_channels = weight.shape[1] * conv.groups if transposed else weight.shape[0]
    if bn.running_mean.numel() != out_channels or (transposed and conv.groups != 1):
        raise ValueError(
            f"Cannot fold {type(bn).__name__}({bn.running_mean.numel()}) into "
            f"{type(conv).__name__} with {out_channels} output channels"
        )
    gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    weight.mul_(scale.reshape(1, -1, 1, 1) if transposed else scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + beta)


def fuse_conv_bn(model: nn.Module) -> int:
    """Fold every BatchNorm that directly follows a convolution into it; returns how many were
    folded.

    Only for inference: the model must be in eval mode (training-mode BatchNorm uses batch
    statistics, which cannot be folded).
    """
    if model.training:
        raise ValueError("fuse_conv_bn needs a model in eval mode (call model.eval() first)")
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, Conv2d) and _is_bn(module.norm):
            fold_bn_into_conv(module, module.norm)
            module.norm = None
            folded += 1
        elif isinstance(module, nn.Sequential):
            children = list(module._modules.items())
            for (_, conv), (bn_name, bn) in zip(children, children[1:]):
                if _is_conv(conv) and not isinstance(conv, Conv2d) and _is_bn(bn):
                    fold_bn_into_conv(conv, bn)
                    module._modules[bn_name] = nn.Identity()
                    folded += 1
        for conv_name, bn_name in getattr(module, "conv_bn_pairs", ()):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            if _is_conv(conv) and _is_bn(bn):
                fold_bn_into_conv(conv, bn)
                setattr(module, bn_name, nn.Identity())
                folded += 1
    return folded
