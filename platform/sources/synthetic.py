"""A deterministic synthetic marketplace: customers, products and daily events.

Every frame is a pure function of ``(seed, entity, day)``: the random generator of a day is
seeded from those three values only, so day D is identical whether or not other days were
generated, and in any order. Dimensions (customers, products) and the latent structure shared by
the event entities (segments, product popularity, rating factors) are drawn once per seed.

Ground truth the models can be scored against:

- customers carry ``true_segment`` (one of ``SEGMENTS``); segments differ in how often they
  order, how many lines and units an order holds, and how recently they ordered (the
  ``lapsing`` segment's activity fades with customer age), so a segmentation can recover them;
- ratings are ``GLOBAL_MEAN + user bias + item bias + <user factors, item factors> + noise`` with
  noise sd ``RATING_NOISE_SD``, clipped to [0.5, 5] and not rounded. A perfect model therefore
  has an RMSE of at most ``RATING_NOISE_SD``: clipping only pulls about 5 % of ratings
  (those whose expected value is near a bound) towards the truth, so the floor measured on the
  clipped values is slightly below 0.6 (about 0.58);
- reviews have a label derived from the (noisy) rating, ``REVIEW_LABEL_NOISE`` of labels flipped,
  and text whose sentiment words agree with the label only most of the time, with negations
  ("not good", "never disappointed"): a bag-of-words model lands around 80-90 % accuracy;
- experiments: ``checkout_v2`` assigns variant A/B by a hash of ``(experiment_id, user_id)``;
  B converts at ``BASE_CONVERSION * (1 + TRUE_LIFT)``.

Incident calendar (``incidents()``): an incident happens on a day iff
``day.toordinal() % INCIDENT_PERIOD == INCIDENT_PHASE`` (one day in 9: never two consecutive
days, and the weekday rotates). Its kind is chosen by a hash of ``(seed, day)``:

=================== ============ ==========================================================
kind                entity       effect on that day's partition
=================== ============ ==========================================================
volume_drop         orders       about 70 % of the orders (with all their lines) are missing
null_spike          orders or    about 40 % of ``customer_id`` (orders) or ``text`` (reviews)
                    reviews      is missing
duplicate_burst     ratings      about 30 % of rows are repeated exactly
schema_drift        reviews      ``text`` is renamed ``review_text``, or an extra column
                                 ``sentiment_hint`` appears
missing_partition   experiments  no rows at all
distribution_shift  orders       ``unit_price`` multiplied by 3
=================== ============ ==========================================================

Under schema drift the frame returned by ``generate`` does not match the canonical schema, on
purpose: ingestion keeps the canonical columns, stores a missing one as all-missing (so the
null-fraction metric jumps to 1) and keeps extra columns, which the schema metadata shows.
With ``incidents=False`` every day is clean.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

from data_platform.sources.schemas import DIMENSION_ENTITIES, SCHEMAS

RATING_NOISE_SD = 0.6
TRUE_LIFT = 0.10
BASE_CONVERSION = 0.10
GLOBAL_MEAN = 3.6
REVIEW_LABEL_NOISE = 0.05
EXPERIMENT_ID = "checkout_v2"

N_CUSTOMERS = 2_000
N_PRODUCTS = 300
FACTOR_DIM = 8
ORDER_LINES_PER_DAY = 400
RATINGS_PER_DAY = 500
REVIEWS_PER_DAY = 100
EXPOSURES_PER_DAY = 1_000
# Day 0 of the trend and of customers' signup history.
REFERENCE_DAY = date(2025, 1, 1)
TREND_PER_YEAR = 0.15
# Relative volume by weekday (Monday first): weekends are busier.
WEEKDAY_FACTOR = np.array([0.9, 0.88, 0.9, 0.95, 1.05, 1.2, 1.15])

SEGMENTS = ("champions", "loyal", "bargain_hunters", "lapsing")
SEGMENT_SHARE = np.array([0.1, 0.25, 0.3, 0.35])
# Relative order rate, mean lines per order, mean units per line.
SEGMENT_RATE = np.array([8.0, 3.0, 1.5, 0.6])
SEGMENT_LINES = np.array([5.0, 3.0, 1.5, 2.0])
SEGMENT_UNITS = np.array([2.0, 1.5, 4.0, 1.2])

CATEGORIES = ("books", "electronics", "garden", "kitchen", "toys", "beauty", "sports", "fashion")
CATEGORY_PRICE = np.array([15.0, 120.0, 35.0, 25.0, 20.0, 18.0, 45.0, 40.0])
COUNTRIES = ("United Kingdom", "Germany", "France", "Netherlands", "Spain", "Ireland", "Belgium")
COUNTRY_SHARE = np.array([0.6, 0.1, 0.1, 0.06, 0.05, 0.05, 0.04])
ADJECTIVES = ("classic", "compact", "deluxe", "eco", "handmade", "modern", "smart", "vintage")
NOUNS = {
    "books": ("novel", "cookbook", "atlas", "biography"),
    "electronics": ("headphones", "charger", "speaker", "camera"),
    "garden": ("planter", "hose", "trowel", "lantern"),
    "kitchen": ("kettle", "pan", "knife set", "mug"),
    "toys": ("puzzle", "robot", "doll", "kite"),
    "beauty": ("serum", "lipstick", "shampoo", "brush"),
    "sports": ("yoga mat", "racket", "bottle", "helmet"),
    "fashion": ("scarf", "jacket", "belt", "sneakers"),
}

POSITIVE_WORDS = (
    "great",
    "excellent",
    "love",
    "perfect",
    "amazing",
    "recommend",
    "happy",
    "sturdy",
)
NEGATIVE_WORDS = ("poor", "broken", "awful", "waste", "cheap", "returned", "useless", "flimsy")
# Negated phrases read the opposite way to their last word: they defeat naive word counting.
POSITIVE_NEGATIONS = ("never disappointed", "not bad", "no complaints", "not a problem")
NEGATIVE_NEGATIONS = ("not good", "not worth it", "never again", "not recommended")
NEUTRAL_WORDS = (
    "the",
    "it",
    "arrived",
    "box",
    "order",
    "delivery",
    "size",
    "colour",
    "week",
    "price",
)
# Probability that a sentiment-bearing token agrees with the label.
WORD_AGREEMENT = 0.8

INCIDENT_PERIOD = 9
INCIDENT_PHASE = 4
INCIDENT_KINDS = (
    "volume_drop",
    "null_spike",
    "duplicate_burst",
    "schema_drift",
    "missing_partition",
    "distribution_shift",
)
INCIDENT_ENTITY = {
    "volume_drop": "orders",
    "duplicate_burst": "ratings",
    "schema_drift": "reviews",
    "missing_partition": "experiments",
    "distribution_shift": "orders",
}


@dataclass(frozen=True)
class Incident:
    day: date
    entity: str
    kind: str
    description: str
    column: str | None = None


def _key(*parts: object) -> int:
    """A stable 32-bit key (Python's own hash() of a str changes between processes)."""
    return zlib.crc32("|".join(str(p) for p in parts).encode())


def _rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _key(*parts)])


# ---------------------------------------------------------------- incidents


def incident_on(day: date, *, seed: int = 0) -> Incident | None:
    if day.toordinal() % INCIDENT_PERIOD != INCIDENT_PHASE:
        return None
    h = _key(seed, "incident", day.toordinal())
    kind = INCIDENT_KINDS[h % len(INCIDENT_KINDS)]
    if kind == "null_spike":
        entity, column = (("orders", "customer_id"), ("reviews", "text"))[(h >> 8) % 2]
        return Incident(day, entity, kind, f"about 40% of {entity}.{column} missing", column)
    entity = INCIDENT_ENTITY[kind]
    if kind == "volume_drop":
        return Incident(day, entity, kind, "about 70% of orders missing", None)
    if kind == "duplicate_burst":
        return Incident(day, entity, kind, "about 30% of ratings repeated exactly", None)
    if kind == "schema_drift":
        if (h >> 8) % 2:
            return Incident(day, entity, kind, "column text renamed review_text", "text")
        return Incident(day, entity, kind, "extra column sentiment_hint", "sentiment_hint")
    if kind == "missing_partition":
        return Incident(day, entity, kind, "no experiment exposures delivered", None)
    return Incident(day, entity, kind, "unit_price multiplied by 3", "unit_price")


def incidents(start: date, end: date, *, seed: int = 0) -> list[Incident]:
    """The incidents injected on the days of [start, end)."""
    found = []
    for ordinal in range(start.toordinal(), end.toordinal()):
        incident = incident_on(date.fromordinal(ordinal), seed=seed)
        if incident is not None:
            found.append(incident)
    return found


# ---------------------------------------------------------------- shared latent structure


@dataclass(frozen=True)
class _World:
    customers: pd.DataFrame
    products: pd.DataFrame
    segment: np.ndarray  # segment index per customer
    signup_age: np.ndarray  # days between signup and REFERENCE_DAY
    popularity: np.ndarray  # product choice probabilities
    price: np.ndarray
    category: np.ndarray  # category index per product
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray


@lru_cache(maxsize=8)
def _world(seed: int, population: float = 1.0) -> _World:
    # `population` multiplies the numbers of customers and products; 1 is the reference world.
    n_customers = max(1, round(N_CUSTOMERS * population))
    n_products = max(1, round(N_PRODUCTS * population))
    rng = _rng(seed, "world")
    segment = rng.choice(len(SEGMENTS), size=n_customers, p=SEGMENT_SHARE)
    signup_age = rng.integers(1, 730, size=n_customers)
    signup = pd.Timestamp(REFERENCE_DAY) - pd.to_timedelta(signup_age, unit="D")
    signup = signup + pd.to_timedelta(rng.integers(0, 86_400, size=n_customers), unit="s")
    country = rng.choice(len(COUNTRIES), size=n_customers, p=COUNTRY_SHARE)
    customers = pd.DataFrame(
        {
            "customer_id": pd.array([f"C{i:05d}" for i in range(n_customers)], dtype="string"),
            "signup_date": pd.Series(signup, dtype="datetime64[ns]"),
            "country": pd.array(np.array(COUNTRIES, dtype=object)[country], dtype="string"),
            "true_segment": pd.array(np.array(SEGMENTS, dtype=object)[segment], dtype="string"),
        }
    )
    category = rng.integers(0, len(CATEGORIES), size=n_products)
    price = np.round(CATEGORY_PRICE[category] * rng.lognormal(0.0, 0.5, size=n_products), 2)
    adjective = rng.integers(0, len(ADJECTIVES), size=n_products)
    noun = rng.integers(0, 4, size=n_products)
    descriptions = [
        f"{ADJECTIVES[a]} {NOUNS[CATEGORIES[c]][n]}"
        for a, c, n in zip(adjective, category, noun, strict=True)
    ]
    products = pd.DataFrame(
        {
            "product_id": pd.array([f"P{i:04d}" for i in range(n_products)], dtype="string"),
            "category": pd.array(np.array(CATEGORIES, dtype=object)[category], dtype="string"),
            "price": pd.array(price, dtype="Float64"),
            "description": pd.array(descriptions, dtype="string"),
        }
    )
    popularity = rng.zipf(1.6, size=n_products).astype(float).clip(max=50.0)
    return _World(
        customers=customers,
        products=products,
        segment=segment,
        signup_age=signup_age,
        popularity=popularity / popularity.sum(),
        price=price,
        category=category,
        user_bias=rng.normal(0.0, 0.3, size=n_customers),
        item_bias=rng.normal(0.0, 0.4, size=n_products),
        user_factors=rng.normal(0.0, 0.35, size=(n_customers, FACTOR_DIM)),
        item_factors=rng.normal(0.0, 0.35, size=(n_products, FACTOR_DIM)),
    )


def _customer_weights(world: _World, day: date) -> np.ndarray:
    """Order propensity per customer on `day`; lapsing customers fade as they age."""
    age = world.signup_age + (day - REFERENCE_DAY).days
    weight = SEGMENT_RATE[world.segment] * (age > 0)
    lapsing = world.segment == SEGMENTS.index("lapsing")
    weight = np.where(lapsing, weight * np.exp(-np.clip(age, 0, None) / 180.0), weight)
    if weight.sum() <= 0:
        # Days long before the reference day (e.g. synthetic ratings beside a file source of
        # orders from another decade): the whole population is active at its segment's rate.
        weight = SEGMENT_RATE[world.segment].astype(float)
    return weight / weight.sum()


def _volume(base: float, day: date, scale: float, rng: np.random.Generator) -> int:
    # Flat before the reference day, so any decade has realistic volumes.
    trend = 1.0 + TREND_PER_YEAR * max((day - REFERENCE_DAY).days, 0) / 365.0
    expected = base * scale * WEEKDAY_FACTOR[day.weekday()] * max(trend, 0.1)
    return int(rng.poisson(expected))


def _times(day: date, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted timestamps within `day`, busier in the afternoon than at night."""
    hours = np.clip(rng.normal(14.0, 4.0, size=n), 0.0, 23.999)
    seconds = np.sort((hours * 3600).astype(np.int64))
    return np.datetime64(day, "ns") + seconds.astype("timedelta64[s]").astype("timedelta64[ns]")


def _ids(prefix: str, n: int) -> pd.arrays.StringArray:
    return pd.array(prefix + pd.Series(np.arange(n)).astype(str).str.zfill(6), dtype="string")


def _true_rating(world: _World, users: np.ndarray, items: np.ndarray, rng) -> np.ndarray:
    signal = (
        GLOBAL_MEAN
        + world.user_bias[users]
        + world.item_bias[items]
        + np.einsum("ij,ij->i", world.user_factors[users], world.item_factors[items])
    )
    return np.clip(signal + rng.normal(0.0, RATING_NOISE_SD, size=len(users)), 0.5, 5.0)


def expected_ratings(user_ids, item_ids, *, seed: int = 0) -> np.ndarray:
    """The noiseless rating (before noise and clipping) of each (customer, product) id pair.

    What a perfect recommender would predict: scoring it against the observed ratings gives the
    noise floor that no model can beat.
    """
    world = _world(int(seed))
    users = pd.Series(np.arange(N_CUSTOMERS), index=world.customers["customer_id"].to_numpy())
    items = pd.Series(np.arange(N_PRODUCTS), index=world.products["product_id"].to_numpy())
    u = users.reindex(np.asarray(user_ids, dtype=object)).to_numpy()
    i = items.reindex(np.asarray(item_ids, dtype=object)).to_numpy()
    if np.isnan(u).any() or np.isnan(i).any():
        raise ValueError("expected_ratings: unknown customer or product id")
    u, i = u.astype(np.int64), i.astype(np.int64)
    return (
        GLOBAL_MEAN
        + world.user_bias[u]
        + world.item_bias[i]
        + np.einsum("ij,ij->i", world.user_factors[u], world.item_factors[i])
    )


# ---------------------------------------------------------------- entities


def _orders(world: _World, day: date, scale: float, rng) -> pd.DataFrame:
    weights = _customer_weights(world, day)
    mean_lines = float(weights @ SEGMENT_LINES[world.segment])
    n_orders = _volume(ORDER_LINES_PER_DAY / mean_lines, day, scale, rng)
    buyer = rng.choice(len(world.segment), size=n_orders, p=weights)
    seg = world.segment[buyer]
    lines = 1 + rng.poisson(SEGMENT_LINES[seg] - 1.0)
    n = int(lines.sum())
    order_index = np.repeat(np.arange(n_orders), lines)
    starts = np.cumsum(lines) - lines
    line_no = np.arange(n) - np.repeat(starts, lines) + 1
    product = rng.choice(len(world.price), size=n, p=world.popularity)
    line_seg = seg[order_index]
    quantity = 1 + rng.poisson(SEGMENT_UNITS[line_seg] - 1.0)
    unit_price = np.round(world.price[product] * rng.lognormal(0.0, 0.05, size=n), 2)
    order_ids = _ids(f"O{day:%Y%m%d}-", n_orders)
    customer_ids = world.customers["customer_id"].array
    countries = world.customers["country"].array
    return pd.DataFrame(
        {
            "order_id": order_ids.take(order_index),
            "line_no": pd.array(line_no, dtype="Int64"),
            "customer_id": customer_ids.take(buyer[order_index]),
            "product_id": world.products["product_id"].array.take(product),
            "ordered_at": _times(day, n_orders, rng)[order_index],
            "quantity": pd.array(quantity, dtype="Int64"),
            "unit_price": pd.array(unit_price, dtype="Float64"),
            "country": countries.take(buyer[order_index]),
        }
    )


def _ratings(world: _World, day: date, scale: float, rng) -> pd.DataFrame:
    n = _volume(RATINGS_PER_DAY, day, scale, rng)
    users = rng.choice(len(world.segment), size=n, p=_customer_weights(world, day))
    items = rng.choice(len(world.price), size=n, p=world.popularity)
    return pd.DataFrame(
        {
            "user_id": world.customers["customer_id"].array.take(users),
            "item_id": world.products["product_id"].array.take(items),
            "rating": pd.array(_true_rating(world, users, items, rng), dtype="Float64"),
            "rated_at": _times(day, n, rng),
        }
    )


def _review_texts(labels: np.ndarray, categories: np.ndarray, rng) -> list[str]:
    n = len(labels)
    n_sentiment = rng.integers(2, 4, size=n)
    texts = []
    # Per-review Python work is small (a handful of tokens); volumes are ~100 a day.
    agree = rng.random((n, 3)) < WORD_AGREEMENT
    negation = rng.random((n, 3)) < 0.25
    picks = rng.integers(0, 8, size=(n, 3))
    neg_picks = rng.integers(0, 4, size=(n, 3))
    neutral = rng.integers(0, len(NEUTRAL_WORDS), size=(n, 4))
    nouns = rng.integers(0, 4, size=n)
    for i in range(n):
        tokens = [NEUTRAL_WORDS[neutral[i, 0]], NOUNS[CATEGORIES[categories[i]]][nouns[i]]]
        for j in range(n_sentiment[i]):
            positive = bool(labels[i]) == bool(agree[i, j])
            if negation[i, j]:
                bank = POSITIVE_NEGATIONS if positive else NEGATIVE_NEGATIONS
                tokens.append(bank[neg_picks[i, j]])
            else:
                tokens.append((POSITIVE_WORDS if positive else NEGATIVE_WORDS)[picks[i, j]])
            tokens.append(NEUTRAL_WORDS[neutral[i, j + 1]])
        texts.append(" ".join(tokens))
    return texts


def _reviews(world: _World, day: date, scale: float, rng) -> pd.DataFrame:
    n = _volume(REVIEWS_PER_DAY, day, scale, rng)
    users = rng.choice(len(world.segment), size=n, p=_customer_weights(world, day))
    items = rng.choice(len(world.price), size=n, p=world.popularity)
    rating = _true_rating(world, users, items, rng)
    label = (rating >= 3.5).astype(np.int64)
    flip = rng.random(n) < REVIEW_LABEL_NOISE
    label = np.where(flip, 1 - label, label)
    return pd.DataFrame(
        {
            "review_id": _ids(f"R{day:%Y%m%d}-", n),
            "product_id": world.products["product_id"].array.take(items),
            "customer_id": world.customers["customer_id"].array.take(users),
            "text": pd.array(_review_texts(label, world.category[items], rng), dtype="string"),
            "label": pd.array(label, dtype="Int64"),
            "rating": pd.array(np.round(rating * 2) / 2, dtype="Float64"),
            "reviewed_at": _times(day, n, rng),
        }
    )


def assign_variant(experiment_id: str, user_ids: pd.Series) -> np.ndarray:
    """ "A" or "B", 50/50, by a stable hash of (experiment_id, user_id): a user never switches."""
    keys = (experiment_id + ":" + pd.Series(user_ids, dtype="string")).astype(object)
    hashed = pd.util.hash_pandas_object(keys, index=False).to_numpy()
    return np.where(hashed % 2 == 0, "A", "B")


def _experiments(day: date, scale: float, rng) -> pd.DataFrame:
    n = _volume(EXPOSURES_PER_DAY, day, scale, rng)
    # Each visitor is exposed once, on the day of their first visit.
    users = _ids(f"V{day:%Y%m%d}-", n)
    variant = assign_variant(EXPERIMENT_ID, pd.Series(users))
    rate = np.where(variant == "B", BASE_CONVERSION * (1 + TRUE_LIFT), BASE_CONVERSION)
    converted = rng.random(n) < rate
    revenue = np.where(converted, np.round(rng.lognormal(3.5, 0.6, size=n), 2), 0.0)
    return pd.DataFrame(
        {
            "experiment_id": pd.array([EXPERIMENT_ID] * n, dtype="string"),
            "user_id": users,
            "variant": pd.array(variant, dtype="string"),
            "exposed_at": _times(day, n, rng),
            "converted": pd.array(converted, dtype="boolean"),
            "revenue": pd.array(revenue, dtype="Float64"),
        }
    )


def _inject(frame: pd.DataFrame, incident: Incident, rng) -> pd.DataFrame:
    kind = incident.kind
    if kind == "volume_drop":
        orders = frame["order_id"].unique()
        kept = orders[rng.random(len(orders)) < 0.3]
        return frame[frame["order_id"].isin(kept)].reset_index(drop=True)
    if kind == "null_spike":
        col = incident.column
        out = frame.copy()
        out[col] = out[col].mask(rng.random(len(out)) < 0.4)
        return out
    if kind == "duplicate_burst":
        repeated = frame[rng.random(len(frame)) < 0.3]
        out = pd.concat([frame, repeated])
        return out.sort_values("rated_at", kind="stable").reset_index(drop=True)
    if kind == "schema_drift":
        if incident.column == "text":
            return frame.rename(columns={"text": "review_text"})
        out = frame.copy()
        out["sentiment_hint"] = pd.array(
            np.where(frame["label"] == 1, "pos", "neg"), dtype="string"
        )
        return out
    if kind == "missing_partition":
        return frame.iloc[0:0].reset_index(drop=True)
    if kind == "distribution_shift":
        out = frame.copy()
        out["unit_price"] = out["unit_price"] * 3
        return out
    raise ValueError(f"unknown incident kind {kind!r}")


def generate(
    entity: str,
    day: date | None = None,
    *,
    seed: int = 0,
    scale: float = 1.0,
    incidents: bool = True,
    population: float = 1.0,
) -> pd.DataFrame:
    """One day of an event entity, or the whole dimension table (`day` ignored), canonical schema.

    With `incidents=True` the day's incident (see the module docstring) is applied when it
    concerns `entity`; a schema-drift day returns the drifted, non-canonical frame.
    `population` multiplies the numbers of customers and products (1, the default, is the
    reference world); benchmarks grow it with `scale` so that large volumes are not mostly
    repeats of the same customer × product pairs.
    """
    if entity not in SCHEMAS:
        raise ValueError(f"unknown entity {entity!r}; expected one of {list(SCHEMAS)}")
    if not population > 0:
        raise ValueError(f"population must be > 0, got {population}")
    world = _world(int(seed), float(population))
    if entity in DIMENSION_ENTITIES:
        return (world.customers if entity == "customers" else world.products).copy()
    if day is None:
        raise ValueError(f"{entity} is an event entity: generate() needs a day")
    if isinstance(day, datetime):
        day = day.date()
    if scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    rng = _rng(seed, entity, day.toordinal())
    if entity == "orders":
        frame = _orders(world, day, scale, rng)
    elif entity == "ratings":
        frame = _ratings(world, day, scale, rng)
    elif entity == "reviews":
        frame = _reviews(world, day, scale, rng)
    else:
        frame = _experiments(day, scale, rng)
    if incidents:
        incident = incident_on(day, seed=seed)
        if incident is not None and incident.entity == entity:
            frame = _inject(frame, incident, _rng(seed, "incident", entity, day.toordinal()))
    return frame


def generate_range(entity: str, start: date, end: date, **kwargs) -> pd.DataFrame:
    """Concatenation of `generate` over the days of [start, end)."""
    days = [start + timedelta(days=i) for i in range((end - start).days)]
    frames = [generate(entity, d, **kwargs) for d in days]
    if not frames:
        return SCHEMAS[entity].empty()
    return pd.concat(frames, ignore_index=True)
