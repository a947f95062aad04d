"""Builds the validated AppConfig from cdk.json context, `-c` overrides and a few environment variables."""

from __future__ import annotations

import copy
import difflib
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from config.model import AppConfig

CONTEXT_KEY = "delivery"
OVERRIDE_PREFIX = "delivery."
# The small, documented set of environment variables (README "Configuration"); each maps to a config path.
ENV_OVERRIDES = {
    "DELIVERY_CONNECTION_ARN": "source.connection_arn",
    "DELIVERY_REPOSITORY": "source.repository",
    "DELIVERY_BRANCH": "source.branch",
    "DELIVERY_PIPELINE_ACCOUNT": "pipeline.account",
}
ENV_ACCOUNT_PREFIX = "DELIVERY_ACCOUNT_"


def read_context(cdk_json: Path) -> dict[str, Any]:
    """cdk.json's context, as the CDK CLI passes it to the app; tools read it here without starting the CDK."""
    return json.loads(cdk_json.read_text())["context"]


class ConfigError(Exception):
    """Invalid configuration; the message names every offending field and what is allowed."""


def load_config(
    context: Mapping[str, Any], environ: Mapping[str, str], *, require_real_accounts: bool = False
) -> AppConfig:
    if require_real_accounts:
        _refuse_uncommitted(context, environ)
    raw = context.get(CONTEXT_KEY)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"context key '{CONTEXT_KEY}' (cdk.json) must hold the configuration object")
    data = copy.deepcopy(dict(raw))
    for key in sorted(context):
        if key.startswith(OVERRIDE_PREFIX):
            _set_path(data, key[len(OVERRIDE_PREFIX) :], _parse(context[key]))
    for variable, path in ENV_OVERRIDES.items():
        if environ.get(variable):
            _set_path(data, path, environ[variable])
    for variable in sorted(environ):
        if variable.startswith(ENV_ACCOUNT_PREFIX) and environ[variable]:
            env_name = variable[len(ENV_ACCOUNT_PREFIX) :].lower().replace("_", "-")
            _set_path(data, f"environments.{env_name}.account", environ[variable])
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data)) from None
    if require_real_accounts and config.uses_placeholder_accounts:
        missing = [f"environments.{e.name}.account" for e in config.environments if e.uses_placeholder_account]
        if config.pipeline.uses_placeholder_account:
            missing.insert(0, "pipeline.account")
        raise ConfigError(
            "refusing to deploy with placeholder account ids: set "
            + ", ".join(missing)
            + " in cdk.json → context.delivery and commit it (the pipeline synthesizes from git)"
        )
    return config


def _refuse_uncommitted(context: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    """Deploying uses committed config only: the pipeline's own synth (self-mutation) sees neither environment
    variables nor -c overrides, so a value given only there would be undone, or would retarget the pipeline."""
    given = sorted(k for k in context if k.startswith(OVERRIDE_PREFIX))
    given += sorted(v for v in environ if environ[v] and (v in ENV_OVERRIDES or v.startswith(ENV_ACCOUNT_PREFIX)))
    if given:
        raise ConfigError(
            "deploying takes configuration from committed cdk.json only (the pipeline synthesizes from git and "
            f"would not see these): move {', '.join(given)} into cdk.json → context.delivery and commit it"
        )


def _parse(value: Any) -> Any:
    # Numbers and booleans stay strings (pydantic converts them where the field is numeric, and account ids keep
    # their leading zeros); only lists and objects need decoding.
    if not isinstance(value, str) or not value.lstrip().startswith(("[", "{")):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    if parts[:2] == ["source", "repository"]:
        owner, _, repo = str(value).partition("/")
        if not owner or not repo:
            raise ConfigError(f"source.repository must be 'owner/name', got {value!r}")
        data.setdefault("source", {}).update(owner=owner, repo=repo)
        return
    node: Any = data
    index = 0
    while index < len(parts) - 1:
        part = parts[index]
        where = ".".join(parts[: index + 1])
        child = node.get(part)
        if part == "environments" and node is data and isinstance(child, list):
            name = parts[index + 1]
            match = [e for e in child if isinstance(e, dict) and e.get("name") == name]
            if not match:
                known = ", ".join(str(e.get("name")) for e in child if isinstance(e, dict))
                raise ConfigError(f"unknown environment '{name}' in override '{path}'; known: {known}")
            node = match[0]
            index += 2
            if index >= len(parts):
                raise ConfigError(f"override '{path}' must name a field of environment '{name}'")
            continue
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"cannot override '{path}': '{where}' is not an object")
        node = child
        index += 1
    node[parts[-1]] = value


def _describe(exc: ValidationError, data: Mapping[str, Any]) -> str:
    lines = []
    for error in exc.errors():
        path = _readable_path(error["loc"], data)
        message = error["msg"].removeprefix("Value error, ")
        given = error.get("input")
        shown = "" if isinstance(given, (dict, list)) or error["type"] == "missing" else f" (got {given!r})"
        if error["type"] == "extra_forbidden":
            message = _unknown_key(error["loc"])
            shown = ""
        lines.append(f"{path}: {message}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _unknown_key(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return "is not a configuration key"
    keys = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"is not a configuration key; {hint}valid keys here: {', '.join(keys)}"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = AppConfig
    for item in loc:
        if isinstance(item, int):
            continue
        field = model.model_fields.get(item) if model else None
        model = _model_in(field.annotation) if field else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    # EnvironmentConfig, tuple[EnvironmentConfig, ...] and TlsConfig | None all lead to the model.
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (tuple, list, typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found:
                return found
    return None


def _readable_path(loc: tuple[Any, ...], data: Mapping[str, Any]) -> str:
    # environments[1] reads better as environments.staging
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and item < len(node):
            element = node[item]
            name = element.get("name") if isinstance(element, dict) else None
            parts.append(str(name) if name else str(item))
            node = element
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "configuration"
