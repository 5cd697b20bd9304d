"""Dataset loaders for the lm-evaluation-harness tasks `cargo xtask agree` generates.

lm-eval's own task definitions read the Hugging Face Hub copies of each benchmark. The agreement check runs
both tools on the files in ../shared/datasets instead (the original releases: AI2's ARC JSON Lines and
OpenBookQA TSV, GLUE's SST-2 TSV, MMLU's header-less CSVs), so each task names one of these functions as
its `custom_dataset`. They only change the layout to the Hub's fields; every text stays as the file has it,
so the prompts are lm-eval's templates over the same strings runner reads. The standard library reads the
files: pandas, behind `datasets`' csv loader, would turn an MMLU choice "0.50" into 0.5 and "None" into NaN.
"""

import csv
import json

import datasets


def _splits(**splits):
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def arc(path, **_):
    """AI2's ARC JSON Lines: `id`, `question` {`stem`, `choices` [{`text`, `label`}]}, `answerKey`."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            doc = json.loads(line)
            choices = doc["question"]["choices"]
            labels = [c["label"] for c in choices]
            rows.append(
                {
                    "id": doc["id"],
                    "question": doc["question"]["stem"],
                    "choices": [c["text"] for c in choices],
                    "gold": labels.index(doc["answerKey"]),
                }
            )
    return _splits(test=rows)


def _inline_choices(text):
    """ "(A) a marsh (B) a tundra (with ice)": each label is the next letter in parentheses, so a parenthesis
    inside a choice's text does not split it (as runner reads AI2's TSV)."""
    text = text.strip()
    starts = []
    at = 0
    for label in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        marker = f"({label}) "
        if not starts:
            found = 0 if text.startswith(marker) else -1
        else:
            found = text.find(" " + marker, at)
            found = found + 1 if found >= 0 else -1
        if found < 0:
            break
        starts.append((label, found, found + len(marker)))
        at = found + len(marker)
    texts = [text[s:(starts[i + 1][1] if i + 1 < len(starts) else len(text))].strip() for i, (_, _, s) in enumerate(starts)]
    return [label for label, _, _ in starts], texts


def openbookqa(path, **_):
    """AI2's OpenBookQA TSV: `ID`, `Question Stem`, `Choices` "(A) … (B) …", `Complete Question`, `Answer Key`."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            labels, texts = _inline_choices(row["Choices"])
            rows.append(
                {
                    "id": row["ID"],
                    "question_stem": row["Question Stem"].strip(),
                    "choices": texts,
                    "gold": labels.index(row["Answer Key"].strip()),
                }
            )
    return _splits(test=rows)


def sst2(path, **_):
    """GLUE's SST-2 TSV: `sentence`, `label` (0 negative, 1 positive), read as GLUE's loader reads it."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = [
            {"sentence": row["sentence"], "label": int(row["label"])}
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        ]
    return _splits(test=rows)


def _mmlu_rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        return [
            {"question": r[0], "choices": r[1:5], "answer": "ABCD".index(r[5].strip())}
            for r in csv.reader(f)
            if r
        ]


def mmlu(path, fewshot_path, **_):
    """One subject of the original MMLU release: `test/SUBJECT_test.csv` and `dev/SUBJECT_dev.csv`, no
    header, `question,A,B,C,D,answer` (the answer a letter; the Hub's cais/mmlu has its index)."""
    return _splits(test=_mmlu_rows(path), dev=_mmlu_rows(fewshot_path))
