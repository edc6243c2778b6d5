"""Recommender: a rating model (Surprise) for `predict` and an implicit item model for `recommend`.

Two jobs, two models, because they are judged differently:

- Rating prediction (RMSE/MAE): a weighted blend of a tuned SVD, an item-based KNNBaseline and
  a Bayesian matrix factorization (BPMF, which learns its own regularization). The SVD
  hyperparameters come from a small random search with 3-fold CV on the training data, stopped
  at `time_budget_s`. The blend weights are fitted on a validation split of the training data,
  so nothing is tuned on the held-out split.
- Top-N ranking: EASE (Steck 2019), a closed-form item-item linear model over who-rated-what.
  A rating model ranks by predicted stars and so favours obscure, highly rated items; the
  top-N task is "what will this user rate next", which is about co-occurrence. Popularity is the
  baseline every ranking metric is reported against.

Evaluation protocol (all numbers come from data the scored model did not see):

- `rmse`, `mae` (and `rmse_<baseline>`): random 80/20 split of the ratings.
- `precision_at_10`, `recall_at_10`, `ndcg_at_10` (and `*_popular`): per-user split, 25% of each
  user's ratings held out (users with fewer than 4 ratings stay in training only). Items the user
  rated in training are excluded from the ranking. Relevant items are held-out items rated
  >= `relevant_rating`; with `relevant_rating=None` (implicit feedback) every held-out item is
  relevant. Users without a relevant held-out item are not scored. Recall divides hits by the
  number of relevant items; NDCG uses binary gains.

After evaluation both models are refitted on all ratings.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from surprise import SVD, BaselineOnly, Dataset, KNNBaseline, Reader
from surprise.model_selection import KFold

REQUIRED_COLUMNS = ("user_id", "item_id", "rating")

# Searched with 3-fold CV inside the time budget; the first candidate is a prior that does well
# on MovieLens-like data, so even a budget that allows one candidate gives a sensible model.
SVD_PRIOR = {"n_factors": 100, "n_epochs": 50, "lr_all": 0.008, "reg_all": 0.1}
SVD_GRID = {
    "n_factors": (50, 100, 150),
    "n_epochs": (20, 35, 50),
    "lr_all": (0.005, 0.008, 0.012),
    "reg_all": (0.05, 0.08, 0.1, 0.12),
}


@dataclass(frozen=True)
class RecommenderConfig:
    time_budget_s: float = 20.0
    search_folds: int = 3
    holdout_share: float = 0.2
    ranking_holdout_share: float = 0.25
    top_n: int = 10
    # None means implicit feedback: every held-out item counts as relevant.
    relevant_rating: float | None = 4.0
    knn_k: int = 40
    knn_shrinkage: int = 100
    bmf_factors: int = 10
    bmf_sweeps: int = 60
    bmf_burn_in: int = 20
    # Blend weights are searched on this grid step over the simplex (non-negative, sum 1).
    blend_step: float = 0.05
    ease_lambda: float = 200.0
    # EASE inverts an items x items matrix; the long tail beyond this many items is left out of
    # ranking (it is rarely recommendable anyway) to bound memory and time.
    ranking_max_items: int = 3000
    seed: int = 0
    svd_grid: dict = field(default_factory=lambda: dict(SVD_GRID))


class Recommender:
    """Trained recommender: `.predict` from the rating blend, `.recommend` from EASE."""

    def __init__(
        self,
        svd,
        knn,
        bmf: BayesianMF,
        weights: np.ndarray,
        ranker: EaseRanker,
        rating_scale: tuple[float, float],
    ):
        self._svd = svd
        self._knn = knn
        self._bmf = bmf
        self.weights = np.asarray(weights, dtype=float)  # SVD, KNNBaseline, Bayesian MF
        self._ranker = ranker
        self.rating_scale = rating_scale
        self.svd_params = dict(svd_params_of(svd))

    def predict(self, user_id, item_id) -> float:
        self._ensure_similarities()
        u, i = str(user_id), str(item_id)
        parts = (
            self._svd.predict(u, i).est,
            self._knn.predict(u, i).est,
            float(self._bmf.predict_many([u], [i])[0]) if self._bmf is not None else 0.0,
        )
        lo, hi = self.rating_scale
        est = float(np.dot(self.weights, np.clip(parts, lo, hi)))
        return float(min(max(est, lo), hi))

    def recommend(self, user_ids=None, n: int = 10) -> pd.DataFrame:
        return self._ranker.recommend(user_ids, n)

    @property
    def users(self) -> list[str]:
        return list(self._ranker.user_ids)

    def __setstate__(self, state):
        # Models pickled before Bayesian MF joined the blend: SVD and KNN, 1/2 each.
        state.setdefault("_bmf", None)
        state.setdefault("weights", np.array([0.5, 0.5, 0.0]))
        self.__dict__.update(state)

    def _ensure_similarities(self) -> None:
        if getattr(self._knn, "sim", None) is None:
            self._knn.sim = self._knn.compute_similarities()

    def __getstate__(self):
        # The KNN similarity matrix is items x items floats (hundreds of MB on MovieLens) and is
        # derived from the stored trainset, so it is recomputed on first use instead of pickled.
        state = self.__dict__.copy()
        knn = copy.copy(self._knn)
        knn.sim = None
        state["_knn"] = knn
        return state


class EaseRanker:
    """EASE item-item model over binary interactions; popularity for users it has not seen."""

    def __init__(self, interactions: pd.DataFrame, lam: float, max_items: int):
        users = interactions["user_id"].astype(str).to_numpy()
        items = interactions["item_id"].astype(str).to_numpy()
        counts = pd.Series(items).value_counts()
        self.popular_items = counts.index.to_numpy(dtype=object)
        self.popular_scores = (counts.to_numpy() / max(len(set(users)), 1)).astype(float)
        kept = counts.index[:max_items].to_numpy(dtype=object)
        self.item_ids = np.sort(kept)
        self.user_ids = np.sort(pd.unique(users)).astype(object)
        self._item_pos = {it: k for k, it in enumerate(self.item_ids)}
        self._user_pos = {u: k for k, u in enumerate(self.user_ids)}
        # Seen items cover the whole catalogue, not only the ranked items, so that nothing the
        # user already rated is ever recommended.
        self._seen = (
            interactions.assign(user_id=users, item_id=items)
            .groupby("user_id")["item_id"]
            .agg(frozenset)
        )
        mask = np.isin(items, kept)
        rows = np.array([self._user_pos[u] for u in users[mask]], dtype=np.int64)
        cols = np.array([self._item_pos[i] for i in items[mask]], dtype=np.int64)
        x = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(self.user_ids), len(self.item_ids)),
        )
        x.data[:] = 1.0  # duplicates collapse to one interaction
        self._x = x
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += lam
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0.0
        self._b = b.astype(np.float32)

    def scores(self, user_ids) -> np.ndarray:
        """Scores over `item_ids` for known users (one row per user)."""
        pos = np.array([self._user_pos[u] for u in user_ids], dtype=np.int64)
        return np.asarray(self._x[pos] @ self._b)

    def recommend(self, user_ids=None, n: int = 10, batch: int = 1024) -> pd.DataFrame:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        wanted = self.user_ids if user_ids is None else [str(u) for u in user_ids]
        known = [u for u in wanted if u in self._user_pos]
        frames = []
        for start in range(0, len(known), batch):
            chunk = known[start : start + batch]
            s = self.scores(chunk)
            for row, u in zip(s, chunk, strict=False):
                frames.append(self._top(u, self.item_ids, row, n))
        for u in wanted:
            if u not in self._user_pos:
                frames.append(self._top(u, self.popular_items, self.popular_scores, n))
        if not frames:
            return pd.DataFrame(
                {
                    "user_id": pd.Series(dtype="string"),
                    "item_id": pd.Series(dtype="string"),
                    "score": pd.Series(dtype=float),
                    "rank": pd.Series(dtype="int64"),
                }
            )
        out = pd.concat(frames, ignore_index=True)
        return out.astype({"user_id": "string", "item_id": "string"})

    def _top(self, user_id, item_ids, scores, n) -> pd.DataFrame:
        seen = self._seen.get(user_id, frozenset())
        order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
        picked = []
        for k in order:
            if item_ids[k] not in seen:
                picked.append(k)
                if len(picked) == n:
                    break
        picked = np.array(picked, dtype=np.int64)
        return pd.DataFrame(
            {
                "user_id": user_id,
                "item_id": item_ids[picked] if len(picked) else [],
                "score": np.asarray(scores, dtype=float)[picked] if len(picked) else [],
                "rank": np.arange(1, len(picked) + 1, dtype=np.int64),
            }
        )


class BayesianMF:
    """Bayesian probabilistic matrix factorization with biases (Salakhutdinov & Mnih 2008).

    rating = mean + b_u + b_i + <p_u, q_i> + noise. User vectors (b_u, p_u) and item vectors
    (b_i, q_i) have Gaussian priors whose mean and precision get Normal-Wishart hyperpriors, and
    the noise precision a Gamma prior, so the amount of regularization is learned from the data
    rather than tuned. Gibbs sampling; predictions average the kept samples (the posterior mean,
    not one point estimate), which is what protects users and items with few ratings.
    """

    def __init__(
        self,
        n_factors: int = 10,
        n_sweeps: int = 60,
        burn_in: int = 20,
        max_samples: int = 20,
        seed: int = 0,
    ):
        if n_sweeps <= burn_in:
            raise ValueError(f"n_sweeps ({n_sweeps}) must exceed burn_in ({burn_in})")
        self.n_factors = n_factors
        self.n_sweeps = n_sweeps
        self.burn_in = burn_in
        self.max_samples = max_samples
        self.seed = seed

    def fit(self, ratings: pd.DataFrame) -> BayesianMF:
        users, self.user_ids = pd.factorize(ratings["user_id"].to_numpy(dtype=object))
        items, self.item_ids = pd.factorize(ratings["item_id"].to_numpy(dtype=object))
        self._user_pos = {u: k for k, u in enumerate(self.user_ids)}
        self._item_pos = {i: k for k, i in enumerate(self.item_ids)}
        r = ratings["rating"].to_numpy(dtype=float)
        rng = np.random.default_rng(self.seed)
        d = self.n_factors + 1
        self.global_mean = float(r.mean())
        # Column 0 holds the bias; the design row of the other side is (1, factors).
        u_vec = np.hstack(
            [np.zeros((len(self.user_ids), 1)), rng.normal(0.0, 0.1, (len(self.user_ids), d - 1))]
        )
        i_vec = np.hstack(
            [np.zeros((len(self.item_ids), 1)), rng.normal(0.0, 0.1, (len(self.item_ids), d - 1))]
        )
        by_user, by_item = _Groups(users, len(self.user_ids)), _Groups(items, len(self.item_ids))
        alpha = 1.0
        kept = np.unique(np.linspace(self.burn_in, self.n_sweeps - 1, self.max_samples).astype(int))
        u_samples, i_samples = [], []
        for sweep in range(self.n_sweeps):
            u_vec = _gibbs_side(by_user, i_vec[items], r - self.global_mean, alpha, u_vec, rng)
            i_vec = _gibbs_side(by_item, u_vec[users], r - self.global_mean, alpha, i_vec, rng)
            fitted = (
                self.global_mean
                + u_vec[users, 0]
                + i_vec[items, 0]
                + np.einsum("ij,ij->i", u_vec[users, 1:], i_vec[items, 1:])
            )
            sse = float(np.sum((r - fitted) ** 2))
            alpha = rng.gamma(1.0 + len(r) / 2.0, 1.0 / (1.0 + sse / 2.0))
            if sweep in kept:
                # The last row stands for an unseen user or item: the population mean vector.
                u_samples.append(np.vstack([u_vec, u_vec.mean(axis=0)]).astype(np.float32))
                i_samples.append(np.vstack([i_vec, i_vec.mean(axis=0)]).astype(np.float32))
        self._u = np.stack(u_samples)
        self._i = np.stack(i_samples)
        self.noise_sd = float(alpha**-0.5)
        return self

    def predict_many(self, user_ids, item_ids) -> np.ndarray:
        """Posterior-mean rating per (user, item) pair; unseen ids get the population mean."""
        u = np.array([self._user_pos.get(x, -1) for x in user_ids], dtype=np.int64)
        i = np.array([self._item_pos.get(x, -1) for x in item_ids], dtype=np.int64)
        out = np.empty(len(u))
        for start in range(0, len(u), 50_000):
            us, its = u[start : start + 50_000], i[start : start + 50_000]
            pu, qi = self._u[:, us].astype(float), self._i[:, its].astype(float)
            inter = np.einsum("sij,sij->i", pu[:, :, 1:], qi[:, :, 1:]) / len(self._u)
            out[start : start + 50_000] = (
                self.global_mean + pu[:, :, 0].mean(axis=0) + qi[:, :, 0].mean(axis=0) + inter
            )
        return out


class _Groups:
    """Ratings sorted by one side's index, with each owner's slice, for per-owner sums."""

    def __init__(self, owner: np.ndarray, n: int):
        self.n = n
        self.order = np.argsort(owner, kind="stable")
        sorted_owner = owner[self.order]
        starts = np.flatnonzero(np.r_[True, sorted_owner[1:] != sorted_owner[:-1]])
        ends = np.r_[starts[1:], len(owner)]
        self.slices = list(
            zip(sorted_owner[starts].tolist(), starts.tolist(), ends.tolist(), strict=True)
        )


def _gibbs_side(
    groups: _Groups, other: np.ndarray, residual: np.ndarray, alpha: float, current: np.ndarray, rng
) -> np.ndarray:
    """One Gibbs draw of every vector of one side, given the other side's vectors per rating."""
    d = current.shape[1]
    hyper_mean, hyper_precision = _normal_wishart_draw(current, rng)
    x = other[groups.order]
    y = residual[groups.order] - x[:, 0]
    x[:, 0] = 1.0  # the design row is (1, factors): the other side's bias is an offset
    gram = np.zeros((groups.n, d, d))
    rhs = np.zeros((groups.n, d))
    # One small matrix product per owner: far cheaper than materializing every x x^T.
    for owner, start, end in groups.slices:
        block = x[start:end]
        gram[owner] = block.T @ block
        rhs[owner] = block.T @ y[start:end]
    precision = hyper_precision[None] + alpha * gram
    rhs = alpha * rhs + (hyper_precision @ hyper_mean)[None]
    chol = np.linalg.cholesky(precision)
    mean = np.linalg.solve(precision, rhs[:, :, None])[:, :, 0]
    z = rng.normal(size=mean.shape)[:, :, None]
    # precision = L L^T, so L^-T z has covariance precision^-1.
    return mean + np.linalg.solve(np.transpose(chol, (0, 2, 1)), z)[:, :, 0]


def _normal_wishart_draw(vectors: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Prior mean and precision of the vectors, drawn from their Normal-Wishart posterior
    (hyperprior: mean 0, beta0 = 2, identity scale, nu0 = dimension)."""
    n, d = vectors.shape
    beta0, nu0 = 2.0, d
    centre = vectors.mean(axis=0)
    scatter = (vectors - centre).T @ (vectors - centre)
    beta, nu = beta0 + n, nu0 + n
    w_inv = np.eye(d) + scatter + (beta0 * n / beta) * np.outer(centre, centre)
    w = np.linalg.inv(w_inv)
    chol = np.linalg.cholesky((w + w.T) / 2.0)
    bartlett = np.zeros((d, d))
    for j in range(d):
        bartlett[j, j] = np.sqrt(rng.chisquare(nu - j))
        bartlett[j, :j] = rng.normal(size=j)
    la = chol @ bartlett
    precision = la @ la.T
    cov = np.linalg.inv(beta * precision)
    mean = rng.multivariate_normal(n * centre / beta, (cov + cov.T) / 2.0)
    return mean, precision


def train_and_evaluate(
    data: pd.DataFrame, config: RecommenderConfig | None = None
) -> tuple[Recommender, dict[str, float]]:
    cfg = config or RecommenderConfig()
    started = time.perf_counter()
    ratings = prepare_ratings(data)
    scale = rating_scale_of(ratings)
    rng = np.random.default_rng(cfg.seed)

    train, test = split_random(ratings, cfg.holdout_share, rng)
    rating_metrics = evaluate_rating_models(train, test, scale, cfg)
    best = rating_metrics.pop("params")

    rank_train, rank_test = split_per_user(ratings, cfg.ranking_holdout_share, rng)
    ranker = EaseRanker(rank_train, cfg.ease_lambda, cfg.ranking_max_items)
    ranking_metrics = evaluate_ranking(ranker, rank_train, rank_test, cfg)

    weights = rating_metrics.pop("weights")
    full = build_trainset(ratings, scale)
    svd = SVD(random_state=cfg.seed, **best).fit(full)
    knn = make_knn(cfg).fit(full)
    bmf = make_bmf(cfg).fit(ratings)
    ranker = EaseRanker(ratings, cfg.ease_lambda, cfg.ranking_max_items)
    final = Recommender(svd, knn, bmf, weights, ranker, scale)

    metrics = {
        **rating_metrics,
        **ranking_metrics,
        **{f"svd_{k}": float(v) for k, v in best.items()},
        "n_ratings": float(len(ratings)),
        "n_users": float(ratings["user_id"].nunique()),
        "n_items": float(ratings["item_id"].nunique()),
        "train_seconds": time.perf_counter() - started,
    }
    return final, {k: float(v) for k, v in metrics.items()}


def cross_validate_rmse(
    data: pd.DataFrame, folds: int = 5, config: RecommenderConfig | None = None
) -> dict[str, float]:
    """K-fold RMSE of the full rating pipeline (search included) next to its components.

    The hyperparameter search runs inside each fold's training part, so the figure is what a
    user of `train_and_evaluate` gets, not a number tuned on the folds it is measured on.
    """
    cfg = config or RecommenderConfig()
    ratings = prepare_ratings(data)
    scale = rating_scale_of(ratings)
    rng = np.random.default_rng(cfg.seed)
    fold_of = rng.permutation(len(ratings)) % folds
    per_fold = []
    for f in range(folds):
        train, test = ratings[fold_of != f], ratings[fold_of == f]
        m = evaluate_rating_models(train, test, scale, cfg)
        m.pop("params")
        m.pop("weights")
        per_fold.append(m)
    keys = per_fold[0].keys()
    return {k: float(np.mean([m[k] for m in per_fold])) for k in keys}


def prepare_ratings(data: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in data.columns]
    if missing:
        raise ValueError(f"ratings: missing column(s) {missing}")
    df = data.dropna(subset=list(REQUIRED_COLUMNS))
    if "rated_at" in df.columns:
        df = df.sort_values("rated_at", kind="stable")
    out = pd.DataFrame(
        {
            "user_id": df["user_id"].astype(str).to_numpy(dtype=object),
            "item_id": df["item_id"].astype(str).to_numpy(dtype=object),
            "rating": pd.to_numeric(df["rating"]).astype(float).to_numpy(),
        }
    )
    # A user re-rating an item: the latest rating is the user's opinion.
    out = out.drop_duplicates(["user_id", "item_id"], keep="last").reset_index(drop=True)
    if out["user_id"].nunique() < 2 or out["item_id"].nunique() < 2 or len(out) < 20:
        raise ValueError(
            f"ratings: too little data to train a recommender ({len(out)} ratings, "
            f"{out['user_id'].nunique()} users, {out['item_id'].nunique()} items)"
        )
    return out


def rating_scale_of(ratings: pd.DataFrame) -> tuple[float, float]:
    lo, hi = float(ratings["rating"].min()), float(ratings["rating"].max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def build_trainset(ratings: pd.DataFrame, scale: tuple[float, float]):
    data = Dataset.load_from_df(ratings[list(REQUIRED_COLUMNS)], Reader(rating_scale=scale))
    return data.build_full_trainset()


def make_knn(cfg: RecommenderConfig) -> KNNBaseline:
    return KNNBaseline(
        k=cfg.knn_k,
        sim_options={
            "name": "pearson_baseline",
            "user_based": False,
            "shrinkage": cfg.knn_shrinkage,
        },
        verbose=False,
    )


def make_bmf(cfg: RecommenderConfig) -> BayesianMF:
    return BayesianMF(cfg.bmf_factors, cfg.bmf_sweeps, cfg.bmf_burn_in, seed=cfg.seed)


def svd_params_of(svd) -> dict:
    return {
        "n_factors": svd.n_factors,
        "n_epochs": svd.n_epochs,
        "lr_all": svd.lr_bu,
        "reg_all": svd.reg_bu,
    }


def split_random(ratings: pd.DataFrame, share: float, rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    is_test = rng.random(len(ratings)) < share
    return ratings[~is_test], ratings[is_test]


def split_per_user(ratings: pd.DataFrame, share: float, rng):
    """Hold out `share` of each user's ratings (users with < 4 ratings stay in training)."""
    key = rng.random(len(ratings))
    order = pd.Series(key).groupby(ratings["user_id"].to_numpy()).rank(method="first")
    size = ratings.groupby("user_id")["item_id"].transform("size").to_numpy()
    n_out = np.floor(size * share)
    is_test = (order.to_numpy() <= n_out) & (size >= 4)
    return ratings[~is_test], ratings[is_test]


def search_svd(train: pd.DataFrame, scale, cfg: RecommenderConfig) -> tuple[dict, float, int]:
    """Random search over `svd_grid` with k-fold CV, stopped at the time budget.

    The prior is always scored on at least one fold, so some model is always chosen. The budget
    is checked before each candidate (using the last candidate's cost) and between folds: a
    candidate cut short is discarded, except the prior, whose completed folds stand.
    Returns (best params, their CV RMSE, number of candidates scored).
    """
    started = time.perf_counter()
    grid = cfg.svd_grid
    combos = [dict(zip(grid, values, strict=False)) for values in _product([grid[k] for k in grid])]
    random.Random(cfg.seed).shuffle(combos)
    candidates = [dict(SVD_PRIOR)] + [c for c in combos if c != SVD_PRIOR]
    data = Dataset.load_from_df(train[list(REQUIRED_COLUMNS)], Reader(rating_scale=scale))
    folds = list(KFold(cfg.search_folds, random_state=cfg.seed).split(data))
    best, best_rmse, tried, last_cost = None, math.inf, 0, 0.0
    for params in candidates:
        elapsed = time.perf_counter() - started
        if tried and elapsed + last_cost > cfg.time_budget_s:
            break
        t0 = time.perf_counter()
        errors = []
        for trainset, testset in folds:
            if errors and time.perf_counter() - started > cfg.time_budget_s:
                break
            algo = SVD(random_state=cfg.seed, **params).fit(trainset)
            est = np.array([algo.predict(u, i, clip=True).est for u, i, _ in testset])
            truth = np.array([r for _, _, r in testset])
            errors.append(float(np.sqrt(np.mean((est - truth) ** 2))))
        if len(errors) < len(folds) and tried:
            break
        rmse = float(np.mean(errors))
        tried += 1
        last_cost = time.perf_counter() - t0
        if rmse < best_rmse:
            best, best_rmse = params, rmse
        if len(errors) < len(folds):
            break
    return best, best_rmse, tried


def _product(lists):
    if not lists:
        yield ()
        return
    for head in lists[0]:
        for tail in _product(lists[1:]):
            yield (head, *tail)


def evaluate_rating_models(train: pd.DataFrame, test: pd.DataFrame, scale, cfg) -> dict:
    """Held-out RMSE of the blend and of each part; nothing here sees `test` before scoring.

    The blend weights are fitted on a validation split of `train` (the parts trained on the rest
    of `train`), then the parts are refitted on all of `train` and scored on `test`.
    """
    best, cv_rmse, tried = search_svd(train, scale, cfg)
    fit_part, val_part = split_random(train, cfg.holdout_share, np.random.default_rng(cfg.seed + 1))
    val_est = rating_estimates(fit_part, val_part, best, scale, cfg)
    weights = fit_blend_weights(
        [val_est[k] for k in BLEND_PARTS], val_part["rating"].to_numpy(dtype=float), cfg.blend_step
    )
    est = rating_estimates(train, test, best, scale, cfg, baselines=True)
    truth = test["rating"].to_numpy(dtype=float)
    blend = np.column_stack([est[k] for k in BLEND_PARTS]) @ weights
    mean_est = np.full(len(truth), train["rating"].mean())

    def rmse(values):
        return float(np.sqrt(np.mean((values - truth) ** 2)))

    return {
        "params": best,
        "weights": weights,
        "rmse": rmse(blend),
        "mae": float(np.mean(np.abs(blend - truth))),
        "rmse_svd": rmse(est["svd"]),
        "rmse_svd_default": rmse(est["svd_default"]),
        "rmse_knn_baseline": rmse(est["knn_baseline"]),
        "rmse_bayes_mf": rmse(est["bayes_mf"]),
        "rmse_baseline_only": rmse(est["baseline_only"]),
        "rmse_global_mean": rmse(mean_est),
        **{f"blend_weight_{k}": float(w) for k, w in zip(BLEND_PARTS, weights, strict=True)},
        "search_cv_rmse": cv_rmse,
        "search_candidates": float(tried),
    }


BLEND_PARTS = ("svd", "knn_baseline", "bayes_mf")


def rating_estimates(
    train: pd.DataFrame, test: pd.DataFrame, svd_params: dict, scale, cfg, baselines=False
) -> dict[str, np.ndarray]:
    """Clipped estimates for `test` of each blend part (and baselines) trained on `train`."""
    trainset = build_trainset(train, scale)
    pairs = list(zip(test["user_id"], test["item_id"], strict=False))

    def estimate(algo):
        return np.array([algo.predict(u, i, clip=True).est for u, i in pairs])

    out = {
        "svd": estimate(SVD(random_state=cfg.seed, **svd_params).fit(trainset)),
        "knn_baseline": estimate(make_knn(cfg).fit(trainset)),
        "bayes_mf": np.clip(
            make_bmf(cfg).fit(train).predict_many(test["user_id"], test["item_id"]), *scale
        ),
    }
    if baselines:
        out["baseline_only"] = estimate(BaselineOnly(verbose=False).fit(trainset))
        out["svd_default"] = estimate(SVD(random_state=cfg.seed).fit(trainset))
    return out


def fit_blend_weights(parts: list[np.ndarray], truth: np.ndarray, step: float) -> np.ndarray:
    """Non-negative weights summing to 1 with the least squared error, on a grid of `step`."""
    n = round(1.0 / step)
    best, best_sse = None, math.inf
    for combo in _simplex(len(parts), n):
        w = np.array(combo, dtype=float) / n
        sse = float(np.sum((np.column_stack(parts) @ w - truth) ** 2))
        if sse < best_sse - 1e-12:
            best, best_sse = w, sse
    return best


def _simplex(k: int, n: int):
    if k == 1:
        yield (n,)
        return
    for head in range(n, -1, -1):
        for tail in _simplex(k - 1, n - head):
            yield (head, *tail)


def evaluate_ranking(ranker: EaseRanker, train, test, cfg: RecommenderConfig) -> dict[str, float]:
    relevant = test if cfg.relevant_rating is None else test[test["rating"] >= cfg.relevant_rating]
    truth = relevant.groupby("user_id")["item_id"].agg(set)
    known = set(ranker.user_ids)
    users = [u for u in truth.index if u in known]
    n = cfg.top_n
    if not users:
        return {
            f"{m}_at_{n}{s}": 0.0 for m in ("precision", "recall", "ndcg") for s in ("", "_popular")
        } | {"ranking_users": 0.0}
    model_recs = ranker.recommend(users, n)
    seen = train.groupby("user_id")["item_id"].agg(set)
    popular = train["item_id"].value_counts().index.to_numpy(dtype=object)
    popular_recs = {}
    for u in users:
        s, picked = seen.get(u, set()), []
        for it in popular:
            if it not in s:
                picked.append(it)
                if len(picked) == n:
                    break
        popular_recs[u] = picked
    model_lists = model_recs.groupby("user_id", sort=False)["item_id"].agg(list)
    out = {"ranking_users": float(len(users))}
    for suffix, lists in (
        ("", {u: list(model_lists.get(u, [])) for u in users}),
        ("_popular", popular_recs),
    ):
        p, r, g = ranking_scores(lists, truth, users, n)
        out[f"precision_at_{n}{suffix}"] = p
        out[f"recall_at_{n}{suffix}"] = r
        out[f"ndcg_at_{n}{suffix}"] = g
    return out


def ranking_scores(lists: dict, truth: pd.Series, users, n: int) -> tuple[float, float, float]:
    discounts = 1.0 / np.log2(np.arange(2, n + 2))
    precision, recall, ndcg = [], [], []
    for u in users:
        rel = truth[u]
        hits = np.array([it in rel for it in lists[u][:n]], dtype=float)
        precision.append(hits.sum() / n)
        recall.append(hits.sum() / len(rel))
        ideal = discounts[: min(len(rel), n)].sum()
        ndcg.append(float((hits * discounts[: len(hits)]).sum() / ideal))
    return float(np.mean(precision)), float(np.mean(recall)), float(np.mean(ndcg))
