"""Every word the pages show, in one place per language (English first)."""

from __future__ import annotations

from collections.abc import Mapping

from pitchin_web.messages import cy, en, es

CATALOGUES: Mapping[str, Mapping[str, str]] = {"en": en.MESSAGES, "es": es.MESSAGES, "cy": cy.MESSAGES}
# Each language in its own name, for a language switcher.
LANGUAGES: Mapping[str, str] = {"en": "English", "es": "Español", "cy": "Cymraeg"}
DEFAULT = "en"


class Translator:
    """`t("key", name=...)`: a message of the reader's language, falling back to English, then to the key."""

    def __init__(self, language: str = DEFAULT) -> None:
        self.language = language if language in CATALOGUES else DEFAULT
        self.catalogue = CATALOGUES[self.language]

    def __call__(self, key: str, **values: object) -> str:
        # `in`, not `or`: a message may be empty on purpose (offer.urgency.normal says nothing).
        if key in self.catalogue:
            text = self.catalogue[key]
        else:
            text = CATALOGUES[DEFAULT].get(key, key)
        return text.format(**values) if values else text

    def labels(self, **keys: str) -> dict[str, str]:
        """A form's field labels, by field: ``t.labels(title="event.name")``."""
        return {field: self(key) for field, key in keys.items()}


def preferred_language(accept_language: str, available: Mapping[str, str]) -> str:
    """The first of the browser's languages (RFC 9110 Accept-Language, by q) that we have, else English.

    Written here rather than taken from a library: a dozen lines, and only the primary subtag
    matters (es-MX and es-ES both read Spanish).
    """
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept_language.split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary and quality > 0:
            ranked.append((-quality, position, primary))
    for _, _, primary in sorted(ranked):
        if primary in available:
            return primary
    return DEFAULT
