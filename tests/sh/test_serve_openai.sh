#!/usr/bin/env bash
# test_serve_openai.sh — `lemma serve` with the official `openai` npm
# package (Node from Debian): chat, stream, n, stop, logprobs, the reasoning
# split, usage, completions, models, errors. The package is installed by this
# set-up, pinned, into build/node-openai (never committed); without Node or
# the npm registry the test is skipped with a message.
set -u
cd "$(dirname "$0")/../.."
. tests/sh/lib.sh
OPENAI_VERSION=4.95.0
pid=""
cleanup() { [ -n "$pid" ] && { kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; rm -rf "$tmp"; }
trap cleanup EXIT
skip() { echo "skip test_serve_openai.sh: $1"; echo "test_serve_openai.sh: 0 passed, 0 failed, 1 skipped"; exit 0; }
command -v node >/dev/null && command -v npm >/dev/null || skip "node and npm are not installed (apt-get install nodejs npm)"
nm=build/node-openai
if [ "$(node -p "try { require('./$nm/node_modules/openai/package.json').version } catch (e) { '' }" 2>/dev/null)" != $OPENAI_VERSION ]; then
    mkdir -p "$nm"
    timeout 180 npm install --prefix "$nm" --no-audit --no-fund --no-save --silent "openai@$OPENAI_VERSION" >"$tmp/npm.log" 2>&1 ||
        skip "npm could not install openai@$OPENAI_VERSION (registry unreachable?): $(tail -n 1 "$tmp/npm.log")"
fi

# the model, as test_serve.sh
cat src/*/*.c src/*/*.h >"$tmp/corpus.txt"
"$LEMMA" tokenizer train "$tmp/corpus.txt" --vocab 600 --out "$tmp/m" --quiet || { echo "tokenizer train failed"; exit 1; }
vocab=$("$LEMMA" tokenizer info "$tmp/m" | sed -nE '1s/^BPE, ([0-9]+) ids.*/\1/p')
sed -E "s/\"vocab_size\": *[0-9]+/\"vocab_size\": $vocab/" tests/golden/v3_f32/config.json >"$tmp/config.json"
"$LEMMA" init "$tmp/config.json" --out "$tmp/m" --seed 3 --std 0.3 2>/dev/null || { echo "init failed"; exit 1; }

LEMMA_API_KEY=k3y "$LEMMA" serve "$tmp/m" --port 0 --threads 1 --ctx 1024 >"$tmp/serve.log" 2>&1 & pid=$!
port=""
for _ in $(seq 1 600); do
    port=$(sed -nE 's/^lemma serve: ready: http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$tmp/serve.log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
[ -n "$port" ] || { echo "the server did not start:"; cat "$tmp/serve.log"; echo "test_serve_openai.sh: 0 passed, 1 failed, 0 skipped"; exit 1; }

cat >"$tmp/client.cjs" <<'EOF'
const OpenAI = require(process.argv[2]);
const base = `http://127.0.0.1:${process.argv[3]}/v1`;
const client = new OpenAI({ baseURL: base, apiKey: "k3y", maxRetries: 0, timeout: 60000 });
let failed = 0;
const ok = (name, cond, detail) => {
  if (cond) console.log(`ok   ${name}`);
  else { failed++; console.log(`FAIL ${name}${detail ? ": " + JSON.stringify(detail).slice(0, 400) : ""}`); }
};
const user = (content) => [{ role: "user", content }];
async function streamed(params) {
  const s = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  const out = { content: {}, reasoning: {}, finish: {}, usage: null, logprobs: {} };
  for await (const chunk of s) {
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.content) out.content[c.index] = (out.content[c.index] || "") + c.delta.content;
      if (c.delta.reasoning_content) out.reasoning[c.index] = (out.reasoning[c.index] || "") + c.delta.reasoning_content;
      if (c.finish_reason) out.finish[c.index] = c.finish_reason;
      if (c.logprobs && c.logprobs.content) (out.logprobs[c.index] ||= []).push(...c.logprobs.content);
    }
  }
  return out;
}
(async () => {
  const models = await client.models.list();
  ok("models.list names the served model", models.data.length === 1 && models.data[0].id === "lemma", models.data);

  const p = { model: "lemma", messages: user("Is 91 prime?"), max_tokens: 30, seed: 4, temperature: 1 };
  const whole = await client.chat.completions.create(p);
  const m = whole.choices[0].message;
  ok("chat: an assistant message and usage", m.role === "assistant" && typeof m.content === "string" &&
     whole.usage.prompt_tokens > 0 && whole.usage.completion_tokens > 0 &&
     whole.usage.total_tokens === whole.usage.prompt_tokens + whole.usage.completion_tokens, whole);
  const st = await streamed(p);
  ok("stream: the same text, finish_reason and usage", (st.content[0] || "") === m.content &&
     st.finish[0] === whole.choices[0].finish_reason && st.usage && st.usage.completion_tokens === whole.usage.completion_tokens,
     { st, whole });

  const n = await client.chat.completions.create({ ...p, n: 3 });
  const again = await client.chat.completions.create({ ...p, seed: 6 });
  ok("n = 3: three choices; choice 2 equals seed + 2 alone", n.choices.length === 3 &&
     n.choices.map((c) => c.index).join() === "0,1,2" && n.choices[2].message.content === again.choices[0].message.content,
     n.choices.map((c) => c.message.content));
  const sn = await streamed({ ...p, n: 3 });
  ok("n = 3 streamed equals n = 3 whole", [0, 1, 2].every((i) => (sn.content[i] || "") === n.choices[i].message.content));

  const free = m.content;
  const stop = free.slice(3, 5);
  if (stop.length === 2) {
    const cut = await client.chat.completions.create({ ...p, stop: [stop] });
    ok("stop: cut before the first match, finish_reason stop",
       cut.choices[0].message.content === free.slice(0, free.indexOf(stop)) && cut.choices[0].finish_reason === "stop", cut.choices[0]);
  } else ok("stop: a free answer long enough to pick a stop string", false, free);

  const lp = await client.chat.completions.create({ ...p, logprobs: true, top_logprobs: 2 });
  const entries = lp.choices[0].logprobs && lp.choices[0].logprobs.content;
  ok("logprobs: one entry per token with 2 alternatives", Array.isArray(entries) &&
     entries.length === lp.usage.completion_tokens && entries.every((e) => e.top_logprobs.length === 2 && e.logprob <= 0 &&
     Array.isArray(e.bytes)), entries && entries.slice(0, 2));
  const slp = await streamed({ ...p, logprobs: true, top_logprobs: 2 });
  ok("logprobs streamed: the same tokens", JSON.stringify((slp.logprobs[0] || []).map((e) => e.token)) ===
     JSON.stringify(entries.map((e) => e.token)));

  const think = { ...p, chat_template_kwargs: { thinking: true } };
  const tw = await client.chat.completions.create(think);
  const tm = tw.choices[0].message;
  ok("reasoning split: reasoning_content and reasoning in the message", typeof tm.reasoning_content === "string" &&
     tm.reasoning === tm.reasoning_content && tm.reasoning_content.length + tm.content.length > 0, tm);
  const ts = await streamed(think);
  ok("reasoning split streamed: the same reasoning and content", (ts.reasoning[0] || "") === tm.reasoning_content &&
     (ts.content[0] || "") === tm.content, { ts, tm });

  const c = await client.completions.create({ model: "lemma", prompt: "int main", max_tokens: 10, temperature: 0, logprobs: 2 });
  ok("completions: text, logprobs and usage", typeof c.choices[0].text === "string" && c.usage.completion_tokens === 10 &&
     c.choices[0].logprobs.tokens.length === 10, c);

  try {
    await client.chat.completions.create({ ...p, temperature: 5 });
    ok("a bad field is a 400 BadRequestError naming it", false);
  } catch (e) {
    ok("a bad field is a 400 BadRequestError naming it", e instanceof OpenAI.BadRequestError && e.status === 400 &&
       e.param === "temperature", { status: e.status, param: e.param, message: e.message });
  }
  try {
    await new OpenAI({ baseURL: base, apiKey: "wrong", maxRetries: 0 }).models.list();
    ok("a wrong key is an AuthenticationError", false);
  } catch (e) {
    ok("a wrong key is an AuthenticationError", e instanceof OpenAI.AuthenticationError && e.status === 401, e.message);
  }
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.log(`FAIL unexpected: ${e && e.stack}`); process.exit(1); });
EOF
node "$tmp/client.cjs" "$PWD/$nm/node_modules/openai" "$port" >"$tmp/client.out" 2>&1
cat "$tmp/client.out"
passed=$(grep -c '^ok ' "$tmp/client.out"); failed=$(grep -c '^FAIL ' "$tmp/client.out")
[ "$passed" -eq 0 ] && failed=$((failed + 1))
kill -TERM "$pid"; wait "$pid"; rc=$?; pid=""
[ $rc -eq 0 ] && ok "the server exits 0 on SIGTERM" || { bad "the server exits 0 on SIGTERM (rc $rc)"; tail -5 "$tmp/serve.log"; }
echo "test_serve_openai.sh: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
