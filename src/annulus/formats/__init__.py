"""Output formats of dates and times: one format, ISO 8601, in every language (Django's own
locale formats give "Nov. 30, 2026" in English and "2026年11月30日" in Chinese)."""
