"""Every word the pages show, in one place per language (English first)."""

from __future__ import annotations

from collections.abc import Mapping

from pitchin_web.messages import en

CATALOGUES: Mapping[str, Mapping[str, str]] = {"en": en.MESSAGES}
DEFAULT = "en"


class Translator:
    """`t("key", name=...)`: a message of the reader's language, falling back to English, then to the key."""

    def __init__(self, language: str = DEFAULT) -> None:
        self.language = language if language in CATALOGUES else DEFAULT
        self.catalogue = CATALOGUES[self.language]

    def __call__(self, key: str, **values: object) -> str:
        text = self.catalogue.get(key) or CATALOGUES[DEFAULT].get(key) or key
        return text.format(**values) if values else text
