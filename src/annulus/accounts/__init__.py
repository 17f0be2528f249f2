"""Users, roles, login lockout, API tokens and what each role may do (P-7.2)."""
