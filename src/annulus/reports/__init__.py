"""The trial report in the application (X-8.5): who asked for which report, its background build
with progress, the file it wrote, and the audit event that it was made.

The report itself is computed and rendered from the exported analysis datasets by the pure package
``annulus.report`` (no Django); this app exports those datasets as the reader may see them
(``annulus.exports``), hands the folder to ``annulus.report.document`` and keeps the result."""
