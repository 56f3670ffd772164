// Load client for `lemma serve` (bench/serve_bench.sh): C concurrent streaming
// chat clients over loopback, plain node:http (no dependencies).
//
//   node bench/serve_load.mjs --url http://127.0.0.1:PORT [--clients 64] [--prompt 128]
//        [--max-tokens 64] [--seed 1] [--timeout 300] [--key KEY] [--ignore-eos 1] [--temperature 1]
//
// Every client sends one POST /v1/chat/completions with "stream": true,
// "stream_options": {"include_usage": true}, max_tokens, "ignore_eos": true,
// temperature 1 (--temperature) and seed + client number, and a user message of distinct words sized so the
// rendered prompt is about --prompt tokens (calibrated first with two
// non-streamed requests of max_tokens 1, from their usage.prompt_tokens).
// All clients start together; measured per client: time to first token (the
// first chunk with content or reasoning text), the gaps between later
// content chunks (inter-token latency), usage.completion_tokens.
//
// Prints ONE JSON line: clients, ok, errors, prompt_tokens (mean over the
// clients' usage), completion_tokens (total), wall_s (first request sent to
// last stream ended), agg_tok_s (completion tokens / wall_s), ttft_ms and
// itl_ms {p50, p99, max}, client_cpu_s (the CPU time this client used: on a
// small machine it competes with the server).  Exit 1 if any request failed.

import http from "node:http";

function die(msg) {
    process.stderr.write(`serve_load: ${msg}\n`);
    process.exit(2);
}
const opt = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith("--") || i + 1 >= argv.length) die(`bad argument ${argv[i]}`);
    opt[argv[i].slice(2)] = argv[++i];
}
const url = new URL(opt.url ?? die("--url is required"));
const clients = parseInt(opt.clients ?? "64", 10);
const promptTarget = parseInt(opt.prompt ?? "128", 10);
const maxTokens = parseInt(opt["max-tokens"] ?? "64", 10);
const seed = parseInt(opt.seed ?? "1", 10);
const timeoutS = parseFloat(opt.timeout ?? "300");
// lemma serve's extension (as vLLM's): every client gets exactly --max-tokens, the
// same work as `lemma bench --batch`; --ignore-eos 0 for a server without it.
const ignoreEos = (opt["ignore-eos"] ?? "1") !== "0";
const temperature = parseFloat(opt.temperature ?? "1");
if (!(clients >= 1 && clients <= 4096 && promptTarget >= 1 && maxTokens >= 1)) die("bad --clients/--prompt/--max-tokens");

const agent = new http.Agent({ keepAlive: true, maxSockets: clients + 4 });
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

// Words for the prompts: distinct per client (xorshift), so no two prompts share a prefix.
const WORDS = ("theorem proof lemma prime integer divides square root bound inequality triangle angle " +
    "circle polynomial degree coefficient sequence limit series converges function continuous derivative " +
    "integral matrix vector eigenvalue group ring field modulo residue parity induction contradiction case " +
    "assume suppose therefore hence since because follows shows every exists unique finite infinite set").split(" ");
function words(n, s) {
    let x = (s * 2654435761) >>> 0 || 1;
    const out = [];
    for (let i = 0; i < n; i++) {
        x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
        out.push(WORDS[x % WORDS.length]);
    }
    return out.join(" ");
}

function body(text, k, stream, max) {
    return JSON.stringify({
        model: "lemma",
        messages: [{ role: "user", content: text }],
        max_tokens: max,
        ...(ignoreEos ? { ignore_eos: true } : {}),
        temperature,
        seed: seed + k,
        stream,
        ...(stream ? { stream_options: { include_usage: true } } : {}),
    });
}

function post(payload, onChunk) {
    return new Promise((resolve, reject) => {
        const req = http.request({
            hostname: url.hostname, port: url.port, path: "/v1/chat/completions", method: "POST", agent,
            headers: {
                "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload),
                ...(opt.key ? { Authorization: `Bearer ${opt.key}` } : {}),
            },
        }, (res) => {
            let buf = "";
            res.setEncoding("utf8");
            res.on("data", (d) => {
                if (!onChunk || res.statusCode !== 200) { buf += d; return; }
                buf += d;
                let i;
                while ((i = buf.indexOf("\n\n")) >= 0) {
                    const ev = buf.slice(0, i);
                    buf = buf.slice(i + 2);
                    for (const line of ev.split("\n"))
                        if (line.startsWith("data: ")) onChunk(line.slice(6));
                }
            });
            res.on("end", () => resolve({ status: res.statusCode, text: buf }));
            res.on("error", reject);
        });
        req.setTimeout(timeoutS * 1000, () => req.destroy(new Error(`no answer within ${timeoutS} s`)));
        req.on("error", reject);
        req.end(payload);
    });
}

// Calibration: words per prompt token, from the server's own usage counts.
async function promptTokens(nWords) {
    const r = await post(body(words(nWords, 999), 0, false, 1));
    if (r.status !== 200) throw new Error(`calibration request: HTTP ${r.status}: ${r.text.slice(0, 200)}`);
    return JSON.parse(r.text).usage.prompt_tokens;
}
let nWords = promptTarget;
try {
    let got = await promptTokens(nWords);
    for (let it = 0; it < 3 && got !== promptTarget; it++) {
        const base = await promptTokens(1);         // the template's own tokens and one word
        const per = (got - base) / Math.max(1, nWords - 1);
        nWords = Math.max(1, Math.round(1 + (promptTarget - base) / Math.max(per, 1e-3)));
        got = await promptTokens(nWords);
    }
} catch (e) {
    die(e.message);
}

function pct(xs, p) {
    if (xs.length === 0) return null;
    const s = [...xs].sort((a, b) => a - b);
    return +s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))].toFixed(2);
}

async function client(k, t0) {
    const st = { ttft: null, gaps: [], completion: 0, prompt: 0, error: null };
    let last = null;
    const sent = now();
    try {
        const r = await post(body(words(nWords, k + 1), k, true, maxTokens), (data) => {
            if (data === "[DONE]") return;
            let c;
            try { c = JSON.parse(data); } catch { st.error = `bad chunk ${data.slice(0, 80)}`; return; }
            if (c.usage) { st.completion = c.usage.completion_tokens; st.prompt = c.usage.prompt_tokens; }
            const d = c.choices?.[0]?.delta;
            if (!d) return;
            const txt = (d.content ?? "") + (d.reasoning_content ?? "");
            if (txt.length === 0) return;
            const t = now();
            if (st.ttft === null) st.ttft = t - sent;
            else st.gaps.push(t - last);
            last = t;
        });
        if (r.status !== 200) st.error = `HTTP ${r.status}: ${r.text.slice(0, 160)}`;
    } catch (e) {
        st.error = e.message;
    }
    st.end = now() - t0;
    return st;
}

const t0 = now();
const cpu0 = process.cpuUsage();
const res = await Promise.all(Array.from({ length: clients }, (_, k) => client(k, t0)));
const wall = (Math.max(...res.map((r) => r.end))) / 1000;
const cpu = process.cpuUsage(cpu0);
agent.destroy();
const good = res.filter((r) => !r.error);
const errors = res.filter((r) => r.error);
for (const e of errors.slice(0, 3)) process.stderr.write(`serve_load: ${e.error}\n`);
const completion = good.reduce((a, r) => a + r.completion, 0);
const out = {
    clients, ok: good.length, errors: errors.length,
    prompt_words: nWords,
    prompt_tokens: good.length ? +(good.reduce((a, r) => a + r.prompt, 0) / good.length).toFixed(1) : null,
    max_tokens: maxTokens,
    completion_tokens: completion,
    wall_s: +wall.toFixed(3),
    agg_tok_s: +(completion / wall).toFixed(1),
    client_cpu_s: +((cpu.user + cpu.system) / 1e6).toFixed(3),   // this client's own share of the cores
    ttft_ms: { p50: pct(good.map((r) => r.ttft ?? NaN).filter((x) => !isNaN(x)), 50),
               p99: pct(good.map((r) => r.ttft ?? NaN).filter((x) => !isNaN(x)), 99),
               max: pct(good.map((r) => r.ttft ?? NaN).filter((x) => !isNaN(x)), 100) },
    itl_ms: { p50: pct(good.flatMap((r) => r.gaps), 50), p99: pct(good.flatMap((r) => r.gaps), 99),
              max: pct(good.flatMap((r) => r.gaps), 100) },
};
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(errors.length ? 1 : 0);
