"""Which models the report must not credit: those that collapsed or do no better than a trivial answer.

A student that answers "unanswerable" to everything scores the share of unanswerable SQuAD v2 questions, which can
beat a weak teacher on EM; its "retention" would then exceed 100%. Such a model is flagged here, its retention is
not reported, and it is left out of every retention claim.
"""

from __future__ import annotations

COLLAPSE_ABSTENTION = 90.0  # % of questions: a model that abstains on more than this has collapsed
TOLERANCE = 1e-9


def collapse_reasons(
    *,
    em: float,
    abstention: float | None,
    hasans_f1: float | None,
    always_abstain_em: float | None,
    untuned_hasans_f1: float | None,
) -> list[str]:
    """Why a model (means over seeds, 0-100) counts as collapsed; empty when it does not.

    Flagged when it abstains on more than COLLAPSE_ABSTENTION % of the questions, when its HasAns F1 is below its
    family's untuned base model (training made it worse at answering), or when its EM is not above always abstaining
    on the same questions. A criterion whose numbers are missing (older result files) is not applied.
    """
    reasons = []
    if abstention is not None and abstention > COLLAPSE_ABSTENTION + TOLERANCE:
        reasons.append(f"abstains on {abstention:.1f}% of questions (> {COLLAPSE_ABSTENTION:g}%)")
    if hasans_f1 is not None and untuned_hasans_f1 is not None and hasans_f1 < untuned_hasans_f1 - TOLERANCE:
        reasons.append(f"HasAns F1 {hasans_f1:.2f} below the untuned model's {untuned_hasans_f1:.2f}")
    if always_abstain_em is not None and em <= always_abstain_em + TOLERANCE:
        reasons.append(f"EM {em:.2f} not above always-abstain {always_abstain_em:.2f}")
    return reasons
