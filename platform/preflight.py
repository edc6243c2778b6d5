"""What the `data-platform` commands check before they start: settings that name their fix.

A source that does not exist or a warehouse that cannot be reached would otherwise surface as a
traceback from deep inside the definitions (partition bounds are read from the sources) or as
minutes of connection retries per partition. Each problem here is one line: the setting, its
value (passwords masked), what is wrong and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CONNECT_TIMEOUT_S = 5


def source_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """`DATA_PLATFORM_<ENTITY>` settings that do not parse or name a path that is not there."""
    from data_platform.resources.source import env_var_name
    from data_platform.sources.result import SourceError
    from data_platform.sources.schemas import ENTITIES
    from data_platform.sources.spec import SQL, SYNTHETIC, hide_password, parse_spec

    environ = os.environ if environ is None else environ
    problems = []
    for entity in ENTITIES:
        name = env_var_name(entity)
        text = (environ.get(name) or "").strip()
        if not text:
            continue
        try:
            spec = parse_spec(text)
        except SourceError as error:
            problems.append(f"{name}: {error.problem} (unset it for synthetic data)")
            continue
        if spec.kind == SYNTHETIC:
            continue
        if spec.kind == SQL:
            problem = connect_problem(spec.path)
            if problem:
                problems.append(f"{name}: cannot reach {hide_password(spec.path)}: {problem}")
            continue
        if not Path(spec.path).expanduser().exists():
            problems.append(
                f"{name}={spec.kind}:{spec.path}: no such file or folder "
                f"(point it at the {spec.kind} data, or unset it for synthetic data)"
            )
    return problems


def warehouse_problem(url: str) -> str | None:
    """One line when the warehouse cannot be reached within CONNECT_TIMEOUT_S, else None."""
    from data_platform.sources.spec import hide_password

    problem = connect_problem(url)
    if problem is None:
        return None
    return (f"DATA_PLATFORM_WAREHOUSE_URL: cannot reach {hide_password(url)}: {problem} "
            f"(start the database or fix the URL; unset it for the embedded SQLite warehouse)")


def connect_problem(url: str) -> str | None:
    """Open and close one connection; the reason it failed, in one line, or None."""
    import sqlalchemy as sa

    from data_platform.sources.db import make_engine

    try:
        parsed = sa.make_url(url)
    except Exception:  # noqa: BLE001 - any parse failure is the user's URL, reported as such
        return "not a SQLAlchemy URL (e.g. postgresql://user:password@host:5432/db)"
    kwargs = {}
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        engine = make_engine(parsed, **kwargs)
    except Exception as error:  # noqa: BLE001 - e.g. a driver that is not installed
        return _first_line(error)
    try:
        with engine.connect():
            return None
    except Exception as error:  # noqa: BLE001 - every connection failure is reported, not raised
        return _first_line(getattr(error, "orig", None) or error)
    finally:
        engine.dispose()


def _first_line(error: BaseException) -> str:
    from data_platform.sources.spec import hide_password

    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    # A driver may echo the DSN it was given.
    return " ".join(hide_password(word) if "://" in word else word for word in text.split())
