"""The one Jinja2 environment of the dashboard and the report, with their filters.

HTML templates are autoescaped; Markdown (``*.md``) is not, since it is plain text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.templating import Jinja2Templates

TEMPLATES = Path(__file__).with_name("templates")


def day(value: date | datetime | None) -> str:
    """``26 Nov 2026``; a moment is shown on its UTC day."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date()
    return f"{value.day} {value:%b %Y}"


def moment(value: datetime | None) -> str:
    """``26 Nov 2026 08:10 UTC``."""
    if value is None:
        return "—"
    value = value.astimezone(UTC)
    return f"{day(value)} {value:%H:%M} UTC"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} %"


def duration(seconds: float) -> str:
    """A delay in the largest two units: ``3 d 4 h``, ``2 h 5 min``, ``40 s``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else f"{secs} s"


def humanize(value: Any) -> str:
    """``moved_out`` → ``moved out``."""
    return "—" if value is None else str(value).replace("_", " ")


def evidence(value: Any) -> str:
    """An evidence value in words: lists joined, booleans as yes/no, none as "none"."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{humanize(k)}: {evidence(v)}" for k, v in value.items()) or "none"
    if value is None:
        return "—"
    return str(value)


def public_path(request: Request, path: str) -> str:
    """The app's ``path`` as the browser sees it: under the proxy's prefix, when behind one
    (``ledger serve --root-path``)."""
    prefix: str = request.scope.get("root_path", "")
    return prefix + path


@pass_context
def _public_path(context: Context, path: str) -> str:
    return public_path(context["request"], path)


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        day=day, moment=moment, percent=percent, duration=duration, humanize=humanize
    )
    environment.filters["evidence"] = evidence
    environment.globals["path"] = _public_path
    return environment


environment = _environment()
templates = Jinja2Templates(env=environment)


def render_text(name: str, **context: Any) -> str:
    """A template rendered outside a request (the CLI's Markdown report)."""
    return environment.get_template(name).render(**context)
