"""Kappa statistics against values worked out by hand (shown in the comments)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from medviewer.labels.agreement import (
    AI_FROM_SOURCES,
    agreement_report,
    cohens_kappa,
    fleiss_kappa,
)
from medviewer.labels.stats import label_stats
from medviewer.labels.store import LabelStore
from tests.labels.helpers import image


def test_cohens_kappa_textbook_two_by_two():
    # 50 items: yes/yes 20, A yes & B no 5, A no & B yes 10, no/no 15.
    # p_o = 35/50 = 0.70; P(A yes) = 25/50, P(B yes) = 30/50
    # p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.50; kappa = (0.70 - 0.50) / (1 - 0.50) = 0.40
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohens_kappa(a, b) == pytest.approx(0.40)


def test_cohens_kappa_three_categories_by_hand():
    # Agreement on items 1, 2, 4, 5, 7, 8, 9: p_o = 7/10.
    # Marginals: A a3 b3 c4, B a3 b3 c4 -> p_e = (9 + 9 + 16) / 100 = 0.34
    # kappa = (0.70 - 0.34) / 0.66 = 6/11
    a = list("aaabbbcccc")
    b = list("aabbbcccca")
    assert cohens_kappa(a, b) == pytest.approx(6 / 11)


def test_cohens_kappa_edge_cases():
    assert cohens_kappa([], []) is None
    assert cohens_kappa(["x", "x"], ["x", "x"]) is None  # p_e = 1: undefined
    assert cohens_kappa(["x", "y"], ["x", "y"]) == 1.0
    assert cohens_kappa(["x", "y"], ["y", "x"]) == -1.0
    with pytest.raises(ValueError):
        cohens_kappa(["x"], ["x", "y"])


# Fleiss (1971)-style worked example as tabulated on Wikipedia ("Fleiss' kappa"):
# 10 subjects, 14 raters each, 5 categories.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_worked_example():
    # Column totals 20, 28, 39, 21, 32 of 140 ratings:
    #   P_e = (20² + 28² + 39² + 21² + 32²) / 140² = 4170 / 19600
    # P_i = (sum_j n_ij² - 14) / (14 * 13); the numerators are
    #   182, 46, 56, 80, 60, 84, 44, 32, 52, 52 (sum 688) -> mean P = 688 / 1820
    # kappa = (688/1820 - 4170/19600) / (1 - 4170/19600) ≈ 0.2099 (Wikipedia: 0.210)
    mean_p, p_e = Fraction(688, 1820), Fraction(4170, 19600)
    expected = (mean_p - p_e) / (1 - p_e)
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(float(expected), abs=1e-12)
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_edge_cases():
    assert fleiss_kappa([]) is None
    assert fleiss_kappa([[3, 0], [3, 0]]) is None  # everyone always said the same
    assert fleiss_kappa([[3, 0], [0, 3]]) == 1.0
    with pytest.raises(ValueError):
        fleiss_kappa([[3, 0], [1, 1]])  # unequal rater counts


@pytest.fixture
def three_readers(store: LabelStore, store_path, pneumonia) -> LabelStore:
    """img  alice      bob                                  carol   ai:resnet
       1    normal     normal (ai_overridden, AI said pn.)  normal  normal
       2    pneumonia  pneumonia (ai_accepted)              normal  pneumonia
       3    pneumonia  normal (ai_overridden)               pneu.   pneumonia
       4    normal     normal                               normal  pneumonia
    """
    n, p = "normal", "pneumonia"
    for key, classes in ((1, n), (2, p), (3, p), (4, n)):
        store.set_label("pneumonia", image(key), classes)
    store.set_label("pneumonia", image(1), n, reader="bob", source="ai_overridden",
                    ai_classes=[p])
    store.set_label("pneumonia", image(2), p, reader="bob", source="ai_accepted")
    store.set_label("pneumonia", image(3), n, reader="bob", source="ai_overridden")
    store.set_label("pneumonia", image(4), n, reader="bob")
    for key, classes in ((1, n), (2, n), (3, p), (4, n)):
        store.set_label("pneumonia", image(key), classes, reader="carol")
    for key, classes in ((1, n), (2, p), (3, p), (4, p)):
        store.set_label("pneumonia", image(key), classes, reader="ai:resnet")
    return store


def test_agreement_report_on_a_labelled_set(three_readers):
    report = agreement_report(three_readers, "pneumonia")
    pairs = {(p.reader_a, p.reader_b): p for p in report.pairs}
    assert list(pairs) == [("alice", "bob"), ("alice", "carol"), ("bob", "carol")]
    # alice vs bob: agree on 1, 2, 4 -> p_o = 3/4; alice n2 p2, bob n3 p1
    #   p_e = (2*3 + 2*1) / 16 = 1/2 -> kappa = (3/4 - 1/2) / (1/2) = 1/2
    alice_bob = pairs[("alice", "bob")]
    assert (alice_bob.images, alice_bob.observed) == (4, 0.75)
    assert alice_bob.kappa == pytest.approx(0.5)
    # With two classes, one-vs-rest per class equals the overall kappa.
    assert alice_bob.per_class == {"normal": pytest.approx(0.5),
                                   "pneumonia": pytest.approx(0.5)}
    # Fleiss over alice, bob, carol (categories normal, pneumonia):
    #   rows (3,0) (1,2) (1,2) (3,0): P_i = 1, 2/6, 2/6, 1 -> mean P = 2/3
    #   p_normal = 8/12, p_pneumonia = 4/12 -> P_e = 4/9 + 1/9 = 5/9
    #   kappa = (2/3 - 5/9) / (4/9) = 1/4
    assert report.fleiss.readers == ["alice", "bob", "carol"]
    assert report.fleiss.images == 4
    assert report.fleiss.kappa == pytest.approx(0.25)
    assert report.fleiss.per_class["pneumonia"] == pytest.approx(0.25)
    versus = {(p.reader_a, p.reader_b): p for p in report.reader_vs_ai}
    # alice vs ai:resnet: agree on 1, 2, 3 -> p_o = 3/4; alice n2 p2, AI n1 p3
    #   p_e = (2*1 + 2*3) / 16 = 1/2 -> kappa = 1/2
    assert versus[("alice", "ai:resnet")].kappa == pytest.approx(0.5)
    # bob against the suggestions he saw: AI said pneumonia on 1 (recorded), 2 (accepted)
    # and 3 (overridden in a two-class set); bob said n, p, n -> p_o = 1/3,
    #   p_e = (bob p1 * AI p3) / 9 = 1/3 -> kappa = 0
    suggestions = versus[("bob", AI_FROM_SOURCES)]
    assert suggestions.images == 3 and suggestions.kappa == pytest.approx(0.0)
    assert report.ai_acceptance == {"bob": {"accepted": 1, "overridden": 2,
                                            "rate": pytest.approx(1 / 3)}}


def test_multi_label_agreement_is_one_vs_rest_and_pooled(store, store_path):
    store.create_label_set("findings", ["x", "y"], multi_label=True)
    store.set_label("findings", image(1), ["x"])
    store.set_label("findings", image(2), ["y"])
    store.set_label("findings", image(1), ["x", "y"], reader="bob")
    store.set_label("findings", image(2), ["y"], reader="bob")
    pair = agreement_report(store, "findings").pairs[0]
    # class x: alice [1, 0], bob [1, 0] -> kappa 1
    # class y: alice [0, 1], bob [1, 1] -> p_o 1/2, p_e = (1*2 + 1*0) / 4 = 1/2 -> kappa 0
    # pooled (1x, 1y, 2x, 2y): alice 1 0 0 1, bob 1 1 0 1 -> p_o 3/4,
    #   p_e = (2*3 + 2*1) / 16 = 1/2 -> kappa 1/2
    assert pair.per_class == {"x": pytest.approx(1.0), "y": pytest.approx(0.0)}
    assert pair.kappa == pytest.approx(0.5) and pair.observed == 0.75


def test_stats_count_per_class_reader_and_source(three_readers):
    stats = label_stats(three_readers, "pneumonia")
    assert stats["images"] == 4 and stats["decisions"] == 16
    assert stats["per_class"] == {"normal": 9, "pneumonia": 7}
    assert stats["per_reader"]["bob"]["classes"] == {"normal": 3, "pneumonia": 1}
    assert stats["per_source"] == {"ai_accepted": 1, "ai_overridden": 2, "manual": 13}
    assert stats["agreement"]["fleiss"]["kappa"] == pytest.approx(0.25)
