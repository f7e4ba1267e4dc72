#!/usr/bin/env python3
"""Check the qeval item files choice.jsonl and generate.jsonl.

It checks the schema of every item and recomputes every answer that can be computed:

* arithmetic (choice): evaluates the question exactly (fractions, not floats) and requires
  exactly one choice with that value, and that it is the keyed one;
* code (choice): runs each fenced Python / JavaScript / bash snippet (python3, node, bash) and
  each SQL snippet (in-memory sqlite3), and compares the output with the keyed choice;
* word_problem (generate): evaluates the expression written down for that question in
  WORD_PROBLEM_EXPRS below, and checks that the numbers in the expression occur in the question;
* unit_conversion and list_string (generate): parses the question and recomputes the answer.

Items that cannot be checked this way (world, commonsense, reading, and code questions about
meaning rather than output) are checked by hand; the script reports how many those are.

Usage: python3 check_items.py [ITEMS_DIR]   (default: the directory of this script)
Exits with status 1 if any problem is found.
"""

import ast
import collections
import json
import math
import operator
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))

CHOICE_CATEGORIES = {"world", "commonsense", "reading", "arithmetic", "code"}
GEN_CATEGORIES = {"word_problem", "unit_conversion", "list_string"}

problems = []
warnings = []
stats = collections.Counter()


def problem(item_id, msg):
    problems.append(f"{item_id}: {msg}")


def norm(s):
    return " ".join(s.split()).casefold()


# --------------------------------------------------------------------------------------
# exact arithmetic


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def exact_eval(src):
    """Evaluate an arithmetic expression exactly with Fractions. Supports + - * / // % **,
    parentheses, unary minus and ceil()/floor()."""
    tree = ast.parse(src, mode="eval")

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return Fraction(ast.get_source_segment(src, node))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow):
                if right.denominator != 1 or right < 0 or right > 64:
                    raise ValueError("unsupported exponent")
                return left ** int(right)
            return Fraction(_BINOPS[type(node.op)](left, right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("ceil", "floor") and len(node.args) == 1 and not node.keywords):
            v = ev(node.args[0])
            return Fraction(math.ceil(v) if node.func.id == "ceil" else math.floor(v))
        raise ValueError(f"unsupported syntax: {ast.dump(node)}")

    return ev(tree)


def parse_number(text):
    """A choice or answer written as an integer, decimal or simple fraction; None otherwise."""
    t = text.strip()
    if not re.fullmatch(r"-?\d+(\.\d+)?(/\d+)?", t):
        return None
    return Fraction(t)


NUM = r"(-?\d+(?:\.\d+)?)"


def arithmetic_value(question):
    m = re.fullmatch(r"What is (.+)\?", question)
    if not m:
        raise ValueError("question does not look like 'What is ...?'")
    body = m.group(1).strip()
    if m2 := re.fullmatch(NUM + r"% of " + NUM, body):
        return Fraction(m2.group(1)) / 100 * Fraction(m2.group(2))
    if m2 := re.fullmatch(r"(\d+)/(\d+) of " + NUM, body):
        return Fraction(int(m2.group(1)), int(m2.group(2))) * Fraction(m2.group(3))
    if m2 := re.fullmatch(r"the square root of (\d+)", body):
        n = int(m2.group(1))
        r = math.isqrt(n)
        if r * r != n:
            raise ValueError("not a perfect square")
        return Fraction(r)
    if m2 := re.fullmatch(NUM + r" squared", body):
        return Fraction(m2.group(1)) ** 2
    if m2 := re.fullmatch(NUM + r" to the power of (\d+)", body):
        return Fraction(m2.group(1)) ** int(m2.group(2))
    if m2 := re.fullmatch(r"the remainder when (\d+) is divided by (\d+)", body):
        return Fraction(int(m2.group(1)) % int(m2.group(2)))
    expr = body.replace("×", "*").replace("÷", "/").replace("−", "-")
    if not re.fullmatch(r"[\d\s.+\-*/()]+", expr):
        raise ValueError(f"cannot parse arithmetic question: {body!r}")
    return exact_eval(expr)


# --------------------------------------------------------------------------------------
# code execution


def run_cmd(argv, code_dir, timeout=20):
    env = dict(os.environ, LC_ALL="C", LANG="C")
    p = subprocess.run(argv, cwd=code_dir, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()[:300]}")
    return p.stdout


def render_sql_value(v):
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def run_sql(code):
    statements = [s.strip() for s in code.split(";") if s.strip()]
    con = sqlite3.connect(":memory:")
    try:
        for s in statements[:-1]:
            con.execute(s)
        rows = con.execute(statements[-1]).fetchall()
    finally:
        con.close()
    if len(rows) != 1 or len(rows[0]) != 1:
        raise RuntimeError(f"final query must return a single value, got {rows!r}")
    return render_sql_value(rows[0][0])


def run_snippet(lang, code, tmp):
    """Returns stdout (stripped) or None if the interpreter is unavailable."""
    if lang == "python":
        return run_cmd([sys.executable, "-c", code], tmp).strip()
    if lang == "javascript":
        node = shutil.which("node")
        if node is None:
            return None
        return run_cmd([node, "-e", code], tmp).strip()
    if lang == "bash":
        bash = shutil.which("bash")
        if bash is None:
            return None
        return run_cmd([bash, "-c", code], tmp).strip()
    if lang == "sql":
        return run_sql(code).strip()
    raise ValueError(f"unknown snippet language {lang!r}")


# --------------------------------------------------------------------------------------
# generate-item checkers

# Word problems: question -> expression that computes the answer. Every number in the expression
# must appear in the question, except the implicit constants in IMPLICIT ("twice", "a quarter",
# the 2 in a perimeter).
IMPLICIT = {"2", "4"}
WORD_PROBLEM_EXPRS = {
    "Sara has 12 apples. She gives 5 to her brother and then buys 8 more. How many apples does she have now?": "12 - 5 + 8",
    "A box holds 24 pencils. How many pencils are in 7 boxes?": "24 * 7",
    "A bus has 45 seats and 28 passengers are sitting down. How many seats are empty?": "45 - 28",
    "Cinema tickets cost 9 dollars each. How many dollars do 6 tickets cost?": "9 * 6",
    "A baker makes 120 rolls and packs them in bags of 8. How many bags does she fill?": "120 / 8",
    "Leo reads 15 pages every day. How many pages does he read in 14 days?": "15 * 14",
    "A rectangular garden is 8 metres long and 5 metres wide. What is its area in square metres?": "8 * 5",
    "A rectangle is 9 cm long and 4 cm wide. What is its perimeter in centimetres?": "2 * (9 + 4)",
    "Tom had 50 euros. He spent 18 euros on a book and 7 euros on lunch. How many euros does he have left?": "50 - 18 - 7",
    "There are 4 shelves with 35 books on each. How many books are there altogether?": "4 * 35",
    "A farmer has 3 fields. Each field has 6 rows of 20 cabbages. How many cabbages does he have in total?": "3 * 6 * 20",
    "Mia is 11 years old. Her mother is 3 times as old as Mia. How old is her mother?": "11 * 3",
    "Each pizza is cut into 8 slices. 4 friends share 3 pizzas equally. How many slices does each friend get?": "3 * 8 / 4",
    "A car travels at 60 kilometres per hour. How many kilometres does it travel in 4 hours?": "60 * 4",
    "Pens are sold in packs of 5. Ravi needs 42 pens. What is the smallest number of packs he must buy?": "ceil(42 / 5)",
    "A class has 30 students and 12 of them are boys. How many girls are in the class?": "30 - 12",
    "Ella saves 25 dollars every month. How many dollars has she saved after 9 months?": "25 * 9",
    "A garden has 7 rows of tulips with 13 tulips in each row. How many tulips are there?": "7 * 13",
    "A school has 500 sheets of paper and gives each student 20 sheets. How many students get paper?": "500 / 20",
    "Sam ran 3 km on Monday, 5 km on Tuesday and 4 km on Wednesday. How many kilometres did he run in total?": "3 + 5 + 4",
    "A jar holds 64 marbles. A quarter of them are blue. How many marbles are blue?": "64 / 4",
    "Nina buys 3 notebooks at 4 euros each and a pen for 2 euros. How many euros does she spend?": "3 * 4 + 2",
    "A hotel has 12 floors with 18 rooms on each floor. How many rooms does the hotel have?": "12 * 18",
    "A tank holds 200 litres and is filled at 8 litres per minute. How many minutes does it take to fill the empty tank?": "200 / 8",
    "Jack has twice as many stickers as Lily. Lily has 17 stickers. How many stickers do they have together?": "17 + 2 * 17",
    "A cinema has 15 rows of 22 seats. If 280 seats are taken, how many seats are free?": "15 * 22 - 280",
    "4 friends split a bill of 96 dollars equally. How many dollars does each friend pay?": "96 / 4",
    "Paul is 14 years old. How old will he be in 9 years?": "14 + 9",
    "A library had 1250 books. It received 375 new books and gave away 125. How many books does it have now?": "1250 + 375 - 125",
    "A bike costs 240 dollars. Anna has saved 3/4 of the price. How many dollars has she saved?": "240 * 3 / 4",
    "Eggs are sold in cartons of 12. How many eggs are in 15 cartons?": "12 * 15",
    "A runner completes 6 laps of a 400 metre track. How many metres does she run?": "6 * 400",
    "Kim has 5 bags with 9 oranges in each. She eats 4 of the oranges. How many oranges are left?": "5 * 9 - 4",
    "A plant is 10 cm tall and grows 3 cm each week. How tall will it be, in centimetres, after 6 weeks?": "10 + 3 * 6",
    "There are 9 tables and each seats 6 people. 47 guests sit down. How many seats are still empty?": "9 * 6 - 47",
    "Ben scored 18, 24 and 21 points in three games. What was his total score?": "18 + 24 + 21",
    "A rope 50 metres long is cut into pieces 4 metres long. How many whole 4-metre pieces can be cut?": "50 // 4",
    "One carton of juice fills 6 glasses. What is the smallest number of cartons needed to fill 27 glasses?": "ceil(27 / 6)",
    "Dana works 8 hours a day for 5 days and earns 15 dollars an hour. How many dollars does she earn?": "8 * 5 * 15",
}


def check_word_problem(q, answer):
    if q not in WORD_PROBLEM_EXPRS:
        raise ValueError("no expression recorded for this question in WORD_PROBLEM_EXPRS")
    expr = WORD_PROBLEM_EXPRS[q]
    q_nums = set(re.findall(r"\d+(?:\.\d+)?", q))
    for lit in re.findall(r"\d+(?:\.\d+)?", expr):
        if lit not in q_nums and lit not in IMPLICIT:
            raise ValueError(f"expression uses {lit}, which is not in the question")
    v = exact_eval(expr)
    if v.denominator != 1:
        raise ValueError(f"expression gives a non-integer {v}")
    if not re.fullmatch(r"\d+", answer):
        raise ValueError("word_problem answers must be digits only")
    return str(v.numerator)


_UNITS = {}
for _dim, _table in {
    "length": {"millimetre": Fraction(1, 1000), "centimetre": Fraction(1, 100), "metre": Fraction(1), "kilometre": Fraction(1000)},
    "mass": {"milligram": Fraction(1, 1000), "gram": Fraction(1), "kilogram": Fraction(1000)},
    "volume": {"millilitre": Fraction(1, 1000), "litre": Fraction(1)},
    "time": {"second": Fraction(1), "minute": Fraction(60), "hour": Fraction(3600), "day": Fraction(86400), "week": Fraction(604800)},
}.items():
    for _name, _f in _table.items():
        _UNITS[_name] = (_dim, _f)
        _UNITS[_name + "s"] = (_dim, _f)


def fmt_decimal(v):
    """Canonical decimal string for a Fraction with a terminating expansion."""
    d = v.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d != 1:
        raise ValueError(f"{v} has no exact decimal form")
    sign = "-" if v < 0 else ""
    v = abs(v)
    whole = v.numerator // v.denominator
    frac = v - whole
    digits = ""
    while frac:
        frac *= 10
        digit = frac.numerator // frac.denominator
        digits += str(digit)
        frac -= digit
    return sign + str(whole) + ("." + digits if digits else "")


def check_unit_conversion(q, answer):
    m = re.fullmatch(r"How many (\w+) are in " + NUM + r" (\w+)\?", q)
    if m:
        to_u, qty, from_u = m.group(1), m.group(2), m.group(3)
    else:
        m = re.fullmatch(r"Convert " + NUM + r" (\w+) to (\w+)\.", q)
        if not m:
            raise ValueError("cannot parse unit conversion question")
        qty, from_u, to_u = m.group(1), m.group(2), m.group(3)
    if from_u not in _UNITS or to_u not in _UNITS:
        raise ValueError(f"unknown unit in {from_u!r} / {to_u!r}")
    (d1, f1), (d2, f2) = _UNITS[from_u], _UNITS[to_u]
    if d1 != d2:
        raise ValueError("units measure different things")
    return fmt_decimal(Fraction(qty) * f1 / f2)


ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
            "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def split_list(s):
    parts = [p.strip() for p in s.split(",")]
    if any(not p for p in parts):
        raise ValueError("empty list element")
    return parts


def check_list_string(q, answer):
    if m := re.fullmatch(r"What is the word '(\w+)' spelled backwards\?", q):
        return m.group(1)[::-1]
    if m := re.fullmatch(r"What is the ([\w-]+) item of \[(.*)\]\?", q):
        items = split_list(m.group(2))
        which = m.group(1)
        if which == "last":
            return items[-1]
        if which == "second-to-last":
            return items[-2]
        return items[ORDINALS[which] - 1]
    if m := re.fullmatch(r"Sort these numbers (ascending|descending): (.*)", q):
        nums = [int(x) for x in split_list(m.group(2))]
        return ", ".join(str(n) for n in sorted(nums, reverse=m.group(1) == "descending"))
    if m := re.fullmatch(r"Sort these words alphabetically: (.*)", q):
        return ", ".join(sorted(split_list(m.group(1))))
    if m := re.fullmatch(r"How many letters are in '([A-Za-z]+)'\?", q):
        return str(len(m.group(1)))
    if m := re.fullmatch(r"How many times does the letter '(\w)' appear in '(\w+)'\?", q):
        return str(m.group(2).count(m.group(1)))
    if m := re.fullmatch(r"What is the (first|last) letter of '(\w+)'\?", q):
        w = m.group(2)
        return w[0] if m.group(1) == "first" else w[-1]
    if m := re.fullmatch(r"Write '(\w+)' in (uppercase|lowercase) letters\.", q):
        return m.group(1).upper() if m.group(2) == "uppercase" else m.group(1).lower()
    if m := re.fullmatch(r"How many items are in the list \[(.*)\]\?", q):
        return str(len(split_list(m.group(1))))
    if m := re.fullmatch(r"What is the (largest|smallest) number in the list \[(.*)\]\?", q):
        nums = [int(x) for x in split_list(m.group(2))]
        return str(max(nums) if m.group(1) == "largest" else min(nums))
    if m := re.fullmatch(r"What is the sum of the numbers in \[(.*)\]\?", q):
        return str(sum(int(x) for x in split_list(m.group(1))))
    if m := re.fullmatch(r"What are the (first|last) (\w+) letters of '(\w+)'\?", q):
        n, w = NUMBER_WORDS[m.group(2)], m.group(3)
        return w[:n] if m.group(1) == "first" else w[-n:]
    if m := re.fullmatch(r"How many vowels \(a, e, i, o, u\) are in '(\w+)'\?", q):
        return str(sum(c in "aeiou" for c in m.group(1).lower()))
    if m := re.fullmatch(r"How many words are in the sentence '([^']*)'\?", q):
        return str(len(m.group(1).split()))
    if m := re.fullmatch(r"Join the letters ((?:'\w', )*'\w') into one word\.", q):
        return "".join(re.findall(r"'(\w)'", m.group(1)))
    raise ValueError("cannot parse list/string question")


GEN_CHECKERS = {
    "word_problem": check_word_problem,
    "unit_conversion": check_unit_conversion,
    "list_string": check_list_string,
}


# --------------------------------------------------------------------------------------


def load_jsonl(path):
    items = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                problem(f"{os.path.basename(path)}:{lineno}", "blank line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                problem(f"{os.path.basename(path)}:{lineno}", f"invalid JSON: {e}")
                continue
            if not isinstance(obj, dict):
                problem(f"{os.path.basename(path)}:{lineno}", "not a JSON object")
                continue
            items.append(obj)
    return items


def check_ids(items, prefix, seen):
    for it in items:
        iid = it.get("id")
        if not isinstance(iid, str) or not re.fullmatch(prefix + r"-\d{4}", iid):
            problem(repr(iid), f"id must look like {prefix}-0001")
        elif iid in seen:
            problem(iid, "duplicate id")
        seen.add(iid)


def nonempty_str(x):
    return isinstance(x, str) and x.strip() != "" and x == x.strip()


def check_choice(items, tmp):
    positions = collections.defaultdict(collections.Counter)
    contexts = set()
    for it in items:
        iid = it.get("id", "?")
        if set(it) != {"id", "category", "context", "choices", "answer"}:
            problem(iid, f"fields must be id, category, context, choices, answer; got {sorted(it)}")
            continue
        cat, ctx, choices, ans = it["category"], it["context"], it["choices"], it["answer"]
        if cat not in CHOICE_CATEGORIES:
            problem(iid, f"unknown category {cat!r}")
            continue
        stats[f"choice/{cat}"] += 1
        if not nonempty_str(ctx):
            problem(iid, "context must be a non-empty string without surrounding whitespace")
            continue
        if norm(ctx) in contexts:
            problem(iid, "duplicate context")
        contexts.add(norm(ctx))
        if not isinstance(choices, list) or not all(nonempty_str(c) for c in choices):
            problem(iid, "choices must be a list of non-empty strings without surrounding whitespace")
            continue
        allowed = {4, 2} if cat == "commonsense" else {4}
        if len(choices) not in allowed:
            problem(iid, f"{cat} items need {sorted(allowed)} choices, got {len(choices)}")
        if len({norm(c) for c in choices}) != len(choices):
            problem(iid, "duplicate choice texts")
        if not isinstance(ans, int) or isinstance(ans, bool) or not 0 <= ans < len(choices):
            problem(iid, f"answer {ans!r} is not a valid index")
            continue
        positions[(cat, len(choices))][ans] += 1
        key = choices[ans]

        if cat == "reading" and "\n\nQuestion: " not in ctx:
            problem(iid, "reading items need a passage followed by '\\n\\nQuestion: ...'")

        if cat == "arithmetic":
            try:
                value = arithmetic_value(ctx)
            except Exception as e:  # noqa: BLE001
                problem(iid, f"cannot recompute arithmetic: {e}")
                continue
            vals = [parse_number(c) for c in choices]
            if any(v is None for v in vals):
                problem(iid, "arithmetic choices must all be numbers")
                continue
            if len(set(vals)) != len(vals):
                problem(iid, "two choices have the same numeric value")
            matches = [i for i, v in enumerate(vals) if v == value]
            if matches != [ans]:
                problem(iid, f"computed {value}; matching choices {matches}, keyed {ans} ({key!r})")
            stats["programmatic"] += 1
            stats["programmatic/arithmetic"] += 1

        elif cat == "code":
            m = re.search(r"```(\w+)\n(.*?)\n```", ctx, re.S)
            if not m:
                stats["manual/code"] += 1
                continue
            lang, code = m.group(1), m.group(2)
            try:
                out = run_snippet(lang, code, tmp)
            except Exception as e:  # noqa: BLE001
                problem(iid, f"running the {lang} snippet failed: {e}")
                continue
            if out is None:
                warnings.append(f"{iid}: no interpreter for {lang}; output not checked")
                stats["manual/code"] += 1
                continue
            if out != key:
                problem(iid, f"{lang} snippet printed {out!r} but the keyed choice is {key!r}")
            others = [i for i, c in enumerate(choices) if c == out and i != ans]
            if others:
                problem(iid, f"another choice also equals the output {out!r}")
            stats["programmatic"] += 1
            stats[f"programmatic/code-{lang}"] += 1
        else:
            stats[f"manual/{cat}"] += 1
    return positions


def check_generate(items):
    questions = set()
    for it in items:
        iid = it.get("id", "?")
        if set(it) != {"id", "category", "question", "answer"}:
            problem(iid, f"fields must be id, category, question, answer; got {sorted(it)}")
            continue
        cat, q, ans = it["category"], it["question"], it["answer"]
        if cat not in GEN_CATEGORIES:
            problem(iid, f"unknown category {cat!r}")
            continue
        stats[f"generate/{cat}"] += 1
        if not nonempty_str(q) or not nonempty_str(ans):
            problem(iid, "question and answer must be non-empty strings without surrounding whitespace")
            continue
        if norm(q) in questions:
            problem(iid, "duplicate question")
        questions.add(norm(q))
        if len(ans) > 40:
            problem(iid, "answer is too long to be a short exact answer")
        try:
            expected = GEN_CHECKERS[cat](q, ans)
        except Exception as e:  # noqa: BLE001
            problem(iid, f"cannot recompute: {e}")
            continue
        if expected != ans:
            problem(iid, f"recomputed {expected!r} but the key is {ans!r}")
        stats["programmatic"] += 1
        stats[f"programmatic/{cat}"] += 1
    unused = set(WORD_PROBLEM_EXPRS) - {it.get("question") for it in items}
    for q in sorted(unused):
        warnings.append(f"WORD_PROBLEM_EXPRS has an expression for a question not in the file: {q[:60]!r}")


def main():
    items_dir = sys.argv[1] if len(sys.argv) > 1 else HERE
    choice_path = os.path.join(items_dir, "choice.jsonl")
    gen_path = os.path.join(items_dir, "generate.jsonl")
    choice = load_jsonl(choice_path)
    gen = load_jsonl(gen_path)
    seen = set()
    check_ids(choice, "mc", seen)
    check_ids(gen, "gen", seen)
    with tempfile.TemporaryDirectory() as tmp:
        positions = check_choice(choice, tmp)
    check_generate(gen)

    print(f"choice.jsonl: {len(choice)} items")
    for cat in sorted(CHOICE_CATEGORIES):
        print(f"  {cat:12s} {stats[f'choice/{cat}']:4d}")
    print(f"generate.jsonl: {len(gen)} items")
    for cat in sorted(GEN_CATEGORIES):
        print(f"  {cat:16s} {stats[f'generate/{cat}']:4d}")
    print("answer positions (category, number of choices): counts per index")
    for (cat, n), c in sorted(positions.items()):
        print(f"  {cat:12s} {n}: {[c[i] for i in range(n)]}")
    print(f"checked programmatically: {stats['programmatic']}")
    for k in sorted(k for k in stats if k.startswith("programmatic/")):
        print(f"  {k[len('programmatic/'):]:20s} {stats[k]}")
    print(f"checked by hand only: {sum(v for k, v in stats.items() if k.startswith('manual/'))}")
    for k in sorted(k for k in stats if k.startswith("manual/")):
        print(f"  {k[len('manual/'):]:20s} {stats[k]}")

    if len(choice) < 220:
        problem("choice.jsonl", f"only {len(choice)} items (need at least 220)")
    if len(gen) < 110:
        problem("generate.jsonl", f"only {len(gen)} items (need at least 110)")

    for w in warnings:
        print("WARNING:", w)
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for p in problems:
            print("  " + p)
        return 1
    print("\nOK: no problems found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
