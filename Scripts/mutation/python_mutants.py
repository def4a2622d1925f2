"""Mechanical mutants of Python source (the fixture kit), found with the standard library's `ast`.

The same operator families as swift_mutants.py: arithmetic and comparison operators swapped,
and/or swapped, `not` removed, integer constants ±1, a float constant's last digit changed, a term
of a + / - dropped, min ↔ max, an `if` test made False, a `raise` removed. Python needs no
schemata: a mutant is written into the scratch copy and the kit's tests run in a second or two.
"""
import ast
import hashlib

ARITH = {ast.Add: "-", ast.Sub: "+", ast.Mult: "/", ast.Div: "*"}
COMPARE = {ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">", ast.Eq: "!=", ast.NotEq: "==",
           ast.Is: "is not", ast.IsNot: "is", ast.In: "not in", ast.NotIn: "in"}
COMPARE_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
                ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}
ARITH_TEXT = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class PythonMutant:
    def __init__(self, file, line, operator, start, end, replacement, line_text, ordinal, repeat=0):
        self.file, self.line, self.operator = file, line, operator
        self.edit = (start, end, replacement)
        # As the Swift ids: the line's text, and how many earlier lines of the file have that text.
        key = f"{file}\n{line_text.strip()}\n{operator}\n{ordinal}" + (f"\n{repeat}" if repeat else "")
        self.id = hashlib.sha1(key.encode()).hexdigest()[:10]
        self.style = "python"
        self.number = None

    def apply(self, source):
        start, end, replacement = self.edit
        return source[:start] + replacement + source[end:]

    def describe(self, source):
        start, end, replacement = self.edit
        return f"`{source[start:end]}` → `{replacement}`"


def find_mutants(file, source):
    tree = ast.parse(source)
    lines = source.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)

    def at(line, col):
        return offsets[line - 1] + len(lines[line - 1].encode()[:col].decode(errors="ignore"))

    found = []
    ordinals = {}
    # How many earlier lines have each line's text.
    repeats, counts = [], {}
    for text in lines:
        repeats.append(counts.get(text.strip(), 0))
        counts[text.strip()] = repeats[-1] + 1

    def add(node, operator, start, end, replacement):
        line = node.lineno
        ordinal = ordinals.get(line, 0)
        ordinals[line] = ordinal + 1
        found.append(PythonMutant(file, line, operator, start, end, replacement, lines[line - 1], ordinal, repeats[line - 1]))

    def between(a, b, text):
        """Offset of operator `text` between the end of node a and the start of node b."""
        lo, hi = at(a.end_lineno, a.end_col_offset), at(b.lineno, b.col_offset)
        k = source.find(text, lo, hi)
        return k

    for node in ast.walk(tree):
        if getattr(node, "lineno", None) is None:
            continue
        if isinstance(node, ast.BinOp) and type(node.op) in ARITH:
            text = ARITH_TEXT[type(node.op)]
            k = between(node.left, node.right, text)
            if k >= 0:
                add(node, "arith", k, k + len(text), ARITH[type(node.op)])
                if text in "+-":
                    left = (at(node.left.lineno, node.left.col_offset), at(node.left.end_lineno, node.left.end_col_offset))
                    right = (at(node.right.lineno, node.right.col_offset), at(node.right.end_lineno, node.right.end_col_offset))
                    add(node, "drop-term", left[0], right[1], source[left[0]:left[1]])
        elif isinstance(node, ast.Compare):
            previous = node.left
            for op, comparator in zip(node.ops, node.comparators):
                text = COMPARE_TEXT[type(op)]
                k = between(previous, comparator, text)
                if k >= 0:
                    add(node, "compare", k, k + len(text), COMPARE[type(op)])
                previous = comparator
        elif isinstance(node, ast.BoolOp):
            text = "and" if isinstance(node.op, ast.And) else "or"
            k = between(node.values[0], node.values[1], f" {text} ")
            if k >= 0:
                add(node, "logic", k + 1, k + 1 + len(text), "or" if text == "and" else "and")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            start = at(node.lineno, node.col_offset)
            operand = at(node.operand.lineno, node.operand.col_offset)
            add(node, "logic", start, operand, "")
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float) and not isinstance(node.value, bool):
            start, end = at(node.lineno, node.col_offset), at(node.end_lineno, node.end_col_offset)
            text = source[start:end]
            if isinstance(node.value, int):
                add(node, "constant", start, end, str(node.value + 1))
                if node.value > 0:
                    add(node, "constant", start, end, str(node.value - 1))
            elif text[-1].isdigit():
                last = text[-1]
                add(node, "constant", start, end, text[:-1] + ("8" if last == "9" else str(int(last) + 1)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
            start = at(node.func.lineno, node.func.col_offset)
            add(node, "min-max", start, start + 3, "max" if node.func.id == "min" else "min")
        elif isinstance(node, ast.If):
            start, end = at(node.test.lineno, node.test.col_offset), at(node.test.end_lineno, node.test.end_col_offset)
            add(node, "condition", start, end, "False")
        elif isinstance(node, ast.Raise):
            start = at(node.lineno, node.col_offset)
            end = at(node.end_lineno, node.end_col_offset)
            add(node, "delete", start, end, "pass")
    return found
