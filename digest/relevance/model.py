"""A reader's own model: logistic regression on the vectors of what they marked, once they have
marked enough of both kinds ("more like this" and "fewer like this").

Why a threshold: with two or three examples a classifier learns the examples, not the taste, and
the mean similarity to the liked papers ranks better. From MIN_EACH of each class on, the model
also learns which words (or directions) separate the two, which a mean cannot: a reader who likes
robot learning but not robot hardware gets the difference, not the average. Pure and deterministic
(liblinear with a fixed seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

MIN_EACH = 5  # liked and disliked examples each before the model replaces the mean similarity
REGULARISATION = 1.0  # sklearn's C: smaller trusts the few examples less


def wants_model(liked: int, disliked: int) -> bool:
    """Whether a taste with these many labelled examples is ranked by its own model."""
    return liked >= MIN_EACH and disliked >= MIN_EACH


def model_scores(positive: Any, negative: Any, candidates: Any) -> np.ndarray:
    """P(liked) of each candidate row under a logistic regression fitted on `positive` (liked)
    and `negative` (disliked) rows. Sparse or dense rows alike."""
    if sp.issparse(positive):
        examples = sp.vstack([positive, negative]).tocsr()
    else:
        examples = np.vstack([positive, negative])
    labels = np.concatenate([np.ones(positive.shape[0]), np.zeros(negative.shape[0])])
    classifier = LogisticRegression(
        C=REGULARISATION, class_weight="balanced", solver="liblinear", random_state=0, max_iter=1000
    )
    classifier.fit(examples, labels)
    return np.asarray(classifier.predict_proba(candidates)[:, 1], dtype=np.float64)
