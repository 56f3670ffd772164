#!/usr/bin/env bash
# The distill stage at toy size (docs/post-training.md): logit distillation
# of a tiny pretrained teacher into a smaller fresh student and into a copy
# of itself, and sequence distillation (the student trained on the teacher's
# sampled answers). Bit-identical at 1 and 2 threads, resume after kill -9 inside
# the stage ends bit-identical, metrics and plot, and bad inputs (a teacher
# of another vocabulary or tokenizer, a missing teacher, bad parameters)
# refused with one line.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
trap 'kill -9 $(jobs -p) 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT

teacher_cfg=$(sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 400/' tests/golden/v3_f32/config.json | tr -d '\n')
student_cfg=$(sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 400/' tests/golden/v3_noqlora_f32/config.json | tr -d '\n')
wide_cfg=$(sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 512/' tests/golden/v3_noqlora_f32/config.json | tr -d '\n')
dist='"steps": 12, "batch": 4, "micro_batch": 2, "seq": 96, "lr": 0.003, "temperature": 2, "seed": 3, "save_every": 2, "log_every": 1'
write_recipe() { # $1: sha256 field of the text input; $2: the distill stage's members
cat > "$tmp/r.json" <<JSON
{"lemma_recipe": 1, "name": "tiny-distill",
 "inputs": {"text": {"builtin": "synth-text", "seed": 4, "lines": 600$1}},
 "stages": [
  {"name": "tok", "kind": "tokenizer", "inputs": ["text"], "vocab_size": 400},
  {"name": "tok2", "kind": "tokenizer", "inputs": ["text"], "vocab_size": 300},
  {"name": "data", "kind": "data", "inputs": ["text", "tok"], "doc_sep": "line", "val_fraction": 0.05},
  {"name": "data2", "kind": "data", "inputs": ["text", "tok2"], "doc_sep": "line", "val_fraction": 0.05},
  {"name": "teacher", "kind": "pretrain", "inputs": ["data", "tok"], "config": $teacher_cfg,
   "steps": 4, "batch": 2, "seq": 64, "lr": 0.003, "eval_batches": 1},
  {"name": "seqstudent", "kind": "distill", "inputs": ["data", "teacher", "tok"], "mode": "sequence",
   "config": $student_cfg, "steps": 8, "batch": 4, "seq": 48, "max_tokens": 24, "sample_temperature": 1,
   "top_p": 0.9, "lr": 0.003, "seed": 5, "save_every": 2, "log_every": 1},
  {"name": "student", "kind": "distill", $2}
 ]}
JSON
}
good="\"inputs\": [\"data\", \"teacher\", \"tok\"], \"config\": $student_cfg, $dist"
h=""
for i in 1 2; do
    write_recipe "$h" "$good"
    "$LEMMA" build "$tmp/r.json" --out "$tmp/a" --quiet >"$tmp/out" 2>&1 && break
    sha=$(grep -o 'hashes to [0-9a-f]\{64\}' "$tmp/out" | awk '{print $3}')
    [ -n "$sha" ] || break
    h=", \"sha256\": \"$sha\""
done
check "the recipe with a distill stage builds" test -f "$tmp/a/student/model.safetensors"
[ -f "$tmp/a/student/model.safetensors" ] || sed 's/^/  /' "$tmp/out" | head
check "the stage folder is a model" "$LEMMA" info "$tmp/a/student"
check "...with the tokenizer" cmp "$tmp/a/tok/tokenizer.json" "$tmp/a/student/tokenizer.json"
check "...of the student's config" sh -c "grep -q '\"hidden_size\":32' '$tmp/a/student/config.json'"
check "the final checkpoint is kept" test -f "$tmp/a/student/latest/optim_m.safetensors"
check "metrics.jsonl has a line per step" test "$(wc -l <"$tmp/a/student/metrics.jsonl")" -eq 12
check "the distillation loss falls" python3 - "$tmp/a/student/metrics.jsonl" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert all(r["loss"] > 0 and r["tokens_per_s"] > 0 and r["temperature"] == 2 for r in rs), rs
assert rs[-1]["loss"] < 0.8 * rs[0]["loss"], (rs[0]["loss"], rs[-1]["loss"])
PY
check "the plot is written" grep -q '<svg' "$tmp/a/student/distill.svg"
check "the student generates" "$LEMMA" generate "$tmp/a/student" --prompt "12 plus" --max-tokens 4 --seed 1

check "sequence distillation builds a model" "$LEMMA" info "$tmp/a/seqstudent"
check "...trained on the teacher's answers" python3 - "$tmp/a/seqstudent/metrics.jsonl" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert len(rs) == 8, len(rs)
assert all(r["answer_tokens"] > 0 and r["distilled"] > 0 and r["loss"] > 0 and r["sample_s"] >= 0 for r in rs), rs
PY

# 1 and 2 threads: the same bytes
check "2 threads build the same lock" "$LEMMA" build "$tmp/r.json" --out "$tmp/b" --threads 2 --quiet
check "...bit-identical to 1 thread" cmp "$tmp/a/lemma.lock" "$tmp/b/lemma.lock"

# kill -9 inside the stage, after a checkpoint, then build again: resumes and ends bit-identical
LEMMA_TEST_CRASH_AFTER_CHECKPOINT=student:2 "$LEMMA" build "$tmp/r.json" --out "$tmp/k" >"$tmp/k.out" 2>&1; rc=$?
seen=0
[ $rc -eq 137 ] && ls -d "$tmp"/k/.student.partial-*/ckpt-00000002 >/dev/null 2>&1 && seen=1
[ $seen -eq 1 ] && [ ! -e "$tmp/k/student" ] && ok "killed inside the stage after its step-2 checkpoint" \
    || bad "killed inside the stage after its step-2 checkpoint (seen=$seen)"
check "the build after kill -9 succeeds" sh -c "'$LEMMA' build '$tmp/r.json' --out '$tmp/k' >'$tmp/k2.out' 2>&1"
check "...resuming the stage from its checkpoint" grep -q 'resuming student at step 2 of 12' "$tmp/k2.out"
check "...and ends bit-identical to the uninterrupted build" cmp "$tmp/a/lemma.lock" "$tmp/k/lemma.lock"
check "...with one metrics line per step" test "$(wc -l <"$tmp/k/student/metrics.jsonl")" -eq 12

# the same inside the sequence-distillation stage (the teacher's sampling included)
rm -rf "$tmp/k"
LEMMA_TEST_CRASH_AFTER_CHECKPOINT=seqstudent:2 "$LEMMA" build "$tmp/r.json" --out "$tmp/k" >"$tmp/k.out" 2>&1; rc=$?
seen=0
[ $rc -eq 137 ] && ls -d "$tmp"/k/.seqstudent.partial-*/ckpt-00000002 >/dev/null 2>&1 && seen=1
[ $seen -eq 1 ] && [ ! -e "$tmp/k/seqstudent" ] && ok "killed inside the sequence stage after its step-2 checkpoint" \
    || bad "killed inside the sequence stage after its step-2 checkpoint (seen=$seen)"
check "the build after kill -9 succeeds" sh -c "'$LEMMA' build '$tmp/r.json' --out '$tmp/k' >'$tmp/k2.out' 2>&1"
check "...resuming the sequence stage" grep -q 'resuming seqstudent at step 2 of 8' "$tmp/k2.out"
check "...and ends bit-identical to the uninterrupted build" cmp "$tmp/a/lemma.lock" "$tmp/k/lemma.lock"

# top-k, and a student that starts from a model stage (the teacher itself: KL 0 at the start)
write_recipe "$h" "\"inputs\": [\"data\", \"teacher\", \"tok\"], \"config\": $student_cfg, $dist, \"top_k\": 8"
check "a top-k distillation builds" "$LEMMA" build "$tmp/r.json" --out "$tmp/b" --quiet
check "...to other weights than the full one" sh -c "! cmp -s '$tmp/a/student/model.safetensors' '$tmp/b/student/model.safetensors'"
cat > "$tmp/self.py" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert abs(rs[0]["loss"]) < 1e-6 and rs[0]["grad_norm"] < 1e-4, rs[0]
PY
python3 - "$tmp/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["stages"].insert(6, dict(r["stages"][4], name="start"))
s = r["stages"][-1]; del s["config"]; s["inputs"] = ["data", "teacher", "start"]; s["teacher"] = "teacher"
json.dump(r, open(sys.argv[1], "w"))
PY
check "a student starting from a copy of the teacher builds" "$LEMMA" build "$tmp/r.json" --out "$tmp/b" --quiet
check "...its first step has loss and gradient 0" python3 "$tmp/self.py" "$tmp/b/student/metrics.jsonl"

# bad parameters and inputs: one clear line each
cp -r "$tmp/a" "$tmp/bad"
bad_param() { # name, stage members, expected message
    write_recipe "$h" "$2"
    check_fails "$1" "$3" "$LEMMA" build "$tmp/r.json" --out "$tmp/bad" --quiet
}
bad_param "a student of another vocabulary refused" \
    "\"inputs\": [\"data\", \"teacher\"], \"config\": $wide_cfg, $dist" \
    "the teacher's vocabulary has 400 tokens, the student's 512: distillation needs the same tokenizer"
bad_param "data of another tokenizer refused" \
    "\"inputs\": [\"data2\", \"teacher\"], \"config\": $student_cfg, $dist" \
    "the teacher's tokenizer (.*) is not the one the data was made with"
bad_param "a teacher that is not an input refused" \
    "\"inputs\": [\"data\", \"teacher\"], \"teacher\": \"prover\", \"config\": $student_cfg, $dist" \
    '"teacher": "prover" is not a model stage among the inputs'
bad_param "no teacher refused" "\"inputs\": [\"data\", \"tok\"], \"config\": $student_cfg" \
    'a distill stage takes one data stage, the teacher'
bad_param "no student refused" "\"inputs\": [\"data\", \"teacher\"], $dist" \
    'the student is either "config" (a new model) or a second model stage among the inputs, and there is neither'
bad_param "temperature 0 refused" "\"inputs\": [\"data\", \"teacher\"], \"config\": $student_cfg, \"temperature\": 0" \
    '"temperature": expected a number in \[0.001, 1000\]'
bad_param "a negative top_k refused" "\"inputs\": [\"data\", \"teacher\"], \"config\": $student_cfg, \"top_k\": -1" \
    '"top_k": expected an integer'
bad_param "an unknown key refused" "\"inputs\": [\"data\", \"teacher\"], \"config\": $student_cfg, \"tau\": 2" \
    'unknown key "tau" for a distill stage'
bad_param "temperature in sequence mode refused" \
    "\"inputs\": [\"data\", \"teacher\"], \"config\": $student_cfg, \"mode\": \"sequence\", \"temperature\": 2" \
    '"temperature" is for "mode": "logits"'
bad_param "max_tokens in logits mode refused" "\"inputs\": [\"data\", \"teacher\"], \"config\": $student_cfg, \"max_tokens\": 9" \
    '"max_tokens" is for "mode": "sequence"'
bad_param "an unknown mode refused" "\"inputs\": [\"data\", \"teacher\"], \"config\": $student_cfg, \"mode\": \"soft\"" \
    '"mode": expected "logits" or "sequence"'
bad_param "a sequence student of another vocabulary refused" \
    "\"inputs\": [\"data\", \"teacher\"], \"config\": $wide_cfg, \"mode\": \"sequence\", \"steps\": 2" \
    "the teacher's vocabulary has 400 tokens, the student's 512"
bad_param "micro_batch not dividing the batch refused" \
    "\"inputs\": [\"data\", \"teacher\"], \"config\": $student_cfg, \"batch\": 4, \"micro_batch\": 3" \
    '"micro_batch" 3 must divide "batch" 4'
check "the failed builds left the built stage alone" cmp "$tmp/a/student/model.safetensors" "$tmp/bad/student/model.safetensors"

# recipes/distill.json is the default recipe up to its prover plus the student
# stage (docs/results.md's distillation row): its copy must not drift, and its
# student stage, shrunk to this toy's vocabulary and a few steps, must run as
# written (every key accepted by the stage, the config a model)
check "recipes/distill.json repeats recipes/default.json's inputs and stages up to the prover" python3 - <<'PY'
import json
d, v = json.load(open("recipes/default.json")), json.load(open("recipes/distill.json"))
assert v["inputs"] == d["inputs"], "inputs differ"
upto = [s["name"] for s in d["stages"]].index("prover") + 1
assert v["stages"][:-1] == d["stages"][:upto], "stages differ"
s = v["stages"][-1]
assert s["kind"] == "distill" and "prover" in s["inputs"] and "data-sft" in s["inputs"], s["inputs"]
teacher = next(t for t in d["stages"] if t["name"] == "pretrain")["config"]
assert s["config"]["hidden_size"] < teacher["hidden_size"], "the student is not smaller than its teacher"
PY
write_recipe "$h" "$good"
python3 - "$tmp/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = json.load(open("recipes/distill.json"))["stages"][-1]
s.update(inputs=["data", "teacher", "tok"], steps=2, batch=2, seq=48, save_every=0)
s["config"]["vocab_size"] = 400
r["stages"][-1] = s
json.dump(r, open(sys.argv[1], "w"))
PY
check "recipes/distill.json's student stage builds (toy vocabulary, 2 steps)" \
    "$LEMMA" build "$tmp/r.json" --out "$tmp/a" --quiet
check "...a model of the student's config" sh -c "grep -q '\"hidden_size\":64' '$tmp/a/student/config.json'"

echo "test_build_distill.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
