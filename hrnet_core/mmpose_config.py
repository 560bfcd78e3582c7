"""Read mmpose config files (``.py``) without executing them: ``read_mmpose_text`` / ``read_mmpose_file``.

An mmpose config is Python source, but the part a model needs is plain data (``model = dict(...)``,
``codec = dict(...)``). The file is parsed with ``ast.parse`` only; nothing in it is executed, evaluated or
compiled to run. Its statements are walked and each value is built by this module from a small expression
language; anything outside it is refused with a ``ConfigError`` (so the CLI answers exit 2 and one line)
naming the file, the LINE NUMBER and what was found, e.g.
``x.py line 7: a call to 'open' is not allowed in a config (only dict(...) and literals); nothing was executed``.

Statements: ``NAME = <expr>`` at the top level (also ``a = b = <expr>``; a later assignment rebinds the name),
a module docstring, comments. ``_base_ = [...]`` is recorded like any other name, never followed (the base
files hold runtime defaults, not the model).

Expressions:

- literals: str, int, float (finite), True / False / None, tuples, lists, dicts with str or int keys
  (no duplicate keys, no ``**``);
- ``dict(k=v, ...)``: only the name ``dict``, keyword arguments only, no ``**``;
- a name bound by an earlier top-level assignment (``decoder=codec``, ``type=dataset_type``): a copy of its
  value;
- a constant-key subscript of an accepted value (``codec['input_size']``, ``channel_cfg['dataset_channel'][0]``);
- ``+`` between two strings, two lists or two tuples (``data_root + 'annotations/...'``);
- unary minus on a number (``-1``, ``-0.5``);
- mmpose 0.x idioms: an f-string whose every ``{...}`` is a bare name bound earlier to a str or a number
  (``f'{data_root}/annotations/x.json'``; no ``!r``, no format spec), and mmcv's ``{{_base_.NAME}}``
  substitution, read as a ``BaseRef(NAME)`` marker (the value lives in the base file, not followed).

Everything else (imports, other calls, attribute access, lambdas, comprehensions, other operators, sets,
``*`` / ``**`` unpacking, ``:=``, if / for / while / def / class / with / try ...) is refused.

Bounds: the file size (``MAX_FILE_BYTES``), the number of statements (``MAX_STATEMENTS``), expression nesting
(``MAX_EXPR_DEPTH``; Python's own parser gives up earlier on brackets, and its RecursionError / MemoryError on
deeper chains is caught and reported with the line), value nesting (``MAX_VALUE_DEPTH``), entries of one list,
tuple or dict (``MAX_ITEMS``) and characters of one string (``MAX_STRING_CHARS``), both checked before a ``+``
builds the result, integers (``MAX_INT_DIGITS``), and the values and string characters built for the whole file
(``MAX_VALUES``, ``MAX_TOTAL_CHARS``), which count every copy a name reference makes: ``a = a + a`` or
``b = [a, a, a]`` repeated cannot grow past them.
"""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError
from .errors import quote
from .safe_yaml import read_bounded_bytes

MAX_FILE_BYTES = 1_000_000  # mmpose's configs are 3-10 KB
MAX_STATEMENTS = 1_000  # top-level statements; mmpose's configs have 20-40
MAX_EXPR_DEPTH = 100  # nested sub-expressions of one statement (mmpose's nest about 8)
MAX_VALUE_DEPTH = 32  # nested containers of one value, through names too (as hrnet_core.safe_yaml.MAX_DEPTH)
MAX_ITEMS = 100_000  # entries of one list, tuple or dict
MAX_STRING_CHARS = 100_000  # characters of one string
MAX_INT_DIGITS = 18  # any int64 (as hrnet_core.safe_yaml)
MAX_VALUES = 1_000_000  # values built for the whole file, every copy a name reference makes included
MAX_TOTAL_CHARS = 10_000_000  # string characters built for the whole file, likewise

NOT_EXECUTED = "nothing was executed"
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_STATEMENTS = {
    ast.Import: "an import", ast.ImportFrom: "an import", ast.If: "an 'if' statement", ast.For: "a 'for' loop",
    ast.AsyncFor: "a 'for' loop", ast.While: "a 'while' loop", ast.FunctionDef: "a function definition ('def')",
    ast.AsyncFunctionDef: "a function definition ('def')", ast.ClassDef: "a class definition",
    ast.With: "a 'with' statement", ast.AsyncWith: "a 'with' statement", ast.Try: "a 'try' statement",
    ast.Delete: "a 'del' statement", ast.Global: "a 'global' statement", ast.Nonlocal: "a 'nonlocal' statement",
    ast.Raise: "a 'raise' statement", ast.Assert: "an 'assert' statement", ast.Return: "a 'return' statement",
    ast.AugAssign: "an augmented assignment (+= ...)", ast.AnnAssign: "an annotated assignment",
    ast.Pass: "a 'pass' statement", ast.Break: "a 'break' statement", ast.Continue: "a 'continue' statement",
}
if hasattr(ast, "TryStar"):
    _STATEMENTS[ast.TryStar] = "a 'try' statement"
if hasattr(ast, "Match"):
    _STATEMENTS[ast.Match] = "a 'match' statement"
if hasattr(ast, "TypeAlias"):
    _STATEMENTS[ast.TypeAlias] = "a 'type' statement"
_EXPRESSIONS = {
    ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator expression", ast.NamedExpr:
    "an assignment expression (:=)", ast.Await: "'await'", ast.Yield: "'yield'", ast.YieldFrom: "'yield'",
    ast.Compare: "a comparison", ast.BoolOp: "a boolean operator (and / or)", ast.IfExp:
    "a conditional expression (x if c else y)", ast.Starred: "'*' unpacking", ast.Slice: "a slice",
}
_OPERATORS = {
    ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.MatMult: "@",
    ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^",
    ast.Not: "not", ast.Invert: "~", ast.UAdd: "unary +",
}


@dataclass(frozen=True)
class BaseRef:
    """mmcv's ``{{_base_.NAME}}`` (mmpose 0.x configs: ``dataset_info={{_base_.dataset_info}}``): a value taken
    from a base file, which is recorded and not followed."""

    name: str

    def __repr__(self) -> str:
        return "{{_base_." + self.name + "}}"


class MmposeConfigError(ConfigError):
    """An mmpose ``.py`` config this reader refuses; ``field`` is ``FILE line N`` (or ``FILE``), the message
    says what was found."""


@dataclass
class _Entry:
    """A top-level name's value with what a reference to it costs: its values, characters and depth."""

    value: Any
    values: int
    chars: int
    depth: int


def _measure(value: Any) -> tuple[int, int]:
    """Values (every scalar and container counts one) and string characters in ``value`` (iterative)."""
    values = chars = 0
    stack = [value]
    while stack:
        v = stack.pop()
        values += 1
        if isinstance(v, str):
            chars += len(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return values, chars


def _copy(value: Any) -> Any:
    """A copy of the containers of ``value`` (depth bounded by ``MAX_VALUE_DEPTH``), so no two names share one."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    return value


def _callee(node: ast.AST, depth: int = 0) -> str:
    """How a refused callee reads in a message: ``open``, ``os.system``, ``__import__(...).system``."""
    if isinstance(node, ast.Name):
        return node.id
    if depth < 4 and isinstance(node, ast.Attribute):
        return f"{_callee(node.value, depth + 1)}.{node.attr}"
    if depth < 4 and isinstance(node, ast.Call):
        return f"{_callee(node.func, depth + 1)}(...)"
    if depth < 4 and isinstance(node, ast.Subscript):
        return f"{_callee(node.value, depth + 1)}[...]"
    return "(...)"


class _Reader:
    """The walk over one parsed file: the names bound so far and the file-wide budgets spent."""

    def __init__(self, source: str):
        self.source = source
        self.names: dict[str, _Entry] = {}
        self.values = 0
        self.chars = 0

    # ---- errors ----------------------------------------------------------------------------
    def fail(self, node: ast.AST | None, message: str) -> MmposeConfigError:
        line = getattr(node, "lineno", None)
        return MmposeConfigError(f"{self.source} line {line}" if line else self.source, message)

    def refuse(self, node: ast.AST, what: str) -> MmposeConfigError:
        return self.fail(node, f"{what} is not allowed in a config (only NAME = dict(...) and literals); "
                               f"{NOT_EXECUTED}")

    def charge(self, node: ast.AST, values: int, chars: int = 0) -> None:
        self.values += values
        self.chars += chars
        if self.values > MAX_VALUES:
            raise self.fail(node, f"the file builds more than {MAX_VALUES:,} values (names referenced again and "
                                  f"again count each time); no config is that large; {NOT_EXECUTED}")
        if self.chars > MAX_TOTAL_CHARS:
            raise self.fail(node, f"the file builds more than {MAX_TOTAL_CHARS:,} characters of strings; no config "
                                  f"is that large; {NOT_EXECUTED}")

    # ---- statements ------------------------------------------------------------------------
    def read(self, tree: ast.Module) -> dict:
        body = tree.body
        if len(body) > MAX_STATEMENTS:
            raise self.fail(body[MAX_STATEMENTS], f"more than {MAX_STATEMENTS} statements; no config is that "
                                                  f"long; {NOT_EXECUTED}")
        out: dict[str, Any] = {}
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.Assign):
                self.assign(stmt, out)
            elif isinstance(stmt, ast.Expr):
                value = stmt.value
                if i == 0 and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    continue  # the module docstring
                if isinstance(value, ast.Call):
                    self.expr(value, 0)  # refused, naming the call
                raise self.refuse(stmt, "a bare expression (not NAME = value)")
            else:
                raise self.refuse(stmt, _STATEMENTS.get(type(stmt), f"a {type(stmt).__name__} statement"))
        return out

    def assign(self, stmt: ast.Assign, out: dict) -> None:
        for target in stmt.targets:
            if not isinstance(target, ast.Name):
                what = {ast.Attribute: "an assignment to an attribute", ast.Subscript: "an assignment to an item",
                        ast.Tuple: "an unpacking assignment (a, b = ...)", ast.List:
                        "an unpacking assignment ([a, b] = ...)", ast.Starred: "'*' unpacking"}
                raise self.refuse(target, what.get(type(target), "an assignment to anything but a NAME"))
        value, depth = self.expr(stmt.value, 0)
        values, chars = _measure(value)
        for k, target in enumerate(stmt.targets):
            # Each further name is another copy of the value (the first one is the value itself).
            if k:
                self.charge(target, values, chars)
            self.names[target.id] = _Entry(value if not k else _copy(value), values, chars, depth)
            out.pop(target.id, None)
            out[target.id] = self.names[target.id].value

    # ---- expressions -----------------------------------------------------------------------
    def expr(self, node: ast.AST, level: int) -> tuple[Any, int]:
        """The value of ``node`` and its nesting depth (1 for a scalar)."""
        if level > MAX_EXPR_DEPTH:
            raise self.fail(node, f"an expression nested more than {MAX_EXPR_DEPTH} levels deep; {NOT_EXECUTED}")
        if isinstance(node, ast.Constant):
            return self.constant(node), 1
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, (ast.List, ast.Tuple)):
            return self.sequence(node, level)
        if isinstance(node, ast.Dict):
            return self.dict_literal(node, level)
        if isinstance(node, ast.Call):
            return self.call(node, level)
        if isinstance(node, ast.Subscript):
            return self.subscript(node, level)
        if isinstance(node, ast.BinOp):
            return self.binop(node, level)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, level)
        if isinstance(node, ast.JoinedStr):
            return self.fstring(node)
        if isinstance(node, ast.Set):
            ref = self.base_ref(node)
            if ref is not None:
                self.charge(node, 1)
                return ref, 1
            raise self.refuse(node, "a set (or a {{...}} other than mmcv's {{_base_.NAME}})")
        if isinstance(node, ast.Attribute):
            raise self.refuse(node, f"attribute access ({quote(_callee(node))[1:-1]})")
        raise self.refuse(node, _EXPRESSIONS.get(type(node), f"a {type(node).__name__} expression"))

    def constant(self, node: ast.Constant) -> Any:
        v = node.value
        if v is None or isinstance(v, bool):
            self.charge(node, 1)
            return v
        if isinstance(v, str):
            if len(v) > MAX_STRING_CHARS:
                raise self.fail(node, f"a string of {len(v):,} characters (at most {MAX_STRING_CHARS:,})")
            if _BAD_TEXT.search(v):
                raise self.fail(node, f"{quote(v)} contains a NUL or an unpaired surrogate: not valid UTF-8 text")
            self.charge(node, 1, len(v))
            return v
        if isinstance(v, int):
            if abs(v) >= 10**MAX_INT_DIGITS:
                raise self.fail(node, f"an integer of more than {MAX_INT_DIGITS} digits")
            self.charge(node, 1)
            return v
        if isinstance(v, float):
            if not math.isfinite(v):
                raise self.fail(node, f"{v!r} is not a finite number")
            self.charge(node, 1)
            return v
        what = {complex: "a complex number", bytes: "a bytes literal", type(...): "'...' (Ellipsis)"}
        raise self.refuse(node, what.get(type(v), f"a {type(v).__name__} literal"))

    def name(self, node: ast.Name) -> tuple[Any, int]:
        entry = self.names.get(node.id)
        if entry is None:
            raise self.fail(node, f"{quote(node.id)} is not bound by an earlier NAME = value of this file "
                                  f"(builtins, imports and base files are not read); {NOT_EXECUTED}")
        self.charge(node, entry.values, entry.chars)
        return _copy(entry.value), entry.depth

    def _deeper(self, node: ast.AST, depth: int) -> int:
        if depth > MAX_VALUE_DEPTH:
            raise self.fail(node, f"a value nested deeper than {MAX_VALUE_DEPTH} levels; {NOT_EXECUTED}")
        return depth

    def _items(self, node: ast.AST, n: int) -> None:
        if n > MAX_ITEMS:
            raise self.fail(node, f"a list, tuple or dict of {n:,} entries (at most {MAX_ITEMS:,}); {NOT_EXECUTED}")

    def sequence(self, node: ast.List | ast.Tuple, level: int) -> tuple[Any, int]:
        self._items(node, len(node.elts))
        self.charge(node, 1)
        items, depth = [], 0
        for elt in node.elts:
            if isinstance(elt, ast.Starred):
                raise self.refuse(elt, "'*' unpacking")
            v, d = self.expr(elt, level + 1)
            items.append(v)
            depth = max(depth, d)
        depth = self._deeper(node, depth + 1)
        return (items if isinstance(node, ast.List) else tuple(items)), depth

    def dict_literal(self, node: ast.Dict, level: int) -> tuple[dict, int]:
        self._items(node, len(node.keys))
        self.charge(node, 1)
        out: dict = {}
        depth = 0
        for key_node, value_node in zip(node.keys, node.values):
            if key_node is None:
                raise self.refuse(value_node, "'**' unpacking")
            negative = isinstance(key_node, ast.UnaryOp) and isinstance(key_node.op, ast.USub)
            literal = key_node.operand if negative else key_node
            if not isinstance(literal, ast.Constant) or type(literal.value) not in ((int,) if negative else (str, int)):
                raise self.fail(key_node, f"dict keys must be string or integer literals; {NOT_EXECUTED}")
            key = -self.constant(literal) if negative else self.constant(literal)
            if key in out:
                raise self.fail(key_node, f"duplicate key {quote(key)} (Python would silently keep the last one)")
            out[key], d = self.expr(value_node, level + 1)
            depth = max(depth, d)
        return out, self._deeper(node, depth + 1)

    def call(self, node: ast.Call, level: int) -> tuple[dict, int]:
        if not isinstance(node.func, ast.Name) or node.func.id != "dict":
            raise self.refuse(node, f"a call to {quote(_callee(node.func))}")
        if node.args:
            raise self.fail(node, f"dict(...) takes keyword arguments only (k=v, ...); {NOT_EXECUTED}")
        self._items(node, len(node.keywords))
        self.charge(node, 1)
        out: dict = {}
        depth = 0
        for kw in node.keywords:
            if kw.arg is None:
                raise self.refuse(kw.value, "'**' unpacking")
            if kw.arg in out:  # the compiler's SyntaxError, which ast.parse alone does not raise
                raise self.fail(kw, f"keyword argument repeated: {kw.arg}; {NOT_EXECUTED}")
            out[kw.arg], d = self.expr(kw.value, level + 1)
            depth = max(depth, d)
        return out, self._deeper(node, depth + 1)

    def _key(self, node: ast.AST) -> Any:
        """A subscript key: a str or int literal (``-1`` included)."""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
                and type(node.operand.value) is int:
            return -node.operand.value
        if isinstance(node, ast.Constant) and type(node.value) in (str, int):
            return node.value
        raise self.fail(node, f"only a string or integer literal may index a value (codec['input_size']); "
                              f"{NOT_EXECUTED}")

    def subscript(self, node: ast.Subscript, level: int) -> tuple[Any, int]:
        key = self._key(node.slice)
        value, _ = self.expr(node.value, level + 1)
        if isinstance(value, dict):
            if key not in value:
                raise self.fail(node, f"no key {quote(key)} in that dict (keys: {quote(list(value))})")
        elif isinstance(value, (list, tuple)) and type(key) is int:
            if not -len(value) <= key < len(value):
                raise self.fail(node, f"index {key} is out of range for {len(value)} entries")
        else:
            raise self.fail(node, f"cannot index a {type(value).__name__} with {quote(key)}")
        item = value[key]
        stack, depth = [(item, 1)], 0
        while stack:  # depth of the item (bounded: its container was)
            v, d = stack.pop()
            depth = max(depth, d)
            if isinstance(v, dict):
                stack.extend((x, d + 1) for x in v.values())
            elif isinstance(v, (list, tuple)):
                stack.extend((x, d + 1) for x in v)
        return item, depth

    def binop(self, node: ast.BinOp, level: int) -> tuple[Any, int]:
        if not isinstance(node.op, ast.Add):
            raise self.refuse(node, f"the operator {quote(_OPERATORS.get(type(node.op), '?'))} "
                                    "(only + between two strings, two lists or two tuples)")
        left, dl = self.expr(node.left, level + 1)
        right, dr = self.expr(node.right, level + 1)
        for kind in (str, list, tuple):
            if type(left) is kind and type(right) is kind:
                break
        else:
            raise self.fail(node, f"+ joins two strings, two lists or two tuples, not {type(left).__name__} and "
                                  f"{type(right).__name__}; {NOT_EXECUTED}")
        n = len(left) + len(right)
        if kind is str:
            if n > MAX_STRING_CHARS:
                raise self.fail(node, f"+ would build a string of {n:,} characters (at most {MAX_STRING_CHARS:,}); "
                                      f"{NOT_EXECUTED}")
            self.charge(node, 1, n)
        else:
            self._items(node, n)
            self.charge(node, 1)
        return left + right, max(dl, dr)

    def unary(self, node: ast.UnaryOp, level: int) -> tuple[Any, int]:
        if not isinstance(node.op, ast.USub):
            raise self.refuse(node, f"the operator {quote(_OPERATORS.get(type(node.op), '?'))} (only - on a number)")
        value, _ = self.expr(node.operand, level + 1)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(node, f"unary - applies to a number, not {type(value).__name__}; {NOT_EXECUTED}")
        return -value, 1

    def fstring(self, node: ast.JoinedStr) -> tuple[str, int]:
        """mmpose 0.x's ``f'{data_root}/annotations/...'``: each placeholder a bare name of a str or a number."""
        parts: list[str] = []
        n = 0
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                text = part.value
            elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) and \
                    part.conversion == -1 and part.format_spec is None:
                entry = self.names.get(part.value.id)
                if entry is None or isinstance(entry.value, bool) or not isinstance(entry.value, (str, int, float)):
                    raise self.fail(part, f"an f-string may only insert names bound earlier to a string or a number; "
                                          f"{quote(part.value.id)} is not one; {NOT_EXECUTED}")
                text = str(entry.value)
            else:
                raise self.refuse(part, "an f-string placeholder other than a bare name ({name}: no calls, "
                                        "attributes, !r or format specs)")
            n += len(text)
            if n > MAX_STRING_CHARS:
                raise self.fail(node, f"an f-string of more than {MAX_STRING_CHARS:,} characters; {NOT_EXECUTED}")
            parts.append(text)
        self.charge(node, 1, n)
        return "".join(parts), 1

    @staticmethod
    def base_ref(node: ast.Set) -> BaseRef | None:
        """``{{_base_.NAME}}`` (a set holding a set holding ``_base_.NAME``), else None."""
        if len(node.elts) != 1 or not isinstance(node.elts[0], ast.Set) or len(node.elts[0].elts) != 1:
            return None
        inner = node.elts[0].elts[0]
        if isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name) and inner.value.id == "_base_":
            return BaseRef(inner.attr)
        return None


def _deep_statement_line(text: str) -> int | None:
    """The first line of the first top-level statement that Python's parser cannot take alone (RecursionError or
    MemoryError), found by cutting the source into logical lines with ``tokenize``; None if it cannot tell."""
    lines = text.split("\n")
    start = None
    skip = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if start is None and tok.type not in skip:
                start = tok.start[0]
            if tok.type == tokenize.NEWLINE and start is not None:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ast.parse("\n".join(lines[start - 1:tok.end[0]]))
                except (RecursionError, MemoryError):
                    return start
                except (SyntaxError, ValueError):
                    pass
                start = None
    except (tokenize.TokenError, SyntaxError, ValueError, RecursionError, MemoryError):
        return start
    return start


def _parse(text: str, source: str) -> ast.Module:
    """``ast.parse`` (parsing only) with its every failure as a one-line ``MmposeConfigError``."""
    try:
        with warnings.catch_warnings():  # SyntaxWarnings ('\d', "1if") would print lines of their own
            warnings.simplefilter("ignore")
            return ast.parse(text, filename=source, mode="exec")
    except SyntaxError as err:
        msg = " ".join(str(err.msg).split())
        where = f"{source} line {err.lineno}" if err.lineno else source
        raise MmposeConfigError(where, f"invalid Python: {quote(msg, 160)[1:-1]}; {NOT_EXECUTED}") from None
    except (RecursionError, MemoryError):
        line = _deep_statement_line(text)
        where = f"{source} line {line}" if line else source
        raise MmposeConfigError(where, "nested or chained too deeply for Python's parser (no config is); "
                                       f"{NOT_EXECUTED}") from None
    except ValueError as err:  # e.g. NUL bytes on older Pythons
        raise MmposeConfigError(source, f"cannot be parsed as Python ({quote(str(err), 120)[1:-1]}); "
                                        f"{NOT_EXECUTED}") from None


def read_mmpose_text(text: str, source: str = "<text>") -> dict:
    """The top-level names of mmpose config source ``text`` and their values (in file order; ``_base_`` included,
    not followed), read without executing anything. ``source`` names it in errors.

    Raises ``MmposeConfigError`` (a ``ConfigError``) naming ``source``, the line and what was found.
    """
    if not isinstance(text, str):
        raise MmposeConfigError(source, f"config text must be a string, got {type(text).__name__}")
    if len(text) > MAX_FILE_BYTES:  # characters >= bytes / 4: refuse before any parsing
        raise MmposeConfigError(source, f"is {len(text):,} characters; an mmpose config is at most "
                                        f"{MAX_FILE_BYTES:,} bytes")
    text = text.removeprefix("\ufeff")
    bad = _BAD_TEXT.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise MmposeConfigError(f"{source} line {line}", "contains a NUL character or an unpaired surrogate: not "
                                                         "valid UTF-8 text")
    tree = _parse(text, source)
    try:
        return _Reader(source).read(tree)
    except RecursionError:  # unreachable within the bounds above; never a traceback all the same
        raise MmposeConfigError(source, f"nested too deeply; {NOT_EXECUTED}") from None


def read_mmpose_file(path: str | Path) -> dict:
    """``read_mmpose_text`` of the file ``path``. Raises ``MmposeConfigError`` naming the file: missing, a
    folder or device, above ``MAX_FILE_BYTES``, not UTF-8 text, or refused (then with the line)."""
    source = str(path)
    raw = read_bounded_bytes(path, "config", MAX_FILE_BYTES, MmposeConfigError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise MmposeConfigError(f"{source} line {line}", f"is not UTF-8 text (byte {err.start}): an mmpose config "
                                                         "is UTF-8 Python source") from None
    return read_mmpose_text(text, source)


__all__ = ["BaseRef", "MAX_FILE_BYTES", "MmposeConfigError", "read_mmpose_file", "read_mmpose_text"]
