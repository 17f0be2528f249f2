"""Randomisation core: seeded permuted-block sequences, the two-level key and the allocation
table documents. Pure Python (NumPy); no Django import."""

from .documents import (
    HOLDERS,
    DocumentsError,
    allocation_table_name,
    checked_files,
    verify_documents,
    write_documents,
)
from .sequence import (
    ALGORITHM,
    DRUG_CODE_ALPHABET,
    GENERATOR,
    RandomisationError,
    Sequence,
    generate_sequence,
)

__all__ = [
    "ALGORITHM",
    "DRUG_CODE_ALPHABET",
    "GENERATOR",
    "HOLDERS",
    "DocumentsError",
    "RandomisationError",
    "Sequence",
    "allocation_table_name",
    "checked_files",
    "generate_sequence",
    "verify_documents",
    "write_documents",
]
