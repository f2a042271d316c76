"""Every operation of the served OpenAPI document refuses a missing token and a low role.

The operations come from the live ``/openapi.json``, so a new route is covered as soon as
it is served.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api_client import assert_problem
from tests.served import ROLES, Served

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

PUBLIC = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"}
ADMIN_PREFIXES = ("/v1/inbox",)
"""SPEC §5: the webhook inbox is for admins alone."""
SIGNED_PREFIXES = ("/v1/webhooks/",)
"""SPEC §6: webhooks carry a signature, not a bearer token, so roles do not apply."""


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    path: str
    secured: bool

    @property
    def role(self) -> str:
        """The lowest role SPEC §5 lets through."""
        if self.template.startswith(ADMIN_PREFIXES):
            return "admin"
        return "reader" if self.method == "GET" else "writer"

    def send(self, served: Served, headers: dict[str, str]) -> httpx.Response:
        # A well-formed body, so that only authentication and roles can refuse it early.
        body: dict[str, Any] | None = None if self.method == "GET" else {}
        return served.client.request(self.method, self.path, json=body, headers=headers)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def example_value(parameter: dict[str, Any]) -> Any:
    """A value for a parameter: its documented example, else one of its type."""
    schema = parameter.get("schema", {})
    for holder in (parameter, schema):
        if holder.get("examples"):
            examples = holder["examples"]
            return examples[0] if isinstance(examples, list) else next(iter(examples.values()))
        if "example" in holder:
            return holder["example"]
    return 1 if schema.get("type") == "integer" else "x"


def operations(document: dict[str, Any]) -> Iterator[Operation]:
    for template, item in document["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            path = template
            query: dict[str, Any] = {}
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    path = path.replace(f"{{{parameter['name']}}}", str(example_value(parameter)))
                elif parameter["in"] == "query" and parameter.get("required"):
                    query[parameter["name"]] = example_value(parameter)
            if query:
                path = str(httpx.URL(path, params=query))
            secured = bool(operation.get("security", document.get("security")))
            yield Operation(method.upper(), template, path, secured)


@pytest.fixture(scope="module")
def served_operations(served: Served) -> list[Operation]:
    response = served.client.get("/openapi.json")
    assert response.status_code == 200
    found = list(operations(response.json()))
    assert len(found) >= 15, "the served document lists too few operations to be the API"
    return found


def test_only_the_public_operations_need_no_token(served_operations: list[Operation]) -> None:
    """The document declares bearer security on everything but health and signed webhooks."""
    unsecured = {
        str(op)
        for op in served_operations
        if not op.secured
        and op.template not in PUBLIC
        and not op.template.startswith(SIGNED_PREFIXES)
    }

    assert unsecured == set()


def test_every_operation_refuses_a_request_without_a_token(
    served: Served, served_operations: list[Operation]
) -> None:
    """No Authorization header is a 401 problem with a Bearer challenge, route by route."""
    wrong = {}
    for operation in served_operations:
        if operation.template in PUBLIC:
            continue
        response = operation.send(served, {})
        if response.status_code != 401:
            wrong[str(operation)] = response.status_code
            continue
        assert_problem(response, 401)
        if operation.secured:
            assert response.headers["www-authenticate"].startswith("Bearer"), operation

    assert wrong == {}


def test_every_operation_refuses_an_unknown_token(
    served: Served, served_operations: list[Operation]
) -> None:
    """A token the server never issued is a 401 on every secured route."""
    bogus = {"Authorization": "Bearer rlt_never-issued-by-this-server"}

    wrong = {
        str(op): status
        for op in served_operations
        if op.secured and (status := op.send(served, bogus).status_code) != 401
    }

    assert wrong == {}


def test_every_operation_refuses_a_role_below_the_one_it_needs(
    served: Served, served_operations: list[Operation]
) -> None:
    """A reader posting, or a writer on an admin route, is a 403 problem naming the role."""
    wrong = {}
    for operation in served_operations:
        if not operation.secured or operation.role == "reader":
            continue
        lower = ROLES[ROLES.index(operation.role) - 1]
        response = operation.send(served, served.auth(lower))
        if response.status_code != 403:
            wrong[str(operation)] = response.status_code
            continue
        assert operation.role in assert_problem(response, 403, "forbidden")["detail"]

    assert wrong == {}


def test_every_operation_lets_its_role_and_those_above_through(
    served: Served, served_operations: list[Operation]
) -> None:
    """The needed role and every higher one pass authentication and the role check."""
    wrong = {}
    for operation in served_operations:
        if not operation.secured:
            continue
        for role in ROLES[ROLES.index(operation.role) :]:
            status = operation.send(served, served.auth(role)).status_code
            if status in (401, 403):
                wrong[f"{operation} as {role}"] = status

    assert wrong == {}


@pytest.mark.parametrize("path", sorted(PUBLIC))
def test_the_public_endpoints_answer_without_a_token(served: Served, path: str) -> None:
    """Health, metrics and the API's own documentation need no credentials."""
    response = served.client.get(path)

    assert response.status_code == 200, response.text


def test_no_token_value_appears_in_the_server_log(served: Served) -> None:
    """After every request above, the server's output holds none of the tokens it was sent."""
    log = served.log()

    assert "GET /v1/trains" in log  # the access log is on, so requests were logged
    assert [role for role, token in served.tokens.items() if token in log] == []
