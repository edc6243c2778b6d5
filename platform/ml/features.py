"""Feature tables built from clean entity frames (pure pandas, vectorized).

- `customer_rfm`: recency, frequency, monetary value and category mix per customer.
- `user_features` / `item_features`: rating activity for the recommender.
- `review_text_features`: length, emphasis and negation counts per review.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

OTHER_CATEGORY = "other"
UNKNOWN_CATEGORY = "unknown"
# Words that flip the sentiment of what follows; "n't" catches don't, isn't, wasn't, ...
NEGATION_PATTERN = (
    r"(?i)\b(?:not|no|never|nothing|nobody|none|neither|nor|cannot|without)\b|n['’]t\b"
)


def customer_rfm(
    orders: pd.DataFrame,
    *,
    as_of: pd.Timestamp | None = None,
    products: pd.DataFrame | None = None,
    max_categories: int = 20,
) -> pd.DataFrame:
    """One row per customer with at least one order line, sorted by customer_id.

    - recency_days: days from the customer's last line (purchase or return) to `as_of`
      (default: the latest `ordered_at` in `orders` plus one day).
    - frequency: distinct purchase orders (orders with a line of positive quantity); returns are
      not orders placed.
    - monetary: sum of quantity * unit_price over every line, so returns (negative quantity)
      subtract.
    - first_order_at / last_order_at: first and last line of any kind.
    - avg_basket: purchase value (positive lines only) / frequency; missing when frequency is 0.
    - lines_per_order: purchase lines / frequency; missing when frequency is 0.
    - units_per_line: units over purchase lines / purchase lines; missing without a purchase
      line. With lines_per_order it tells a basket of many single items from one bulk line
      of the same value, which recency, frequency and spend alone cannot.
    - share_<category>: share of the customer's purchase value per product category, when
      `products` is given. The `max_categories` largest categories by total purchase value
      keep their own column, the rest add up in share_other; products without a known
      category count as share_unknown. Missing when the customer bought nothing of value.

    Lines without customer_id (guest checkouts) cannot be attributed: they are left out and
    their count is in `result.attrs["excluded_rows"]`.
    """
    ordered_at = pd.to_datetime(orders["ordered_at"])
    if as_of is None:
        latest = ordered_at.max()
        as_of = (latest if pd.notna(latest) else pd.Timestamp(0)) + pd.Timedelta(days=1)
    as_of = pd.Timestamp(as_of)

    known = orders["customer_id"].notna().to_numpy()
    # Integer codes for customers and orders: grouping ints is far cheaper than strings.
    customer_code, customers = pd.factorize(
        orders["customer_id"].astype("string")[known], sort=True
    )
    order_code = pd.factorize(orders["order_id"].astype("string")[known])[0]
    value = (orders["quantity"].astype("Float64") * orders["unit_price"].astype("Float64"))[known]
    value = value.to_numpy(dtype=float, na_value=np.nan)
    purchase = value > 0
    purchase_value = np.where(purchase, value, 0.0)
    quantity = orders["quantity"].astype("Float64")[known].to_numpy(dtype=float, na_value=np.nan)
    lines = pd.DataFrame(
        {
            "customer": customer_code,
            "ordered_at": ordered_at[known].to_numpy(),
            "value": value,
            "purchase_value": purchase_value,
            "purchase_line": purchase.astype(np.int64),
            "purchase_units": np.where(purchase, quantity, 0.0),
        }
    )
    grouped = lines.groupby("customer", sort=True)
    # Distinct purchase orders per customer: one int64 per (customer, order) pair, the first of
    # each pair counted; a hash pass and a bincount instead of a grouped nunique.
    buyer = customer_code[purchase].astype(np.int64)
    pair = buyer * (int(order_code.max(initial=0)) + 1) + order_code[purchase]
    first_of_pair = ~pd.Series(pair).duplicated().to_numpy()
    out = pd.DataFrame(
        {
            "customer_id": pd.array(customers, dtype="string"),
            "first_order_at": grouped["ordered_at"].min().to_numpy(),
            "last_order_at": grouped["ordered_at"].max().to_numpy(),
            "frequency": np.bincount(buyer[first_of_pair], minlength=len(customers)),
            "monetary": grouped["value"].sum().to_numpy(),
        }
    )
    out["recency_days"] = (as_of - out["last_order_at"]) / pd.Timedelta(days=1)
    frequency = out["frequency"].astype("float64")
    out["avg_basket"] = grouped["purchase_value"].sum().to_numpy() / frequency.where(frequency > 0)
    purchase_lines = pd.Series(grouped["purchase_line"].sum().to_numpy(), dtype="float64")
    out["lines_per_order"] = purchase_lines / frequency.where(frequency > 0)
    out["units_per_line"] = grouped["purchase_units"].sum().to_numpy() / purchase_lines.where(
        purchase_lines > 0
    )
    result = out[
        [
            "customer_id",
            "recency_days",
            "frequency",
            "monetary",
            "first_order_at",
            "last_order_at",
            "avg_basket",
            "lines_per_order",
            "units_per_line",
        ]
    ].astype(
        {
            "customer_id": "string",
            "recency_days": "Float64",
            "frequency": "Int64",
            "monetary": "Float64",
            "first_order_at": "datetime64[ns]",
            "last_order_at": "datetime64[ns]",
            "avg_basket": "Float64",
            "lines_per_order": "Float64",
            "units_per_line": "Float64",
        }
    )
    if products is not None:
        product_id = orders["product_id"].astype("string")[known]
        shares = _category_shares(
            customer_code, len(customers), product_id, purchase_value, products, max_categories
        )
        for col, values in shares.items():
            result[col] = pd.array(values, dtype="Float64")
    result.attrs["excluded_rows"] = int((~known).sum())
    return result


def _category_shares(
    customer_code: np.ndarray,
    n_customers: int,
    product_id: pd.Series,
    purchase_value: np.ndarray,
    products: pd.DataFrame,
    max_categories: int,
) -> dict[str, np.ndarray]:
    """share_<category> -> per-customer share of purchase value (NaN without purchases)."""
    catalog = _categories_by_product(products)
    # Slug the few catalog categories, not the many order lines.
    slugs = catalog.fillna(UNKNOWN_CATEGORY).map(_slug).astype("string")
    category = product_id.map(slugs).fillna(UNKNOWN_CATEGORY).astype("string").to_numpy()
    bought = purchase_value > 0
    if not bought.any():
        return {}
    totals = (
        pd.Series(purchase_value[bought])
        .groupby(category[bought])
        .sum()
        .sort_values(ascending=False, kind="stable")
    )
    kept = [c for c in totals.index if c != UNKNOWN_CATEGORY][:max_categories]
    folded = np.where(
        pd.Series(category).isin([*kept, UNKNOWN_CATEGORY]).to_numpy(), category, OTHER_CATEGORY
    )
    names = sorted(set(folded[bought]))
    column = pd.Categorical(folded, categories=names).codes
    spend = np.zeros((n_customers, len(names)))
    np.add.at(spend, (customer_code[bought], column[bought]), purchase_value[bought])
    total = spend.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, spend / total, np.nan)
    return {f"share_{name}": share[:, i] for i, name in enumerate(names)}


def _categories_by_product(products: pd.DataFrame) -> pd.Series:
    ids = products["product_id"].astype("string")
    first = ~ids.duplicated().to_numpy()
    return pd.Series(
        products["category"].astype("string").to_numpy()[first], index=ids.to_numpy()[first]
    )


def _slug(name: str) -> str:
    slug = re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")
    return slug or UNKNOWN_CATEGORY


def user_features(ratings: pd.DataFrame) -> pd.DataFrame:
    """user_id, n_ratings, mean_rating, std_rating (sample; missing for one rating), first/last_rated_at."""
    grouped = ratings.groupby(ratings["user_id"].astype("string"), sort=True)
    rating = grouped["rating"]
    out = pd.DataFrame(
        {
            "n_ratings": rating.size(),
            "mean_rating": rating.mean(),
            "std_rating": rating.std(ddof=1),
            "first_rated_at": grouped["rated_at"].min(),
            "last_rated_at": grouped["rated_at"].max(),
        }
    )
    out.index.name = "user_id"
    return out.reset_index().astype(
        {
            "user_id": "string",
            "n_ratings": "Int64",
            "mean_rating": "Float64",
            "std_rating": "Float64",
            "first_rated_at": "datetime64[ns]",
            "last_rated_at": "datetime64[ns]",
        }
    )


def item_features(
    ratings: pd.DataFrame,
    products: pd.DataFrame | None = None,
    *,
    prior_weight: float | None = None,
) -> pd.DataFrame:
    """item_id, n_ratings, mean_rating, bayesian_mean, popularity_rank, category.

    bayesian_mean shrinks an item's mean toward the global mean as if the item had
    `prior_weight` extra ratings at the global mean (default: the median ratings per item), so
    that one 5-star rating does not outrank a thousand 4.8s. popularity_rank is 1 for the most
    rated item; ties share the best rank. category comes from `products` (product_id = item_id).
    """
    rating = ratings["rating"].astype("float64")
    grouped = rating.groupby(ratings["item_id"].astype("string"), sort=True)
    out = pd.DataFrame({"n_ratings": grouped.count(), "sum": grouped.sum()})
    out.index.name = "item_id"
    out["mean_rating"] = out["sum"] / out["n_ratings"].where(out["n_ratings"] > 0)
    global_mean = rating.mean()
    weight = (
        prior_weight
        if prior_weight is not None
        else (float(out["n_ratings"].median()) if len(out) else 1.0)
    )
    out["bayesian_mean"] = (weight * global_mean + out["sum"]) / (weight + out["n_ratings"])
    out["popularity_rank"] = out["n_ratings"].rank(method="min", ascending=False)
    out = out.reset_index()
    if products is not None:
        out["category"] = out["item_id"].map(_categories_by_product(products))
    else:
        out["category"] = pd.NA
    return out[
        ["item_id", "n_ratings", "mean_rating", "bayesian_mean", "popularity_rank", "category"]
    ].astype(
        {
            "item_id": "string",
            "n_ratings": "Int64",
            "mean_rating": "Float64",
            "bayesian_mean": "Float64",
            "popularity_rank": "Int64",
            "category": "string",
        }
    )


def review_text_features(reviews: pd.DataFrame) -> pd.DataFrame:
    """Per review: n_chars, n_words, n_exclaims, n_questions, n_negations, share_upper,
    n_upper_words, mean_word_length, plus label (the target, not a feature) and reviewed_at.

    share_upper is upper-case letters over letters (ASCII letters; missing without letters),
    n_upper_words counts words of two or more capitals ("NEVER", "AWFUL").
    """
    text = reviews["text"].astype("string").fillna("")
    n_chars = text.str.len()
    n_words = text.str.count(r"\S+")
    letters = text.str.count(r"[A-Za-z]")
    upper = text.str.count(r"[A-Z]")
    word_chars = text.str.count(r"\S")
    out = pd.DataFrame(
        {
            "review_id": reviews["review_id"].astype("string"),
            "product_id": reviews["product_id"].astype("string"),
            "n_chars": n_chars.astype("Int64"),
            "n_words": n_words.astype("Int64"),
            "n_exclaims": text.str.count("!").astype("Int64"),
            "n_questions": text.str.count(r"\?").astype("Int64"),
            "n_negations": text.str.count(NEGATION_PATTERN).astype("Int64"),
            "share_upper": (upper.astype("Float64") / letters.where(letters > 0).astype("Float64")),
            "n_upper_words": text.str.count(r"\b[A-Z]{2,}\b").astype("Int64"),
            "mean_word_length": word_chars.astype("Float64")
            / n_words.where(n_words > 0).astype("Float64"),
            "label": reviews["label"].astype("Int64"),
            "reviewed_at": pd.to_datetime(reviews["reviewed_at"]).astype("datetime64[ns]"),
        }
    )
    return out.reset_index(drop=True)
