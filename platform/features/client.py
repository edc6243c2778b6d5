"""A small client of the service's feature API (``GET /v1/features/{view}/{entity_id}``, batch
``POST /v1/features/{view}``) over one keep-alive HTTP connection."""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote, urlparse


class FeatureClientError(RuntimeError):
    """The service answered with an error (the message carries its ``detail``)."""


class FeatureClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", timeout_s: float = 5.0):
        parsed = urlparse(base_url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                payload = json.loads(response.read())
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()  # a keep-alive connection the server closed: once more on a new one
                if attempt == 2:
                    raise
        if response.status != 200:
            raise FeatureClientError(f"{response.status} {payload.get('error')}: {payload.get('detail')}")
        return payload

    def get(self, view: str, entity_id: str) -> dict | None:
        """The entity's features (with their ``event_timestamp``), or None when it has none."""
        return self._request("GET", f"/v1/features/{quote(view)}/{quote(entity_id)}")["features"]

    def get_many(self, view: str, entity_ids: list[str]) -> list[dict | None]:
        """Features of up to 100 entities in one request, in the order asked."""
        answer = self._request("POST", f"/v1/features/{quote(view)}", {"entity_ids": list(entity_ids)})
        return [r["features"] for r in answer["results"]]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> FeatureClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
