"""The translated catalogues: the same keys, placeholders and markup as English, and the Translator's fall-backs."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

import pytest

from pitchin_web.messages import CATALOGUES, DEFAULT, LANGUAGES, Translator, cy, en, es, preferred_language

TRANSLATIONS: dict[str, Mapping[str, str]] = {"es": es.MESSAGES, "cy": cy.MESSAGES}
TAG = re.compile(r"<[^<>]*>")


def placeholders(text: str) -> set[str]:
    """The names of the `{name}` fields in a message (`{{` and `}}` are literal braces, not fields)."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def test_every_language_is_a_catalogue_and_has_its_own_name() -> None:
    assert set(LANGUAGES) == set(CATALOGUES) == {"en", *TRANSLATIONS}
    assert CATALOGUES[DEFAULT] is en.MESSAGES
    for language, catalogue in TRANSLATIONS.items():
        assert CATALOGUES[language] is catalogue


@pytest.mark.parametrize("language", sorted(TRANSLATIONS))
def test_catalogue_has_exactly_the_english_keys(language: str) -> None:
    keys = set(TRANSLATIONS[language])
    missing = sorted(set(en.MESSAGES) - keys)
    extra = sorted(keys - set(en.MESSAGES))
    assert not missing and not extra, (
        f"messages/{language}.py: add translations for {missing}; remove keys English no longer has: {extra}"
    )


@pytest.mark.parametrize("language", sorted(TRANSLATIONS))
def test_placeholders_match_english(language: str) -> None:
    catalogue = TRANSLATIONS[language]
    wrong = {
        key: (sorted(placeholders(text)), sorted(placeholders(en.MESSAGES[key])))
        for key, text in catalogue.items()
        if key in en.MESSAGES and placeholders(text) != placeholders(en.MESSAGES[key])
    }
    assert not wrong, f"messages/{language}.py: placeholders differ from English (theirs, English's): {wrong}"


@pytest.mark.parametrize("language", sorted(TRANSLATIONS))
def test_markup_matches_english(language: str) -> None:
    catalogue = TRANSLATIONS[language]
    wrong = sorted(
        key
        for key, text in catalogue.items()
        if key in en.MESSAGES and sorted(TAG.findall(text)) != sorted(TAG.findall(en.MESSAGES[key]))
    )
    assert not wrong, f"messages/{language}.py: HTML tags differ from English in {wrong}"


@pytest.mark.parametrize("language", sorted(TRANSLATIONS))
def test_no_translation_is_empty(language: str) -> None:
    # An English value may be deliberately empty (offer.urgency.normal is never shown); only then may a translation be.
    catalogue = TRANSLATIONS[language]
    empty = sorted(key for key, text in catalogue.items() if not text.strip() and en.MESSAGES.get(key, "x").strip())
    assert not empty, f"messages/{language}.py: empty translations for {empty}"


def test_product_name_is_not_translated() -> None:
    for catalogue in TRANSLATIONS.values():
        assert catalogue["site.name"] == en.MESSAGES["site.name"] == "Pitch In"


def test_translator_speaks_the_readers_language() -> None:
    t = Translator("es")
    assert t.language == "es"
    assert t("nav.events") == es.MESSAGES["nav.events"] == "Eventos"
    assert t("signup.step", n=1, total=3) == "Paso 1 de 3"
    assert Translator("cy")("nav.events") == cy.MESSAGES["nav.events"] == "Digwyddiadau"


def test_translator_falls_back_to_english_for_an_unknown_language() -> None:
    t = Translator("xx")
    assert t.language == DEFAULT
    assert t("nav.events") == en.MESSAGES["nav.events"]


def test_translator_falls_back_to_english_then_to_the_key_for_a_missing_message() -> None:
    t = Translator("es")
    t.catalogue = {key: text for key, text in es.MESSAGES.items() if key != "nav.events"}
    assert t("nav.events") == en.MESSAGES["nav.events"]
    assert t("signup.step", n=2, total=3) == "Paso 2 de 3"
    assert t("no.such.key") == "no.such.key"


def test_the_browser_language_is_chosen_by_quality_then_order() -> None:
    available = {"en": "English", "es": "Español", "cy": "Cymraeg"}
    assert preferred_language("cy-GB,cy;q=0.9,en;q=0.8", available) == "cy"
    assert preferred_language("fr-FR, es-MX;q=0.8, en;q=0.5", available) == "es"
    assert preferred_language("en;q=0.2, es;q=0.9", available) == "es"
    assert preferred_language("es;q=0, fr", available) == "en", "q=0 means not wanted"
    assert preferred_language("", available) == "en"
    assert preferred_language("garbage;q=x,,;", available) == "en"


def test_an_empty_message_stays_empty() -> None:
    assert Translator("en")("offer.urgency.normal") == ""
