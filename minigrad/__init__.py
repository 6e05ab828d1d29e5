"""minigrad: a readable reverse-mode autograd engine on NumPy (CPU) and CuPy (GPU).

    import minigrad
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad  # tensor([2., 4.])
"""
from .tensor import (Device, Tensor, bool_, float16, float32, float64, get_default_dtype, int32, int64,
                     set_default_dtype)  # first: the ops below build on Tensor
from . import cuda  # noqa: F401
from .autograd import (Function, enable_grad, grad, inference_mode, is_grad_enabled, is_inference_mode_enabled,
                       is_reference_mode, no_grad, set_grad_enabled, set_reference_mode)
from .backend import (get_default_device, get_num_threads, get_rng_state, manual_seed, set_default_device,
                      set_num_threads, set_rng_state, tune_cpu)
from .creation import (arange, empty_param, eye, from_numpy, full, full_like, linspace, multinomial, ones, ones_like,
                       rand, randint, randn, tensor, zeros, zeros_like)
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .ops import *  # noqa: F401,F403  (every op is also a function: minigrad.sum(x, dim=1))
from .ops import abs, all, any, max, min, pow, sum  # noqa: F401  (shadow the builtins on purpose)
from . import functional  # noqa: F401,E402
from . import viz  # noqa: F401,E402  (minigrad.viz.to_dot / render: draw a graph)
from . import optim  # noqa: F401,E402
from . import utils  # noqa: F401,E402  (minigrad.utils.data: Dataset, DataLoader)
from . import distributed  # noqa: F401,E402  (imports no MPI until init_process_group)
from .serialization import CheckpointError, load, save  # noqa: F401,E402

bool = bool_  # noqa: A001  (minigrad.bool, like torch.bool)
__version__ = "0.1.0"
