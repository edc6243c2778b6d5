"""Model benchmarks on files: quality targets on public datasets, and training cost at scale.

Run as `python -m data_platform.bench.models <what> [path]`:

- `movielens PATH`: 5-fold RMSE (`cross_validate_rmse`) and a `train_and_evaluate` run on a
  MovieLens ratings file (`ratings.csv` of ml-latest-small with userId,movieId,rating,timestamp,
  or ml-100k's tab-separated `u.data`).
- `synthetic [DAYS ...]`: learning curve of the recommender on the platform's own synthetic
  ratings (default 28, 90, 180, 365 days): held-out RMSE next to the generator's noise floor.
- `scale [N]`: training time and peak memory of the recommender on N synthetic latent-factor
  ratings (default 1,000,000).
- `retail DIR`: segmentation of customers of the UCI Online Retail data (one CSV per day).
- `sentiment DIR`: 10-fold sentiment accuracy on the UCI labelled sentences (`text<TAB>0|1`).
- `polarity DIR`: the same on Pang-Lee sentence polarity (`rt-polarity.pos`, `rt-polarity.neg`).

Each prints one JSON object. Nothing here runs in the test suite.
"""

from __future__ import annotations

import glob
import json
import os
import resource
import sys
import time
import tracemalloc
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from data_platform.ml import recommender, segmentation, sentiment
from data_platform.sources import load, synthetic

# The learning curve ends here, so that it is reproducible (the synthetic source is a pure
# function of the day).
SYNTHETIC_END = date(2026, 12, 1)


def load_movielens(path: str) -> pd.DataFrame:
    """Ratings from ml-latest-small `ratings.csv` or ml-100k `u.data`, in the canonical columns."""
    with open(path, encoding="latin-1") as fh:
        head = fh.readline()
    if "userId" in head:
        raw = pd.read_csv(path)
        raw = raw.rename(columns={"userId": "user_id", "movieId": "item_id"})
    else:
        raw = pd.read_csv(
            path, sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"]
        )
    return pd.DataFrame(
        {
            "user_id": raw["user_id"].astype(str),
            "item_id": raw["item_id"].astype(str),
            "rating": raw["rating"].astype(float),
            "rated_at": pd.to_datetime(raw["timestamp"], unit="s"),
        }
    )


def synthetic_ratings(
    n_ratings: int, n_users: int | None = None, n_items: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """Latent-factor ratings on a 1-5 scale with popularity-skewed items (MovieLens-like)."""
    rng = np.random.default_rng(seed)
    n_users = n_users or max(50, n_ratings // 165)
    n_items = n_items or max(50, n_ratings // 270)
    k = 8
    pu = rng.normal(0, 0.5, (n_users, k))
    qi = rng.normal(0, 0.5, (n_items, k))
    bu = rng.normal(0, 0.4, n_users)
    bi = rng.normal(0, 0.5, n_items)
    # Zipf-like item popularity, flattened at the head so that unique pairs remain plentiful.
    pop = rng.permutation((np.arange(n_items) + 20.0) ** -1.0)
    pop /= pop.sum()
    activity = rng.lognormal(0, 1, n_users)
    activity /= activity.sum()
    draws = int(n_ratings * 1.5)
    users = rng.choice(n_users, draws, p=activity)
    items = rng.choice(n_items, draws, p=pop)
    keep = ~pd.DataFrame({"u": users, "i": items}).duplicated().to_numpy()
    users, items = users[keep][:n_ratings], items[keep][:n_ratings]
    raw = 3.6 + bu[users] + bi[items] + np.einsum("ij,ij->i", pu[users], qi[items])
    rating = np.clip(np.round(raw + rng.normal(0, 0.7, len(raw))), 1, 5)
    return pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in users],
            "item_id": [f"i{i}" for i in items],
            "rating": rating,
        }
    )


def bench_movielens(path: str, folds: int = 5) -> dict:
    data = load_movielens(path)
    t0 = time.perf_counter()
    cv = recommender.cross_validate_rmse(data, folds=folds)
    cv_seconds = time.perf_counter() - t0
    _, metrics = recommender.train_and_evaluate(data)
    return {
        "file": os.path.basename(path),
        "n_ratings": len(data),
        "cv_folds": folds,
        "cv_seconds": round(cv_seconds, 1),
        **{f"cv_{k}": round(v, 4) for k, v in cv.items()},
        **{k: round(v, 4) for k, v in metrics.items()},
        "precision_ratio_vs_popular": round(
            metrics["precision_at_10"] / metrics["precision_at_10_popular"], 3
        ),
    }


def bench_scale(n_ratings: int = 1_000_000, time_budget_s: float = 20.0) -> dict:
    data = synthetic_ratings(n_ratings)
    cfg = replace(recommender.RecommenderConfig(), time_budget_s=time_budget_s)
    tracemalloc.start()
    t0 = time.perf_counter()
    model, metrics = recommender.train_and_evaluate(data, cfg)
    seconds = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t1 = time.perf_counter()
    recs = model.recommend(n=10)
    return {
        "n_ratings": len(data),
        "n_users": int(metrics["n_users"]),
        "n_items": int(metrics["n_items"]),
        "train_and_evaluate_seconds": round(seconds, 1),
        "recommend_all_users_seconds": round(time.perf_counter() - t1, 1),
        "recommendations": len(recs),
        "traced_peak_mb": round(traced_peak / 2**20),
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **{k: round(v, 4) for k, v in metrics.items()},
    }


def synthetic_source_ratings(days: int, end: date = SYNTHETIC_END) -> pd.DataFrame:
    """`days` days of the synthetic ratings source, one rating per (user, item): the latest,
    as the cleaning stage keeps it."""
    raw = synthetic.generate_range("ratings", end - timedelta(days=days), end)
    raw = raw.sort_values("rated_at", kind="stable")
    return raw.drop_duplicates(["user_id", "item_id"], keep="last").reset_index(drop=True)


def synthetic_noise_floor(ratings: pd.DataFrame) -> float:
    """RMSE of the generator's noiseless expected rating (clipped to the scale) against the
    observed ratings: what a model that knew the generator exactly would score."""
    expected = synthetic.expected_ratings(ratings["user_id"], ratings["item_id"])
    observed = ratings["rating"].astype(float).to_numpy()
    return float(np.sqrt(np.mean((np.clip(expected, 0.5, 5.0) - observed) ** 2)))


def bench_synthetic(days_list=(28, 90, 180, 365), time_budget_s: float = 20.0) -> dict:
    cfg = replace(recommender.RecommenderConfig(), time_budget_s=time_budget_s)
    curve = []
    for days in days_list:
        data = synthetic_source_ratings(days)
        floor = synthetic_noise_floor(data)
        t0 = time.perf_counter()
        _, m = recommender.train_and_evaluate(data, cfg)
        curve.append(
            {
                "days": days,
                "ratings": len(data),
                "users": int(m["n_users"]),
                "noise_floor": round(floor, 4),
                "target_rmse": round(1.10 * floor, 4),
                "rmse_over_floor": round(m["rmse"] / floor, 3),
                "seconds": round(time.perf_counter() - t0, 1),
                **{
                    k: round(v, 4)
                    for k, v in m.items()
                    if k.startswith(("rmse", "blend_weight", "svd_"))
                },
            }
        )
    return {"time_budget_s": time_budget_s, "curve": curve}


def online_retail_rfm(folder: str) -> pd.DataFrame:
    """RFM per identified customer: frequency counts non-cancelled invoices; monetary is net.

    Basket shape (lines per invoice, units per line) is taken over non-cancelled lines, as
    `features.customer_rfm` does for the platform's own orders.
    """
    files = sorted(glob.glob(os.path.join(folder, "*.csv")))
    if not files:
        raise FileNotFoundError(f"no CSV files in {folder}")
    raw = pd.concat(
        (
            pd.read_csv(f, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str})
            for f in files
        ),
        ignore_index=True,
    )
    raw = raw.dropna(subset=["CustomerID"])
    raw["customer_id"] = raw["CustomerID"].str.replace(r"\.0$", "", regex=True)
    raw["at"] = pd.to_datetime(raw["InvoiceDate"])
    raw["amount"] = raw["Quantity"] * raw["UnitPrice"]
    cancelled = raw["InvoiceNo"].str.startswith("C")
    purchases = raw[~cancelled]
    now = raw["at"].max().normalize() + pd.Timedelta(days=1)
    rfm = pd.DataFrame(
        {
            "recency_days": (now - purchases.groupby("customer_id")["at"].max()).dt.days,
            "frequency": purchases.groupby("customer_id")["InvoiceNo"].nunique(),
            "monetary": raw.groupby("customer_id")["amount"].sum(),
            "lines_per_order": purchases.groupby("customer_id").size()
            / purchases.groupby("customer_id")["InvoiceNo"].nunique(),
            "units_per_line": purchases.groupby("customer_id")["Quantity"].mean(),
        }
    )
    # Customers who only ever cancelled have no purchase to date their recency from.
    rfm = rfm.dropna(subset=["recency_days", "frequency"])
    return rfm.rename_axis("customer_id").reset_index()


def bench_retail(folder: str) -> dict:
    rfm = online_retail_rfm(folder)
    t0 = time.perf_counter()
    model, metrics = segmentation.train_and_evaluate(rfm)
    prof = model.profiles(rfm)
    return {
        "n_customers": len(rfm),
        "seconds": round(time.perf_counter() - t0, 1),
        **{k: round(v, 4) for k, v in metrics.items()},
        "profiles": prof.round(3).to_dict(orient="records"),
    }


def load_reviews(kind: str, folder: str) -> pd.DataFrame:
    """Labelled sentences through the project's own source adapter (`labelled_text`, `polarity`)."""
    result = load(kind, folder, entity="reviews")
    if len(result.rejected):
        print(f"{kind}: {len(result.rejected)} lines rejected", file=sys.stderr)
    return result.data


def bench_sentiment(data: pd.DataFrame) -> dict:
    t0 = time.perf_counter()
    _, metrics = sentiment.train_and_evaluate(data)
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        **{k: round(v, 4) for k, v in metrics.items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(__doc__)
        return 2
    what, rest = args[0], args[1:]
    if what == "movielens":
        out = bench_movielens(rest[0])
    elif what == "synthetic":
        out = bench_synthetic(tuple(int(d) for d in rest) or (28, 90, 180, 365))
    elif what == "scale":
        out = bench_scale(int(rest[0]) if rest else 1_000_000)
    elif what == "retail":
        out = bench_retail(rest[0])
    elif what == "sentiment":
        out = bench_sentiment(load_reviews("labelled_text", rest[0]))
    elif what == "polarity":
        out = bench_sentiment(load_reviews("polarity", rest[0]))
    else:
        print(f"unknown benchmark {what!r}\n{__doc__}")
        return 2
    print(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
