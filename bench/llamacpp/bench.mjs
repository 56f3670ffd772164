// llama.cpp anchor for lemma's benchmarks, through node-llama-cpp's prebuilt
// CPU binaries (no GPU, never builds from source, never downloads).
//
//   node bench.mjs bench  --model M.gguf --threads N [--prompt 512] [--gen 128] [--reps 3] [--seed 1]
//       one JSON line on stdout: {"prefill_tok_s", "decode_tok_s", "llama_cpp", ...}
//   node bench.mjs batched --model M.gguf --threads N [--batch 1,4,16,64] [--prompt 128] [--gen 64]
//                  [--reps 1] [--ubatch 512] [--fa auto|on|off] [--check-queue 1]
//       one JSON line per batch size B: {"batch", "prefill_tok_s", "decode_tok_s", ...}, aggregate
//       over the B sequences, timed as llama-batched-bench: prefill B prompts of --prompt random
//       ids (B*P tokens packed into llama_decode calls of up to --ubatch tokens, logits for each
//       prompt's last token), then --gen steps, each ONE llama_decode carrying one token for each
//       of the B sequences (logits for all B).  --check-queue 1 also runs a few steps through
//       node-llama-cpp's public API (B sequences evaluating concurrently) and counts the
//       llama_decode calls its batching queue makes (decode_calls_per_step: 1 = batched).
//   node bench.mjs load --model M.gguf [--reps 3] [--threads N]
//       one JSON line: {"load_s", "context_s", ...}: median seconds of llama_model_load (mmap,
//       tensor checks; what a GGUF costs llama.cpp before the first token) and of creating a
//       4096-token context, over --reps loads (the first one, timed too, follows the export so
//       the file is in the page cache).
//   node bench.mjs logits --model M.gguf --ids 1,5,9 --out FILE [--threads N]
//       FILE: raw little-endian float32 [T, vocab], log-softmax of llama.cpp's
//       logits at every position (each position evaluated with its logits kept).
//
// Timing follows llama-bench: F16 KV cache, flash attention "auto", an untimed
// warm-up, then per rep: clear the cache, time one prefill of --prompt random
// ids (fed in ubatches of 512, logits of the last token only), or --gen
// single-token decode steps from an empty cache (each step computes logits,
// nothing is sampled).  Median over reps.
//
// node-llama-cpp is located through LLAMACPP_NODE_DIR (a directory holding
// node_modules/node-llama-cpp); bench/llamacpp_bench.sh sets it up.

import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { readFileSync, writeFileSync } from "node:fs";

function die(msg, code = 1) {
    process.stderr.write(`bench.mjs: ${msg}\n`);
    process.exit(code);
}

const argv = process.argv.slice(2);
const mode = argv.shift();
const opt = {};
for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) die(`unexpected argument ${a}`);
    opt[a.slice(2)] = argv[++i];
}
if (mode !== "bench" && mode !== "logits" && mode !== "batched" && mode !== "load")
    die("usage: bench.mjs bench|batched|logits|load --model M.gguf ...");
if (!opt.model) die("--model is required");

const threads = parseInt(opt.threads ?? "1", 10);
const nodeDir = resolve(process.env.LLAMACPP_NODE_DIR ?? "build/llamacpp-node");
const pkgDir = join(nodeDir, "node_modules", "node-llama-cpp");
let nlc;
try {
    nlc = await import(pathToFileURL(join(pkgDir, "dist", "index.js")).href);
} catch (e) {
    die(`node-llama-cpp not found under ${nodeDir} (${e.message})`, 3);
}
const pkgVersion = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")).version;
let llamaRelease = "unknown";
try {
    llamaRelease = JSON.parse(readFileSync(join(pkgDir, "llama", "binariesGithubRelease.json"), "utf8")).release;
} catch { /* keep unknown */ }

// Log at "log" to learn which CPU variant of ggml was loaded and whether
// flash attention ended up enabled; pass on only what LLAMACPP_LOG asks for.
const levels = ["disabled", "fatal", "error", "warn", "info", "log", "debug"];
const wanted = Math.max(0, levels.indexOf(process.env.LLAMACPP_LOG ?? "error"));
const seen = { cpu: null, fa: null };
const llama = await nlc.getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: wanted > 5 ? levels[wanted] : "log",
    logger: (level, message) => {
        let m = /loaded CPU backend from .*libggml-cpu-([\w-]+)\.so/.exec(message);
        if (m) seen.cpu = m[1];
        m = /Flash Attention (enabled|disabled)/i.exec(message);
        if (m) seen.fa = m[1].toLowerCase();
        const li = levels.indexOf(level);
        if (li >= 0 && li <= wanted) process.stderr.write(`[llama.cpp ${level}] ${message.trimEnd()}\n`);
    },
    maxThreads: 0,   // "threads" below is then exactly the number used
});
const loadStart = performance.now();
const model = await llama.loadModel({ modelPath: resolve(opt.model), gpuLayers: 0 });
const firstLoadS = (performance.now() - loadStart) / 1000;

function median(xs) {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// xorshift32, so runs are reproducible
function rng(seed) {
    let x = (seed >>> 0) || 1;
    return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

if (mode === "bench") {
    const P = parseInt(opt.prompt ?? "512", 10);
    const G = parseInt(opt.gen ?? "128", 10);
    const reps = parseInt(opt.reps ?? "3", 10);
    const UB = 512;
    const ctxSize = P + G;
    const context = await model.createContext({
        contextSize: ctxSize,
        batchSize: UB,
        sequences: 1,
        flashAttention: "auto",
        threads: { ideal: threads, min: threads },
        // KV cache: node-llama-cpp's default, F16 (as llama-bench's default)
    });
    const seq = context.getSequence();
    const ctx = context._ctx;           // the addon's context: llama_decode with no JS batching layer
    const sid = seq._sequenceId;
    ctx.setThreads(threads);
    const vocab = parseInt(opt.vocab ?? "0", 10) || nVocabFromModel(model);
    const next = rng(parseInt(opt.seed ?? "1", 10));
    const tok = () => next() % vocab;

    const clear = () => { ctx.removeTokenCellsFromSequence(sid, -1, -1); };
    async function decode(tokens, pos0, wantLast) {
        ctx.initBatch(tokens.length);
        ctx.addToBatch(sid, pos0, Uint32Array.from(tokens),
            wantLast ? Uint32Array.of(tokens.length - 1) : new Uint32Array(0));
        await ctx.decodeBatch();
    }
    async function prefill(n) {
        const ids = Array.from({ length: n }, tok);
        for (let i = 0; i < n; i += UB) {
            const chunk = ids.slice(i, Math.min(n, i + UB));
            await decode(chunk, i, i + UB >= n);
        }
    }
    async function gen(n) {
        for (let i = 0; i < n; i++) await decode([tok()], i, true);
    }
    const now = () => Number(process.hrtime.bigint()) / 1e9;
    // CPU seconds of the whole process (llama.cpp's threads included): on a
    // shared machine the per-CPU-second rate is what time-sharing does not distort
    const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

    const res = { prefill_tok_s: null, decode_tok_s: null, prefill_tok_cpu_s: null, decode_tok_cpu_s: null };
    if (P > 0) {
        clear(); await prefill(Math.min(P, UB));          // warm-up, untimed
        const ts = [], cs = [];
        for (let r = 0; r < reps; r++) {
            clear();
            const t0 = now(), c0 = cpu(); await prefill(P); ts.push(now() - t0); cs.push(cpu() - c0);
        }
        res.prefill_tok_s = P / median(ts);
        res.prefill_tok_cpu_s = P / median(cs);
        res.prefill_s = ts;
    }
    if (G > 0) {
        clear(); await gen(1);                             // warm-up, untimed
        const ts = [], cs = [];
        for (let r = 0; r < reps; r++) {
            clear();
            const t0 = now(), c0 = cpu(); await gen(G); ts.push(now() - t0); cs.push(cpu() - c0);
        }
        res.decode_tok_s = G / median(ts);
        res.decode_tok_cpu_s = G / median(cs);
        res.decode_s = ts;
    }
    clear();
    const out = {
        prefill_tok_s: res.prefill_tok_s === null ? null : +res.prefill_tok_s.toFixed(2),
        decode_tok_s: res.decode_tok_s === null ? null : +res.decode_tok_s.toFixed(2),
        prefill_tok_cpu_s: res.prefill_tok_cpu_s === null ? null : +res.prefill_tok_cpu_s.toFixed(2),
        decode_tok_cpu_s: res.decode_tok_cpu_s === null ? null : +res.decode_tok_cpu_s.toFixed(2),
        llama_cpp: llamaRelease,
        node_llama_cpp: pkgVersion,
        threads, prompt: P, gen: G, reps,
        flash_attention: seen.fa ?? String(context.flashAttention),
        kv_cache: "f16",
        ggml_cpu: seen.cpu,
    };
    process.stdout.write(JSON.stringify(out) + "\n");
    await context.dispose();
} else if (mode === "batched") {
    const Bs = (opt.batch ?? "1,4,16,64").split(",").map((x) => parseInt(x, 10));
    if (Bs.some((b) => !(b >= 1 && b <= 1024))) die("--batch: a list of sizes in [1, 1024]");
    const P = parseInt(opt.prompt ?? "128", 10);
    const G = parseInt(opt.gen ?? "64", 10);
    const reps = parseInt(opt.reps ?? "1", 10);
    const UB = parseInt(opt.ubatch ?? "512", 10);
    const fa = opt.fa ?? "auto";
    if (!["auto", "on", "off"].includes(fa)) die("--fa: auto, on or off");
    if (!(P >= 1 && G >= 1 && reps >= 1 && UB >= 1)) die("--prompt, --gen, --reps, --ubatch must be >= 1");
    const vocab = parseInt(opt.vocab ?? "0", 10) || nVocabFromModel(model);
    const now = () => Number(process.hrtime.bigint()) / 1e9;
    for (const B of Bs) {
        seen.fa = null;
        const context = await model.createContext({
            contextSize: P + G,              // per sequence (node-llama-cpp gives the addon B times this)
            batchSize: Math.max(UB, B),      // n_batch = n_ubatch: one decode step is one ubatch
            sequences: B,
            flashAttention: fa === "auto" ? "auto" : fa === "on",
            threads: { ideal: threads, min: threads },
        });
        // Holding the sequences reserves ids 0..B-1 so the queue check below can use them.
        const seqs = Array.from({ length: B }, () => context.getSequence());
        const sids = seqs.map((s) => s._sequenceId);
        const ctx = context._ctx;
        ctx.setThreads(threads);
        const next = rng(parseInt(opt.seed ?? "1", 10) + B);
        const tok = () => next() % vocab;
        const clear = () => { for (const sid of sids) ctx.removeTokenCellsFromSequence(sid, -1, -1); };
        let decodeCalls = 0;
        const decodeBatch = async () => { decodeCalls++; await ctx.decodeBatch(); };
        // Prefill: sequence after sequence, P tokens each, packed into ubatches of UB tokens
        // (a ubatch may hold the end of one prompt and the start of the next).
        async function prefill() {
            let inBatch = 0;
            const flush = async () => { if (inBatch) { await decodeBatch(); inBatch = 0; } };
            for (const sid of sids) {
                let pos = 0;
                while (pos < P) {
                    if (inBatch === 0) ctx.initBatch(Math.min(UB, B * P));
                    const n = Math.min(P - pos, UB - inBatch);
                    const ids = Uint32Array.from({ length: n }, tok);
                    const last = pos + n === P ? Uint32Array.of(n - 1) : new Uint32Array(0);
                    ctx.addToBatch(sid, pos, ids, last);
                    pos += n; inBatch += n;
                    if (inBatch === UB) await flush();
                }
            }
            await flush();
        }
        // One decode step: ONE llama_decode with one token for each of the B sequences.
        async function step(pos) {
            ctx.initBatch(B);
            for (const sid of sids) ctx.addToBatch(sid, pos, Uint32Array.of(tok()), Uint32Array.of(0));
            await decodeBatch();
        }
        // Warm-up (untimed): a short prefill and two steps.
        clear();
        await step(0); await step(1); await step(2);
        const pps = [], tgs = [];
        let stepCalls = 0;
        for (let r = 0; r < reps; r++) {
            clear();
            let t0 = now();
            await prefill();
            pps.push(now() - t0);
            const c0 = decodeCalls;
            t0 = now();
            for (let g = 0; g < G; g++) await step(P + g);
            tgs.push(now() - t0);
            stepCalls = decodeCalls - c0;
        }
        const res = {
            batch: B,
            prefill_tok_s: +(B * P / median(pps)).toFixed(2),
            decode_tok_s: +(B * G / median(tgs)).toFixed(2),
            prefill_s: pps, decode_s: tgs,
            decode_calls_per_step: stepCalls / G,
            llama_cpp: llamaRelease, node_llama_cpp: pkgVersion,
            threads, prompt: P, gen: G, reps, ubatch: Math.max(UB, B),
            flash_attention: seen.fa ?? fa, kv_cache: "f16", ggml_cpu: seen.cpu,
        };
        if (opt["check-queue"] === "1") res.queue_check = await queueCheck(context, seqs, ctx, clear, tok);
        process.stdout.write(JSON.stringify(res) + "\n");
        clear();
        for (const s of seqs) s.dispose();
        await context.dispose();
    }
} else if (mode === "load") {
    const reps = Math.max(1, parseInt(opt.reps ?? "3", 10));
    const loads = [firstLoadS], contexts = [];
    for (let r = 0; r < reps; r++) {
        let m = model;
        if (r > 0) {
            const t0 = performance.now();
            m = await llama.loadModel({ modelPath: resolve(opt.model), gpuLayers: 0 });
            loads.push((performance.now() - t0) / 1000);
        }
        const t1 = performance.now();
        const c = await m.createContext({ contextSize: 4096, sequences: 1, flashAttention: "auto",
                                          threads: { ideal: threads, min: threads } });
        contexts.push((performance.now() - t1) / 1000);
        await c.dispose();
        if (r > 0) await m.dispose();
    }
    process.stdout.write(JSON.stringify({ load_s: median(loads), context_s: median(contexts), reps,
        loads_s: loads.map((x) => +x.toFixed(4)), llama_cpp: llamaRelease, ggml_cpu: seen.cpu }) + "\n");
} else {
    const ids = (opt.ids ?? "").split(",").filter((s) => s !== "").map((s) => parseInt(s, 10));
    if (ids.length === 0) die("--ids is required");
    if (!opt.out) die("--out is required");
    const context = await model.createContext({
        contextSize: Math.max(256, ids.length),
        batchSize: Math.max(ids.length, 1),
        sequences: 1,
        flashAttention: "auto",
        threads: { ideal: threads, min: threads },
        ...(opt.kv === "f32" ? { experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" } : {}),
    });
    const seq = context.getSequence();
    const vocab = nVocabFromModel(model);
    const items = ids.map((t) => [t, { generateNext: { probabilities: true, options: { temperature: 0 } } }]);
    const outs = await seq.controlledEvaluate(items);
    const buf = new Float32Array(ids.length * vocab).fill(-Infinity);
    for (let i = 0; i < ids.length; i++) {
        const probs = outs[i]?.next?.probabilities;
        if (!probs) die(`no probabilities for position ${i}`);
        for (const [t, p] of probs) buf[i * vocab + t] = Math.log(p);
    }
    writeFileSync(opt.out, Buffer.from(buf.buffer));
    process.stderr.write(`bench.mjs: wrote ${ids.length}x${vocab} log-probabilities to ${opt.out} ` +
        `(llama.cpp ${llamaRelease}, flash attention ${seen.fa ?? context.flashAttention}, ggml-cpu ${seen.cpu})\n`);
    await context.dispose();
}
await model.dispose();
await llama.dispose?.();

// Runs 3 decode steps through node-llama-cpp's public API: every sequence calls
// evaluateWithoutGeneratingNewTokens at once, and the context's batching queue
// decides how many llama_decode calls that takes.  Counts the addon's
// decodeBatch calls (each is exactly one llama_decode, AddonContext.cpp) and
// the tokens in each; the result is timed against the same steps driven
// directly above.
async function queueCheck(context, seqs, ctx, clear, tok) {
    clear();
    // The addon's methods are read-only: count through a proxy in front of it.
    let calls = 0, tokens = 0;
    const perCall = [];
    const real = ctx;
    context._ctx = new Proxy(real, {
        get(target, key) {
            if (key === "addToBatch")
                return (sid, pos, ids, lg) => { tokens += ids.length; return target.addToBatch(sid, pos, ids, lg); };
            if (key === "decodeBatch")
                return () => { calls++; perCall.push(tokens); tokens = 0; return target.decodeBatch(); };
            const v = target[key];
            return typeof v === "function" ? v.bind(target) : v;
        },
    });
    const steps = 3;
    const t0 = Number(process.hrtime.bigint()) / 1e9;
    try {
        for (let s = 0; s < steps; s++)
            await Promise.all(seqs.map((q) => q.evaluateWithoutGeneratingNewTokens([tok()])));
    } finally {
        context._ctx = real;
    }
    const dt = Number(process.hrtime.bigint()) / 1e9 - t0;
    clear();
    return { steps, decode_calls: calls, tokens_per_call: perCall, tok_s: +(seqs.length * steps / dt).toFixed(2) };
}

function nVocabFromModel(m) {
    const n = m.fileInfo?.metadata?.deepseek2?.vocab_size ??
        m.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length;
    if (!n) die("cannot determine vocab size from the GGUF");
    return Number(n);
}
