"""lsejax: a hand-written custom_vjp logsumexp for JAX and the log-linear models built on it."""

from lsejax._logsumexp import forward_mode as forward_mode
from lsejax._logsumexp import logsumexp as logsumexp
from lsejax._softmax import log_softmax as log_softmax
from lsejax._softmax import softmax as softmax

__all__ = ["forward_mode", "log_softmax", "logsumexp", "softmax"]
__version__ = "0.1.0"
