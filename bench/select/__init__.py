"""Label-free recommendation: which configuration serves a dataset best, decided without labels,
and its selection regret where labels exist. Pure functions (no tracking, no tuning)."""

from .candidate import Candidate, Rerun
from .criteria import CRITERIA, DEFAULT
from .recommend import Recommendation, recommend, selection_regret

__all__ = ["CRITERIA", "DEFAULT", "Candidate", "Recommendation", "Rerun", "recommend", "selection_regret"]
