"""Stable-label voting with hysteresis and a minimum score."""

from edge_classifier.service.voting import UNKNOWN, Voter


def feed(voter, frames):
    """The stable label after each frame."""
    labels = []
    for label, score in frames:
        voter.update(label, score)
        labels.append(voter.label)
    return labels


def test_label_becomes_stable_after_a_majority_of_the_window():
    """With a window of 5, the third agreeing frame makes the label stable."""
    voter = Voter(window=5, min_score=0.5)
    assert [UNKNOWN, UNKNOWN, "Bag", "Bag"] == feed(voter, [("Bag", 0.9)] * 4)


def test_a_single_outlier_does_not_flip_the_label():
    """One different frame inside a stable run changes nothing (hysteresis)."""
    voter = Voter(window=5, min_score=0.5)
    feed(voter, [("Bag", 0.9)] * 5)
    assert ["Bag", "Bag", "Bag"] == feed(voter, [("Coat", 0.9), ("Bag", 0.9), ("Bag", 0.9)])


def test_low_scores_vote_unknown():
    """Frames below min_score count as unknown, and a majority of them makes the label unknown."""
    voter = Voter(window=3, min_score=0.6)
    feed(voter, [("Bag", 0.9)] * 3)
    assert ["Bag", UNKNOWN] == feed(voter, [("Bag", 0.3), ("Bag", 0.2)])


def test_update_reports_changes_only():
    """update() is True exactly when the stable label changes."""
    voter = Voter(window=3, min_score=0.0)
    changes = [voter.update(label, 1.0) for label in ["A", "A", "A", "B", "B", "B"]]
    assert [False, True, False, False, True, False] == changes


def test_stable_score_is_the_mean_of_the_winning_votes():
    """The published score averages the frames that voted for the stable label."""
    voter = Voter(window=3, min_score=0.0)
    feed(voter, [("A", 0.6), ("A", 0.8), ("B", 0.9)])
    assert ("A", 0.7) == (voter.label, round(voter.score, 6))
