"""nn: layers built on minigrad, with PyTorch's names, layouts and defaults."""
from . import init  # noqa: F401
from . import utils  # noqa: F401
from .containers import ModuleDict, ModuleList, Sequential
from .layers import GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from .loss import CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, Parameter
