"""How the code is put together: line counts, the longest and most complex functions, and the import graph.

    .venv/bin/python tools/architecture.py            # a human-readable report
    .venv/bin/python tools/architecture.py --json     # the same as JSON
    .venv/bin/python tools/architecture.py --check    # exit 1 when a layer rule is broken (also a unit test)

The layer rules (docs/CONTRIBUTING.md): a module imports only from its own layer or lower ones, so data, prompts
and models never import training, inference never imports training, and nothing imports the CLI; the import graph
of module-level imports has no cycle; typer is imported by the CLI module only.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from radon.complexity import cc_visit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "qadistill"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations",
        (
            "errors",
            "io",
            "config",
            "overrides",
            "yaml_safe",
            "jobs",
            "metrics",
            "results",
            "tokenize",
            "resources",
            "formatting",
        ),
    ),
    ("data, prompts, models", ("data", "prompts", "models")),
    ("modeling helpers and losses", ("modeling", "losses", "objective")),
    ("tracking", ("tracking",)),
    ("inference", ("generation", "prefix_decoding", "evaluate", "score", "lm_eval_task")),
    ("training", ("train",)),
    ("experiments", ("experiments",)),
    ("report", ("report",)),
    ("study and cli", ("study", "cli", "__main__")),
]
"""Lowest first. Inference and training are side by side: training may call inference (validation by generation),
never the other way round."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """Index in LAYERS of a `qadistill.x.y` module (by its first component after the package)."""
    head = module.split(".")[1] if "." in module else "__init__"
    if head == "__init__":
        return -1  # the package itself: re-exports nothing heavy
    for index, (_, members) in enumerate(LAYERS):
        if head in members:
            return index
    raise SystemExit(f"tools/architecture.py: module {module} belongs to no layer; add it to LAYERS")


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imports(path: Path) -> Iterator[tuple[str, bool, int]]:
    """(imported qadistill module, imported at module level, line) for every import of the package in `path`."""
    tree = ast.parse(path.read_text("utf-8"))
    top_level = {id(node) for node in tree.body}
    module = module_name(path)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                package = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*package, base] if base else package)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            if name == "qadistill" or name.startswith("qadistill."):
                yield _existing_module(name), id(node) in top_level, node.lineno


def _existing_module(name: str) -> str:
    """`qadistill.a.b.c` cut to the longest prefix that is a module or package of the source tree."""
    parts = name.split(".")
    while len(parts) > 1:
        candidate = PACKAGE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return "qadistill"


def import_graph() -> dict[str, dict[str, list[tuple[bool, int]]]]:
    graph: dict[str, dict[str, list[tuple[bool, int]]]] = {}
    for path in source_files():
        edges = graph.setdefault(module_name(path), {})
        for target, top, line in imports(path):
            if target != module_name(path):
                edges.setdefault(target, []).append((top, line))
    return graph


def layer_violations(graph) -> list[str]:
    problems = []
    for source, edges in graph.items():
        for target, places in edges.items():
            if target == "qadistill" or layer_of(target) <= layer_of(source):
                continue
            line = places[0][1]
            problems.append(
                f"{source} (layer {LAYERS[layer_of(source)][0]}) imports {target} "
                f"(layer {LAYERS[layer_of(target)][0]}) at line {line}"
            )
    return sorted(problems)


def cycles(graph) -> list[list[str]]:
    """Cycles of module-level imports (function-level imports are deliberate lazy imports of heavy modules)."""
    top = {m: sorted(t for t, places in edges.items() if any(p[0] for p in places)) for m, edges in graph.items()}
    found, state = [], dict.fromkeys(top, 0)  # 0 new, 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in top.get(node, []):
            if nxt not in state:
                continue
            if state[nxt] == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif state[nxt] == 0:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in top:
        if state[node] == 0:
            visit(node, [node])
    return found


def typer_outside_cli() -> list[str]:
    found = []
    for path in source_files():
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n == "typer" or n.startswith("typer.") for n in names) and module_name(path) != "qadistill.cli":
                found.append(f"{module_name(path)} imports typer at line {node.lineno}")
    return found


def line_counts() -> dict[str, int]:
    counts = {}
    for folder in ("src", "tests", "tools", "benchmarks"):
        files = [p for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts]
        counts[folder] = sum(len(p.read_text("utf-8").splitlines()) for p in files)
    return counts


def functions(limit: int = 10) -> dict[str, list[dict]]:
    blocks = []
    for path in source_files():
        for block in cc_visit(path.read_text("utf-8")):
            for item in getattr(block, "methods", [block]):  # a class's methods, or the function itself
                blocks.append(
                    {
                        "function": f"{module_name(path)}.{item.fullname}",
                        "lines": item.endline - item.lineno + 1,
                        "complexity": item.complexity,
                    }
                )
    longest = sorted(blocks, key=lambda b: -b["lines"])[:limit]
    most_complex = sorted(blocks, key=lambda b: -b["complexity"])[:limit]
    return {"longest": longest, "most_complex": most_complex}


def report() -> dict:
    graph = import_graph()
    return {
        "lines": line_counts(),
        "functions": functions(),
        "layer_violations": layer_violations(graph),
        "import_cycles": cycles(graph),
        "typer_outside_cli": typer_outside_cli(),
        "modules": len(graph),
        "edges": sum(len(edges) for edges in graph.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a layer rule is broken")
    args = parser.parse_args()
    result = report()
    problems = result["layer_violations"] + [" -> ".join(c) for c in result["import_cycles"]]
    problems += result["typer_outside_cli"]
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print("lines:", ", ".join(f"{k} {v:,}" for k, v in result["lines"].items()))
        print(f"import graph: {result['modules']} modules, {result['edges']} edges")
        for title in ("longest", "most_complex"):
            print(f"\n{title.replace('_', ' ')} functions:")
            for f in result["functions"][title]:
                print(f"  {f['lines']:4d} lines  complexity {f['complexity']:3d}  {f['function']}")
        print("\nlayer rules:", "all kept" if not problems else "")
        for problem in problems:
            print("  BROKEN:", problem)
    if args.check and problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
