"""Mechanical mutants of Swift source, derived by operator from the code itself (no catalogue).

A small Swift lexer (comments, strings with interpolation, numbers, identifiers, operators) feeds a
line-level finder of *regions*: expressions and statements that stand whole on one line. Each
mutation operator rewrites tokens inside a region:

    arith        binary + ↔ -, * ↔ /
    compare      < ↔ <=, > ↔ >=, == ↔ !=
    logic        && ↔ ||, a prefix ! removed
    constant     an integer literal ±1, a float literal's last digit changed
    drop-term    one operand of a + / - chain dropped
    bound        a range's upper or lower bound ±1; stride(to:) ↔ stride(through:)
    swap-args    two adjacent unlabelled arguments (or tuple elements) swapped
    min-max      min( ↔ max(
    condition    a guard clause made true (its else path skipped), an if clause made false
    compound     += ↔ -=, *= ↔ /=
    delete       a whole statement removed (a write's sync, a truncate, a try, a throw, an update)

Mutants are *schemata*: every sampled mutant is compiled into one build and switched on at run time
by the environment variable GLAM_MUTANT, so that N mutants cost one build, not N. An expression
region E becomes `(glamMutant == k ? (E') : (E))`; a statement S becomes
`if glamMutant == k { S' } else { S }` (or `if glamMutant != k { S }` to delete it). Each rewrite
stays on its line, so a compiler error names the line of the mutant that caused it: mutants that do
not compile are set aside as invalid (they test nothing) and replaced.

A mutant's id hashes its file, the text of its line, the operator and its place in the line, so it
survives edits elsewhere in the file (equivalent.json is keyed by it).
"""
import hashlib
import re

OPERATOR_CHARS = set("/=-+!*%<>&|^~?")
KEYWORDS_SKIP = {"case", "default", "func", "init", "deinit", "subscript", "struct", "class", "enum", "protocol",
                 "extension", "import", "typealias", "associatedtype", "operator", "precedencegroup", "switch", "do",
                 "catch", "repeat", "defer", "get", "set", "willSet", "didSet", "fallthrough", "break", "continue",
                 "in", "else", "where", "actor", "macro"}
MODIFIERS = {"public", "private", "fileprivate", "internal", "package", "static", "final", "lazy", "override",
             "nonisolated", "nonisolated(unsafe)", "weak", "unowned", "mutating", "class"}
OPENERS, CLOSERS = "([{", ")]}"


class Token:
    __slots__ = ("kind", "text", "start", "end", "line", "end_line", "space_before", "space_after")

    def __init__(self, kind, text, start, end, line, end_line):
        self.kind, self.text, self.start, self.end, self.line, self.end_line = kind, text, start, end, line, end_line
        self.space_before = self.space_after = True

    def __repr__(self):
        return f"{self.kind}:{self.text!r}@{self.line}"


def _skip_string(source, i):
    """Index just past the string literal starting at i (handles #"raw"#, \"\"\" and interpolation)."""
    hashes = 0
    while source[i] == "#":
        hashes += 1
        i += 1
    multi = source.startswith('"""', i)
    i += 3 if multi else 1
    closing = ('"""' if multi else '"') + "#" * hashes
    escape = "\\" + "#" * hashes
    while i < len(source):
        if source.startswith(escape, i):
            j = i + len(escape)
            if j < len(source) and source[j] == "(":
                depth, j = 1, j + 1
                while j < len(source) and depth:
                    c = source[j]
                    if c == '"' or (c == "#" and source.startswith('"', j + 1)):
                        j = _skip_string(source, j)
                        continue
                    depth += c == "("
                    depth -= c == ")"
                    j += 1
                i = j
            else:
                i = j + 1
            continue
        if source.startswith(closing, i):
            return i + len(closing)
        if not multi and source[i] == "\n":
            return i  # unterminated: stop at the line end
        i += 1
    return i


def tokenize(source):
    """Swift tokens (comments and whitespace dropped; each token knows whether space surrounds it)."""
    tokens, i, line, n = [], 0, 1, len(source)
    while i < n:
        c = source[i]
        start, start_line = i, line
        if c == "\n":
            line += 1
            i += 1
            continue
        if c in " \t\r":
            i += 1
            continue
        if source.startswith("//", i):
            while i < n and source[i] != "\n":
                i += 1
            continue
        if source.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if source.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif source.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += source[i] == "\n"
                    i += 1
            continue
        if c == '"' or (c == "#" and re.match(r'#+"', source[i:i + 8])):
            i = _skip_string(source, i)
            line += source.count("\n", start, i)
            kind = "string"
        elif c.isdigit():
            m = re.match(r"0x[0-9a-fA-F_]+|0b[01_]+|\d[\d_]*(\.\d[\d_]*)?([eE][+-]?\d+)?", source[i:])
            i += m.end()
            kind = "number"
        elif c.isalpha() or c == "_" or c == "$" or ord(c) > 127 and c.isidentifier():
            m = re.match(r"[\w$]+", source[i:])
            i += m.end()
            kind = "ident"
        elif c == "`":
            j = source.index("`", i + 1)
            i = j + 1
            kind = "ident"
        elif c == "#" or c == "@":
            m = re.match(r"[#@]\w*", source[i:])
            i += m.end()
            kind = "directive" if c == "#" else "attribute"
        elif c == "." and i + 1 < n and (source[i + 1] == "." or source[i + 1] in OPERATOR_CHARS):
            i += 1
            while i < n and (source[i] == "." or source[i] in OPERATOR_CHARS):
                i += 1
            kind = "op"
        elif c in OPERATOR_CHARS:
            while i < n and source[i] in OPERATOR_CHARS:
                if source.startswith("//", i) or source.startswith("/*", i):
                    break
                i += 1
            kind = "op"
        else:
            i += 1
            kind = "punct"
        tokens.append(Token(kind, source[start:i], start, i, start_line, line))
    for k, token in enumerate(tokens):
        token.space_before = k == 0 or tokens[k - 1].end != token.start
        token.space_after = k == len(tokens) - 1 or tokens[k + 1].start != token.end
    return tokens


class Mutant:
    """One mutation: replace source[start:end] (all on one line) by `mutated`, within a region."""

    def __init__(self, file, line, operator, region, edit, style, line_text, ordinal, repeat=0):
        self.file, self.line, self.operator = file, line, operator
        self.region = region        # (start, end) offsets in the file of the expression or statement
        self.edit = edit            # (start, end, replacement) offsets in the file
        self.style = style          # "expr", "stmt" or "delete"
        # The id survives edits elsewhere in the file: it names the line by its text, and a line
        # whose text occurs earlier in the file by how many times (`repeat`, 0 the first time).
        key = f"{file}\n{line_text.strip()}\n{operator}\n{ordinal}" + (f"\n{repeat}" if repeat else "")
        self.id = hashlib.sha1(key.encode()).hexdigest()[:10]
        self.number = None          # the GLAM_MUTANT value, set when a build is instrumented

    def original(self, source):
        return source[self.region[0]:self.region[1]]

    def mutated(self, source):
        start, end, replacement = self.edit
        text = source[self.region[0]:start] + replacement + source[end:self.region[1]]
        return text

    def describe(self, source):
        start, end, replacement = self.edit
        if self.style == "delete":
            return f"delete `{self.original(source).strip()}`"
        before = source[start:end]
        return f"`{before}` → `{replacement}` in `{self.original(source).strip()[:100]}`"

    def instrument(self, source):
        """The region's replacement text for the schemata build."""
        k, original = self.number, self.original(source)
        if self.style == "expr":
            return f"(glamMutant == {k} ? ({self.mutated(source)}) : ({original}))"
        if self.style == "stmt":
            return f"if glamMutant == {k} {{ {self.mutated(source)} }} else {{ {original} }}"
        return f"if glamMutant != {k} {{ {original} }}"


def _depths(tokens):
    depth, out = 0, []
    for t in tokens:
        if t.kind == "punct" and t.text in CLOSERS:
            depth -= 1
        out.append(depth)
        if t.kind == "punct" and t.text in OPENERS:
            depth += 1
    return out, depth


def _balanced(tokens):
    depths, final = _depths(tokens)
    return final == 0 and all(d >= 0 for d in depths)


def _binary(t):
    return t.kind == "op" and t.space_before == t.space_after


def _is_atom_start(t):
    return t.kind in ("ident", "number", "string") or (t.kind == "punct" and t.text in "([")


def _split_top(tokens, separator):
    """Split a token list at depth-0 tokens with text `separator`."""
    depths, _ = _depths(tokens)
    parts, current = [], []
    for t, d in zip(tokens, depths):
        if d == 0 and t.text == separator and t.kind in ("punct", "op", "ident"):
            parts.append(current)
            current = []
        else:
            current.append(t)
    parts.append(current)
    return parts


LOWER_THAN_ADD = {"<", "<=", ">", ">=", "==", "!=", "&&", "||", "??", "?", ":", "..<", "...", "=", "===", "!==",
                  "+=", "-=", "*=", "/=", "->", ".<", ".>", ".==", ".!=", ".<=", ".>=", "&", "|", "^", "<<", ">>", "%"}


def _float_variant(text):
    m = re.match(r"(\d[\d_]*)(\.(\d[\d_]*))?([eE][+-]?\d+)?$", text)
    if not m or not m.group(2):
        return None
    mantissa = m.group(1) + m.group(2)
    last = mantissa[-1]
    changed = mantissa[:-1] + ("8" if last == "9" else str(int(last) + 1))
    return changed + (m.group(4) or "")


def _region_mutations(tokens, source):
    """(operator, start, end, replacement) edits inside an expression's tokens."""
    edits = []
    depths, _ = _depths(tokens)
    swaps = {"+": "-", "-": "+", "*": "/", "/": "*"}
    compares = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}
    for k, t in enumerate(tokens):
        prev = tokens[k - 1] if k else None
        nxt = tokens[k + 1] if k + 1 < len(tokens) else None
        if t.kind == "op" and prev is not None and nxt is not None:
            operand_before = prev.kind in ("ident", "number", "string") or prev.text in (")", "]", "!", "?")
            if t.text in swaps and _binary(t) and operand_before and "string" not in (prev.kind, nxt.kind):
                edits.append(("arith", t.start, t.end, swaps[t.text]))
            elif t.text in compares and t.space_before and t.space_after:
                edits.append(("compare", t.start, t.end, compares[t.text]))
            elif t.text in ("&&", "||") and t.space_before and t.space_after:
                edits.append(("logic", t.start, t.end, "||" if t.text == "&&" else "&&"))
        if t.kind == "op" and t.text == "!" and not t.space_after and (prev is None or prev.space_after or prev.text in "(["):
            if nxt is not None and _is_atom_start(nxt):
                edits.append(("logic", t.start, t.end, ""))
        if t.kind == "number" and not (prev is not None and prev.text == "." and not prev.space_after):
            text = t.text.replace("_", "")
            if re.fullmatch(r"\d+", text):
                value = int(text)
                edits.append(("constant", t.start, t.end, str(value + 1)))
                if value > 0:
                    edits.append(("constant", t.start, t.end, str(value - 1)))
            else:
                variant = _float_variant(t.text)
                if variant:
                    edits.append(("constant", t.start, t.end, variant))
        if t.kind == "ident" and t.text in ("min", "max") and nxt is not None and nxt.text == "(" and not t.space_after:
            if prev is None or prev.text != ".":
                edits.append(("min-max", t.start, t.end, "max" if t.text == "min" else "min"))
        if t.kind == "ident" and t.text in ("to", "through") and nxt is not None and nxt.text == ":":
            # inside stride(from:to:by:) only
            opener = _enclosing_call(tokens, depths, k)
            if opener is not None and opener > 0 and tokens[opener - 1].text == "stride":
                edits.append(("bound", t.start, t.end, "through" if t.text == "to" else "to"))
        if t.kind == "op" and t.text in ("..<", "...") and prev is not None and nxt is not None:
            # upper bound: insert at the end of the operand that follows, at this depth
            j = k + 1
            while j < len(tokens) and depths[j] >= depths[k] and not (
                    depths[j] == depths[k] and (tokens[j].text in (",", "{", "where", ":") or tokens[j].text in CLOSERS)):
                j += 1
            if j > k + 1 and not any(tokens[x].text in LOWER_THAN_ADD and depths[x] == depths[k] for x in range(k + 1, j)):
                end = tokens[j - 1].end
                edits.append(("bound", end, end, " + 1"))
                edits.append(("bound", end, end, " - 1"))
            if t.space_before is False and prev.kind in ("ident", "number") or prev.text in (")", "]"):
                edits.append(("bound", t.start, t.start, " + 1"))
    edits += _drop_terms(tokens, depths)
    edits += _swap_arguments(tokens, depths, source)
    return edits


def _enclosing_call(tokens, depths, k):
    for j in range(k - 1, -1, -1):
        if depths[j] == depths[k] - 1 and tokens[j].text == "(":
            return j
        if depths[j] < depths[k] - 1:
            return None
    return None


def _groups(tokens, depths):
    """Index ranges (lo, hi) of the whole token list and of every bracketed group's inside."""
    groups = [(0, len(tokens))]
    stack = []
    for k, t in enumerate(tokens):
        if t.kind == "punct" and t.text in OPENERS:
            stack.append(k)
        elif t.kind == "punct" and t.text in CLOSERS and stack:
            groups.append((stack.pop() + 1, k))
    return groups


def _drop_terms(tokens, depths):
    edits = []
    for lo, hi in _groups(tokens, depths):
        if hi - lo < 3:
            continue
        base = depths[lo]
        top = [k for k in range(lo, hi) if depths[k] == base]
        if any(tokens[k].text in LOWER_THAN_ADD or tokens[k].text in (",", "{", "}", "in", "as", "is", "try", "await", "return")
               for k in top):
            continue
        cuts = [k for k in top if tokens[k].text in ("+", "-") and _binary(tokens[k]) and k > lo]
        if not cuts:
            continue
        bounds = [lo] + cuts + [hi]
        operands = [(bounds[i] + (i > 0), bounds[i + 1]) for i in range(len(bounds) - 1)]
        for i, (a, b) in enumerate(operands):
            if i == 0:  # drop the first operand and the operator after it
                start, end = tokens[a].start, tokens[cuts[0] + 1].start
                replacement = "-" if tokens[cuts[0]].text == "-" else ""
            else:  # drop the operator before it and the operand
                start, end = tokens[cuts[i - 1]].start, tokens[b - 1].end
                replacement = ""
                if tokens[cuts[i - 1]].space_before:
                    start = tokens[cuts[i - 1] - 1].end
            edits.append(("drop-term", start, end, replacement))
    return edits


def _swap_arguments(tokens, depths, source):
    edits = []
    for lo, hi in _groups(tokens, depths):
        if lo == 0 or tokens[lo - 1].text != "(":
            continue
        if lo >= 2 and tokens[lo - 2].text in ("min", "max"):
            continue  # commutative: the swap is equivalent
        parts, current = [], []
        for k in range(lo, hi):
            if depths[k] == depths[lo] and tokens[k].text == ",":
                parts.append(current)
                current = []
            else:
                current.append(k)
        parts.append(current)
        if len(parts) < 2:
            continue
        for a, b in zip(parts, parts[1:]):
            if not a or not b:
                continue
            labelled = lambda p: len(p) > 1 and tokens[p[1]].text == ":" and tokens[p[0]].kind == "ident"
            if labelled(a) or labelled(b):
                continue
            ta = source[tokens[a[0]].start:tokens[a[-1]].end]
            tb = source[tokens[b[0]].start:tokens[b[-1]].end]
            if ta == tb or "\n" in ta + tb or len(ta) > 60 or len(tb) > 60:
                continue
            edits.append(("swap-args", tokens[a[0]].start, tokens[b[-1]].end, f"{tb}, {ta}"))
    return edits


def _strip_modifiers(code):
    k = 0
    while k < len(code):
        t = code[k]
        if t.kind == "attribute":
            k += 1
            if k < len(code) and code[k].text == "(":
                depth = 0
                while k < len(code):
                    depth += code[k].text == "("
                    depth -= code[k].text == ")"
                    k += 1
                    if depth == 0:
                        break
            continue
        if t.text in MODIFIERS:
            k += 1
            if k + 2 < len(code) and code[k].text == "(" and code[k + 2].text == ")":
                k += 3
            continue
        break
    return k


def find_mutants(file, source):
    """Every mutant of one Swift file."""
    tokens = tokenize(source)
    lines = source.split("\n")
    by_line = {}
    multi = set()
    for t in tokens:
        if t.end_line != t.line:
            multi.update(range(t.line, t.end_line + 1))
        by_line.setdefault(t.line, []).append(t)
    code_lines = sorted(by_line)
    mutants = []
    # Conditional compilation: code under `#if DEBUG` is not in the release build every test runs
    # in, so no test can see its mutants; one flag per open `#if`, true while in a DEBUG branch.
    debug_branches = []
    repeats = {}
    for index, number in enumerate(code_lines):
        code = by_line[number]
        if number in multi or not code:
            continue
        if code[0].kind == "directive":
            word = code[0].text
            if word == "#if":
                debug_branches.append(len(code) > 1 and code[1].text == "DEBUG")
            elif word in ("#else", "#elseif") and debug_branches:
                debug_branches[-1] = word == "#elseif" and len(code) > 1 and code[1].text == "DEBUG"
            elif word == "#endif" and debug_branches:
                debug_branches.pop()
            continue
        if any(debug_branches):
            continue
        previous = by_line[code_lines[index - 1]] if index else None
        following = by_line[code_lines[index + 1]] if index + 1 < len(code_lines) else None
        if previous and (previous[-1].text in (",", "(", "[", "=", "?", "&&", "||") or
                         (previous[-1].kind == "op" and previous[-1].text not in ("!", "?"))):
            continue
        if following and (following[0].text in (".", "?", ":", "&&", "||", "else") and following[0].text != "else"
                          or (following[0].kind == "op" and _binary(following[0]) and following[0].text not in ("!",))
                          or following[0].text == "."):
            continue
        line_text = lines[number - 1]
        repeat = repeats.get(line_text.strip(), 0)
        repeats[line_text.strip()] = repeat + 1
        ordinal = [0]

        def add(operator, region_tokens, edit, style):
            region = (region_tokens[0].start, region_tokens[-1].end)
            mutants.append(Mutant(file, number, operator, region, edit, style, line_text, ordinal[0], repeat))
            ordinal[0] += 1

        def add_expression(region_tokens, style="expr"):
            if not region_tokens or not _balanced(region_tokens):
                return
            for operator, start, end, replacement in _region_mutations(region_tokens, source):
                add(operator, region_tokens, (start, end, replacement), style)

        k = 0
        while k < len(code) and code[k].text == "}":
            k += 1
        if k < len(code) and code[k].text == "else":
            k += 1
        code = code[k:]
        if not code:
            continue
        k = _strip_modifiers(code)
        head = code[k] if k < len(code) else None
        if head is None or head.kind == "attribute":
            continue
        word = head.text
        if word in ("let", "var"):
            rest = code[k + 1:]
            if rest and rest[-1].text == "{" or not _balanced(rest):
                continue
            depths, _ = _depths(rest)
            if any(t.text == "," and d == 0 for t, d in zip(rest, depths)):
                continue  # several bindings on one line (var a = 0, b = 0)
            eq = next((j for j, t in enumerate(rest) if t.text == "=" and depths[j] == 0), None)
            if eq is not None and eq + 1 < len(rest) and rest[-1].text not in ("{",):
                add_expression(rest[eq + 1:])
            continue
        if word == "return":
            add_expression(code[k + 1:])
            continue
        if word in ("if", "while", "guard"):
            rest = code[k + 1:]
            depths, _ = _depths(rest)
            if word == "guard":
                stop = next((j for j, t in enumerate(rest) if t.text == "else" and depths[j] == 0), None)
            else:
                stop = next((j for j, t in enumerate(rest) if t.text == "{" and depths[j] == 0), None)
            if stop is None:
                continue
            for clause in _split_top(rest[:stop], ","):
                if not clause or clause[0].text in ("case", "#available") or clause[0].kind == "directive":
                    continue
                if clause[0].text in ("let", "var"):
                    cd, _ = _depths(clause)
                    eq = next((j for j, t in enumerate(clause) if t.text == "=" and cd[j] == 0), None)
                    if eq is not None:
                        add_expression(clause[eq + 1:])
                    continue
                if not _balanced(clause):
                    continue
                add_expression(clause)
                if word == "guard":
                    add("condition", clause, (clause[0].start, clause[-1].end, "true"), "expr")
                elif word == "if":
                    add("condition", clause, (clause[0].start, clause[-1].end, "false"), "expr")
            continue
        if word == "for":
            rest = code[k + 1:]
            depths, _ = _depths(rest)
            inside = next((j for j, t in enumerate(rest) if t.text == "in" and depths[j] == 0), None)
            body = next((j for j, t in enumerate(rest) if t.text == "{" and depths[j] == 0), None)
            if inside is None or body is None or body < inside:
                continue
            where = next((j for j in range(inside, body) if rest[j].text == "where" and depths[j] == 0), None)
            add_expression(rest[inside + 1:where if where is not None else body])
            if where is not None:
                add_expression(rest[where + 1:body])
            continue
        if word in KEYWORDS_SKIP or head.kind not in ("ident", "punct") or word in ("(", "[") and False:
            continue
        # An assignment, a call or a throw standing alone on its line.
        statement = code
        if statement[-1].text in ("{", "in") or not _balanced(statement):
            continue
        if any(t.text == "{" for t in statement) and statement[-1].text != ")":
            continue  # closures, trailing closures: leave alone
        depths, _ = _depths(statement)
        assign = next((j for j, t in enumerate(statement) if depths[j] == 0 and t.kind == "op" and
                       t.text in ("=", "+=", "-=", "*=", "/=", "&+=", "&-=", "|=", "&=")), None)
        is_call = statement[-1].text == ")"
        if word == "throw":
            add("delete", statement, (statement[0].start, statement[0].start, ""), "delete")
            continue
        if assign is None and not is_call:
            continue
        if assign is not None:
            op = statement[assign]
            compound = {"+=": "-=", "-=": "+=", "*=": "/=", "/=": "*="}
            if op.text in compound:
                add("compound", statement, (op.start, op.end, compound[op.text]), "stmt")
            for operator, start, end, replacement in _region_mutations(statement[assign + 1:], source):
                add(operator, statement, (start, end, replacement), "stmt")
            for operator, start, end, replacement in _region_mutations(statement[:assign], source):
                if operator in ("arith", "constant", "drop-term"):
                    add(operator, statement, (start, end, replacement), "stmt")
        else:
            for operator, start, end, replacement in _region_mutations(statement, source):
                add(operator, statement, (start, end, replacement), "stmt")
        add("delete", statement, (statement[0].start, statement[0].start, ""), "delete")
    return mutants


def instrument(source, mutants):
    """The source with the given mutants (at most one per line) compiled in as schemata."""
    out, cursor = [], 0
    for mutant in sorted(mutants, key=lambda m: m.region[0]):
        out.append(source[cursor:mutant.region[0]])
        out.append(mutant.instrument(source))
        cursor = mutant.region[1]
    out.append(source[cursor:])
    return "".join(out)
