import pytest

from pitchin_notifications.domain.sms import InvalidNumber, encoding, fit, segments, to_e164


def test_numbers_are_normalised_to_e164() -> None:
    assert to_e164("+44 7700 900123") == "+447700900123"
    assert to_e164("0044 (7700) 900-123") == "+447700900123"
    assert to_e164("07700 900123", default_calling_code="44") == "+447700900123"
    assert to_e164("+1 (415) 555-0100") == "+14155550100"
    for bad in ("07700 900123", "+0 123 456", "+44 12", "hello"):
        with pytest.raises(InvalidNumber):
            to_e164(bad)


def test_gsm7_fits_160_in_one_and_153_per_part_after() -> None:
    assert segments("a" * 160).count == 1
    split = segments("a" * 161)
    assert split.encoding == "GSM-7" and [len(p) for p in split.parts] == [153, 8]
    assert [len(p) for p in segments("b" * 459).parts] == [153, 153, 153]
    assert segments("b" * 460).count == 4


def test_gsm7_extension_characters_take_two_septets_and_are_not_split() -> None:
    assert segments("€" * 80).count == 1  # 160 septets
    assert segments("€" * 81).count == 2
    text = "a" * 152 + "€" + "z" * 10  # 165 septets; the euro sign would straddle septet 153
    split = segments(text)
    assert split.parts == ("a" * 152, "€" + "z" * 10)


def test_one_non_gsm_character_makes_the_whole_text_ucs2() -> None:
    assert encoding("Croeso i Pitch In") == "GSM-7"
    assert encoding("Diolch — â ŵ ŷ") == "UCS-2"
    assert segments("ŵ" * 70).count == 1
    assert [len(p) for p in segments("ŵ" * 71).parts] == [67, 4]
    assert [len(p) for p in segments("ŵ" * 134).parts] == [67, 67]


def test_ucs2_never_splits_a_surrogate_pair() -> None:
    text = "x" * 66 + "✊🏽" + "y"  # the emoji modifier is outside the BMP: two UTF-16 units
    parts = segments("ŵ" + text).parts
    assert "".join(parts) == "ŵ" + text
    assert all(len(p.encode("utf-16-le")) // 2 <= 67 for p in parts)


def test_fit_keeps_the_link_and_shortens_the_text() -> None:
    link = "https://p.example/offers/off_1"
    long = "word " * 200
    fitted = fit(long, link, max_segments=2)
    assert fitted.endswith(link) and "…" in fitted and segments(fitted).count <= 2
    assert fit("short", link, 1) == f"short {link}"
