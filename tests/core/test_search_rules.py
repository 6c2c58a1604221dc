"""Search rules without a database: text folding and the choice of trigrams to look up."""

from __future__ import annotations

from palaver.core.search import GramCounts, _fold_char, normalize
from palaver.store.search import sample_grams

SAMPLES = [
    "Déjà vu at the CAFÉ on Straße",
    "Ångström, smörgåsbord, jalapeño, Ærø, ΣΊΣΥΦΟΣ, ﬁne ①",
    "Zürich e\u0301 a\u0308\u0301 ﬀ Ⅻ ㎏ \uff46\uff55\uff4c\uff4c",
    "plain ascii MiXeD",
    "",
]


def test_normalize_equals_folding_character_by_character() -> None:
    for text in SAMPLES:
        assert normalize(text) == "".join(_fold_char(c) for c in text)
    assert normalize("Déjà CAFÉ Straße") == "deja cafe strasse"


def test_rarest_trigrams_of_long_terms() -> None:
    counts = GramCounts(["example.com/a", "example.com/b", "github.com/kalomi", "deploy"] * 3)
    # Terms of up to three trigrams are looked up whole.
    assert counts.rarest("abcde") is None
    assert counts.rarest("deploy") == ["dep", "epl"]
    # Unseen trigrams first, then the least frequent; only alphanumeric ones on request
    # ("com" occurs in more texts than the other trigrams of "example").
    assert counts.rarest("example.com/zz") == ["/zz", "m/z"]
    assert counts.rarest("example.com/zz", alnum=True) == ["amp", "exa"]
    assert counts.rarest("github.com/zz", alnum=True) == ["git", "hub"]
    assert counts.rarest("a.b.c.d.e", alnum=True) is None


def test_spread_trigrams_without_statistics() -> None:
    assert sample_grams("deploy") is None
    assert sample_grams("exriquor_saanzior") == ["exr", "quo", "aan", "ior"]
    assert sample_grams("a.b.c.d.e.f") is None
