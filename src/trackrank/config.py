"""Workflow configuration helpers, and the schema's defaults: the one place each setting's default is written."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

#: The config schema (``workflow/schemas/config.schema.yaml``): every setting's type, range and default.
#: The package runs from its checkout (the Snakefile puts ``src/`` on the path, ``bin/setup`` installs it
#: editable), so it reads the schema there rather than keeping a copy of the defaults.
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def defaults_of(schema: dict):
    """The value ``schema`` gives an instance left out: its ``default``; an object's with every property
    of a default filled in (as Snakemake's ``validate`` fills a config). None where it has no default."""
    if "properties" not in schema:
        return copy.deepcopy(schema.get("default"))
    filled = copy.deepcopy(schema.get("default", {}))
    for key, subschema in schema["properties"].items():
        value = defaults_of(subschema) if key not in filled else filled[key]
        if value is not None or "default" in subschema:
            filled[key] = value
    return filled


@functools.cache
def _schema_defaults() -> dict:
    with open(SCHEMA, encoding="utf-8") as stream:
        return defaults_of(yaml.safe_load(stream))


def schema_defaults() -> dict:
    """The config the schema makes of an empty one: every setting at its default (a fresh copy)."""
    return copy.deepcopy(_schema_defaults())


def typed_values(config):
    """Give numbers, booleans and nulls their type inside nested command-line values.

    ``snakemake --config mining='{n_negatives: 50}'`` parses the nested mapping with
    YAML's BaseLoader, so 50 arrives as the string '50' and the schema would refuse it.
    Top-level scalars are typed by Snakemake already; strings that are not numbers,
    booleans or null stay strings.
    """
    if isinstance(config, dict):
        return {key: typed_values(value) for key, value in config.items()}
    if isinstance(config, list):
        return [typed_values(value) for value in config]
    if isinstance(config, str):
        try:
            value = yaml.safe_load(config)
        except yaml.YAMLError:
            return config
        return value if isinstance(value, (int, float, bool)) or value is None else config
    return config


def config_problems(config: dict, schema_path: str) -> list[str]:
    """Every way ``config`` breaks the schema, one short line each: the key's dotted path and the reason.

    Why: Snakemake's own validation error prints the whole schema (300 lines) around one wrong key.
    """
    from jsonschema import Draft202012Validator

    with open(schema_path, encoding="utf-8") as stream:
        schema = yaml.safe_load(stream)
    problems = []
    for error in sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path)):
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        problems.append(f"{key}: {error.message}")
    return problems
