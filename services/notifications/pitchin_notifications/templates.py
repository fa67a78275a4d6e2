"""Renders planned messages: subject, plain text, HTML and SMS text, in the recipient's language.

Where the text comes from, first match wins, for each language in the recipient's chain
(``es-MX`` → ``es`` → ``en``): the organisation's override, the federation's override, the
package's template. Package files are ``<template>[.<language>].<part>``, English having no
language suffix. Override text is written by organisations, so every template runs in
Jinja's sandbox, and HTML is autoescaped.

The sandbox stops a template reaching outside it, not one that never ends: nested loops over
`range(100000)` were accepted at save and then stalled notifications for every federation at
send. So rendering has a budget (`RENDER_BUDGET_SECONDS` of time, `MAX_OUTPUT_CHARS` of output):
`range` checks the clock as it counts, `*` and `**` may not build huge values, and output is
counted as it streams. An override is rendered at save with sample data and refused if it
fails; at send, an override that fails falls back to the package's template.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, PackageLoader, StrictUndefined, Template, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from pitchin_notifications.domain import sms
from pitchin_notifications.domain.messages import PlannedMessage

PARTS = ("subject", "text", "html", "sms")
_SUFFIX = {"subject": "subject.txt", "text": "txt", "html": "html", "sms": "sms.txt"}

# (scope, language, part) -> template text; scope is "organisation" or "federation".
Overrides = Mapping[tuple[str, str, str], str]

log = logging.getLogger(__name__)
RENDER_BUDGET_SECONDS = 0.05
MAX_OUTPUT_CHARS = 100_000
MAX_RANGE = 10_000
MAX_POWER = 64
_deadline: ContextVar[float] = ContextVar("pitchin_render_deadline", default=float("inf"))


class OverBudget(Exception):
    """A template that took too long or made too much: it is refused (at save) or replaced (at send)."""


def _check_clock() -> None:
    if time.perf_counter() > _deadline.get():
        raise OverBudget(f"rendering took over {RENDER_BUDGET_SECONDS * 1000:.0f} ms")


def _bounded_range(*args: int) -> Iterator[int]:
    span = range(*args)
    if len(span) > MAX_RANGE:
        raise OverBudget(f"range() of more than {MAX_RANGE} numbers")
    for i, n in enumerate(span):
        if not i & 255:
            _check_clock()  # nested loops each stay small, but their product must not run for ever
        yield n


class BudgetedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, with no operation that builds a huge value or counts for ever."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _bounded_range

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > MAX_POWER:
                raise OverBudget(f"a power above {MAX_POWER}")
            return operator.pow(left, right)
        if isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
            times = right if isinstance(left, str | list | tuple) else left
            size = len(left if isinstance(left, str | list | tuple) else right)
            if isinstance(times, int) and size * times > MAX_OUTPUT_CHARS:
                raise OverBudget(f"a value of more than {MAX_OUTPUT_CHARS} characters")
        return operator.mul(left, right)


def render_bounded(template: Template, context: Mapping[str, Any]) -> str:
    """Render within the budget, counting output as it streams; raises OverBudget past it."""
    token = _deadline.set(time.perf_counter() + RENDER_BUDGET_SECONDS)
    try:
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise OverBudget(f"more than {MAX_OUTPUT_CHARS} characters of output")
            _check_clock()
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _deadline.reset(token)


# What a template of each kind may read, for rendering an override once at save (names an
# override uses beyond these render empty rather than failing the check).
SAMPLE_CONTEXT: dict[str, Any] = {
    "name": "Ana Ruiz",
    "title": "Steward training",
    "event_title": "Steward training",
    "need_title": "Placard graphics",
    "when": "Tuesday 5 January, 18:00-19:00 (Europe/London)",
    "action_url": "https://pitchin.example/offers/off_sample/accept",
    "unsubscribe_url": "https://pitchin.example/v1/unsubscribe?token=sample",
    "items": [{"subject": "A message", "action_url": "https://pitchin.example/x"}],
}


def language_chain(language: str) -> list[str]:
    chain = [language]
    if "-" in language:
        chain.append(language.split("-", 1)[0])
    if "en" not in chain:
        chain.append("en")
    return chain


def package_name(template: str, language: str, part: str) -> str:
    middle = "" if language == "en" else f".{language}"
    return f"{template}{middle}.{_SUFFIX[part]}"


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str | None
    sms: str | None = None
    language: str = "en"

    @property
    def sms_segments(self) -> int:
        return sms.segments(self.sms).count if self.sms else 0


class Renderer:
    def __init__(self, sms_max_segments: int = 4) -> None:
        self.sms_max_segments = sms_max_segments
        self.package = SandboxedEnvironment(
            loader=PackageLoader("pitchin_notifications", "templates"),
            autoescape=lambda name: bool(name and name.endswith(".html")),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self._text = BudgetedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self._html = BudgetedSandbox(undefined=StrictUndefined, autoescape=True)
        # For the check at save only: a name the sample lacks renders empty instead of failing.
        self._trial = {
            "html": BudgetedSandbox(undefined=ChainableUndefined, autoescape=True),
            "text": BudgetedSandbox(undefined=ChainableUndefined, autoescape=False),
        }

    @lru_cache(maxsize=512)  # noqa: B019 - one renderer per process, templates are few
    def _compiled(self, part: str, text: str) -> Template:
        return (self._html if part == "html" else self._text).from_string(text)

    @lru_cache(maxsize=512)  # noqa: B019
    def _packaged(self, name: str) -> Template | None:
        try:
            return self.package.get_template(name)
        except TemplateNotFound:
            return None

    def check(self, part: str, text: str) -> None:
        """Raise if override text does not compile, or does not render within the budget with
        sample data (before it is stored)."""
        (self._html if part == "html" else self._text).from_string(text)
        trial = self._trial["html" if part == "html" else "text"].from_string(text)
        render_bounded(trial, SAMPLE_CONTEXT)

    def source(
        self, template: str, language: str, part: str, overrides: Overrides
    ) -> tuple[Template, str, bool] | None:
        """The template for one part, the language it is written in, and whether it is an override."""
        for lang in language_chain(language):
            for scope in ("organisation", "federation"):
                text = overrides.get((scope, lang, part))
                if text is not None:
                    return self._compiled(part, text), lang, True
            found = self._packaged(package_name(template, lang, part))
            if found is not None:
                return found, lang, False
        return None

    def _render(
        self, template: str, language: str, part: str, overrides: Overrides, context: dict[str, Any]
    ) -> tuple[str, str] | None:
        """One part rendered within the budget, and its language; an override that fails gives way
        to the package's template (and is logged), so one member's template never stops a message."""
        found = self.source(template, language, part, overrides)
        if found is None:
            return None
        compiled, lang, overridden = found
        try:
            return render_bounded(compiled, context), lang
        except Exception as exc:
            if not overridden:
                raise
            log.warning("override %s/%s/%s failed (%s): the default template is used", template, lang, part, exc)
            return self._render(template, language, part, {}, context)

    def _part(
        self, template: str, language: str, part: str, overrides: Overrides, context: dict[str, Any]
    ) -> str | None:
        found = self._render(template, language, part, overrides, context)
        return None if found is None else found[0]

    def render(
        self,
        planned: PlannedMessage,
        overrides: Overrides | None = None,
        unsubscribe_url: str | None = None,
    ) -> RenderedMessage:
        overrides = overrides or {}
        context = {**planned.context, "unsubscribe_url": unsubscribe_url}
        found = self._render(planned.template, planned.language, "text", overrides, context)
        if found is None:
            raise LookupError(f"no text template for {planned.template!r}")
        text, language = found
        subject = (self._part(planned.template, planned.language, "subject", overrides, context) or "").strip()
        html = self._part(planned.template, planned.language, "html", overrides, context)
        sms_text: str | None = None
        if planned.channel == "sms":
            short = self._part(planned.template, planned.language, "sms", overrides, context) or subject
            sms_text = sms.fit(" ".join(short.split()), planned.action_url or "", self.sms_max_segments)
        if planned.channel == "email":
            footer_text = self._part("_footer", language, "text", {}, context) or ""
            text = text.rstrip("\n") + "\n" + footer_text
            if html is not None:
                html = html + (self._part("_footer", language, "html", {}, context) or "")
        return RenderedMessage(subject=subject, text=text, html=html, sms=sms_text, language=language)
