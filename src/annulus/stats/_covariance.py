"""Visit x visit covariance structures for the MMRM.

Each structure has two parameterisations:

* ``theta`` -- unconstrained, used by the optimiser (log standard deviations, correlations
  through tanh/logistic maps, a log-Cholesky factor for the unstructured matrix);
* ``phi`` -- the SAS PROC MIXED parameters (variances, covariances, correlations), used for the
  covariance of the covariance parameters, Satterthwaite and Kenward-Roger. Kenward-Roger's
  second-order term depends on the parameterisation, so SAS's is used to match its numbers.

All maps accept complex input so that derivatives can be taken by the complex step.

>>> s = STRUCTURES["ar1"]
>>> import numpy as np
>>> sigma = s.sigma(np.array([np.log(2.0), np.arctanh(0.5)]), 3)
>>> np.round(sigma.real, 3).tolist()
[[4.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 4.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

_H = 1e-20  # complex-step size: exact first derivatives without cancellation


def _lag(t: int) -> np.ndarray:
    idx = np.arange(t)
    return np.abs(idx[:, None] - idx[None, :])


def _logistic(z):
    return 1.0 / (1.0 + np.exp(-z))


def _cs_rho(z, t: int):
    # Compound-symmetry correlation must lie in (-1/(t-1), 1) for a positive-definite matrix.
    lo = -1.0 / (t - 1) if t > 1 else -1.0
    return lo + (1.0 - lo) * _logistic(z)


def _cs_rho_inv(rho: float, t: int) -> float:
    lo = -1.0 / (t - 1) if t > 1 else -1.0
    p = np.clip((rho - lo) / (1.0 - lo), 1e-6, 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def _toeplitz_acf(pacf) -> list:
    """Autocorrelations from partial autocorrelations (Durbin-Levinson); always positive definite."""
    r = []
    phi: list = []
    for k, p in enumerate(pacf, start=1):
        if k == 1:
            rk = p
            new = [p]
        else:
            s1 = sum(phi[j] * r[k - 2 - j] for j in range(k - 1))
            s2 = sum(phi[j] * r[j] for j in range(k - 1))
            rk = s1 + p * (1 - s2)
            new = [phi[j] - p * phi[k - 2 - j] for j in range(k - 1)] + [p]
        r.append(rk)
        phi = new
    return r


def _acf_to_pacf(acf: np.ndarray) -> np.ndarray:
    """Inverse of ``_toeplitz_acf`` (Durbin-Levinson recursion on autocorrelations)."""
    out = []
    phi: list = []
    r = list(acf)
    for k in range(1, len(r) + 1):
        if k == 1:
            p = r[0]
            new = [p]
        else:
            num = r[k - 1] - sum(phi[j] * r[k - 2 - j] for j in range(k - 1))
            den = 1 - sum(phi[j] * r[j] for j in range(k - 1))
            p = num / den
            new = [phi[j] - p * phi[k - 2 - j] for j in range(k - 1)] + [p]
        p = float(np.clip(p, -0.95, 0.95))
        out.append(p)
        phi = new
    return np.array(out)


@dataclass(frozen=True)
class Structure:
    name: str
    label: str
    n_theta: Callable[[int], int]
    sigma: Callable[[np.ndarray, int], np.ndarray]  # theta -> covariance
    start: Callable[[np.ndarray], np.ndarray]  # rough covariance -> theta
    phi_names: Callable[[list], list]
    phi_of: Callable[[np.ndarray], np.ndarray]  # covariance -> SAS parameters
    sigma_phi: Callable[[np.ndarray, int], np.ndarray]  # SAS parameters -> covariance
    dsigma: Callable[[np.ndarray, int], np.ndarray] | None = None  # analytic d Sigma / d theta

    def dsigma_dtheta(self, theta: np.ndarray, t: int) -> np.ndarray:
        if self.dsigma is not None:
            return self.dsigma(theta, t)
        return jacobian(lambda th: self.sigma(th, t), theta)


# --- unstructured ---------------------------------------------------------------------------

def _us_sigma(theta, t):
    dtype = complex if np.iscomplexobj(theta) else float
    low = np.zeros((t, t), dtype=dtype)
    low[np.diag_indices(t)] = np.exp(theta[:t])
    low[np.tril_indices(t, -1)] = theta[t:]
    return low @ low.T


def _us_dsigma(theta, t):
    """Analytic d Sigma / d theta for the log-Cholesky map (the hot path of the optimiser)."""
    low = np.zeros((t, t))
    low[np.diag_indices(t)] = np.exp(theta[:t])
    rows, cols = np.tril_indices(t, -1)
    low[rows, cols] = theta[t:]
    a = np.concatenate([np.arange(t), rows])  # row of L each parameter sits in
    b = np.concatenate([np.arange(t), cols])  # and its column
    scale = np.concatenate([np.exp(theta[:t]), np.ones(rows.size)])
    # dSigma = dL L' + L dL' with dL = scale * E_ab: row a gets L[:, b], column a gets it too.
    col = low[:, b].T * scale[:, None]  # (q, t)
    out = np.zeros((a.size, t, t))
    q = np.arange(a.size)
    out[q, a, :] += col
    out[q, :, a] += col
    return out


def _us_start(s):
    low = np.linalg.cholesky(s)
    t = s.shape[0]
    return np.concatenate([np.log(np.diag(low)), low[np.tril_indices(t, -1)]])


def _us_names(visits):
    t = len(visits)
    return [f"UN({i + 1},{j + 1})" for i in range(t) for j in range(i + 1)]


def _us_phi(s):
    t = s.shape[0]
    return np.array([s[i, j] for i in range(t) for j in range(i + 1)])


def _us_sigma_phi(phi, t):
    dtype = complex if np.iscomplexobj(phi) else float
    s = np.zeros((t, t), dtype=dtype)
    k = 0
    for i in range(t):
        for j in range(i + 1):
            s[i, j] = s[j, i] = phi[k]
            k += 1
    return s


# --- compound symmetry ----------------------------------------------------------------------

def _cs_sigma(theta, t):
    rho = _cs_rho(theta[1], t)
    corr = (1 - rho) * np.eye(t) + rho * np.ones((t, t))
    return np.exp(2 * theta[0]) * corr


def _mean_corr(s):
    sd = np.sqrt(np.diag(s))
    c = s / np.outer(sd, sd)
    t = s.shape[0]
    return float(c[np.triu_indices(t, 1)].mean()) if t > 1 else 0.0


def _cs_start(s):
    t = s.shape[0]
    return np.array([0.5 * np.log(np.mean(np.diag(s))), _cs_rho_inv(_mean_corr(s), t)])


def _cs_phi(s):
    t = s.shape[0]
    cs = s[np.triu_indices(t, 1)].mean() if t > 1 else 0.0
    return np.array([cs, np.mean(np.diag(s)) - cs])


def _cs_sigma_phi(phi, t):
    return phi[1] * np.eye(t) + phi[0] * np.ones((t, t))


# --- heterogeneous compound symmetry --------------------------------------------------------

def _csh_sigma(theta, t):
    sd = np.exp(theta[:t])
    rho = _cs_rho(theta[t], t)
    corr = (1 - rho) * np.eye(t) + rho * np.ones((t, t))
    return sd[:, None] * corr * sd[None, :]


def _csh_start(s):
    t = s.shape[0]
    return np.concatenate([0.5 * np.log(np.diag(s)), [_cs_rho_inv(_mean_corr(s), t)]])


def _het_names(kind):
    return lambda visits: [f"Var({i + 1})" for i in range(len(visits))] + [kind]


def _het_phi(s):
    d = np.diag(s)
    t = s.shape[0]
    rho = s[0, 1] / np.sqrt(d[0] * d[1]) if t > 1 else 0.0
    return np.concatenate([d, [rho]])


def _csh_sigma_phi(phi, t):
    sd = np.sqrt(phi[:t])
    corr = (1 - phi[t]) * np.eye(t) + phi[t] * np.ones((t, t))
    return sd[:, None] * corr * sd[None, :]


# --- first-order autoregressive -------------------------------------------------------------

def _ar_corr(rho, t):
    lag = _lag(t)
    out = np.ones((t, t), dtype=complex if np.iscomplexobj(rho) else float)
    for k in range(1, t):
        out[lag == k] = rho**k
    return out


def _ar1_sigma(theta, t):
    return np.exp(2 * theta[0]) * _ar_corr(np.tanh(theta[1]), t)


def _lag1_corr(s):
    sd = np.sqrt(np.diag(s))
    c = s / np.outer(sd, sd)
    return float(np.clip(np.mean(np.diag(c, 1)), -0.9, 0.9)) if s.shape[0] > 1 else 0.0


def _ar1_start(s):
    return np.array([0.5 * np.log(np.mean(np.diag(s))), np.arctanh(_lag1_corr(s))])


def _ar1_phi(s):
    return np.array([s[0, 1] / s[0, 0] if s.shape[0] > 1 else 0.0, s[0, 0]])


def _ar1_sigma_phi(phi, t):
    return phi[1] * _ar_corr(phi[0], t)


def _arh1_sigma(theta, t):
    sd = np.exp(theta[:t])
    return sd[:, None] * _ar_corr(np.tanh(theta[t]), t) * sd[None, :]


def _arh1_start(s):
    return np.concatenate([0.5 * np.log(np.diag(s)), [np.arctanh(_lag1_corr(s))]])


def _arh1_sigma_phi(phi, t):
    sd = np.sqrt(phi[:t])
    return sd[:, None] * _ar_corr(phi[t], t) * sd[None, :]


# --- Toeplitz -------------------------------------------------------------------------------

def _toep_sigma(theta, t):
    acf = _toeplitz_acf(list(np.tanh(theta[1:])))
    lag = _lag(t)
    corr = np.ones((t, t), dtype=complex if np.iscomplexobj(theta) else float)
    for k in range(1, t):
        corr[lag == k] = acf[k - 1]
    return np.exp(2 * theta[0]) * corr


def _toep_start(s):
    t = s.shape[0]
    sd = np.sqrt(np.diag(s))
    c = s / np.outer(sd, sd)
    acf = np.array([np.mean(np.diag(c, k)) for k in range(1, t)])
    pacf = _acf_to_pacf(acf) if t > 1 else np.array([])
    return np.concatenate([[0.5 * np.log(np.mean(np.diag(s)))], np.arctanh(pacf)])


def _toep_names(visits):
    return [f"TOEP({k + 1})" for k in range(1, len(visits))] + ["Residual"]


def _toep_phi(s):
    t = s.shape[0]
    return np.array([np.mean(np.diag(s, k)) for k in range(1, t)] + [np.mean(np.diag(s))])


def _toep_sigma_phi(phi, t):
    lag = _lag(t)
    out = np.zeros((t, t), dtype=complex if np.iscomplexobj(phi) else float)
    out[lag == 0] = phi[t - 1]
    for k in range(1, t):
        out[lag == k] = phi[k - 1]
    return out


STRUCTURES: dict[str, Structure] = {
    "us": Structure("us", "unstructured", lambda t: t * (t + 1) // 2, _us_sigma, _us_start,
                    _us_names, _us_phi, _us_sigma_phi, _us_dsigma),
    "cs": Structure("cs", "compound symmetry", lambda t: 2, _cs_sigma, _cs_start,
                    lambda v: ["CS", "Residual"], _cs_phi, _cs_sigma_phi),
    "csh": Structure("csh", "heterogeneous compound symmetry", lambda t: t + 1, _csh_sigma,
                     _csh_start, _het_names("CSH"), _het_phi, _csh_sigma_phi),
    "ar1": Structure("ar1", "first-order autoregressive", lambda t: 2, _ar1_sigma, _ar1_start,
                     lambda v: ["AR(1)", "Residual"], _ar1_phi, _ar1_sigma_phi),
    "arh1": Structure("arh1", "heterogeneous first-order autoregressive", lambda t: t + 1,
                      _arh1_sigma, _arh1_start, _het_names("ARH(1)"), _het_phi, _arh1_sigma_phi),
    "toep": Structure("toep", "Toeplitz", lambda t: t, _toep_sigma, _toep_start, _toep_names,
                      _toep_phi, _toep_sigma_phi),
}


def jacobian(fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """d fun / d x as an array (len(x), *fun(x).shape), by the complex step."""
    x = np.asarray(x, dtype=float)
    out = []
    for k in range(x.size):
        xc = x.astype(complex)
        xc[k] += 1j * _H
        out.append(np.imag(fun(xc)) / _H)
    return np.array(out)


def hessian_of_map(fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Second derivatives (len(x), len(x), *shape): central differences of the complex-step
    Jacobian. Zero (to rounding) for maps that are linear in x."""
    x = np.asarray(x, dtype=float)
    q = x.size
    first = jacobian(fun, x)
    out = np.zeros((q,) + first.shape)
    for j in range(q):
        h = 1e-5 * max(1.0, abs(x[j]))
        xp = x.copy()
        xp[j] += h
        xm = x.copy()
        xm[j] -= h
        out[:, j] = (jacobian(fun, xp) - jacobian(fun, xm)) / (2 * h)
    return 0.5 * (out + out.transpose((1, 0) + tuple(range(2, out.ndim))))
