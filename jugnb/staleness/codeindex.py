"""The jugfile's module-level code, indexed for :mod:`.fingerprint` (read from source, never executed).

Each module-level binding of a name (import alias, assignment, ``def``, ``class``) and each module-level
lambda is kept normalised (see :mod:`jugnb.staleness.fingerprint`) with the global names it reads, found by
:mod:`symtable` so that Python's own scoping rules decide what is local. :meth:`CodeIndex.closure` lays out
a set of bindings and everything they read as one normalised source text.
"""

from __future__ import annotations

import ast
import copy
import symtable
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LAMBDA = "<lambda>"
_COMPOUND_NAMES = ("CompoundTaskGenerator", "CompoundTask")
_KIND_ORDER = {"import": 0, "assign": 1, "def": 2, "class": 2, "lambda": 2}


@dataclass(frozen=True)
class _Binding:
    """One way a module-level name is bound (a name may have several: re-assignments, redefinitions)."""

    name: str
    kind: str  # import, assign, def, class, lambda
    text: str  # normalised source
    reads: frozenset[str]  # global names it reads
    order: int  # position in the jugfile, to keep redefinitions in source order


class _Normaliser(ast.NodeTransformer):
    """Drop docstrings and jug's task decorators; forget how string literals were spelled."""

    def __init__(self, jug_imports: Mapping[str, str]) -> None:
        self._jug = jug_imports

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.decorator_list = [d for d in node.decorator_list if _dotted(d, self._jug) is None]
        return self._strip_docstring(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        node.decorator_list = [d for d in node.decorator_list if _dotted(d, self._jug) is None]
        return self._strip_docstring(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return self._strip_docstring(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        node.kind = None  # u"x" is "x"
        return node

    def _strip_docstring(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> ast.AST:
        first = node.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            node.body = node.body[1:] or [ast.Pass()]
        self.generic_visit(node)
        return node


def _dotted(node: ast.expr, jug_imports: Mapping[str, str]) -> str | None:
    """``jug.x.y`` when ``node`` (a name, attribute or call of one) refers to something imported from jug."""
    while isinstance(node, ast.Call):
        node = node.func
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in jug_imports:
        return ".".join([jug_imports[node.id], *reversed(attrs)])
    return None


def _jug_imports(statements: Iterable[ast.stmt]) -> dict[str, str]:
    """Module-level names bound to jug or something in it: ``{"TaskGenerator": "jug.TaskGenerator"}``."""
    found: dict[str, str] = {}
    for stmt in statements:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name == "jug" or alias.name.startswith("jug."):
                    found[alias.asname or "jug"] = alias.name if alias.asname else "jug"
        elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
            if stmt.module == "jug" or stmt.module.startswith("jug."):
                for alias in stmt.names:
                    found[alias.asname or alias.name] = f"{stmt.module}.{alias.name}"
    return found


def _flatten(body: Sequence[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, entering compound statements (their headers come as bodiless copies)."""
    for stmt in body:
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
            yield _header(stmt)
        nested = [getattr(stmt, f, None) for f in ("body", "orelse", "finalbody")]
        nested += [h.body for h in getattr(stmt, "handlers", [])]
        nested += [c.body for c in getattr(stmt, "cases", [])]
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield stmt
        elif any(nested):
            for block in nested:
                yield from _flatten(block or [])
        else:
            yield stmt


def _header(stmt: ast.For | ast.AsyncFor | ast.With | ast.AsyncWith) -> ast.stmt:
    header = copy.copy(stmt)
    header.body = [ast.Expr(ast.Constant(...))]
    if isinstance(header, (ast.For, ast.AsyncFor)):
        header.orelse = []
    return header


def _bound_names(stmt: ast.stmt) -> list[str]:
    """Names a module-level assignment or loop/with header binds (``x[0] = 1`` binds ``x`` too)."""
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
        targets = [stmt.target] if not isinstance(stmt, ast.AnnAssign) or stmt.value is not None else []
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        targets = [i.optional_vars for i in stmt.items if i.optional_vars is not None]
    else:
        return []
    return list(dict.fromkeys(n for target in targets for n in _target_names(target)))


def _target_names(target: ast.expr) -> Iterator[str]:
    """Names an assignment target binds or mutates (``a, (b, *c)``; ``x`` of ``x[i].y``, not ``i``)."""
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _target_names(element)
        return
    while isinstance(target, (ast.Subscript, ast.Attribute, ast.Starred)):
        target = target.value
    if isinstance(target, ast.Name):
        yield target.id


def _reads(text: str) -> frozenset[str]:
    """Global names that ``text`` (normalised module-level code) reads, in any of its scopes."""
    names: set[str] = set()
    tables = [symtable.symtable(text, "<fingerprint>", "exec")]
    while tables:
        table = tables.pop()
        for symbol in table.get_symbols():
            if table.get_type() == "module":
                if symbol.is_referenced():
                    names.add(symbol.get_name())
            elif symbol.is_global() and (symbol.is_referenced() or symbol.is_declared_global()):
                names.add(symbol.get_name())
        tables.extend(table.get_children())
    return frozenset(names)


class CodeIndex:
    """The jugfile's module-level bindings and lambdas, normalised once."""

    def __init__(self, text: str, module: str) -> None:
        self.module = module
        statements = list(_flatten(ast.parse(text).body))
        self.jug_imports = _jug_imports(statements)
        self.bindings: dict[str, list[_Binding]] = {}
        self.methods: dict[str, set[str]] = {}  # method name -> classes defining it
        self.compound: set[str] = set()
        self.lambdas: dict[int, list[tuple[str, Any]]] = {}  # line -> (key, signature)
        for order, stmt in enumerate(statements):
            self._index_statement(stmt, order)

    def _add(self, key: str, binding: _Binding) -> None:
        self.bindings.setdefault(key, []).append(binding)

    def _normalised(self, node: ast.AST) -> ast.AST:
        normalised: ast.AST = _Normaliser(self.jug_imports).visit(copy.deepcopy(node))
        return normalised

    def _index_statement(self, stmt: ast.stmt, order: int) -> None:
        self._index_lambdas(stmt, order)
        self._index_compound(stmt)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                single = copy.copy(stmt)
                single.names = [alias]
                name = alias.asname or alias.name.split(".")[0]
                self._add(name, _Binding(name, "import", ast.unparse(single), frozenset(), order))
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            text = ast.unparse(self._normalised(stmt))
            kind = "class" if isinstance(stmt, ast.ClassDef) else "def"
            self._add(stmt.name, _Binding(stmt.name, kind, text, _reads(text) - {stmt.name}, order))
            if isinstance(stmt, ast.ClassDef):
                for item in stmt.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self.methods.setdefault(item.name, set()).add(stmt.name)
        else:
            names = _bound_names(stmt)
            if names:
                text = ast.unparse(self._normalised(stmt))
                for name in names:
                    self._add(name, _Binding(name, "assign", text, _reads(text) - set(names), order))

    def _index_lambdas(self, stmt: ast.stmt, order: int) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            roots: list[ast.AST] = [*stmt.decorator_list]  # their lambdas are module-level ones
        else:
            roots = [stmt]
        for root in roots:
            for node in ast.walk(root):
                if isinstance(node, ast.Lambda):
                    key = f"{LAMBDA}:{node.lineno}:{node.col_offset}"
                    text = ast.unparse(self._normalised(node))
                    self._add(key, _Binding(LAMBDA, "lambda", text, _reads(text), order))
                    self.lambdas.setdefault(node.lineno, []).append((key, _lambda_signature(node)))

    def _index_compound(self, stmt: ast.stmt) -> None:
        """Remember functions made compound by decorator or by ``CompoundTask(f, ...)`` at module level."""
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(self._is_compound(d) for d in stmt.decorator_list):
                self.compound.add(stmt.name)
            return
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and self._is_compound(node.func) and node.args:
                if isinstance(node.args[0], ast.Name):
                    self.compound.add(node.args[0].id)

    def _is_compound(self, node: ast.expr) -> bool:
        dotted = _dotted(node, self.jug_imports)
        return dotted is not None and dotted.rsplit(".", 1)[-1] in _COMPOUND_NAMES

    def lambdas_for(self, code: Any) -> frozenset[str]:
        """Keys of the lambdas that may have compiled to ``code`` (same line; narrowed by names)."""
        candidates = self.lambdas.get(code.co_firstlineno, [])
        signature = (code.co_varnames, code.co_names)
        matching = [key for key, found in candidates if found == signature]
        return frozenset(matching or (key for key, _ in candidates))

    def closure(self, roots: Iterable[str]) -> tuple[str, tuple[str, ...]]:
        """Lay out the bindings ``roots`` and everything they read, transitively.

        Returns
        -------
        source : str
            Normalised source: imports, assignments, the roots' code, then the code they use.
        parts : tuple of str
            The names included, in the order of ``source``.
        """
        keys = {r for r in roots if r in self.bindings}
        seen, queue = set(keys), sorted(keys)
        while queue:
            for binding in self.bindings[queue.pop()]:
                new = {n for n in binding.reads if n in self.bindings and n not in seen}
                seen |= new
                queue.extend(sorted(new))
        # Sort by content, not by key: a lambda's key holds its line, which cosmetic edits move.
        first = sorted((self.bindings[k] for k in keys), key=lambda bs: [(b.name, b.text) for b in bs])
        rest = [self.bindings[k] for k in sorted(seen - keys)]
        return _assemble(first, rest)


def _lambda_signature(node: ast.Lambda) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """Parameter and global names of the code a lambda compiles to, to tell lambdas on one line apart."""
    code = compile(ast.Expression(node), "<lambda>", "eval")
    inner = next((c for c in code.co_consts if hasattr(c, "co_varnames")), None)
    return (inner.co_varnames, inner.co_names) if inner is not None else None


def _assemble(roots: Sequence[list[_Binding]], deps: Sequence[list[_Binding]]) -> tuple[str, tuple[str, ...]]:
    """Lay out imports, then assignments, then the roots' code, then the code they use."""
    every = [b for bindings in [*roots, *deps] for b in _in_order(bindings)]
    imports = sorted({b.text: b.name for b in every if b.kind == "import"}.items())
    # A statement binding several names (``a, b = ...``) is listed under each: show it once.
    assigns = list({(b.order, b.text): b for b in every if b.kind == "assign"}.values())
    code = [b for b in every if _KIND_ORDER[b.kind] == 2]
    blocks = ["\n".join(t for t, _ in imports), "\n".join(b.text for b in assigns), *(b.text for b in code)]
    parts = [n for _, n in imports] + list(dict.fromkeys(b.name for b in assigns)) + [b.name for b in code]
    source = "\n\n".join(b for b in blocks if b)
    return (source + "\n" if source else ""), tuple(parts)


def _in_order(bindings: Sequence[_Binding]) -> list[_Binding]:
    return sorted(bindings, key=lambda b: b.order)
