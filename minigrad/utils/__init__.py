"""Helpers around the engine, named as in torch.utils (minigrad.utils.data: datasets and loaders)."""
from . import data  # noqa: F401
