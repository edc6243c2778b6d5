"""The HTTP API (Starlette on uvicorn): recommendations, online features (single and batch),
health, readiness, metrics.

Every error is a JSON body ``{"error": kind, "detail": text}``: 400 for bad input, 404 for an
unknown route, 405 for a wrong method, 503 when nothing can be served yet.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from data_platform.features.view import NAME_PATTERN as VIEW_NAME_PATTERN
from data_platform.serving.config import MAX_BATCH_USERS, MAX_N, ServingConfig
from data_platform.serving.features import FeaturesUnavailable
from data_platform.serving.layout import USER_ID_PATTERN, truncate_items
from data_platform.serving.service import (
    Answer,
    RecommendationService,
    ServiceUnavailable,
    UserAnswer,
)

log = logging.getLogger("data_platform.serving")
DEFAULT_N = 10
JSON = "application/json"
ERROR_KINDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 503: "unavailable"}


class BadRequest(Exception):
    pass


def _error(status: int, detail: str, service: RecommendationService) -> JSONResponse:
    kind = ERROR_KINDS.get(status, "internal")
    service.metrics.errors.labels(kind).inc()
    return JSONResponse({"error": kind, "detail": detail}, status_code=status)


def _n(raw: object) -> int:
    if raw is None:
        return DEFAULT_N
    if isinstance(raw, bool) or not (isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit())):
        raise BadRequest(f"n must be an integer from 1 to {MAX_N}, got {raw!r}")
    n = int(raw)
    if not 1 <= n <= MAX_N:
        raise BadRequest(f"n must be from 1 to {MAX_N}, got {n}")
    return n


def _user_id(raw: object) -> str:
    if not isinstance(raw, str) or not USER_ID_PATTERN.match(raw):
        raise BadRequest(
            f"invalid user id {raw!r}: 1 to 64 letters, digits or _.:@- , starting with a letter or digit"
        )
    return raw


def _user_json(user: UserAnswer, n: int) -> bytes:
    # Spliced from the stored payloads: the items are never decoded on the request path.
    return b"".join((
        b'{"user_id":"', user.user_id.encode(), b'","source":"', user.source.encode(),
        b'","personalised":', b"true" if user.personalised else b"false",
        b',"items":', truncate_items(user.payload, n), b"}",
    ))


def _view(raw: object) -> str:
    if not isinstance(raw, str) or not VIEW_NAME_PATTERN.match(raw):
        raise BadRequest(f"invalid feature view name {raw!r}")
    return raw


def _entity_json(entity_id: str, payload: bytes | None) -> bytes:
    # The stored JSON object is spliced in as it is: never decoded on the request path.
    return b'{"entity_id":"' + entity_id.encode() + b'","features":' + (payload or b"null") + b"}"


def _versions_json(answer: Answer) -> bytes:
    cache_version = json.dumps(answer.cache_version or None)
    return f'"model_version":{json.dumps(answer.model_version)},"cache_version":{cache_version}'.encode()


def _headers(answer: Answer, source: str) -> dict[str, str]:
    return {
        "X-Model-Version": answer.model_version,
        "X-Cache-Version": answer.cache_version or "none",
        "X-Recommendation-Source": source,
    }


def create_app(config: ServingConfig | None = None) -> Starlette:
    service = RecommendationService(config or ServingConfig.from_env())
    metrics = service.metrics

    async def recommendations(request: Request) -> Response:
        started = time.perf_counter()
        try:
            user_id = _user_id(request.path_params["user_id"])
            n = _n(request.query_params.get("n"))
            answer = await service.answer([user_id])
        except BadRequest as error:
            return _error(400, str(error), service)
        except ServiceUnavailable as error:
            return _error(503, str(error), service)
        user = answer.users[0]
        # {"user_id", "source", "personalised", "items", "model_version", "cache_version"}
        body = _user_json(user, n)[:-1] + b"," + _versions_json(answer) + b"}"
        response = Response(body, media_type=JSON, headers=_headers(answer, user.source))
        metrics.latency.labels("single", user.source).observe(time.perf_counter() - started)
        return response

    async def batch(request: Request) -> Response:
        started = time.perf_counter()
        try:
            try:
                payload = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("the body must be JSON: {\"user_ids\": [...], \"n\": 10}") from None
            if not isinstance(payload, dict) or not isinstance(payload.get("user_ids"), list):
                raise BadRequest("the body must be a JSON object with a list `user_ids`")
            raw_ids = payload["user_ids"]
            if not 1 <= len(raw_ids) <= MAX_BATCH_USERS:
                raise BadRequest(f"user_ids must hold 1 to {MAX_BATCH_USERS} ids, got {len(raw_ids)}")
            user_ids = [_user_id(u) for u in raw_ids]
            n = payload.get("n", DEFAULT_N)
            if not isinstance(n, int) or isinstance(n, bool):
                raise BadRequest(f"n must be an integer from 1 to {MAX_N}, got {n!r}")
            n = _n(n)
            answer = await service.answer(user_ids)
        except BadRequest as error:
            return _error(400, str(error), service)
        except ServiceUnavailable as error:
            return _error(503, str(error), service)
        body = b"".join((
            b"{", _versions_json(answer), b',"results":[',
            b",".join(_user_json(u, n) for u in answer.users), b"]}",
        ))
        response = Response(body, media_type=JSON, headers=_headers(answer, answer.store))
        metrics.latency.labels("batch", answer.store).observe(time.perf_counter() - started)
        return response

    async def features(request: Request) -> Response:
        started = time.perf_counter()
        try:
            view = _view(request.path_params["view"])
            entity_id = _user_id(request.path_params["entity_id"])
            version, [payload] = await service.features.lookup(view, [entity_id])
        except BadRequest as error:
            return _error(400, str(error), service)
        except FeaturesUnavailable as error:
            return _error(404, str(error), service)
        body = (b'{"view":"' + view.encode() + b'","version":' + json.dumps(version).encode() + b","
                + _entity_json(entity_id, payload)[1:])
        metrics.latency.labels("features", "online").observe(time.perf_counter() - started)
        return Response(body, media_type=JSON)

    async def features_batch(request: Request) -> Response:
        started = time.perf_counter()
        try:
            view = _view(request.path_params["view"])
            try:
                payload = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("the body must be JSON: {\"entity_ids\": [...]}") from None
            if not isinstance(payload, dict) or not isinstance(payload.get("entity_ids"), list):
                raise BadRequest("the body must be a JSON object with a list `entity_ids`")
            raw_ids = payload["entity_ids"]
            if not 1 <= len(raw_ids) <= MAX_BATCH_USERS:
                raise BadRequest(f"entity_ids must hold 1 to {MAX_BATCH_USERS} ids, got {len(raw_ids)}")
            entity_ids = [_user_id(e) for e in raw_ids]
            version, payloads = await service.features.lookup(view, entity_ids)
        except BadRequest as error:
            return _error(400, str(error), service)
        except FeaturesUnavailable as error:
            return _error(404, str(error), service)
        body = b"".join((
            b'{"view":"', view.encode(), b'","version":', json.dumps(version).encode(), b',"results":[',
            b",".join(_entity_json(e, p) for e, p in zip(entity_ids, payloads, strict=True)), b"]}",
        ))
        metrics.latency.labels("features_batch", "online").observe(time.perf_counter() - started)
        return Response(body, media_type=JSON)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if service.cache is not None:
            service.cache_state = await service.cache.check()
        body = service.readiness()
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    async def metrics_endpoint(request: Request) -> Response:
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)

    async def http_error(request: Request, error: HTTPException) -> Response:
        detail = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        return _error(error.status_code, detail.get(error.status_code, str(error.detail)), service)

    async def internal_error(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal error", service)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = Starlette(
        routes=[
            Route("/v1/recommendations/{user_id}", recommendations, methods=["GET"]),
            Route("/v1/recommendations", batch, methods=["POST"]),
            Route("/v1/features/{view}/{entity_id}", features, methods=["GET"]),
            Route("/v1/features/{view}", features_batch, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )
    app.state.service = service
    return app


def app_from_env() -> Starlette:
    """The uvicorn factory used by ``data-platform serve`` (each worker builds its own app)."""
    return create_app(ServingConfig.from_env())
