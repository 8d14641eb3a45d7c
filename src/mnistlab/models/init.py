"""Weight initialisation schemes of the TF tutorials, for linear and conv layers."""

from torch import nn


def init_weights(net: nn.Module, scheme: str, std: float, bias: float) -> None:
    """default: PyTorch's own; normal / trunc_normal (cut at 2 std, as TF's truncated_normal)."""
    if scheme == "default":
        return
    for layer in net.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            if scheme == "normal":
                nn.init.normal_(layer.weight, std=std)
            else:
                nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            if layer.bias is not None:
                nn.init.constant_(layer.bias, bias)
