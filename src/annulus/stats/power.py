"""Power by simulation under the protocol's assumptions.

Each simulated trial has ``groups`` arms (a control and ``groups - 1`` doses) of ``per_group``
subjects, a baseline and ``visits`` post-baseline measurements. Every measurement has SD ``sd``
(10.27 mm: the SD of one VAS measurement) and any two measurements of a subject are correlated
``rho`` (compound symmetry), so the change from baseline has SD ``sd * sqrt(2 (1 - rho))`` — equal
to ``sd`` when ``rho = 0.5``. A dose lowers the mean by its ``effect`` at every post-baseline visit.
A fraction ``dropout`` of the subjects leave the trial, each after a visit drawn at random, and
have no data from then on (monotone, missing completely at random).

Two analyses of the last visit are counted as successes when two-sided p < alpha:

* the t test of the change from baseline, dose vs control, in the subjects still in the trial;
* the MMRM contrast (change ~ baseline + arm * visit, unstructured covariance, REML,
  Satterthwaite) which also uses the earlier visits of subjects who dropped out.

Simulated trial ``i`` draws its numbers from its own generator, seeded by the master seed and
``i`` (``trial_rng``), so a seed gives the same trials, and the same power, whatever the number of
processes (``jobs``) that share the work. The MMRM of every trial is the model of
``annulus.stats.mmrm.fit_mmrm`` (same likelihood, starting values, optimiser, Newton polish,
Hessian and Satterthwaite df), fitted by ``_TrialMmrm``, which works out once per design what does
not change between trials: the design matrix (only the baseline column changes), the contrasts of
the last visit, the covariance derivatives, and which blocks of the visit covariance the
monotone missing-data patterns use (the inverse of every leading block of the covariance comes
from one Cholesky factor). ``tests/test_stats_power_speed.py`` checks it against ``fit_mmrm``.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dtrtri as _trtri

from annulus.stats._io import InputError, check_positive, check_probability
from annulus.stats.samplesize import power_t

PROTOCOL = {"sd": 10.27, "dropout": 0.2, "groups": 4, "visits": 7, "rho": 0.5}
BASELINE_MEAN = 65.0  # mm; only shifts all values, so it does not affect power
FORMULA = "change ~ baseline + arm * visit"  # the MMRM of every simulated trial


def arm_labels(groups: int) -> list[str]:
    return ["control"] + [f"dose{i}" for i in range(1, groups)]


def trial_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of simulated trial ``index`` (0, 1, ...) under the master ``seed``.

    Every trial has its own stream (``SeedSequence(seed, spawn_key=(index,))``), so which process
    simulates which trial, and in which order, does not change the trial.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def _draw(rng, per_group, effects, sd, rho, dropout, visits) -> tuple[np.ndarray, np.ndarray]:
    """The numbers of one trial: ``y`` (subjects x (1 + visits), baseline first) and the last
    visit each subject attends (``visits`` for a completer)."""
    shift = np.repeat(np.r_[0.0, np.asarray(effects, dtype=float)], per_group)
    n = len(shift)
    # Compound symmetry: a shared subject effect plus independent noise per measurement.
    subject_effect = rng.normal(0, sd * math.sqrt(rho), size=(n, 1))
    noise = rng.normal(0, sd * math.sqrt(1 - rho), size=(n, visits + 1))
    y = BASELINE_MEAN + subject_effect + noise
    y[:, 1:] -= shift[:, None]
    # Dropouts leave after a random visit 1..visits-1, so they miss the last visit at least.
    leaves = rng.random(n) < dropout
    last_seen = np.where(leaves, rng.integers(1, visits, size=n) if visits > 1 else 0, visits)
    return y, last_seen


def simulate_trial(
    rng: np.random.Generator,
    per_group: int,
    effects: Sequence[float],
    sd: float = PROTOCOL["sd"],
    rho: float = PROTOCOL["rho"],
    dropout: float = PROTOCOL["dropout"],
    visits: int = PROTOCOL["visits"],
) -> pd.DataFrame:
    """One simulated trial as a long table: subject, arm, visit (``V1``…), value, baseline, change.

    ``effects`` holds one mean reduction per dose (the control has none). Rows after a subject's
    dropout are absent.
    """
    arms = arm_labels(len(effects) + 1)
    y, last_seen = _draw(rng, per_group, effects, sd, rho, dropout, visits)
    n = len(y)
    subject = np.repeat(np.arange(n), visits)
    visit = np.tile(np.arange(1, visits + 1), n)
    keep = visit <= np.repeat(last_seen, visits)
    width = len(str(visits))
    frame = pd.DataFrame({
        "subject": [f"S{s + 1:04d}" for s in subject[keep]],
        "arm": np.repeat(np.array(arms), per_group)[subject[keep]],
        "visit": [f"V{v:0{width}d}" for v in visit[keep]],
        "value": y[:, 1:].ravel()[keep],
        "baseline": y[subject[keep], 0],
    })
    frame["change"] = frame["value"] - frame["baseline"]
    return frame


def analytic_t_power(
    per_group: int,
    effect: float,
    sd: float = PROTOCOL["sd"],
    rho: float = PROTOCOL["rho"],
    dropout: float = PROTOCOL["dropout"],
    alpha: float = 0.05,
) -> float:
    """Expected power of the last-visit t test on the change, averaging over the number of
    completers in each arm (binomial with probability ``1 - dropout``)."""
    sd_change = sd * math.sqrt(2 * (1 - rho))
    if dropout == 0:
        return power_t(per_group, effect, sd_change, alpha)
    k = np.arange(per_group + 1)
    w = stats.binom.pmf(k, per_group, 1 - dropout)
    total = 0.0
    for i in range(2, per_group + 1):
        for j in range(2, per_group + 1):
            total += w[i] * w[j] * power_t(i, effect, sd_change, alpha, n2=j)
    return float(total)


def _mmrm_fitter() -> tuple[Callable | None, type[Exception] | tuple, str | None]:
    try:
        from annulus.stats.mmrm import MmrmError, fit_mmrm
    except ImportError as exc:
        return None, (), f"MMRM not available ({exc}); only the t test was simulated"
    return fit_mmrm, MmrmError, None


# --------------------------------------------------------------------------------------------
# The MMRM of one simulated trial, with what does not change between trials computed once
# --------------------------------------------------------------------------------------------


class _FitFailed(Exception):
    """The fit that ``fit_mmrm`` would refuse (singular design, no convergence, ...)."""


class _TrialMmrm:
    """``fit_mmrm(trial, FORMULA, subject="subject", visit="visit", cov="us")`` and its last-visit
    contrasts, for trials of one design drawn by ``_draw``.

    Built once per design: the design matrix of a complete trial, in ``fit_mmrm``'s row and
    column order (only its baseline column changes from trial to trial; a dropout removes rows),
    the rows of the last-visit contrasts, d Sigma / d phi (constant for the unstructured
    covariance) and work arrays (overwritten by the next trial). Per trial, the sufficient
    statistics of each missing-data pattern are packed into three matrices, so that a likelihood
    evaluation is a few matrix-vector products. Dropout is monotone, so every pattern is the
    first m visits, whose inverse covariance is the sum of the first m outer products of the
    rows of L^-1 (Sigma = L L'): one Cholesky factor serves every pattern.
    Everything else (starting values, BFGS, Newton polish, finite-difference Hessian,
    Satterthwaite df, not-estimable rules) is ``fit_mmrm``'s, on the same numbers.
    """

    def __init__(self, per_group: int, effects: Sequence[float], sd: float, rho: float,
                 visits: int):
        from annulus.stats import mmrm
        from annulus.stats._covariance import STRUCTURES, jacobian

        self._mmrm = mmrm
        groups = len(effects) + 1
        n, t = per_group * groups, visits
        # The design of a complete trial, exactly as fit_mmrm builds it (formula, factor coding,
        # column order, rows sorted by subject label then visit).
        template = simulate_trial(np.random.default_rng(0), per_group, effects, sd, rho, 0.0,
                                  visits)
        design = mmrm._prepare(template, FORMULA, "subject", "visit", None)
        k = len(design.columns)
        if design.X.shape != (n * t, k) or not np.array_equal(
                design.visit_idx, np.tile(np.arange(t), n)):
            raise RuntimeError("unexpected layout of the simulated trial's design")
        self.x3 = np.ascontiguousarray(design.X.reshape(n, t, k))
        labels = design.used[design.subject].to_numpy()[::t]
        self.order = np.array([int(s[1:]) - 1 for s in labels])  # row block -> simulated subject
        self.bcol = design.columns.index("baseline")
        self.columns = list(design.columns)
        self.visits = list(design.visits)
        self.n, self.t, self.k = n, t, k
        # Rows of L beta = dose - control at the last visit, from fit_mmrm's own LS-means grid.
        # (_contrast_matrix reads only the design: no fit is needed)
        shell = object.__new__(mmrm.MmrmResult)
        shell._design = design
        pairs, _, lmat = shell._contrast_matrix("arm", "control", "visit")
        row_of = {(a, b): i for i, (a, b) in enumerate(pairs)}
        self.lmat = lmat[[row_of[(d, self.visits[-1])] for d in arm_labels(groups)[1:]]]
        if np.any(self.lmat[:, self.bcol] != 0):
            raise RuntimeError("a last-visit contrast depends on the baseline")
        self.struct = STRUCTURES["us"]
        self.tril = np.tril_indices(t)  # SAS UN(i,j) order, as _covariance._us_phi
        self.tril_strict = np.tril_indices(t, -1)
        self.dsig_phi = jacobian(lambda p: self.struct.sigma_phi(p, t),
                                 self.struct.phi_of(np.eye(t)))  # exact: the map is linear
        # theta -> L: d(-2l)/d theta_q = 2 s_q (G L)[a_q, b_q] for the log-Cholesky map
        self.theta_rows = np.concatenate([np.arange(t), self.tril_strict[0]])
        self.theta_cols = np.concatenate([np.arange(t), self.tril_strict[1]])
        # (k, l) with k <= l: X'V^-1X is symmetric, so half of each k x k block is stored
        self.iu = np.triu_indices(k)
        self.wu = np.where(self.iu[0] == self.iu[1], 1.0, 2.0)
        self.upper = self.iu[0] * k + self.iu[1]  # flat positions of (k, l), k <= l
        pos = np.zeros((k, k), dtype=int)
        pos[self.iu] = np.arange(len(self.iu[0]))
        self.sym = np.maximum(pos, pos.T)  # (k, l) -> position of (min, max)
        # For a pattern of m visits, its m x m block in flat (t x t) and packed (m x m) order.
        self.block = {m: (np.arange(m)[:, None] * t + np.arange(m)[None, :]).ravel()
                      for m in range(1, t + 1)}
        self.block_t = {m: (np.arange(m)[None, :] * m + np.arange(m)[:, None]).ravel()
                        for m in range(1, t + 1)}
        size = sum(m * m for m in range(1, t + 1))
        self._mxx = np.empty((size, len(self.iu[0])))
        self._mxy = np.empty((size, k))
        self._myy = np.empty(size)
        self._visit = np.arange(t)

    def __getstate__(self) -> dict:  # sent to worker processes: no module, no lambdas
        state = dict(self.__dict__)
        del state["_mmrm"], state["struct"]
        return state

    def __setstate__(self, state: dict) -> None:
        from annulus.stats import mmrm
        from annulus.stats._covariance import STRUCTURES

        self.__dict__.update(state)
        self._mmrm, self.struct = mmrm, STRUCTURES["us"]

    # -- per trial ----------------------------------------------------------------------------

    def _patterns(self, x3: np.ndarray, change: np.ndarray, seen: np.ndarray) -> SimpleNamespace:
        """Packed sufficient statistics of the patterns (first m visits) in ascending m, as
        ``mmrm._patterns`` orders them."""
        t, k = self.t, self.k
        ms, counts = np.unique(seen, return_counts=True)
        pack, flat, trans = [], [], []
        pos = 0
        for p, m in enumerate(ms):
            members = np.flatnonzero(seen == m)
            xf = x3[members, :m, :].reshape(len(members), m * k)
            yf = change[members, :m]
            mxx = (xf.T @ xf).reshape(m, k, m, k).transpose(0, 2, 1, 3)
            size = m * m
            self._mxx[pos:pos + size] = mxx[:, :, self.iu[0], self.iu[1]].reshape(size, -1)
            self._mxy[pos:pos + size] = (xf.T @ yf).reshape(m, k, m).transpose(0, 2, 1) \
                .reshape(size, k)
            self._myy[pos:pos + size] = (yf.T @ yf).ravel()
            flat.append(p * t * t + self.block[m])
            pack.append((m - 1) * t * t + self.block[m])
            trans.append(pos + self.block_t[m])
            pos += size
        seen_at = np.array([(seen > r).sum() for r in range(t)], dtype=float)
        return SimpleNamespace(
            ms=ms, counts=counts.astype(float), n_obs=int(seen.sum()), n_at=seen_at,
            mxx=self._mxx[:pos], mxy=self._mxy[:pos], myy=self._myy[:pos],
            flat=np.concatenate(flat), gather=np.concatenate(pack),
            trans=np.concatenate(trans), n_pat=len(ms))

    def _evaluate(self, st, sigma, want_grad=True):
        """``mmrm._evaluate`` for monotone patterns: (-2 REML log-likelihood, G, beta, X'V^-1X,
        S^-1 of each pattern padded to t x t). LAPACK is called directly: with matrices this
        small, NumPy's checks and wrappers cost more than the arithmetic."""
        low, info = _potrf(sigma, lower=1, clean=1)
        diag = low.diagonal()
        if info != 0 or not diag.min() > 0 or not np.isfinite(diag.sum()):
            raise self._mmrm._NotPositiveDefinite
        linv, info = _trtri(low, lower=1)
        if info != 0:
            raise self._mmrm._NotPositiveDefinite
        # cum[m - 1] = inverse of the covariance of the first m visits (zero elsewhere)
        cum = np.cumsum(linv[:, :, None] * linv[:, None, :], axis=0)
        s = cum.reshape(-1)[st.gather]
        xtvx = (s @ st.mxx)[self.sym]
        xtvy = s @ st.mxy
        yvy = float(s @ st.myy)
        logdet = 2.0 * float(np.log(diag) @ st.n_at)
        lx, info = _potrf(xtvx, lower=1, clean=1)
        lx_diag = lx.diagonal()
        if info != 0 or not lx_diag.min() > 0:
            raise self._mmrm._NotPositiveDefinite
        lx_inv, _ = _trtri(lx, lower=1)
        beta = lx_inv.T @ (lx_inv @ xtvy)
        rss = yvy - beta @ xtvy
        logdet_x = 2.0 * np.log(lx_diag).sum()
        value = (st.n_obs - self.k) * self._mmrm._LOG2PI + logdet + logdet_x + rss
        sinv = cum[st.ms - 1]
        if not want_grad:
            return value, None, beta, xtvx, sinv
        t = self.t
        h = lx_inv.T @ lx_inv
        xyb = st.mxy @ beta
        # sum_i r_i r_i' + sum_i X_i H X_i' of each pattern, packed
        rr = st.myy - xyb - xyb[st.trans] + st.mxx @ (
            (np.outer(beta, beta) + h).reshape(-1)[self.upper] * self.wu)
        full = np.zeros(st.n_pat * t * t)
        full[st.flat] = rr
        full = full.reshape(st.n_pat, t, t)
        inner = st.counts[:, None, None] * sinv - sinv @ full @ sinv
        grad = inner.sum(axis=0)
        return value, 0.5 * (grad + grad.T), beta, xtvx, sinv

    def _evaluate_many(self, st, sigmas):
        """``_evaluate`` at a stack of covariance matrices (B x t x t) at once: (values, G,
        bad), with bad marking the matrices that are not positive definite (value inf, G 0).
        The 2q gradients of a finite-difference Hessian are one such stack."""
        t, k = self.t, self.k
        b = len(sigmas)
        try:
            low = np.linalg.cholesky(sigmas)
            diag = np.diagonal(low, axis1=1, axis2=2)
            if not (diag.min() > 0 and np.isfinite(diag.sum())):
                raise np.linalg.LinAlgError
            linv = np.linalg.inv(low)
            cum = np.cumsum(linv[:, :, :, None] * linv[:, :, None, :], axis=1)
            s = cum.reshape(b, -1)[:, st.gather]
            xtvx = (s @ st.mxx)[:, self.sym]
            lx = np.linalg.cholesky(xtvx)
            lx_diag = np.diagonal(lx, axis1=1, axis2=2)
            if not lx_diag.min() > 0:
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:  # some are not positive definite: one by one
            values, grads = np.full(b, np.inf), np.zeros((b, t, t))
            bad = np.ones(b, dtype=bool)
            for i, sigma in enumerate(sigmas):
                with contextlib.suppress(self._mmrm._NotPositiveDefinite):
                    values[i], grads[i], *_ = self._evaluate(st, sigma)
                    bad[i] = False
            return values, grads, bad
        xtvy = s @ st.mxy
        lx_inv = np.linalg.inv(lx)
        beta = np.einsum("bji,bj->bi", lx_inv, np.einsum("bij,bj->bi", lx_inv, xtvy))
        rss = s @ st.myy - (beta * xtvy).sum(axis=1)
        values = ((st.n_obs - k) * self._mmrm._LOG2PI + 2.0 * np.log(diag) @ st.n_at
                  + 2.0 * np.log(lx_diag).sum(axis=1) + rss)
        h = lx_inv.transpose(0, 2, 1) @ lx_inv
        xyb = beta @ st.mxy.T
        m = (beta[:, :, None] * beta[:, None, :] + h).reshape(b, -1)[:, self.upper]
        rr = st.myy - xyb - xyb[:, st.trans] + (m * self.wu) @ st.mxx.T
        full = np.zeros((b, st.n_pat * t * t))
        full[:, st.flat] = rr
        full = full.reshape(b, st.n_pat, t, t)
        sinv = cum[:, st.ms - 1]
        grads = (st.counts[:, None, None] * sinv - sinv @ full @ sinv).sum(axis=1)
        grads = 0.5 * (grads + grads.transpose(0, 2, 1))
        bad = ~np.isfinite(values)
        values[bad], grads[bad] = np.inf, 0.0
        return values, grads, bad

    def _fd_hessian(self, grad_many, x):
        """``mmrm._fd_jacobian`` of a gradient (same steps and formula), its 2q evaluations
        done as one stack."""
        x = np.asarray(x, float)
        h = 1e-5 * np.maximum(1.0, np.abs(x))
        steps = np.diag(h)
        g = grad_many(np.concatenate([x + steps, x - steps]))
        jac = ((g[:x.size] - g[x.size:]) / (2 * h[:, None])).T
        return 0.5 * (jac + jac.T)

    def _sigma_theta_many(self, thetas):
        t = self.t
        low = np.zeros((len(thetas), t, t))
        low[:, np.arange(t), np.arange(t)] = np.exp(thetas[:, :t])
        low[:, self.tril_strict[0], self.tril_strict[1]] = thetas[:, t:]
        return low @ low.transpose(0, 2, 1), low

    def _sigma_theta(self, theta):
        t = self.t
        low = np.zeros((t, t))
        low[np.diag_indices(t)] = np.exp(theta[:t])
        low[self.tril_strict] = theta[t:]
        return low @ low.T, low

    def fit(self, y: np.ndarray, last_seen: np.ndarray):
        """(estimate, se, df, p) of each dose - control at the last visit (NaN where
        ``fit_mmrm`` reports it as not estimable); raises _FitFailed where ``fit_mmrm`` raises."""
        from scipy import optimize

        mm = self._mmrm
        t, k = self.t, self.k
        seen = last_seen[self.order]
        yy = y[self.order]
        x3 = self.x3.copy()
        x3[:, :, self.bcol] = yy[:, :1]
        change = yy[:, 1:] - yy[:, :1]
        mask = self._visit[None, :] < seen[:, None]
        x, yv = x3[mask], change[mask]
        try:
            mm._check_rank(x, self.columns)  # also catches a visit or arm x visit cell left empty
        except mm.MmrmError as exc:
            raise _FitFailed(str(exc)) from None
        st = self._patterns(x3, change, seen)
        start = mm._start_sigma(SimpleNamespace(
            X=x, y=yv, visits=self.visits, subj_codes=np.repeat(np.arange(self.n), seen),
            visit_idx=np.nonzero(mask)[1]))

        def objective(theta):
            sigma, low = self._sigma_theta(theta)
            try:
                value, g, *_ = self._evaluate(st, sigma)
            except mm._NotPositiveDefinite:
                return np.inf, np.zeros_like(theta)
            if not np.isfinite(value):
                return np.inf, np.zeros_like(theta)
            gl = g @ low
            scale = np.ones(theta.size)
            scale[:t] = np.diag(low)
            return value, 2.0 * gl[self.theta_rows, self.theta_cols] * scale

        def gradients_theta(thetas):  # objective(theta)[1] for a stack of thetas
            sigmas, low = self._sigma_theta_many(thetas)
            _, g, bad = self._evaluate_many(st, sigmas)
            scale = np.ones(thetas.shape)
            scale[:, :t] = np.exp(thetas[:, :t])
            out = 2.0 * (g @ low)[:, self.theta_rows, self.theta_cols] * scale
            out[bad] = 0.0
            return out

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = optimize.minimize(objective, self.struct.start(start), jac=True, method="BFGS",
                                    options={"maxiter": 2000, "gtol": 1e-6})
        theta, value, gnorm = self._mmrm._newton_polish(
            objective, opt.x, hessian=lambda th: self._fd_hessian(gradients_theta, th))
        if not np.isfinite(value):
            raise _FitFailed("the likelihood is not finite")
        sigma, _ = self._sigma_theta(theta)
        value, _, beta, xtvx, sinv = self._evaluate(st, sigma)
        if not gnorm < 1e-3 * max(1.0, max(1.0, abs(value)) / 1000):
            raise _FitFailed("no convergence")

        def gradients_phi(phis):  # d(-2l)/d phi (SAS parameters) for a stack of phis
            sigmas = np.zeros((len(phis), t, t))
            sigmas[:, self.tril[0], self.tril[1]] = phis
            sigmas[:, self.tril[1], self.tril[0]] = phis
            _, g, bad = self._evaluate_many(st, sigmas)
            if bad.any():
                raise mm._NotPositiveDefinite
            return np.einsum("qab,Bab->Bq", self.dsig_phi, g)

        try:
            h2 = self._fd_hessian(gradients_phi, self.struct.phi_of(sigma))
            np.linalg.cholesky(h2)
        except (mm._NotPositiveDefinite, np.linalg.LinAlgError):
            raise _FitFailed("the covariance estimate is on a boundary") from None
        phi_vcov = 2.0 * np.linalg.inv(h2)
        vcov = np.linalg.inv(xtvx)
        vcov = 0.5 * (vcov + vcov.T)
        lmat = self.lmat
        est = lmat @ beta
        var = np.einsum("ck,kl,cl->c", lmat, vcov, lmat)
        se = np.sqrt(np.maximum(var, 0))
        # Satterthwaite: d var / d phi = sum over patterns of S^-1 E S^-1 against dSigma/dphi
        proj = vcov @ lmat.T
        e = st.mxx @ (proj[self.iu[0]] * proj[self.iu[1]] * self.wu[:, None])
        full = np.zeros((len(lmat), st.n_pat * t * t))
        full[:, st.flat] = e.T
        full = full.reshape(len(lmat), st.n_pat, t, t)
        dmat = (sinv[None] @ full @ sinv[None]).sum(axis=1)
        g = np.einsum("qab,cab->cq", self.dsig_phi, dmat)
        denom = np.einsum("cq,qr,cr->c", g, phi_vcov, g)
        df = np.where(denom > 0, 2 * var**2 / np.where(denom > 0, denom, 1), np.inf)
        ok = np.isfinite(se) & ~np.isnan(df) & (df >= mm.DF_MIN)
        p = np.full(len(lmat), np.nan)
        p[ok] = 2 * stats.t.sf(np.abs(est[ok] / se[ok]), df[ok])
        return est, np.where(ok, se, np.nan), np.where(ok, df, np.nan), p


# --------------------------------------------------------------------------------------------
# Simulating many trials, in one process or several
# --------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Everything the simulated trials share; sent once to each worker process."""

    seed: int
    per_group: int
    effects: tuple
    sd: float
    rho: float
    dropout: float
    groups: int
    visits: int
    mmrm: _TrialMmrm | None


def _t_test_p(change: np.ndarray, done: np.ndarray, per_group: int, groups: int) -> np.ndarray:
    """``scipy.stats.ttest_ind(dose, control).pvalue`` (pooled SD) of the change at the last
    visit in the subjects who reached it, for each dose; NaN where an arm has fewer than 2."""
    arm = np.repeat(np.arange(groups), per_group)[done]
    x = change[done]
    n = np.bincount(arm, minlength=groups).astype(float)
    total = np.bincount(arm, weights=x, minlength=groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        ss = np.bincount(arm, weights=(x - mean[arm]) ** 2, minlength=groups)
        df = n[1:] + n[0] - 2
        pooled = (ss[1:] + ss[0]) / df
        t = (mean[1:] - mean[0]) / np.sqrt(pooled * (1 / n[1:] + 1 / n[0]))
    valid = (n[1:] >= 2) & (n[0] >= 2)
    p = np.full(groups - 1, np.nan)
    p[valid] = 2 * stats.t.sf(np.abs(t[valid]), df[valid])
    return p


def _simulate_one(plan: _Plan, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Trial ``index``: t-test p and MMRM (p, estimate) per dose (NaN p: no valid t test /
    contrast not estimable) and whether the MMRM fit failed."""
    rng = trial_rng(plan.seed, index)
    y, last_seen = _draw(rng, plan.per_group, plan.effects, plan.sd, plan.rho, plan.dropout,
                         plan.visits)
    doses = plan.groups - 1
    t_p = _t_test_p(y[:, plan.visits] - y[:, 0], last_seen == plan.visits, plan.per_group,
                    plan.groups)
    m_p = np.full(doses, np.nan)
    m_est = np.full(doses, np.nan)
    failed = False
    if plan.mmrm is not None:
        try:
            m_est, _, _, m_p = plan.mmrm.fit(y, last_seen)
        except _FitFailed:
            failed = True
    return t_p, m_p, m_est, failed


def _simulate_range(plan: _Plan, start: int, stop: int) -> dict:
    out = {"t_p": [], "mmrm_p": [], "mmrm_estimate": [], "mmrm_failed": []}
    with _one_blas_thread():
        for i in range(start, stop):
            t_p, m_p, m_est, failed = _simulate_one(plan, i)
            out["t_p"].append(t_p)
            out["mmrm_p"].append(m_p)
            out["mmrm_estimate"].append(m_est)
            out["mmrm_failed"].append(failed)
    return {key: np.array(v) for key, v in out.items()}


_WORKER_PLAN: _Plan | None = None


def _worker_init(plan: _Plan) -> None:
    global _WORKER_PLAN
    _WORKER_PLAN = plan


def _worker_range(start: int, stop: int) -> tuple[int, dict]:
    return start, _simulate_range(_WORKER_PLAN, start, stop)


_BLAS_SETTERS: dict[int, list] = {}  # per process id: a forked child finds the same libraries


def _blas_setters() -> list:
    """``openblas_set_num_threads_local`` of each OpenBLAS loaded in this process (NumPy and SciPy
    each bring their own), looked up once per process."""
    pid = os.getpid()
    if pid not in _BLAS_SETTERS:
        setters = []
        with contextlib.suppress(OSError):
            with open("/proc/self/maps") as maps:
                paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
            for path in sorted(p for p in paths if ".so" in os.path.basename(p)):
                try:
                    lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | os.RTLD_LOCAL)
                    setter = lib.openblas_set_num_threads_local
                except (OSError, AttributeError):
                    continue
                setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
                setters.append(setter)
        _BLAS_SETTERS[pid] = setters
    return _BLAS_SETTERS[pid]


@contextlib.contextmanager
def _one_blas_thread():
    """Run the calling thread's OpenBLAS calls on one thread, restoring the setting afterwards.

    The matrices of one trial are small (29 x 29 and smaller): OpenBLAS's threads only add
    hand-offs, which cost most when other work keeps the cores busy, and each simulated trial
    already has a core of its own when ``jobs`` processes share the work. Best effort: nothing
    happens where OpenBLAS (or its ``openblas_set_num_threads_local``) is not found.
    """
    setters = _blas_setters()
    previous = [setter(1) for setter in setters]
    try:
        yield
    finally:
        for setter, n in zip(setters, previous):
            setter(n)


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _process_context():
    """fork (workers start at once, nothing is imported again) when this process runs no other
    thread; otherwise spawn (a fresh interpreter per worker: forking a process whose other
    threads may hold locks can hang the child; the calling script then needs the usual
    ``if __name__ == "__main__":`` guard)."""
    import multiprocessing
    import threading

    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _run(plan: _Plan, sims: int, jobs: int, progress: Callable[[int], None] | None) -> dict:
    """Per-trial results of trials 0..sims-1, in trial order, from ``jobs`` processes."""
    parts: dict[int, dict] = {}
    if jobs <= 1:
        step = max(1, min(25, sims // 50 or 1))
        for start in range(0, sims, step):
            parts[start] = _simulate_range(plan, start, min(sims, start + step))
            if progress is not None:
                progress(min(sims, start + step))
    else:
        # Small chunks keep the progress bar moving and the processes equally busy.
        step = max(1, min(25, math.ceil(sims / (jobs * 8))))
        with ProcessPoolExecutor(max_workers=jobs, mp_context=_process_context(),
                                 initializer=_worker_init, initargs=(plan,)) as pool:
            futures = [pool.submit(_worker_range, s, min(sims, s + step))
                       for s in range(0, sims, step)]
            done = 0
            try:
                for future in as_completed(futures):
                    start, part = future.result()
                    parts[start] = part
                    done += len(part["t_p"])
                    if progress is not None:
                        progress(done)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return {key: np.concatenate([parts[s][key] for s in sorted(parts)]) for key in
            ("t_p", "mmrm_p", "mmrm_estimate", "mmrm_failed")}


def simulate_power(
    sims: int,
    per_group: int,
    effects: float | Sequence[float],
    sd: float = PROTOCOL["sd"],
    rho: float = PROTOCOL["rho"],
    dropout: float = PROTOCOL["dropout"],
    groups: int = PROTOCOL["groups"],
    visits: int = PROTOCOL["visits"],
    alpha: float = 0.05,
    seed: int = 1,
    mmrm: bool = True,
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
    per_trial: bool = False,
) -> dict:
    """Simulated power of the last-visit t test and MMRM contrast for each dose vs control.

    ``effects`` is one reduction for every dose or one per dose. ``progress`` is called with the
    number of finished simulations. Reports the Monte Carlo SE of each power and, for the t test,
    the analytic value it should agree with. ``jobs`` processes share the MMRM fits (the result
    is the same for any number; the t test alone always runs in this process). ``per_trial``
    adds each trial's p-values and MMRM estimates (arrays, trial x dose) under ``"per_trial"``.
    """
    if sims < 1:
        raise InputError(f"sims must be at least 1, got {sims}")
    if per_group < 3:
        raise InputError(f"per-group must be at least 3, got {per_group}")
    if groups < 2:
        raise InputError(f"groups must be at least 2, got {groups}")
    if visits < 1:
        raise InputError(f"visits must be at least 1, got {visits}")
    if jobs < 1:
        raise InputError(f"jobs must be at least 1, got {jobs}")
    if seed < 0:
        raise InputError(f"seed must be 0 or more, got {seed}")
    check_positive(sd, "sd")
    check_probability(alpha, "alpha")
    check_probability(dropout, "dropout", open_low=False)
    if not 0 <= rho < 1:
        # Compound symmetry is simulated as a shared subject effect of variance rho * sd^2.
        raise InputError(f"rho must be in [0, 1) (the simulation adds a subject effect of "
                         f"variance rho * sd^2), got {rho:g}")
    if np.isscalar(effects):
        effects = [float(effects)] * (groups - 1)
    effects = [float(e) for e in effects]
    if len(effects) != groups - 1:
        raise InputError(f"give one effect or {groups - 1} (one per dose), got {len(effects)}")

    if not mmrm:
        fit_mmrm, note = None, "MMRM not requested"
    elif visits < 2:
        fit_mmrm, note = None, "MMRM needs at least 2 visits; t test only"
    else:
        fit_mmrm, _, note = _mmrm_fitter()
    model = _TrialMmrm(per_group, effects, sd, rho, visits) if fit_mmrm is not None else None
    plan = _Plan(seed, per_group, tuple(effects), sd, rho, dropout, groups, visits, model)
    res = _run(plan, sims, min(jobs, sims) if model is not None else 1, progress)
    arms = arm_labels(groups)
    doses = arms[1:]

    def summary(hits: int, n: int) -> dict:
        pw = hits / n if n else math.nan
        return {"power": pw, "se": math.sqrt(pw * (1 - pw) / n) if n else math.nan, "sims": n}

    analytic = {e: analytic_t_power(per_group, e, sd, rho, dropout, alpha) for e in set(effects)}
    t_p = res["t_p"]
    out = {
        "sims": sims, "seed": seed, "per_group": per_group, "groups": groups, "visits": visits,
        "sd": sd, "rho": rho, "dropout": dropout, "alpha": alpha,
        "effects": dict(zip(doses, effects, strict=True)),
        "t_test": {d: {**summary(int((t_p[:, i] < alpha).sum()), int((~np.isnan(t_p[:, i])).sum())),
                       "analytic": analytic[e]}
                   for i, (d, e) in enumerate(zip(doses, effects, strict=True))},
        "mmrm": None,
        "note": note,
    }
    if model is not None:
        failed = res["mmrm_failed"]
        ok = sims - int(failed.sum())
        # a contrast that is not estimable (p NaN) counts as not significant
        m_p = res["mmrm_p"][~failed]
        out["mmrm"] = {d: summary(int((m_p[:, i] < alpha).sum()), ok) for i, d in enumerate(doses)}
        out["mmrm_failed_fits"] = int(failed.sum())
    if per_trial:
        out["per_trial"] = res
    return out
