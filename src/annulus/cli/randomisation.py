"""``annulus randomisation generate|verify|simulate``: the allocation list, its documents and
the methods' operating characteristics.

``generate --protocol FILE --seed N --json`` prints the list and, in a separate key, the level-2
key (label -> arm). ``generate ... --out DIR`` writes the allocation tables, both keys, their
checksums and a README into a new directory. A protocol with ``method: stratified_blocks`` gets
one list per stratum in the same documents; ``minimisation`` has no list to generate.
``verify DIR`` checks such a directory: exit 0 when every checksum matches, 1 naming each bad
file; with ``--protocol FILE --seed N`` it also regenerates the lists from the seed and checks
that the tables and keys are the same bytes. ``simulate`` compares simple randomisation,
permuted blocks, stratified blocks and minimisation over many simulated trials.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annulus.cli import CliError

MAX_SEED = 2**63 - 1  # fits a signed 64-bit database column


@dataclass
class ProtocolArms:
    """What randomisation needs from a protocol file."""

    arms: list[tuple[str, int]]
    total: int
    block_sizes: list[int]
    number_width: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    method: str = "permuted_blocks"
    strata: list[tuple[str, list[str]]] = field(default_factory=list)
    stratum_list_length: int | None = None
    # the protocol's (declared, or derived from the trial id); None: the generator's default
    drug_code_prefix: str | None = None


def _first_line(exc: Exception) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    more = f" (and {len(lines) - 1} more problems)" if len(lines) > 1 else ""
    return lines[0] + more


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CliError(f"{where}: must be a positive integer (got {value!r})")
    return value


def _read_yaml_directly(path: Path) -> ProtocolArms:
    """Read the keys randomisation needs when the full protocol loader is not available."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CliError(f"--protocol {path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"--protocol {path}: cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise CliError(f"--protocol {path}: a protocol is a mapping of keys")
    raw_arms = data.get("arms")
    if not isinstance(raw_arms, list) or len(raw_arms) < 2:
        raise CliError("arms: a list of at least 2 arms is required")
    arms = []
    for i, arm in enumerate(raw_arms):
        if not isinstance(arm, dict) or not isinstance(arm.get("id"), str) or not arm["id"]:
            raise CliError(f"arms[{i}].id: a non-empty string is required")
        arms.append((arm["id"], _positive_int(arm.get("ratio"), f"arms[{i}].ratio")))
    sample = data.get("sample_size")
    if not isinstance(sample, dict):
        raise CliError("sample_size.total: required")
    total = _positive_int(sample.get("total"), "sample_size.total")
    rand = data.get("randomisation") or {}
    if not isinstance(rand, dict):
        raise CliError("randomisation: must be a mapping")
    block_sizes = rand.get("block_sizes", [4, 8])
    if not isinstance(block_sizes, list) or not block_sizes:
        raise CliError("randomisation.block_sizes: a non-empty list of integers is required")
    block_sizes = [_positive_int(b, f"randomisation.block_sizes[{i}]") for i, b in enumerate(block_sizes)]
    if rand.get("method", "permuted_blocks") != "permuted_blocks":
        raise CliError(f"randomisation.method: {rand.get('method')!r} needs the protocol loader (annulus.protocol)")
    width = rand.get("case_number_width")
    trial = data.get("trial") if isinstance(data.get("trial"), dict) else {}
    prefix = rand.get("drug_code_prefix")
    if not isinstance(prefix, str) and isinstance(trial.get("id"), str) and trial["id"]:
        # as annulus.protocol.schema.derived_drug_code_prefix: the trial id up to its first hyphen
        prefix = trial["id"].split("-", 1)[0][:8].upper() + "-"
    if not isinstance(prefix, str):
        prefix = None
    meta = {"protocol file": path.name}
    if trial.get("id"):
        meta["trial"] = trial["id"]
    if data.get("version") is not None:
        meta["protocol version"] = data["version"]
    return ProtocolArms(arms, total, block_sizes, width if isinstance(width, int) else None, meta,
                        drug_code_prefix=prefix)


def _protocol_loader():
    """``annulus.protocol.load_protocol``, or None when that package does not provide it."""
    try:
        from annulus.protocol import load_protocol
    except ImportError:
        return None
    return load_protocol


def _arms_from_protocol(path: str | Path) -> ProtocolArms:
    """Arms, sample size and block sizes from a protocol file.

    Uses the full validating loader ``annulus.protocol.load_protocol`` when it is importable;
    otherwise reads the same keys (``arms: [{id, ratio}]``, ``sample_size: {total}``,
    ``randomisation: {block_sizes}``) from the YAML directly.
    """
    path = Path(path)
    if not path.is_file():
        raise CliError(f"--protocol {path}: no such file")
    load_protocol = _protocol_loader()
    if load_protocol is None:
        return _read_yaml_directly(path)
    try:
        protocol = load_protocol(path)
    except Exception as exc:  # the loader's own error type lists field: message lines
        raise CliError(f"--protocol {path}: {_first_line(exc)}") from None
    meta: dict[str, Any] = {"protocol file": path.name}
    trial = getattr(protocol, "trial", None)
    if getattr(trial, "id", None):
        meta["trial"] = trial.id
    if getattr(trial, "registry_number", None):
        meta["registry number"] = trial.registry_number
    if getattr(protocol, "version", None) is not None:
        meta["protocol version"] = protocol.version
    rand = protocol.randomisation
    return ProtocolArms(
        arms=[(a.id, a.ratio) for a in protocol.arms],
        total=protocol.sample_size.total,
        block_sizes=list(rand.block_sizes),
        number_width=getattr(rand, "case_number_width", None),
        meta=meta,
        method=getattr(rand, "method", "permuted_blocks"),
        strata=[(f.id, list(f.levels)) for f in getattr(rand, "strata", None) or []],
        stratum_list_length=getattr(rand, "stratum_list_length", None),
        drug_code_prefix=getattr(protocol, "drug_code_prefix", None),
    )


def _block_multipliers(block_sizes: list[int], arms: list[tuple[str, int]]) -> tuple[int, ...]:
    unit = sum(r for _, r in arms)
    for size in block_sizes:
        if size % unit:
            raise CliError(
                f"randomisation.block_sizes: {size} is not a multiple of the ratio sum {unit}"
            )
    return tuple(size // unit for size in block_sizes)


def _parse_seed(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text.strip()):
        raise CliError(f"--seed: must be a non-negative integer (got {text!r})")
    seed = int(text)
    if seed > MAX_SEED:
        raise CliError(f"--seed: must be at most {MAX_SEED} (got {text})")
    return seed


def _generate(proto: ProtocolArms, seed: int):
    """The protocol's list (or lists, one per stratum) for this seed."""
    from annulus.randomisation import RandomisationError, generate_sequence, generate_stratified

    if proto.method == "minimisation":
        raise CliError("randomisation.method: minimisation allocates at enrolment and has no list to generate "
                       "(see annulus randomisation simulate)")
    multipliers = _block_multipliers(proto.block_sizes, proto.arms)
    codes = {} if proto.drug_code_prefix is None else {"drug_code_prefix": proto.drug_code_prefix}
    try:
        if proto.method == "stratified_blocks":
            return generate_stratified(
                proto.arms,
                proto.strata,
                proto.stratum_list_length or proto.total,
                seed,
                block_multipliers=multipliers,
                number_width=proto.number_width,
                **codes,
            )
        return generate_sequence(
            proto.arms,
            proto.total,
            seed,
            block_multipliers=multipliers,
            number_width=proto.number_width,
            **codes,
        )
    except RandomisationError as exc:
        raise CliError(str(exc)) from None


def cmd_generate(args) -> int:
    from annulus.randomisation import DocumentsError, write_documents

    seed = _parse_seed(args.seed)
    if not args.json and not args.out:
        raise CliError("give --json to print the list or --out DIR to write the documents")
    proto = _arms_from_protocol(args.protocol)
    seq = _generate(proto, seed)
    if args.out:
        try:
            written = write_documents(seq, args.out, proto.meta)
        except DocumentsError as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:
            raise CliError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
        if not args.json:
            print(f"wrote {len(written)} files to {args.out}")
    if args.json:
        keys = ("stratum", "serial", "random_number", "group_label", "drug_code")
        out = {
            "sequence": [{k: e[k] for k in keys if k in e} for e in seq.entries],
            "label_to_arm": seq.label_to_arm,
            "seed": seq.seed,
            "n": seq.n,
            "arms": [{"id": a, "ratio": r} for a, r in seq.arms],
        }
        if proto.method == "stratified_blocks":
            out["method"] = "stratified_blocks"
            out["per_stratum"] = seq.per_stratum
            out["strata"] = [
                {k: s[k] for k in ("number", "levels", "label", "block_sizes", "truncated_last_block")}
                for s in seq.strata
            ]
        else:
            out["block_sizes"] = seq.block_sizes
            out["truncated_last_block"] = seq.truncated_last_block
        out.update({"algorithm": seq.algorithm, "generator": seq.generator, "protocol": proto.meta})
        json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    return 0


def cmd_verify(args) -> int:
    from annulus.randomisation import verify_documents

    directory = Path(args.directory)
    if not directory.is_dir():
        raise CliError(f"{directory}: no such directory")
    if (args.protocol is None) != (args.seed is None):
        raise CliError("give both --protocol and --seed to regenerate the lists, or neither")
    problems = verify_documents(directory)
    if args.protocol is not None:
        problems += _regeneration_problems(directory, _arms_from_protocol(args.protocol), _parse_seed(args.seed))
    if problems:
        for problem in problems:
            print(f"FAILED {problem}", file=sys.stderr)
        return 1
    regenerated = " and the lists regenerate from the seed" if args.protocol is not None else ""
    print(f"OK {directory}: all checksums match{regenerated}")
    return 0


def _regeneration_problems(directory: Path, proto: ProtocolArms, seed: int) -> list[str]:
    """Regenerate from the seed and compare the tables and keys byte for byte."""
    from annulus.randomisation.documents import (
        HOLDERS,
        LEVEL1_FILE,
        LEVEL2_FILE,
        allocation_table_bytes,
        allocation_table_name,
        level1_key_bytes,
        level2_key_bytes,
    )

    seq = _generate(proto, seed)
    expected = {allocation_table_name(h): allocation_table_bytes(seq) for h in HOLDERS}
    expected[LEVEL1_FILE] = level1_key_bytes(seq)
    expected[LEVEL2_FILE] = level2_key_bytes(seq)
    problems = []
    for name, data in expected.items():
        path = directory / name
        if path.is_file() and path.read_bytes() != data:
            problems.append(f"{name}: differs from the list regenerated from seed {seed}")
    return problems


def register(subparsers) -> None:
    parser = subparsers.add_parser("randomisation", help="generate or verify the randomisation list")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    gen = actions.add_parser("generate", help="generate the seeded allocation list from a protocol file")
    gen.add_argument("--protocol", required=True, metavar="FILE", help="protocol YAML file")
    # Parsed by the command, not argparse, so a bad seed is one line naming the field.
    gen.add_argument("--seed", required=True, metavar="N", help="non-negative integer seed (record it)")
    gen.add_argument("--json", action="store_true", help="print the list and label -> arm map as JSON")
    gen.add_argument("--out", metavar="DIR", help="write the allocation tables, keys and checksums here")
    gen.set_defaults(func=cmd_generate)

    ver = actions.add_parser("verify", help="check the checksums of a document directory")
    ver.add_argument("directory", metavar="DIR")
    ver.add_argument("--protocol", metavar="FILE", help="also regenerate the lists from this protocol ...")
    ver.add_argument("--seed", metavar="N", help="... and this seed, and compare them with the tables")
    ver.set_defaults(func=cmd_verify)

    from annulus.cli._randomisation_simulate import register_simulate

    register_simulate(actions)

    parser.set_defaults(func=lambda args: parser.print_help() or 2)
