#!/usr/bin/env python3
"""How often the MATH-500 scorer accepts answers that are equal, and rejects answers that are not.

Takes MATH-500's gold answers (a test.jsonl with an `answer` field), writes each the ways models write it
(boxed, in dollars, Minerva's "Final Answer: ..." sentence, "**Final answer:** $X$", \\dfrac for \\frac,
spaces, units in \\text{} or \\mbox{}, \\left( \\right), commuted sums, mixed numbers, braced bases, ...) and
wrongly (off by one, sign flipped, another problem's answer, "1,2" for 12), then scores every case with the
guest's own scorer (examples/judge.rs, the scenario crate linked natively) and with math-verify, the judge.
Prints both acceptance rates per form and overall; writes the cases and every disagreement under
target/answer-check/ (never commit them: they hold the dataset's answers).

  python3 -m venv target/mv-venv && target/mv-venv/bin/pip install math-verify
  target/mv-venv/bin/python scenarios/math500/tools/answer_check.py ../shared/datasets/math500/test.jsonl
"""
import argparse, json, os, re, subprocess, sys
from fractions import Fraction

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

WRAPPERS = {
    "boxed": lambda y: f"We simplify, so the answer is $\\boxed{{{y}}}$.",
    "dollars": lambda y: f"The answer is ${y}$.",
    "minerva": lambda y: f"Final Answer: The final answer is ${y}$. I hope it is correct.",
    "bold": lambda y: f"Adding these up.\n\n**Final answer:** ${y}$",
    "bare": lambda y: f"${y}$",
    "plain text": lambda y: f"So the answer is {y}.",
    "display": lambda y: f"Therefore\n\\[ \\boxed{{{y}}} \\]",
    "inline parens": lambda y: f"This gives \\({y}\\).",
}


def top_level_split(text, separators):
    """Splits at separator characters outside braces, brackets and parentheses."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        elif depth == 0 and c in separators:
            parts.append(text[start:i])
            start = i
    parts.append(text[start:])
    return parts


def commute(side):
    """`a + b - c` -> `-c + b + a`; None when there is one term or it is not a plain sum."""
    if any(s in side for s in ("\\pm", "\\cup", "\\in", ",", "\\begin")):
        return None
    terms, depth, start, previous = [], 0, 0, ""
    for i, c in enumerate(side):
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        elif depth == 0 and c in "+-" and side[:i].strip() and previous not in "^_({[,=+-*":
            terms.append(side[start:i].strip())
            start = i
        if not c.isspace():
            previous = c
    terms.append(side[start:].strip())
    if len(terms) < 2:
        return None
    out = " + ".join(t if t[0] in "+-" else "+" + t for t in reversed(terms))
    return out.replace("+ +", "+").replace("+ -", "- ").lstrip("+")


def as_fraction(x):
    m = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", x.replace(" ", ""))
    if m and int(m.group(3)):
        return Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) else 1)
    return None


def equivalent_forms(x):
    """(form, rewritten answer) pairs that mean the same as the gold answer `x`."""
    out = [("as given", x)]
    add = lambda form, y: out.append((form, y)) if y and y != x else None
    add("dfrac", x.replace("\\frac", "\\dfrac"))
    add("frac", x.replace("\\dfrac", "\\frac"))
    add("no spaces", re.sub(r"(?<![A-Za-z]) | (?![A-Za-z])", "", x))
    # A comma before a thousands group (`12,\!345`, `67,890`) is not a list separator.
    add("spaced", re.sub(r"\s*([=+]|,(?!\\!|\d{3}\b))\s*", r" \1 ", x).strip())
    plain = re.fullmatch(r"-?\d+(\.\d+)?", x)
    if plain:
        add("unit, no space", f"{x} \\text{{cm}}")
        add("unit after \\text{ ", f"{x}\\text{{ cm}}")
        add("\\mbox unit", f"{x} \\mbox{{cm}}")
        add("x =", f"x = {x}")
        if "." not in x:
            add("trailing .0", f"{x}.0")
            if abs(int(x)) >= 1000:
                add("thousands commas", f"{int(x):,}")
                add("thousands {,}", f"{int(x):,}".replace(",", "{,}"))
    m = re.fullmatch(r"(.*?)\s*\\(text|mbox)\{\s*([a-z ]+)\}(\^2)?", x)
    if m and m.group(1):
        add("unit dropped", m.group(1))
        add("unit, no space", f"{m.group(1)} \\text{{{m.group(3).strip()}}}{m.group(4) or ''}")
        add("\\mbox unit", f"{m.group(1)}\\mbox{{ {m.group(3).strip()}}}{m.group(4) or ''}")
    if ",\\!" in x:
        add("thousands plain", re.sub(r",\\!\s*", "", x))
        add("thousands commas", re.sub(r",\\!\s*", ",", x))
    if re.match(r"^[(\[].*[)\]]$", x) and "\\left" not in x:
        add("\\left \\right", f"\\left{x[0]} {x[1:-1]} \\right{x[-1]}")
    if "\\left" in x:
        add("no \\left \\right", x.replace("\\left", "").replace("\\right", ""))
    if "=" in x:
        sides = [commute(s) or s.strip() for s in x.split("=")]
        add("commuted sum", " = ".join(sides))
    else:
        add("commuted sum", commute(x))
    thousands = re.fullmatch(r"\d{1,3}(,\d{3})+", x)
    # A sum inside a group (`\frac{11+9a}{20}`, `(a+5)(b+2)`) commuted in place.
    add("commuted inside", re.sub(r"([{(])([^{}()]*[^{}()\s^_][+-][^{}()]*)([})])",
                                  lambda m: m.group(1) + (commute(m.group(2)) or m.group(2)) + m.group(3), x))
    if "," in x and not re.match(r"^[(\[{\\]", x) and "\\!" not in x and not thousands:
        add("list reversed", ", ".join(p.strip(", ") for p in reversed(top_level_split(x, ","))))
    m = re.fullmatch(r"(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}", x)
    if m:
        whole, num, den = map(int, m.groups())
        add("mixed as fraction", f"\\frac{{{whole * den + num}}}{{{den}}}")
        add("mixed as decimal", str(float(Fraction(whole * den + num, den))))
    f = as_fraction(x)
    if f is not None:
        add("a/b", f"{f.numerator}/{f.denominator}")
        if f.numerator > f.denominator > 1 and f > 0:
            whole, rest = divmod(f.numerator, f.denominator)
            add("mixed number", f"{whole}\\frac{{{rest}}}{{{f.denominator}}}")
        if (1_000_000 * f).denominator == 1:
            add("decimal", str(float(f)))
    add("\\frac{a}{b} for a/b", re.sub(r"(-?\d+)/(\d+)", r"\\frac{\1}{\2}", x))
    add("\\frac12", re.sub(r"\\frac\{(\d)\}\{(\d)\}", r"\\frac\1\2", x))
    add("\\frac{1}{2}", re.sub(r"\\frac\s*(\d)(\d)", r"\\frac{\1}{\2}", x))
    add("\\sqrt{2}", re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", x))
    add("\\sqrt2", re.sub(r"\\sqrt\{(\d)\}", r"\\sqrt\1", x))
    add("braced base", re.sub(r"^(\d+)_(\d+)$", r"\1_{\2}", x))
    add("bare base", re.sub(r"^(\d+)_\{(\d+)\}$", r"\1_\2", x))
    add("degrees dropped", re.sub(r"\^\\circ$", "", x))
    add("unicode degrees", re.sub(r"\^\\circ$", "°", x))
    add("^{\\circ}", x.replace("^\\circ", "^{\\circ}"))
    add("no \\$", x.replace("\\$", ""))
    add("\\text dropped", re.sub(r"^\\text\{(.*)\}$", r"\1", x))
    add("letter only", re.sub(r"^\\text\{\(([A-E])\)\}$", r"\1", x))
    add("\\textbf", re.sub(r"^\\text\{", r"\\textbf{", x))
    add("bmatrix", x.replace("pmatrix", "bmatrix"))
    add("no x \\in", re.sub(r"^x \\in ", "", x))
    return out


def algebra_forms(x):
    """Equal forms that take algebra to see (an unsimplified radical, a radical in a denominator): outside
    what the guest's scorer claims, measured to show the gap to math-verify."""
    out = []
    m = re.fullmatch(r"(\d+)\s*\\sqrt\{?(\d+)\}?", x)
    if m:
        out.append(("radical not simplified", f"\\sqrt{{{int(m.group(1)) ** 2 * int(m.group(2))}}}"))
    m = re.fullmatch(r"\\frac\{\\sqrt\{(\d+)\}\}\{(\d+)\}", x)
    if m and m.group(1) == m.group(2):
        out.append(("radical in the denominator", f"\\frac{{1}}{{\\sqrt{{{m.group(1)}}}}}"))
    m = re.fullmatch(r"(\d+)\s*\\pi", x)
    if m:
        out.append(("product commuted", f"\\pi \\cdot {m.group(1)}"))
    return out


def wrong_forms(x, others):
    """(form, answer) pairs that mean something else than `x`."""
    out = []
    digits = list(re.finditer(r"\d+", x))
    if digits:
        # The first number: a later one may be a base (`52_8`) or an exponent, which would change the form.
        first = digits[0]
        out.append(("off by one", x[: first.start()] + str(int(first.group()) + 1) + x[first.end():]))
    if len(re.sub(r"\D", "", x)) >= 10 and re.fullmatch(r"[\d,\\! ]+", x):
        # Above 1e9 a relative tolerance of 1e-9 took the last unit for noise.
        last = digits[-1]
        out.append(("large, last digit off by one", x[: last.start()] + str(int(last.group()) + 1) + x[last.end():]))
    if re.fullmatch(r"-?\d+(\.\d+)?", x) and float(x) != 0:
        out.append(("sign flipped", x[1:] if x.startswith("-") else "-" + x))
    if re.fullmatch(r"\d{2,3}", x):
        out.append(("1,2 for 12", x[0] + "," + x[1:]))
    if re.fullmatch(r"\d{4,}", x):
        out.append(("one digit dropped", x[:-1]))
    if re.fullmatch(r"\((-?[^,()]+),(-?[^,()]+)\)", x.replace(" ", "")) and len(set(x.strip("()").split(","))) == 2:
        a, b = x.strip("()").split(",")
        out.append(("tuple reversed", f"({b.strip()}, {a.strip()})"))
    if re.match(r"^[(\[].*,.*[)\]]$", x) and "\\cup" not in x:
        out.append(("bracket changed", x[:-1] + (")" if x[-1] == "]" else "]")))
    terms = commute(x)
    if terms and "+" in terms:
        out.append(("term sign flipped", terms.replace("+", "-", 1) if not terms.startswith("-") else terms[1:]))
    m = re.fullmatch(r"(\d+)\s*\\sqrt\{?(\d+)\}?", x)
    if m:
        out.append(("radical off by one", f"\\sqrt{{{int(m.group(1)) ** 2 * int(m.group(2)) + 1}}}"))
    out.append(("another answer", others))
    return out


def cases(answers):
    for i, x in enumerate(answers):
        for form, y in equivalent_forms(x):
            for wrapper, wrap in WRAPPERS.items():
                if form != "as given" and wrapper not in ("boxed", "dollars", "minerva"):
                    continue
                yield {"reference": x, "output": wrap(y), "equal": True, "form": f"{form} / {wrapper}"}
        for form, y in algebra_forms(x):
            yield {"reference": x, "output": WRAPPERS["boxed"](y), "equal": True, "form": f"algebra: {form}"}
        # Another problem's answer: the next one that reads differently.
        bare = lambda a: re.sub(r"^[a-z]\s*=|\s", "", a)
        other = next(a for a in answers[i + 1:] + answers[:i] if bare(a) != bare(x))
        for form, y in wrong_forms(x, other):
            for wrapper in ("boxed", "minerva"):
                yield {"reference": x, "output": WRAPPERS[wrapper](y), "equal": False, "form": f"{form} / {wrapper}"}


def runner_verdicts(all_cases, judge=None):
    if judge is None:
        env = dict(os.environ, CARGO_BUILD_JOBS=os.environ.get("CARGO_BUILD_JOBS", "1"))
        env.setdefault("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        subprocess.run(["cargo", "build", "-q", "-p", "math500", "--example", "judge"], cwd=ROOT, env=env, check=True)
        judge = os.path.join(env["CARGO_TARGET_DIR"], "debug", "examples", "judge")
    text = "".join(json.dumps({"reference": c["reference"], "output": c["output"]}) + "\n" for c in all_cases)
    result = subprocess.run([judge], input=text, capture_output=True, text=True, check=True)
    return [line == "1" for line in result.stdout.split()]


def math_verify_verdicts(all_cases):
    from math_verify import parse, verify

    verdicts, golds = [], {}
    for c in all_cases:
        ref = c["reference"]
        if ref not in golds:
            golds[ref] = parse(f"${ref}$")
        try:
            verdicts.append(bool(verify(golds[ref], parse(c["output"]))))
        except Exception:
            verdicts.append(False)
    return verdicts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="MATH-500 test.jsonl")
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "answer-check"))
    parser.add_argument("--all-pairs", action="store_true",
                        help="also score every gold answer against every other one (false positives)")
    parser.add_argument("--judge", help="a built examples/judge binary (another commit's scorer, to compare); "
                        "default: build this tree's")
    args = parser.parse_args()
    answers = [json.loads(line)["answer"] for line in open(args.data) if line.strip()]
    all_cases = list(cases(answers))
    os.makedirs(args.out, exist_ok=True)
    ours, judge = runner_verdicts(all_cases, args.judge), math_verify_verdicts(all_cases)
    assert len(ours) == len(all_cases), "the judge example wrote one verdict per case"

    def rate(kind, verdicts, algebra=False):
        picked = [v for c, v in zip(all_cases, verdicts)
                  if c["equal"] == kind and c["form"].startswith("algebra:") == algebra]
        good = sum(v == kind for v in picked)
        return good, len(picked)

    by_form = {}
    for c, o, j in zip(all_cases, ours, judge):
        row = by_form.setdefault((c["equal"], c["form"]), [0, 0, 0])
        row[0] += 1
        row[1] += o == c["equal"]
        row[2] += j == c["equal"]
    print(f"{len(answers)} gold answers, {len(all_cases)} cases\n")
    print(f"{'kind':6} {'form':40} {'cases':>6} {'runner':>8} {'math-verify':>12}")
    for (equal, form), (n, o, j) in sorted(by_form.items(), key=lambda kv: (not kv[0][0], kv[0][1])):
        print(f"{'equal' if equal else 'wrong':6} {form:40} {n:6} {100 * o / n:7.1f}% {100 * j / n:11.1f}%")
    for kind, algebra, label in ((True, False, "equivalent forms accepted"), (False, False, "wrong answers rejected"),
                                 (True, True, "equal forms that take algebra accepted (outside the targets)")):
        (og, n), (jg, _) = rate(kind, ours, algebra), rate(kind, judge, algebra)
        print(f"\n{label}: runner {og}/{n} = {100 * og / n:.1f} %, math-verify {jg}/{n} = {100 * jg / n:.1f} %")
    with open(os.path.join(args.out, "cases.jsonl"), "w") as f:
        for c, o, j in zip(all_cases, ours, judge):
            f.write(json.dumps(dict(c, runner=o, math_verify=j)) + "\n")
    with open(os.path.join(args.out, "runner-misses.txt"), "w") as f:
        for c, o, j in zip(all_cases, ours, judge):
            if o != c["equal"]:
                f.write(f"{'equal' if c['equal'] else 'wrong'} [{c['form']}] math-verify={j}\n"
                        f"  reference: {c['reference']}\n  output:    {c['output']}\n")
    if args.all_pairs:
        all_pairs(answers, args.judge)
    print(f"\ncases and runner's misses: {args.out}")


def all_pairs(answers, judge=None):
    """Every answer boxed against every other answer that reads differently: runner should take none of
    them as equal unless they are (math-verify, asked about the pairs runner accepts, says which are)."""
    distinct = sorted(set(answers))
    bare = lambda a: re.sub(r"\s", "", a)
    pairs = [{"reference": r, "output": WRAPPERS["boxed"](o), "equal": False, "form": "pair"}
             for r in distinct for o in distinct if bare(r) != bare(o)]
    accepted = [c for c, v in zip(pairs, runner_verdicts(pairs, judge)) if v]
    judged = math_verify_verdicts(accepted)
    agree = sum(judged)
    print(f"\nall pairs of distinct gold answers: {len(pairs)}; runner takes {len(accepted)} as equal, "
          f"math-verify agrees on {agree}")
    for c, j in zip(accepted, judged):
        print(f"  {'equal' if j else 'FALSE POSITIVE'}: {c['reference']!r} ~ {c['output']!r}")


if __name__ == "__main__":
    sys.exit(main())
