"""lsejax: a hand-written custom_vjp logsumexp for JAX and the log-linear models built on it."""

from lsejax._check import GradientCheck as GradientCheck
from lsejax._check import check_gradients as check_gradients
from lsejax._data import ChoiceData as ChoiceData
from lsejax._data import DataError as DataError
from lsejax._data import Specification as Specification
from lsejax._data import embedded_path as embedded_path
from lsejax._data import read_long_csv as read_long_csv
from lsejax._data import travel_mode as travel_mode
from lsejax._fit import FitResult as FitResult
from lsejax._fit import fit as fit
from lsejax._fit import fit_function as fit_function
from lsejax._inference import Inference as Inference
from lsejax._inference import log_linear_inference as log_linear_inference
from lsejax._inference import log_linear_information as log_linear_information
from lsejax._logsumexp import forward_mode as forward_mode
from lsejax._logsumexp import logsumexp as logsumexp
from lsejax._losses import log_linear_nll as log_linear_nll
from lsejax._losses import softmax_cross_entropy as softmax_cross_entropy
from lsejax._losses import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from lsejax._softmax import log_softmax as log_softmax
from lsejax._softmax import softmax as softmax

__all__ = [
    "ChoiceData",
    "DataError",
    "FitResult",
    "GradientCheck",
    "Inference",
    "Specification",
    "check_gradients",
    "embedded_path",
    "fit",
    "fit_function",
    "forward_mode",
    "log_linear_inference",
    "log_linear_information",
    "log_linear_nll",
    "log_softmax",
    "logsumexp",
    "read_long_csv",
    "softmax",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "travel_mode",
]
__version__ = "0.1.0"
