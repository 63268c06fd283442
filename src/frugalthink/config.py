"""Typed configs: dataclasses filled from a YAML recipe plus ``--set key=value`` overrides, checked loudly.

Every run writes `run_metadata` (resolved config, package version, git commit) next to its outputs.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from frugalthink import __version__
from frugalthink.util.errors import UserError

T = TypeVar("T")


def require_positive(obj, names: tuple[str, ...]) -> None:
    """Raise `UserError` naming the first of ``names`` whose value on ``obj`` is not > 0."""
    for name in names:
        if getattr(obj, name) <= 0:
            raise UserError(f"{name} must be positive, got {getattr(obj, name)}")


def shipped_recipes() -> Path:
    """The recipes that ship inside the package (``recipes/`` in a checkout is a link to them)."""
    from importlib import resources

    return Path(str(resources.files("frugalthink") / "recipes"))


def recipe_path(name: str | Path) -> Path:
    """A recipe file: a path, or a shipped recipe's name (``tiny/rl``, ``r1-distill-qwen-1.5b/rl.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a recipe file (.yaml)")
    for candidate in (shipped_recipes() / path, shipped_recipes() / f"{path}.yaml"):
        if not path.is_absolute() and candidate.is_file():
            return candidate
    shipped = sorted(str(p.relative_to(shipped_recipes()).with_suffix("")) for p in shipped_recipes().rglob("*.yaml"))
    raise UserError(f"{path}: no such recipe file, and no shipped recipe of that name (shipped: {', '.join(shipped)})")


def load_yaml(path: str | Path, _seen: tuple = ()) -> dict:
    """A recipe as a dict. ``extends: OTHER.yaml`` (relative to this file) starts from another recipe's fields; each
    top-level field of this file replaces the parent's whole (a mapping such as ``task_options`` is not merged)."""
    path = recipe_path(path)
    if path.resolve() in _seen:
        raise UserError(f"{path}: 'extends' loops back to itself")
    data = _read_yaml(path)
    if "extends" in data:
        parent = data.pop("extends")
        if not isinstance(parent, str):
            raise UserError(f"{path}: 'extends' must name a recipe file, got {parent!r}")
        data = {**load_yaml(path.parent / parent, (*_seen, path.resolve())), **data}
    return data


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; is it a recipe?") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe must be a mapping of field: value")
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``["lr=1e-4", "model.layers=2"]`` -> nested updates; values are parsed as YAML (numbers, lists...)."""
    data = json.loads(json.dumps(data))
    for key, value in parse_options(overrides, "--set").items():
        node = data
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {key}=...: {'.'.join(parts[: i + 1])} is {node!r}, not a section with fields")
        node[parts[-1]] = value
    return data


def parse_options(items: list[str], flag: str) -> dict:
    """``["problem_field=question", "number_fallback=true"]`` -> a dict; values parsed as YAML."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise UserError(f"{flag} {item!r}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None
    return out


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise UserError(f"{where}: expected a list, got {value!r}")
        (inner, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise UserError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise UserError(f"{where}: expected a number, got {value!r}") from None
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise UserError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str | int | float):
            raise UserError(f"{where}: expected text, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown or mistyped fields raise `UserError` naming the field."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check:
        check()
    return obj


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def write_run_metadata(out_dir: str | Path, config, name: str = "config.json", extra: dict | None = None) -> Path:
    """Write the resolved config, frugalthink version and git commit into ``out_dir/name``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": to_dict(config) if dataclasses.is_dataclass(config) else config,
        "frugalthink_version": __version__,
        "git_commit": git_commit(),
        **(extra or {}),
    }
    path = out_dir / name
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
