"""Annulus: a clinical-trial system that runs a trial end to end from a declarative protocol.

Pure cores (no Django import): ``annulus.protocol``, ``annulus.instruments``,
``annulus.randomisation``, ``annulus.stats``, ``annulus.simulator``, ``annulus.workdays``.
The Django project lives in ``annulus.site`` and the apps beside it.
"""

__version__ = "0.1.0"
