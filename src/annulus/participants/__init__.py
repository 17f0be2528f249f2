"""Participants: pre-screening, consent, screening, eligibility, enrolment, withdrawal."""
