"""Randomisation core: seeded permuted-block sequences (unstratified and stratified),
minimisation, the two-level key, the allocation table documents and the simulation of the
methods' operating characteristics. Pure Python (NumPy); no Django import."""

from .documents import (
    HOLDERS,
    DocumentsError,
    allocation_table_name,
    checked_files,
    verify_documents,
    write_documents,
)
from .minimisation import MEASURES, Minimiser
from .sequence import (
    ALGORITHM,
    DRUG_CODE_ALPHABET,
    GENERATOR,
    RandomisationError,
    Sequence,
    generate_sequence,
)
from .stratified import StratifiedSequence, generate_stratified, stratum_key

__all__ = [
    "ALGORITHM",
    "DRUG_CODE_ALPHABET",
    "GENERATOR",
    "HOLDERS",
    "MEASURES",
    "Minimiser",
    "StratifiedSequence",
    "generate_stratified",
    "stratum_key",
    "DocumentsError",
    "RandomisationError",
    "Sequence",
    "allocation_table_name",
    "checked_files",
    "generate_sequence",
    "verify_documents",
    "write_documents",
]
