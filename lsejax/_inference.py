"""Inference for the log-linear model: the closed-form information matrix and what follows.

For ``log p(j | θ) = θ·x_j − log Σ_k exp(θ·x_k)`` the Hessian of the negative log-likelihood
needs no autodiff: it is the covariance of the features under the model,

    I(θ) = Σ_n Cov_p[x_n] = Σ_n Σ_j p_nj (x_nj − x̄_n)(x_nj − x̄_n)ᵀ,   x̄_n = E_p[x_n],

which is also the Fisher information (it does not depend on the observed choices).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import erfc
from jax.typing import ArrayLike

from lsejax import _args
from lsejax._losses import log_linear_nll
from lsejax._softmax import softmax


class Inference(NamedTuple):
  """Estimates with their standard errors, t-statistics, p-values and fit statistics."""

  estimate: jax.Array  # [k]
  std_err: jax.Array  # [k], sqrt(diag(I⁻¹))
  t: jax.Array  # [k], estimate / std_err
  p: jax.Array  # [k], two-sided normal p-value
  log_likelihood: jax.Array  # Σ_n log p(chosen_n | θ)
  null_log_likelihood: jax.Array  # the same at θ = 0: −Σ_n log(#available_n)
  rho2: jax.Array  # McFadden's ρ² = 1 − LL / LL0
  information: jax.Array  # [k, k]


def log_linear_information(theta: ArrayLike, features: ArrayLike,
                           where: ArrayLike | None = None) -> jax.Array:
  r"""The information matrix ``Σ_n Cov_p[x_n]`` of the log-linear model, in closed form.

  .. math::
    I(\theta) = \sum_n \sum_j p_{nj} (x_{nj} - \bar x_n)(x_{nj} - \bar x_n)^\top

  Args:
    theta: coefficients ``[k]``.
    features: ``[..., num_alternatives, k]``.
    where: optional availability mask ``[..., num_alternatives]``.

  Returns:
    The ``[k, k]`` matrix, equal to the Hessian of the summed negative log-likelihood.

  Examples:
    >>> import jax.numpy as jnp, lsejax
    >>> x = jnp.array([[[1.0], [0.0]]])
    >>> print(lsejax.log_linear_information(jnp.array([0.0]), x).tolist())
    [[0.25]]
  """
  theta = _args.as_array(theta, "theta")
  features = _args.as_array(features, "features")
  if theta.ndim != 1 or features.ndim < 2 or features.shape[-1] != theta.shape[0]:
    raise ValueError(f"features of shape {features.shape} must be [..., num_alternatives, k] "
                     f"with k the length of theta (shape {theta.shape})")
  if where is not None:
    where = _args.where_mask(where, features.shape[:-1])
    features = jnp.where(where[..., None], features, 0)
  p = softmax(jnp.einsum("...ak,k->...a", features, theta), axis=-1, where=where)
  centred = features - jnp.einsum("...a,...ak->...k", p, features)[..., None, :]
  return jnp.einsum("...a,...ak,...al->kl", p, centred, centred)


def log_linear_inference(theta: ArrayLike, features: ArrayLike, chosen: ArrayLike,
                         where: ArrayLike | None = None) -> Inference:
  """Standard errors, t-statistics, p-values, log-likelihoods and ρ² at the estimate ``theta``.

  Args:
    theta: the maximum-likelihood estimate ``[k]``.
    features: ``[cases, num_alternatives, k]``.
    chosen: ``[cases]`` chosen indices.
    where: optional availability mask ``[cases, num_alternatives]``.

  Returns:
    An :class:`Inference`. Standard errors, t and p are NaN when the information matrix is
    singular (a parameter is not identified, e.g. two collinear columns).

  Examples:
    >>> import jax.numpy as jnp, lsejax
    >>> x = jnp.array([[[1.0], [0.0]], [[0.0], [1.0]], [[1.0], [0.0]]])
    >>> res = lsejax.log_linear_inference(jnp.array([0.0]), x, jnp.array([0, 0, 0]))
    >>> print(f"{res.std_err[0]:.4f} {res.null_log_likelihood:.4f}")
    1.1547 -2.0794
  """
  theta = _args.as_array(theta, "theta")
  features = _args.as_array(features, "features")
  information = log_linear_information(theta, features, where)
  # A singular information matrix means a parameter is not identified (collinear columns): its
  # inverse would give inf or arbitrary huge standard errors, so say NaN instead.
  eigenvalues = jnp.linalg.eigvalsh(information)
  eps = jnp.finfo(information.dtype).eps
  singular = eigenvalues[0] <= eigenvalues[-1] * information.shape[0] * eps * 10
  covariance = jnp.linalg.inv(information)
  std_err = jnp.where(singular, jnp.nan, jnp.sqrt(jnp.diag(covariance)))
  t = theta / std_err
  log_likelihood = -jnp.sum(log_linear_nll(theta, features, chosen, where))
  available = features.shape[-2] if where is None else jnp.sum(
      _args.where_mask(where, features.shape[:-1]), axis=-1)
  null = -jnp.sum(jnp.log(jnp.broadcast_to(available, features.shape[:-2]).astype(theta.dtype)))
  return Inference(theta, std_err, t, erfc(jnp.abs(t) / jnp.sqrt(2.0)), log_likelihood, null,
                   1.0 - log_likelihood / null, information)
