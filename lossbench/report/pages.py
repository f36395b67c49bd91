"""The report's jinja2 templates (``lossbench/report/templates``): autoescaped, strict about missing values."""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import Environment as Jinja, PackageLoader, StrictUndefined, Template, select_autoescape

GENERATOR_MARK = 'name="generator" content="lossbench'  # in every page lossbench writes (the template's <meta>)


@functools.lru_cache(maxsize=1)
def _environment() -> Jinja:
    return Jinja(
        loader=PackageLoader("lossbench.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template(name: str) -> Template:
    """One of the package's templates."""
    return _environment().get_template(name)


def render(name: str, **context: Any) -> str:
    """Render one of the package's templates (autoescaped: run reasons are arbitrary text)."""
    return template(name).render(**context)
