"""Functions of the package longer than LIMIT lines (docstring not counted), longest first.

Usage: .venv/bin/python scripts/long_functions.py [LIMIT]   (default 60)
A function may stay longer with its reason in a comment on the line above its ``def`` that starts
with ``# long:``; those are listed apart.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "heritage_damage_seg"


def long_functions(limit: int) -> list[tuple[int, str, str, str | None]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                body = node.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                ):
                    length -= body[0].end_lineno - body[0].lineno + 1
                if length > limit:
                    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    above = lines[first - 2].strip() if first >= 2 else ""
                    reason = (
                        above[len("# long:") :].strip() if above.startswith("# long:") else None
                    )
                    found.append((length, str(path.relative_to(PACKAGE)), node.name, reason))
    return sorted(found, reverse=True)


if __name__ == "__main__":
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    for length, path, name, reason in long_functions(limit):
        print(f"{length:4d}  {path}:{name}" + (f"  (long: {reason})" if reason else ""))
