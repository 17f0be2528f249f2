"""odmlib's namespace registry, set for one piece of writing and put back afterwards (no Django).

odmlib keeps the XML namespaces its models write in one process-wide registry, which its ODM
1.3.2 model fills on import and its Define-XML writer expects to be set for Define. Each writer of
ours (``odm.write``, ``define.write``) sets the registry it needs inside ``registered`` and puts
back what it found, so neither depends on which ran before it in the process.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def registered(default_uri: str, others: dict[str, str]):
    """The registry holding ``default_uri`` as the default (prefix "odm") and each prefix -> URI of
    ``others``, in order, while the block runs; as it was before afterwards."""
    import odmlib.ns_registry as registry

    r = registry.NamespaceRegistry
    saved = (dict(r.namespaces), dict(r.default_namespace))
    try:
        r(prefix="odm", uri=default_uri, is_default=True, is_reset=True)
        for prefix, uri in others.items():
            r(prefix=prefix, uri=uri)
        yield
    finally:
        r.namespaces, r.default_namespace = saved
