"""The shape of campushub's package, as a newcomer meets it: not a speed benchmark, a map.

Prints, for ``src/campushub``: the modules in each folder; the import floors (the longest chain of
campushub modules importing campushub modules, at import time: what must be read before what); and
the longest functions. Compare two trees (before and after a change) by running it in each:

    .venv/bin/python benchmarks/house.py [--top 10] [PATH]
"""

from __future__ import annotations

import argparse
import ast
import functools
from collections import Counter
from pathlib import Path

PACKAGE = "campushub"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, is_package: bool) -> set[str]:
    """The campushub modules ``path`` imports when it is imported (not inside functions, not for type checking)."""
    found = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in [node] if not isinstance(node, ast.If) else node.body:
            if isinstance(child, ast.Import):
                found |= {a.name for a in child.names if a.name.startswith(PACKAGE)}
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = name.split(".") if is_package else name.split(".")[:-1]
                    parent = parent[: len(parent) - child.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                if base.startswith(PACKAGE):
                    found.add(base)
                    found |= {f"{base}.{a.name}" for a in child.names}
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).parent.parent / "src" / PACKAGE))
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    root = Path(args.root)
    files = sorted(p for p in root.rglob("*.py") if "jupyter" not in p.relative_to(root).parts[:1])
    modules = {module_name(p, root): p for p in files}
    graph = {
        name: {m for m in imports_of(path, name, path.name == "__init__.py") if m in modules and m != name}
        for name, path in modules.items()
    }

    @functools.cache
    def floor(name: str, seen: frozenset = frozenset()) -> int:
        below = [floor(m, seen | {name}) for m in graph[name] if m not in seen]
        return 1 + max(below, default=0)

    folders = Counter(str(p.parent.relative_to(root.parent)) for p in files)
    print(f"{len(files)} modules")
    for folder, count in sorted(folders.items()):
        print(f"  {folder}/: {count}")
    floors = {name: floor(name) for name in modules}
    deepest = max(floors, key=floors.get)
    print(f"import floors: {floors[deepest]} (the deepest: {deepest})")
    chain, seen = [deepest], {deepest}
    while below := [m for m in graph[chain[-1]] if m not in seen]:
        chain.append(max(below, key=lambda m: floor(m, frozenset(seen))))
        seen.add(chain[-1])
    print("  " + " -> ".join(m.removeprefix(PACKAGE + ".") for m in chain))
    lengths = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lengths.append((node.end_lineno - node.lineno + 1, f"{module_name(path, root)}.{node.name}"))
    print(f"longest functions (of {len(lengths)}):")
    for length, name in sorted(lengths, reverse=True)[: args.top]:
        print(f"  {length:4d}  {name}")


if __name__ == "__main__":
    main()
