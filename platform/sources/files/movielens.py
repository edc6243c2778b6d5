"""MovieLens folders, ml-100k (``u.data``, ``u.item``, ``u.user``) or ml-latest
(``ratings.csv``, ``movies.csv``): ratings, movies as products, users as customers."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pandas as pd

from data_platform.sources.files.assembly import result
from data_platform.sources.files.cache import cached
from data_platform.sources.files.cells import parse_epoch, parse_float, parse_id, parse_str
from data_platform.sources.files.listing import find_member
from data_platform.sources.files.registry import register_kind
from data_platform.sources.files.rows import Field
from data_platform.sources.files.windows import Parsed, line_tally, parse_with_rejects, select
from data_platform.sources.records import check_columns, read_records
from data_platform.sources.result import LoadResult, SourceError, empty_rejects

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip


ML_RATING_FIELDS = {
    "user_id": Field("userId", parse_id, required=True),
    "item_id": Field("movieId", parse_id, required=True),
    "rating": Field("rating", parse_float, required=True),
    "rated_at": Field("timestamp", parse_epoch, required=True),
}


@cached
def parse_ml_ratings(path: Path, fallback: str | None = None) -> Parsed:
    if path.name.removesuffix(".gz") == "u.data":
        records = read_records(
            path,
            delimiter="\t",
            header=["userId", "movieId", "rating", "timestamp"],
            quoting=csv.QUOTE_NONE,
            fallback=fallback,
        )
    else:
        records = read_records(path, fallback=fallback)
        check_columns(path, records, ["userId", "movieId", "rating", "timestamp"])
    return parse_with_rejects(path, records, ML_RATING_FIELDS, "rated_at")


@cached
def parse_ml_movies(path: Path, fallback: str | None = None) -> Parsed:
    if path.name.removesuffix(".gz") == "u.item":
        header = ["movieId", "title", "release", "video", "url", *ML100K_GENRES]
        records = read_records(
            path, encoding="latin-1", delimiter="|", header=header, quoting=csv.QUOTE_NONE
        )
        parsed = parse_with_rejects(
            path,
            records,
            {
                "product_id": Field("movieId", parse_id, True),
                "description": Field("title", parse_str),
            },
            None,
        )
        flags = pd.DataFrame([r for r in records.rows if len(r) == len(header)], columns=header)
        flags = flags.set_index(flags["movieId"].str.strip())[list(ML100K_GENRES)].eq("1")
        first_genre = flags.idxmax(axis=1).where(flags.any(axis=1))
        category = parsed.data["product_id"].map(first_genre.groupby(level=0).first())
    else:
        records = read_records(path, fallback=fallback)
        check_columns(path, records, ["movieId", "title", "genres"])
        fields = {
            "product_id": Field("movieId", parse_id, True),
            "description": Field("title", parse_str),
            "genres": Field("genres", parse_str),
        }
        parsed = parse_with_rejects(path, records, fields, None)
        category = parsed.data["genres"].str.split("|").str[0]
        category = category.where(category != "(no genres listed)")
    data = parsed.data.assign(category=category.astype("string"), price=pd.NA)
    return dataclasses.replace(parsed, data=data)


@cached
def parse_ml_users(path: Path, fallback: str | None = None) -> Parsed:
    header = ["userId", "age", "gender", "occupation", "zip"]
    records = read_records(
        path, delimiter="|", header=header, quoting=csv.QUOTE_NONE, fallback=fallback
    )
    parsed = parse_with_rejects(
        path, records, {"customer_id": Field("userId", parse_id, True)}, None
    )
    data = parsed.data.assign(signup_date=pd.NaT, country=pd.NA, true_segment=pd.NA)
    return dataclasses.replace(parsed, data=data)


def movielens_file(folder: Path, *names: str) -> Path | None:
    if not folder.is_dir():
        raise SourceError(folder, "MovieLens source must be a folder (ml-100k or ml-latest)")
    for name in names:
        found = find_member(folder, name)
        if found is not None:
            return found
    return None


@register_kind("movielens", ("ratings", "products", "customers"))
def load_movielens(path: Path, entity: str, start, end, options=None, fallback=None) -> LoadResult:
    ratings = movielens_file(path, "u.data", "ratings.csv")
    if ratings is None:
        raise SourceError(path, "no u.data or ratings.csv: not a MovieLens folder")
    if entity == "ratings":
        parsed = [parse_ml_ratings(ratings, fallback)]
        data, rejected = select(parsed, "rated_at", start, end)
        return result("ratings", data, rejected, [ratings], line_tally(parsed))
    if entity == "products":
        movies = movielens_file(path, "u.item", "movies.csv")
        if movies is None:
            raise SourceError(path, "no u.item or movies.csv: MovieLens folder without movies")
        parsed = [parse_ml_movies(movies, fallback)]
        data, rejected = select(parsed, None, None, None)
        return result("products", data, rejected, [movies], line_tally(parsed))
    users = movielens_file(path, "u.user")
    if users is not None:
        parsed = [parse_ml_users(users, fallback)]
        data, rejected = select(parsed, None, None, None)
        return result("customers", data, rejected, [users], line_tally(parsed))
    # ml-latest has no user file: users are known by their ratings, signed up at the first one.
    data, _ = select([parse_ml_ratings(ratings, fallback)], None, None, None)
    first = data.sort_values("rated_at", kind="stable").drop_duplicates("user_id")
    customers = pd.DataFrame(
        {
            "customer_id": first["user_id"],
            "signup_date": first["rated_at"],
            "country": pd.NA,
            "true_segment": pd.NA,
        }
    )
    return result("customers", customers.sort_values("customer_id"), empty_rejects(), [ratings])
