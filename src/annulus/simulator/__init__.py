"""A seeded trial simulator (pure core, no Django): candidates for screening now; later modules
add visits, outcomes and adverse events. The same seed gives the same trial."""

from .candidates import Candidate, generate_candidates

__all__ = ["Candidate", "generate_candidates"]
