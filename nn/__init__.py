"""nn: layers built on minigrad, with PyTorch's names, layouts and defaults."""
from . import init  # noqa: F401
from . import parallel  # noqa: F401  (nn.parallel.DistributedDataParallel)
from . import utils  # noqa: F401
from .containers import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .layers import (GELU, Dropout, Embedding, Identity, LayerNorm, Linear, MultiheadAttention, ReLU, RMSNorm,
                     Sigmoid, SiLU, Softmax, Tanh)
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, KLDivLoss, L1Loss, MSELoss, NLLLoss
from .module import Module, Parameter
