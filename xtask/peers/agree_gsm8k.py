"""lm-eval's gsm8k scoring applied to outputs made elsewhere, for `cargo xtask agree --tasks gsm8k`.

The filters (`strict-match`, `flexible-extract`) and the `exact_match` options are read from the installed
lm-eval's own `tasks/gsm8k/gsm8k.yaml` and run through lm-eval's filter and metric code, so the check holds
runner's port in `scenarios/gsm8k/src/lm_eval.rs` to lm-eval itself, not to a transcription of it.

    agree_gsm8k.py DATASET OUTPUTS RESULT

DATASET is GSM8K's test JSON Lines (`question`, `answer`); OUTPUTS has one `{"index": i, "output": text}`
per line (`index` into DATASET); RESULT gets one `{"index": i, "strict-match": 0|1, "flexible-extract": 0|1}`
per output, the reference being the whole `answer` text, as the task's `doc_to_target` gives it.
"""

import json
import os
import sys

import lm_eval
import yaml
from lm_eval.api.registry import get_metric
from lm_eval.filters import build_filter_ensemble

# The metric entry's keys that are not arguments of the metric function.
NOT_ARGUMENTS = {"metric", "aggregation", "higher_is_better"}


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(dataset, outputs, result):
    task_yaml = os.path.join(os.path.dirname(lm_eval.__file__), "tasks", "gsm8k", "gsm8k.yaml")
    with open(task_yaml, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    docs = read_jsonl(dataset)
    rows = read_jsonl(outputs)
    metric = next(m for m in config["metric_list"] if m["metric"] == "exact_match")
    options = {k: v for k, v in metric.items() if k not in NOT_ARGUMENTS}
    exact_match = get_metric("exact_match")
    verdicts = [{"index": row["index"]} for row in rows]
    picked = [docs[row["index"]] for row in rows]
    for entry in config["filter_list"]:
        components = [
            [c["function"], {k: v for k, v in c.items() if k != "function"}] for c in entry["filter"]
        ]
        ensemble = build_filter_ensemble(entry["name"], components)
        # What FilterEnsemble.apply does to the instances' responses: each filter over all of them in turn.
        responses = [[row["output"]] for row in rows]
        for make_filter in ensemble.filters:
            responses = make_filter().apply(responses, picked)
        for verdict, answer, doc in zip(verdicts, responses, picked):
            score = exact_match(predictions=[answer], references=[doc["answer"]], **options)["exact_match"]
            verdict[entry["name"]] = int(score)
    with open(result, "w", encoding="utf-8") as f:
        for verdict in verdicts:
            f.write(json.dumps(verdict) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
