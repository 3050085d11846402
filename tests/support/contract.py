"""The contracts (``jupyter_tk/hub/contract.py``, ``jupyter_tk/server/contract.py``) put to work.

- :func:`contract_errors` checks a JSON value against a ``TypedDict`` of the contract: required
  and optional keys, no unknown keys, value types, nested all the way down.
- :func:`typescript` writes a contract module as TypeScript; ``TARGETS`` says which module goes
  to which committed file. Regenerate them after changing a contract::

      python -m tests.support.contract          # rewrite the .ts files
      python -m tests.support.contract --check  # exit 1 when one is stale (what the test does)

- :class:`DenyJupyterTk`: an authorizer that refuses this extension's ``auth_resource``.
"""

from __future__ import annotations

import argparse
import inspect
import math
import re
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_server.auth.authorizer import Authorizer

from jupyter_tk.server import contract as server_contract

REPO = Path(__file__).resolve().parents[2]

# Keys the server tests check, taken from the contract rather than written out a second time.
GPU_RESPONSE_KEYS = frozenset(server_contract.GpuSnapshot.__required_keys__)
GPU_DEVICE_KEYS = frozenset(server_contract.GpuDevice.__annotations__)


class DenyJupyterTk(Authorizer):
    """Allows everything except this extension's resource (to see auth_resource enforced)."""

    def is_authorized(self, handler, user, action, resource):
        return resource != "jupyter-tk"


# -- checking JSON against the contract ------------------------------------------------------


def contract_errors(value: Any, shape: Any, path: str = "$") -> list[str]:
    """Every way `value` (decoded JSON) differs from `shape` (a contract type); [] if none."""
    shape, _ = _unwrap(shape)
    if _is_typeddict(shape):
        return _typeddict_errors(value, shape, path)
    origin, args = typing.get_origin(shape), typing.get_args(shape)
    if shape is type(None) or shape is None:
        return [] if value is None else [f"{path}: {value!r} is not null"]
    if origin in (typing.Union, types.UnionType):
        for member in args:
            if not contract_errors(value, member, path):
                return []
        return [f"{path}: {_shown(value)} is not {_python_name(shape)}"]
    if origin is typing.Literal:
        matches = any(value == a and type(value) is type(a) for a in args)
        return [] if matches else [f"{path}: {_shown(value)} is not one of {list(args)}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {_shown(value)} is not a list"]
        return [
            e
            for i, item in enumerate(value)
            for e in contract_errors(item, args[0], f"{path}[{i}]")
        ]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {_shown(value)} is not an object"]
        return [
            e for k, item in value.items() for e in contract_errors(item, args[1], f"{path}[{k!r}]")
        ]
    if shape is bool:
        return [] if isinstance(value, bool) else [f"{path}: {_shown(value)} is not a boolean"]
    if shape is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {_shown(value)} is not a whole number"]
    if shape is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and isinstance(value, float) and not math.isfinite(value):
            return [f"{path}: {value!r} is not a JSON number"]
        return [] if ok else [f"{path}: {_shown(value)} is not a number"]
    if shape is str:
        return [] if isinstance(value, str) else [f"{path}: {_shown(value)} is not a string"]
    raise TypeError(f"the contract uses {shape!r}, which this checker does not know")


def _typeddict_errors(value: Any, shape: type, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: {_shown(value)} is not an object ({shape.__name__})"]
    hints = typing.get_type_hints(shape, include_extras=True)
    errors = [
        f"{path}: {key!r} is missing ({shape.__name__})"
        for key in sorted(shape.__required_keys__ - value.keys())
    ]
    errors += [
        f"{path}: {key!r} is not in the contract ({shape.__name__}): add it there"
        for key in sorted(value.keys() - hints.keys())
    ]
    for key, item in value.items():
        if key in hints:
            errors += contract_errors(item, hints[key], f"{path}.{key}")
    return errors


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _python_name(shape: Any) -> str:
    return getattr(shape, "__name__", None) or repr(shape).replace("typing.", "")


def _is_typeddict(shape: Any) -> bool:
    return isinstance(shape, type) and typing.is_typeddict(shape)


def _unwrap(shape: Any) -> tuple[Any, str | None]:
    """Strip Annotated / NotRequired / Required; return the bare type and its documentation."""
    doc = None
    while True:
        origin = typing.get_origin(shape)
        if origin is typing.Annotated:
            doc = doc or next((m for m in shape.__metadata__ if isinstance(m, str)), None)
            shape = shape.__origin__
        elif origin in (typing.NotRequired, typing.Required):
            shape = typing.get_args(shape)[0]
        else:
            return shape, doc


# -- TypeScript -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One contract module and the TypeScript file generated from it."""

    module: types.ModuleType
    path: Path
    #: Prefix of interface names (JupyterLab's lint wants ``I``).
    interface_prefix: str
    #: Prettier's printWidth in that package, so the file is already formatted.
    width: int


def targets() -> list[Target]:
    from jupyter_tk.hub import contract as hub_contract

    return [
        Target(server_contract, REPO / "labextension/src/contract.ts", "I", 88),
        Target(hub_contract, REPO / "hub_plugin/src/contract.ts", "", 100),
    ]


def typescript(target: Target) -> str:
    """The TypeScript text of `target`'s contract module (interfaces and type aliases)."""
    module = target.module
    source_path = Path(inspect.getsourcefile(module)).relative_to(REPO)
    lines = [
        "/*",
        f" * Generated from {source_path} by `python -m tests.support.contract`: do not edit.",
        " * Change the Python contract and regenerate; tests/test_contracts.py checks both agree.",
        " */",
    ]
    writer = _TypeScriptWriter(target)
    for name, obj in _contract_members(module):
        lines.append("")
        if _is_typeddict(obj):
            lines += writer.interface(name, obj)
        else:
            lines += writer.alias(name, obj, _alias_doc(module, name))
    return "\n".join(lines) + "\n"


def _contract_members(module: types.ModuleType) -> Iterator[tuple[str, Any]]:
    """Public types of the module in the order they are defined (aliases before their users)."""
    source = inspect.getsource(module)
    defined = re.finditer(r"^(?:class (\w+)\(|(\w+) = )", source, re.MULTILINE)
    for match in defined:
        name = match.group(1) or match.group(2)
        if not name.startswith("_") and not name.isupper():
            yield name, getattr(module, name)


def _alias_doc(module: types.ModuleType, name: str) -> str | None:
    """The ``#:`` comment lines right above ``name = ...`` in the module's source."""
    lines = inspect.getsource(module).splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{name} = "))
    doc = []
    while index > 0 and lines[index - 1].startswith("#:"):
        index -= 1
        doc.insert(0, lines[index][2:].strip())
    return " ".join(doc) or None


class _TypeScriptWriter:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.aliases = [
            (name, obj) for name, obj in _contract_members(target.module) if not _is_typeddict(obj)
        ]

    def name_of(self, shape: type) -> str:
        return self.target.interface_prefix + shape.__name__

    def interface(self, name: str, shape: type) -> list[str]:
        lines = _comment(inspect.cleandoc(shape.__doc__ or "").split("\n\n")[0], "", self.width)
        lines.append(f"export interface {self.name_of(shape)} {{")
        hints = typing.get_type_hints(shape, include_extras=True)
        for key, hint in hints.items():
            bare, doc = _unwrap(hint)
            if doc:
                lines += _comment(doc, "  ", self.width)
            optional = "?" if key in shape.__optional_keys__ else ""
            lines.append(f"  {key}{optional}: {self.type(bare)};")
        lines.append("}")
        return lines

    def alias(self, name: str, shape: Any, doc: str | None) -> list[str]:
        lines = _comment(doc, "", self.width) if doc else []
        members = self._union_members(shape, expand=True)
        one_line = f"export type {name} = {' | '.join(members)};"
        if len(one_line) <= self.width or len(members) == 1:
            return [*lines, one_line]
        next_line = f"  {' | '.join(members)};"
        if len(next_line) <= self.width:
            return [*lines, f"export type {name} =", next_line]
        # Prettier's layout of a union too long for one line.
        return [
            *lines,
            f"export type {name} =",
            *(f"  | {m}" for m in members[:-1]),
            f"  | {members[-1]};",
        ]

    @property
    def width(self) -> int:
        return self.target.width

    def _alias_name(self, shape: Any) -> str | None:
        return next((name for name, alias in self.aliases if shape == alias), None)

    def _union_members(self, shape: Any, expand: bool = False) -> list[str]:
        """The members of a union (or Literal) type, each as TypeScript; `expand` writes an
        alias out instead of naming it (for the alias's own definition)."""
        shape, _ = _unwrap(shape)
        name = None if expand else self._alias_name(shape)
        if name is not None:
            return [name]
        origin, args = typing.get_origin(shape), typing.get_args(shape)
        if origin in (typing.Union, types.UnionType):
            members = [m for a in args for m in self._union_members(a)]
            return list(dict.fromkeys(members))
        if origin is typing.Literal:
            return [_literal(a) for a in args]
        return [self.type(shape, expand=expand)]

    def type(self, shape: Any, expand: bool = False) -> str:
        shape, _ = _unwrap(shape)
        name = None if expand else self._alias_name(shape)
        if name is not None:
            return name
        if _is_typeddict(shape):
            return self.name_of(shape)
        origin, args = typing.get_origin(shape), typing.get_args(shape)
        if shape is type(None) or shape is None:
            return "null"
        if origin in (typing.Union, types.UnionType, typing.Literal):
            return " | ".join(self._union_members(shape, expand=expand))
        if origin is list:
            item = self.type(args[0])
            return f"({item})[]" if " | " in item else f"{item}[]"
        if origin is dict:
            return f"{{ [key: string]: {self.type(args[1])} }}"
        simple = {bool: "boolean", int: "number", float: "number", str: "string"}
        if shape in simple:
            return simple[shape]
        raise TypeError(f"no TypeScript for {shape!r}")


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def _comment(text: str | None, indent: str, width: int) -> list[str]:
    """A ``/** ... */`` comment (one line where it fits; Prettier leaves comments alone)."""
    if not text:
        return []
    text = " ".join(text.replace("``", "`").split())
    one_line = f"{indent}/** {text} */"
    if len(one_line) <= width:
        return [one_line]
    words, lines, current = text.split(), [], ""
    for word in words:
        if current and len(indent) + 3 + len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    lines.append(current)
    return [f"{indent}/**", *(f"{indent} * {line}" for line in lines), f"{indent} */"]


def stale_targets() -> list[Path]:
    """The generated files that differ from what the contract says now."""
    stale = []
    for target in targets():
        current = target.path.read_text() if target.path.exists() else ""
        if current != typescript(target):
            stale.append(target.path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_targets()
        for path in stale:
            print(f"stale: {path.relative_to(REPO)} (run: python -m tests.support.contract)")
        return 1 if stale else 0
    for target in targets():
        target.path.write_text(typescript(target))
        print(f"wrote {target.path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
