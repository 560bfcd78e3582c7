"""Bounded YAML for everything a user hands in (configs, recipes, variant files).

``yaml.safe_load`` runs no code, but it lets a 1 KB file cost gigabytes or minutes: an alias bomb
("billion laughs") expands into a structure that any later walk (validation, an error message,
``repr``) pays for in full; thousands of nesting levels overflow the recursion limit; a 5000-digit
integer fails to convert. This loader, built on PyYAML's pure-Python pipeline, refuses all of that
while it reads, each time as a ``ConfigError`` naming the field (``MODEL.EXTRA.STAGE2.NUM_BLOCKS[1]``):

- anchors and aliases (``&a``, ``*a``) are refused altogether: no config needs them, and none of the
  official HRNet experiment files use them;
- a document above ``MAX_DOCUMENT_BYTES``, nesting deeper than ``MAX_DEPTH``, more than ``MAX_NODES``
  values, a scalar above ``MAX_SCALAR_CHARS`` or an integer above ``MAX_INT_DIGITS`` digits;
- mapping keys that are not strings (``1: x``, ``null: x``, ``[a]: x``) and duplicate keys (PyYAML
  silently keeps the last one);
- strings with a NUL or an unpaired surrogate (``"\\ud800"``): not valid UTF-8 text;
- explicit tags other than the core ones (``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``,
  ``!!seq``, ``!!map``), so ``!!binary``, ``!!set``, ``!!timestamp`` never become values.

Scalars follow the YAML 1.2 core schema instead of PyYAML's YAML 1.1: ``1:30`` is the string "1:30"
(not the sexagesimal 90), ``010`` is 10 (not octal 8), ``yes``/``on`` are strings, ``1_000`` is a string,
``1e-3`` is a float. Every value of the official experiment files that the model reads (ints, lists of
ints, names, true/false) means the same under both rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from .config import ConfigError
from .errors import quote

MAX_DOCUMENT_BYTES = 256 * 1024  # official experiment files are 2-5 KB
MAX_DEPTH = 32  # official files nest 4 levels
MAX_NODES = 20_000  # every scalar, list and mapping counts one
MAX_SCALAR_CHARS = 10_000
MAX_INT_DIGITS = 18  # any int64; no config field needs more

_TAG = "tag:yaml.org,2002:"
CORE_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class _Resolver12(BaseResolver):
    """The YAML 1.2 core schema's implicit types (the order matters: int before float)."""

    yaml_implicit_resolvers: dict = {}


_Resolver12.add_implicit_resolver(_TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Resolver12.add_implicit_resolver(_TAG + "null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Resolver12.add_implicit_resolver(_TAG + "int", _INT, list("-+0123456789"))
_Resolver12.add_implicit_resolver(_TAG + "float", _FLOAT, list("-+0123456789."))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _BoundedComposer(Composer):
    """PyYAML's composer with the checks above, made while the node tree is built (so a bomb is refused
    after reading a few of its events), each error naming the path of the offending value."""

    def __init__(self):
        super().__init__()
        self._path = [""]
        self._nodes = 0

    def _fail(self, message: str):
        path = self._path[-1] or "document"
        raise ConfigError(path if len(path) <= 80 else path[:77] + "...", message)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            self._fail("YAML anchors and aliases (&name, *name) are not allowed in a config; write the values out")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            self._fail(f"the document has more than {MAX_NODES} values; no config is that large")
        if len(self._path) > MAX_DEPTH:
            self._fail(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(event, ScalarEvent):
            return self._scalar()
        if isinstance(event, SequenceStartEvent):
            return self._sequence()
        if isinstance(event, MappingStartEvent):
            return self._mapping()
        return super().compose_node(parent, index)

    def _tag(self, event, kind, value=None) -> str:
        tag = event.tag
        if tag is None or tag == "!":
            return self.resolve(kind, value, event.implicit)
        if tag not in CORE_TAGS:
            self._fail(f"YAML tag {quote(tag)} is not allowed in a config")
        return tag

    def _scalar(self) -> ScalarNode:
        event = self.get_event()
        value = event.value
        tag = self._tag(event, ScalarNode, value)
        if len(value) > MAX_SCALAR_CHARS:
            self._fail(f"a value of {len(value)} characters (at most {MAX_SCALAR_CHARS})")
        if _BAD_TEXT.search(value):
            self._fail(f"{quote(value)} contains a NUL or an unpaired surrogate: not valid UTF-8 text")
        if tag == _TAG + "int":
            if not _INT.match(value):
                self._fail(f"{quote(value)} is not an integer")
            if len(value.lstrip("+-")) > MAX_INT_DIGITS:
                self._fail(f"an integer of {len(value.lstrip('+-'))} digits (at most {MAX_INT_DIGITS})")
        elif tag == _TAG + "float" and not _FLOAT.match(value):
            self._fail(f"{quote(value)} is not a number")
        elif tag == _TAG + "bool" and value not in ("true", "True", "TRUE", "false", "False", "FALSE"):
            self._fail(f"{quote(value)} is not true or false")
        return ScalarNode(tag, value, event.start_mark, event.end_mark, style=event.style)

    def _sequence(self) -> SequenceNode:
        start = self.get_event()
        node = SequenceNode(self._tag(start, SequenceNode), [], start.start_mark, None, flow_style=start.flow_style)
        while not self.check_event(SequenceEndEvent):
            self._path.append(f"{self._path[-1]}[{len(node.value)}]")
            node.value.append(self.compose_node(node, len(node.value)))
            self._path.pop()
        node.end_mark = self.get_event().end_mark
        return node

    def _mapping(self) -> MappingNode:
        start = self.get_event()
        node = MappingNode(self._tag(start, MappingNode), [], start.start_mark, None, flow_style=start.flow_style)
        seen: set[str] = set()
        while not self.check_event(MappingEndEvent):
            key = self.compose_node(node, None)
            if not isinstance(key, ScalarNode) or key.tag != _TAG + "str":
                shown = quote(key.value) if isinstance(key, ScalarNode) else f"a {key.id}"
                self._path.append(_join(self._path[-1], shown))
                self._fail(f"mapping keys must be strings, got {shown} (quote it if it is a name)")
            if key.value in seen:
                self._path.append(_join(self._path[-1], key.value))
                self._fail("duplicate key (YAML would silently keep the last one)")
            seen.add(key.value)
            self._path.append(_join(self._path[-1], key.value))
            value = self.compose_node(node, key)
            self._path.pop()
            node.value.append((key, value))
        node.end_mark = self.get_event().end_mark
        return node


class _Constructor12(SafeConstructor):
    """Integers and floats by the YAML 1.2 core rules (PyYAML's are 1.1: octal ``010``, ``1:30``, ``1_000``)."""

    def construct_yaml_int(self, node):
        value = node.value
        sign = -1 if value.startswith("-") else 1
        digits = value.lstrip("+-")
        if digits.startswith("0o"):
            return int(digits[2:], 8)
        if digits.startswith("0x"):
            return int(digits[2:], 16)
        return sign * int(digits, 10)

    def construct_yaml_float(self, node):
        value = node.value.lower()
        if value.endswith(".inf"):
            return float("-inf") if value.startswith("-") else float("inf")
        if value == ".nan":
            return float("nan")
        return float(value)


_Constructor12.add_constructor(_TAG + "int", _Constructor12.construct_yaml_int)
_Constructor12.add_constructor(_TAG + "float", _Constructor12.construct_yaml_float)


class BoundedLoader(Reader, Scanner, Parser, _BoundedComposer, _Constructor12, _Resolver12):
    """A PyYAML loader with this module's limits and YAML 1.2 scalars (one document)."""

    def __init__(self, stream):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _BoundedComposer.__init__(self)
        _Constructor12.__init__(self)
        _Resolver12.__init__(self)


def load_yaml(text: str, source: str = "<text>") -> object:
    """The value of the one YAML document ``text`` (``None`` when it is empty), within this module's limits.

    Raises ``ConfigError``: field ``source`` for the document as a whole (too large, not YAML), else the
    path of the offending value inside it.
    """
    if not isinstance(text, str):
        raise ConfigError(source, f"YAML text must be a string, got {type(text).__name__}")
    if len(text) > MAX_DOCUMENT_BYTES:  # characters >= bytes / 4; refuse before any parsing
        raise ConfigError(source, f"is {len(text):,} characters; a config is at most {MAX_DOCUMENT_BYTES:,}")
    if _BAD_TEXT.search(text):
        raise ConfigError(source, "contains a NUL character or an unpaired surrogate: not valid UTF-8 text")
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or (str(err).splitlines() or [""])[0]
        raise ConfigError(source, f"invalid YAML{where}: {quote(problem, 120).strip(chr(39))}") from None
    finally:
        loader.dispose()


def read_bounded_bytes(path: str | Path, what: str, limit: int, error=ConfigError) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them, or ``error(file, message)``: missing, a
    folder, a device or pipe, too large, unreadable. ``what`` names the kind of file in the messages (``config``)."""
    path = Path(path)
    source = str(path)
    try:
        if not path.exists():
            raise error(source, f"no such {what} file")
        if path.is_dir():
            raise error(source, f"is a folder, not a {what} file")
        if not path.is_file():
            raise error(source, f"is not a regular file (a device or a pipe), not a {what} file")
        size = path.stat().st_size
        if size > limit:
            raise error(source, f"is {size:,} bytes; a {what} file is at most {limit:,}")
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as err:
        raise error(source, f"cannot read {what} file ({err.strerror or err.__class__.__name__})") from None
    if len(raw) > limit:  # it grew while being read
        raise error(source, f"is more than {limit:,} bytes")
    return raw


def read_yaml_file(path: str | Path, what: str = "config") -> object:
    """The value of the YAML file ``path`` (see ``load_yaml``); an empty document is refused.

    Raises ``ConfigError`` naming the file: missing, a folder or device, above ``MAX_DOCUMENT_BYTES``,
    not UTF-8 text, empty, or invalid (then also the field).
    """
    source = str(path)
    raw = read_bounded_bytes(path, what, MAX_DOCUMENT_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(source, f"is not UTF-8 text (byte {err.start}): a {what} file is YAML") from None
    data = load_yaml(text, source)
    if data is None:
        raise ConfigError(source, f"is empty: a {what} file must hold a YAML mapping")
    return data


def check_data(data: object, source: str = "") -> None:
    """Apply the loader's limits to plain Python data given directly (the API's dict configs): depth,
    size, string keys, valid text, integer size. Raises ``ConfigError`` naming the path."""
    stack = [(data, source, 0)]
    nodes = 0
    while stack:
        value, path, depth = stack.pop()
        nodes += 1
        where = path or "config"
        if nodes > MAX_NODES:
            raise ConfigError(where, f"the config has more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise ConfigError(where, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            if len(value) > MAX_SCALAR_CHARS:
                raise ConfigError(where, f"a value of {len(value)} characters (at most {MAX_SCALAR_CHARS})")
            if _BAD_TEXT.search(value):
                raise ConfigError(where, f"{quote(value)} contains a NUL or an unpaired surrogate: not valid UTF-8 text")
        elif isinstance(value, int) and not isinstance(value, bool):
            if abs(value) >= 10**MAX_INT_DIGITS:
                raise ConfigError(where, f"{quote(value)} has more than {MAX_INT_DIGITS} digits")
        elif isinstance(value, (Mapping, list, tuple)) and len(value) > MAX_NODES:
            raise ConfigError(where, f"{len(value):,} entries; the config has at most {MAX_NODES} values")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ConfigError(where, f"mapping keys must be strings, got {quote(key)}")
                stack.append((key, where, depth + 1))
                stack.append((item, _join(path, key), depth + 1))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                stack.append((item, f"{path}[{i}]", depth + 1))
