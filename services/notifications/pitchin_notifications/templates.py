"""Renders planned messages: subject, plain text, HTML and SMS text, in the recipient's language.

Where the text comes from, first match wins, for each language in the recipient's chain
(``es-MX`` → ``es`` → ``en``): the organisation's override, the federation's override, the
package's template. Package files are ``<template>[.<language>].<part>``, English having no
language suffix. Override text is written by organisations, so every template runs in
Jinja's sandbox, and HTML is autoescaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import PackageLoader, StrictUndefined, Template, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from pitchin_notifications.domain import sms
from pitchin_notifications.domain.messages import PlannedMessage

PARTS = ("subject", "text", "html", "sms")
_SUFFIX = {"subject": "subject.txt", "text": "txt", "html": "html", "sms": "sms.txt"}

# (scope, language, part) -> template text; scope is "organisation" or "federation".
Overrides = Mapping[tuple[str, str, str], str]


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
        self._text = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self._html = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)

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
        """Raise if override text does not compile (before it is stored)."""
        (self._html if part == "html" else self._text).from_string(text)

    def source(self, template: str, language: str, part: str, overrides: Overrides) -> tuple[Template, str] | None:
        """The template for one part, and the language it is written in."""
        for lang in language_chain(language):
            for scope in ("organisation", "federation"):
                text = overrides.get((scope, lang, part))
                if text is not None:
                    return self._compiled(part, text), lang
            found = self._packaged(package_name(template, lang, part))
            if found is not None:
                return found, lang
        return None

    def _part(
        self, template: str, language: str, part: str, overrides: Overrides, context: dict[str, Any]
    ) -> str | None:
        found = self.source(template, language, part, overrides)
        return None if found is None else found[0].render(context)

    def render(
        self,
        planned: PlannedMessage,
        overrides: Overrides | None = None,
        unsubscribe_url: str | None = None,
    ) -> RenderedMessage:
        overrides = overrides or {}
        context = {**planned.context, "unsubscribe_url": unsubscribe_url}
        found = self.source(planned.template, planned.language, "text", overrides)
        if found is None:
            raise LookupError(f"no text template for {planned.template!r}")
        language = found[1]
        text = found[0].render(context)
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
