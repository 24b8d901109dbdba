"""Autoencoder families. One module per family, all registered in `registry`."""

from kerasae.models.base import Autoencoder
from kerasae.models.conv import ConvAE, DenoisingConvAE
from kerasae.models.registry import build, get_builder, list_builders, register_builder
from kerasae.models.stacked import (
    DenoisingStackedAE,
    SparseStackedAE,
    StackedAE,
    pretrain_layerwise,
)
from kerasae.models.variational import ConvVAE, DenseVAE

__all__ = [
    "Autoencoder", "ConvAE", "ConvVAE", "DenoisingConvAE", "DenoisingStackedAE",
    "DenseVAE", "SparseStackedAE", "StackedAE", "build", "get_builder",
    "list_builders", "pretrain_layerwise", "register_builder",
]
