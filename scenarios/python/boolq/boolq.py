"""BoolQ's logic in plain Python, free of WebAssembly bindings so that `python3 -m unittest` tests it natively.

BoolQ (Clark et al., 2019) asks a yes/no question about a Wikipedia passage. Three published layouts are read:
google/boolq (`question`, `passage`, `answer` as a boolean), super_glue/boolq (`question`, `passage`, `label`
0/1, `idx`) and the original JSON Lines release (which also has `title`). The prompt is the one the
lm-evaluation-harness uses ("{passage}\\nQuestion: {question}?\\nAnswer:"), with the choices " no" and " yes"
for log-likelihood scoring; a generated answer is read from its first yes/no word.
"""

import re

NO, YES = "no", "yes"
CHOICES = [" no", " yes"]
INSTRUCTION = "Read the passage and answer the question with yes or no."

# Words a verbose model uses for yes and no; the first one found in the output is the answer.
_ANSWER_WORDS = {"yes": YES, "true": YES, "correct": YES, "no": NO, "false": NO, "incorrect": NO}
_WORD = re.compile(r"[a-z]+")


class ParseError(Exception):
    """A record that does not parse; `row` is 1-based and `field` names the column when known."""

    def __init__(self, row, field, message):
        super().__init__(message)
        self.row = row
        self.field = field
        self.message = message


def reference_from(row, columns):
    """The gold answer ("yes" or "no") of one record given as a dict of plain Python values."""
    if "answer" in columns:
        field, value = "answer", columns["answer"]
    elif "label" in columns:
        field, value = "label", columns["label"]
    else:
        raise ParseError(row, "answer", "is missing (BoolQ rows carry `answer` true/false or `label` 0/1)")
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, int) and value in (0, 1):
        return YES if value == 1 else NO
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "0", "1"):
        return YES if value.strip().lower() in ("true", "yes", "1") else NO
    raise ParseError(row, field, "must be true/false, yes/no or 0/1, not %r" % (value,))


def text_from(row, columns, name):
    value = columns.get(name)
    if value is None:
        raise ParseError(row, name, "is missing")
    if not isinstance(value, str):
        raise ParseError(row, name, "is not text")
    if not value.strip():
        raise ParseError(row, name, "is empty")
    return value.strip()


def parse_rows(rows):
    """Turns records (dicts of plain values) into (id, question, passage, reference) tuples."""
    problems = []
    seen = set()
    for index, columns in enumerate(rows):
        row = index + 1
        question = text_from(row, columns, "question")
        passage = text_from(row, columns, "passage")
        reference = reference_from(row, columns)
        sample_id = columns.get("idx", columns.get("id"))
        sample_id = str(row) if sample_id is None or isinstance(sample_id, bool) else str(sample_id)
        if sample_id in seen:
            raise ParseError(row, "idx", "repeats id %s" % sample_id)
        seen.add(sample_id)
        problems.append((sample_id, question, passage, reference))
    if not problems:
        raise ParseError(None, None, "the dataset has no rows")
    return problems


def question_text(question):
    """BoolQ's questions are lower case and lack the question mark; the harness adds it."""
    question = question.strip()
    return question if question.endswith("?") else question + "?"


def format_item(passage, question, answer=None):
    text = "%s\nQuestion: %s\nAnswer:" % (passage, question_text(question))
    return text if answer is None else "%s %s" % (text, answer)


def build_text(passage, question, examples):
    """The few-shot text prompt: solved examples, then the open item (examples are (passage, question, answer))."""
    shots = [format_item(p, q, a) for (p, q, a) in examples]
    return "\n\n".join(shots + [format_item(passage, question)])


def extract_answer(output):
    """The first yes/no word of a generated answer, or None when it has none."""
    for word in _WORD.findall(output.lower()):
        if word in _ANSWER_WORDS:
            return _ANSWER_WORDS[word]
    return None


def choose(logprobs):
    """The answer whose continuation is the more likely (ties go to "no", the first choice, like argmax)."""
    if len(logprobs) != len(CHOICES):
        raise ValueError("expected %d choice likelihoods, got %d" % (len(CHOICES), len(logprobs)))
    return YES if logprobs[1] > logprobs[0] else NO
