"""The package's shape: imports follow README's package table, modules stay small.

Every module of `kerasae/` is parsed with `ast`; its imports of kerasae modules
are collected wherever they stand (module level, inside functions, the string
tables of lazy package exports, `importlib.import_module("...")` calls), so a
hidden import counts like any other. README's Layout table is the rule: each
package's row names every one of its modules and, in its last column, the
packages it may import (siblings that are not named there may not import each
other). No two modules may import each other, directly or around a circle, and
`kerasae/__init__.py` is the front door: it exports names lazily and nothing
inside the package imports it.
"""

import ast
import os
import pathlib
import re


REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = REPO / "kerasae"
LEAVES = ("losses", "layers", "metrics", "plots")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
LAZY_COMMENT = re.compile(r"#\s*lazy:\s*\S")


def _layout():
    """README's Layout table: `{package: (text of its row's middle cell, may import)}`.

    A package is `_util`, `data`, ..., each leaf module (`losses`, ...) or `None` for
    the front door; `may import` is a set of packages (`leaves`: the four leaves), or
    `None` for "everything".
    """
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`kerasae/"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        allowed = set(re.findall(r"`([^`]+)`", cells[2]))
        if "leaves" in allowed:
            allowed = (allowed - {"leaves"}) | set(LEAVES)
        rule = None if cells[2].startswith(("everything", "anything")) else allowed
        for name in names:
            key = name.removeprefix("kerasae/").strip("/").removesuffix(".py")
            table[None if key == "__init__" else key] = (cells[1], rule)
    return table


LAYOUT = _layout()


def _module_name(path):
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _resolve(name, level, current, is_package):
    """The absolute module name of an import, relative ones included."""
    if not level:
        return name
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _target(name):
    """The kerasae module an imported name lands in (a module, else its package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _lazy_strings(node):
    """Module names in `lazy.exports(__name__, {...})` tables, `lazy.after_import` and
    `importlib.import_module` calls."""
    if not isinstance(node, ast.Call):
        return []
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    out = []
    if called == "exports":
        for arg in node.args:
            if isinstance(arg, ast.Dict):
                out += [v.value.split(":")[0] for v in arg.values
                        if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    if called == "import_module" and node.args and isinstance(node.args[0], ast.Constant):
        out.append(str(node.args[0].value))
    if called == "after_import" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
        out.append(str(node.args[1].value))
    return [s for s in out if s.startswith("kerasae")]


def imports_of(module):
    """`[(imported kerasae module, line, inside a function)]` of one module."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            names = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(child.module or "", child.level, module, is_package)
                names = [f"{base}.{a.name}" for a in child.names] or [base]
                names = [n if _target(n) == n else base for n in names]
            names += _lazy_strings(child)
            for name in names:
                target = _target(name) if name.startswith("kerasae") else None
                if target and target != module:
                    found.append((target, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def package(module):
    """The row of README's table a module belongs to."""
    parts = module.split(".")
    return None if len(parts) == 1 else parts[1]


def test_readme_layout_names_every_module():
    missing = []
    for module in MODULES:
        parts = module.split(".")
        if len(parts) < 3 or parts[-1] == "__main__":
            continue  # the front door, a leaf module or a package: its row names it
        row = LAYOUT.get(parts[1])
        named = {n.rstrip("/").removesuffix(".py").replace("/", ".").split(".")[-1]
                 for n in re.findall(r"`([^`]+)`", row[0] if row else "")}
        if parts[-1] not in named:
            missing.append(module)
    assert not missing, "modules README's Layout table does not name: " + ", ".join(missing)


def test_every_package_has_a_row():
    rows = {package(m) for m in MODULES} - set(LAYOUT)
    assert not rows, f"packages without a row in README's Layout table: {rows}"


def test_no_import_cycle_between_kerasae_modules():
    edges = {m: sorted({t for t, _, _ in GRAPH[m]}) for m in GRAPH}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def strongconnect(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in edges:
        if v not in index:
            strongconnect(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_nothing_inside_the_package_imports_the_front_door():
    offenders = [f"{m}:{line}" for m, imps in GRAPH.items() if m != "kerasae"
                 for t, line, _ in imps if t == "kerasae"]
    assert not offenders, f"import kerasae from inside the package: {offenders}"


def test_imports_follow_the_package_table():
    offenders = []
    for module, imps in GRAPH.items():
        here = package(module)
        allowed = LAYOUT[here][1]
        if allowed is None:
            continue
        for target, line, _ in imps:
            there = package(target)
            if there != here and there not in allowed:
                offenders.append(f"{module}:{line} imports {target} ({there} is not in the "
                                 f"row of {here}: {sorted(allowed)})")
    assert not offenders, "imports README's Layout table does not allow:\n  " + \
        "\n  ".join(offenders)


def test_no_library_module_imports_the_cli():
    offenders = [f"{m}:{line}" for m, imps in GRAPH.items()
                 if not m.startswith(("kerasae.cli", "kerasae.benchmarks")) and m != "kerasae"
                 for t, line, _ in imps if t.startswith("kerasae.cli")]
    assert not offenders, offenders


def _has_lazy_comment(lines, line):
    """A `# lazy:` comment on the import or above its block of imports."""
    i = line - 1
    if LAZY_COMMENT.search(lines[i]):
        return True
    while i > 0 and (not lines[i - 1].strip()
                     or lines[i - 1].lstrip().startswith(("from ", "import "))):
        i -= 1
    return i > 0 and bool(LAZY_COMMENT.search(lines[i - 1]))


def test_function_level_imports_say_why():
    """Only to keep TensorFlow (or another heavy dependency) out of a light path, with a
    `# lazy: <reason>` comment on the import or on the line above its block of imports."""
    offenders = []
    for module, imps in GRAPH.items():
        lines = MODULES[module].read_text().splitlines()
        for _, line, in_function in imps:
            if in_function and not _has_lazy_comment(lines, line):
                offenders.append(f"{module}:{line}")
    assert not offenders, "function-level kerasae imports without a '# lazy:' reason: " + \
        ", ".join(offenders)


def test_modules_and_functions_stay_small():
    """Modules of at most 400 lines; functions of at most 80 lines, not counting their
    docstring (Keras-format docstrings list every argument)."""
    big = []
    for module, path in MODULES.items():
        text = path.read_text()
        n = len(text.splitlines())
        if n > MAX_MODULE_LINES:
            big.append(f"{module}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                doc = node.body[0] if node.body else None
                if (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
                        and isinstance(doc.value.value, str)):
                    length -= doc.end_lineno - doc.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    big.append(f"{module}.{node.name}: {length} lines")
    assert not big, "too big:\n  " + "\n  ".join(big)


def test_no_private_keras_imports_and_no_pyproject_lookups():
    offenders = []
    for folder in ("kerasae", "tests", os.path.join("export", "python")):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path.resolve() == pathlib.Path(__file__).resolve():
                continue
            text = path.read_text()
            for n, line in enumerate(text.splitlines(), 1):
                if re.search(r"\bkeras\.src\b", line):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: keras.src")
                if folder == "kerasae" and "pyproject" in line:
                    offenders.append(f"{path.relative_to(REPO)}:{n}: pyproject")
    assert not offenders, offenders
