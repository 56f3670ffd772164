#!/usr/bin/env python3
"""prove_ref.py — what Python (the language of the released DeepSeekMath-V2
pipeline) makes of the bundled templates and outputs, for tests/test_prove.c
to compare lemma's C against. Nothing here is committed output: the test runs
this script at test time on ../shared/data/deepseek-math-v2.

    python3 tests/prove_ref.py DATA_DIR OUT.json

OUT.json:
  values:  the placeholder values used (tricky on purpose)
  fills:   {template key: template.format(**values)}
  outputs: [{file, line, boxed, score, verify_sha256}] for every released
           proof: the last non-empty \\boxed{} (an independent forward scan),
           its score as float() reads it when that is finite, ASCII and in
           [0, 1], and the SHA-256 of the verification prompt
           template.format(statement=question.strip(), proof=proof.strip()).
"""
import glob
import hashlib
import json
import math
import os
import sys


def last_boxed(s):
    found, i = None, 0
    while True:
        j = s.find("\\boxed{", i)
        if j < 0:
            return found
        k, depth = j + 7, 1
        while k < len(s):
            c = s[k]
            if c == "\\":
                k += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        if k < len(s):
            content = s[j + 7:k].strip()
            if content:
                found = content
        i = j + 1


def score(text):
    if text is None or not text.isascii():
        return None
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) and 0 <= v <= 1 else None


def main():
    data, out = sys.argv[1], sys.argv[2]
    templates = json.load(open(os.path.join(data, "templates.json"), encoding="utf-8"))
    values = {
        "question": " Q {x} }} {{ \\boxed{{1}} é 🙂\n",
        "statement": "S: {statement} {}",
        "proof": "P\n\n## Solution\n\\boxed{0}",
        "rating": "",
        "instruction": "{{instruction}}",
        "proofs_to_refine": "--- Solution 0 ---\n}{",
    }
    fills = {k: t.format(**values) for k, t in templates.items()}
    outputs = []
    for path in sorted(glob.glob(os.path.join(data, "outputs", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                item = json.loads(line)
                proof = item["model_prediction"]["proof"]
                b = last_boxed(proof)
                prompt = templates["proof_verification"].format(statement=item["question"].strip(), proof=proof.strip())
                outputs.append({"file": os.path.basename(path), "line": n, "boxed": b, "score": score(b),
                                "verify_sha256": hashlib.sha256(prompt.encode("utf-8")).hexdigest()})
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"values": values, "fills": fills, "outputs": outputs}, f, ensure_ascii=False)


main()
