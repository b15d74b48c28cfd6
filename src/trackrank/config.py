"""Workflow configuration helpers."""

from __future__ import annotations

import yaml


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
