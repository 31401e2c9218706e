"""Validation of the workflow configuration against its JSON schema (draft-07).

The schema (``agc_ttbar/schemas/config.schema.yaml``) is the single place where knobs, defaults
and descriptions live. :func:`validate_config` fills defaults in place and turns the first
validation error into a :class:`ConfigError` that names the key path and the allowed values.
"""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from typing import Any, Iterable

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key and what is allowed."""


def load_schema() -> dict:
    """Return the configuration schema as a dict."""
    text = resources.files("agc_ttbar").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _extend_with_default(validator_class):
    """A validator class that also fills in each property's ``default`` (the jsonschema recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_FillingValidator = _extend_with_default(jsonschema.Draft7Validator)


def _key_path(path: Iterable[Any]) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." + str(p) if parts else str(p)))
    return "".join(parts) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        return (f"config key {key!s}: unknown key(s) {', '.join(map(repr, extra))}; "
                f"allowed keys: {', '.join(allowed)}")
    msg = f"config key {key}: {error.message}"
    if "enum" in schema:
        msg += f"; allowed values: {', '.join(map(repr, schema['enum']))}"
    if "description" in schema:
        msg += f" ({schema['description'].strip()})"
    return msg


def _types(schema: dict) -> set:
    t = schema.get("type", [])
    return set([t] if isinstance(t, str) else t)


def _coerce_strings(config: dict, schema: dict) -> None:
    """Parse string values given where the schema wants another type, as YAML (in place).

    ``snakemake --config use_inference=false mock='{files_per_sample: 1}'`` hands such values over
    as strings; a value that still has the wrong type after parsing is left for the validator.
    """
    for name, sub in schema.get("properties", {}).items():
        if name not in config:
            continue
        value, wanted = config[name], _types(sub)
        if isinstance(value, str) and wanted and "string" not in wanted:
            try:
                config[name] = value = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
        if isinstance(value, dict) and "properties" in sub:
            _coerce_strings(value, sub)


def validate_config(config: dict) -> dict:
    """Fill defaults into ``config`` (in place) and validate it.

    Returns the same dict for convenience. Raises :class:`ConfigError` naming the offending key.
    """
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"the configuration must be a mapping, got {type(config).__name__}")
    schema = load_schema()
    _coerce_strings(config, schema)
    sha_given = "inputs_sha256" in config
    validator = _FillingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise ConfigError(_describe(errors[0]))
    # The default digest belongs to the default input list: another list without its own
    # inputs_sha256 is not checked (see the schema's description of inputs_sha256).
    if not sha_given and config["inputs"] != schema["properties"]["inputs"]["default"]:
        config["inputs_sha256"] = None
    if config["container_runner"] and not config["container_image"]:
        raise ConfigError(f"container_runner: {config['container_runner']!r} needs container_image "
                          "(the image to run the jobs in; build one with `make image`)")
    return config


def load_config(path: str | None = None, overrides: dict | None = None) -> dict:
    """Read a YAML config file (optional), apply ``overrides`` (nested merge) and validate."""
    config: dict = {}
    if path is not None:
        with open(path) as f:
            config = yaml.safe_load(f) or {}
    if overrides:
        _merge(config, overrides)
    return validate_config(config)


def _merge(base: dict, extra: dict) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def config_hash(config: dict, keys: Iterable[str] | None = None) -> str:
    """SHA-256 of the canonical JSON of ``config`` (or of the listed top-level keys)."""
    part = config if keys is None else {k: config.get(k) for k in keys}
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()
