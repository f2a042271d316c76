"""Helpers for talking to the HTTP API, in process (TestClient) or over a real socket.

Both ``tests/integration/test_api.py`` and ``tests/e2e`` use them, so a request shape is
written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import days_ago

PROBLEM = "application/problem+json"


@dataclass
class ApiClient:
    """An HTTP client of the API and a bearer token per role."""

    client: httpx.Client
    tokens: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def post(self, path: str, body: dict[str, Any], role: str = "writer") -> httpx.Response:
        return self.client.post(path, json=body, headers=self.auth(role))

    def get(self, path: str, role: str = "reader", **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers=self.auth(role))

    def write(self, path: str, body: dict[str, Any]) -> int:
        """Post a command that must succeed; the highest position it recorded."""
        response = self.post(path, body)
        assert response.status_code == 201, response.text
        position: int = max(event["position"] for event in response.json()["events"])
        return position

    def read(self, path: str, position: int, **params: Any) -> Any:
        """A projection read that sees at least ``position``."""
        response = self.get(path, min_position=position, **params)
        assert response.status_code == 200, response.text
        return response.json()


def at(days: float) -> str:
    """An ``occurred_at`` ``days`` days ago, with its offset."""
    return days_ago(days).isoformat()


def plan_scoped_train(api: ApiClient, train: str = "5.5") -> int:
    """``train`` planned 60 days ago with anchor DEDUP-7 (Globex) and stretch SNAP-3."""
    api.write(
        "/v1/trains",
        {"train": train, "kind": "major", "title": "Dedup", "actor": "Ada", "occurred_at": at(60)},
    )
    api.write(
        f"/v1/trains/{train}/scope",
        {
            "feature": "DEDUP-7",
            "title": "Inline deduplication",
            "classification": "anchor",
            "customers": [{"name": "Globex", "weight": 8, "note": "renewal"}],
            "actor": "Ada",
            "occurred_at": at(59),
        },
    )
    return api.write(
        f"/v1/trains/{train}/scope",
        {"feature": "SNAP-3", "classification": "stretch", "actor": "Ada", "occurred_at": at(59)},
    )


def assert_problem(response: httpx.Response, status: int, kind: str | None = None) -> Any:
    """The response is an RFC 9457 problem with ``status``; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status
    assert {"type", "title", "status", "detail"} <= set(problem)
    if kind is not None:
        assert problem["type"] == f"/problems/{kind}"
    return problem
