// anchors.js — encode throughput of the anchor tokenizers on a corpus, for
// bench/bench_tokenizer.sh.
//
//   node anchors.js tokenizers TOKENIZER_JSON CORPUS [RUNS]   Hugging Face tokenizers (Rust, N-API)
//   node anchors.js tiktoken   cl100k_base    CORPUS [RUNS]   OpenAI tiktoken (Rust -> WASM)
//
// Prints one JSON line: {"impl","bytes","tokens","mb_s_median","runs"}. MB/s
// is UTF-8 input bytes per second of process CPU time (user + system), the
// median of RUNS passes. The text is fed in ~4 KiB chunks cut after a "\n"
// that is followed by an ASCII letter or digit — no pre-token spans such a
// point, so the ids equal a whole-file encode (HF slows down badly on one
// huge string). Single thread: RAYON_NUM_THREADS=1 is set by the caller.
'use strict';
const fs = require('fs');

function chunks(text) {
  const out = [];
  let start = 0;
  while (start < text.length) {
    let p = Math.min(start + 4096, text.length);
    while (p < text.length && !(text[p - 1] === '\n' && /[A-Za-z0-9]/.test(text[p]))) p++;
    out.push(text.slice(start, p));
    start = p;
  }
  return out;
}

function cpu() { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; }

async function main() {
  const [impl, what, corpus, runsArg] = process.argv.slice(2);
  const runs = Number(runsArg || 3);
  const buf = fs.readFileSync(corpus);
  const text = buf.toString('utf8');
  const parts = chunks(text);
  let encode;
  if (impl === 'tokenizers') {
    const { Tokenizer } = require('tokenizers');
    const tok = Tokenizer.fromFile(what);
    encode = async (s) => (await tok.encode(s, null, { addSpecialTokens: false })).getIds().length;
  } else if (impl === 'tiktoken') {
    const { get_encoding } = require('tiktoken');
    const enc = get_encoding(what);
    encode = async (s) => enc.encode(s, 'all').length;
  } else {
    throw new Error('unknown implementation ' + impl);
  }
  const speeds = [];
  let tokens = 0;
  for (let r = 0; r < runs; r++) {
    tokens = 0;
    const t0 = cpu();
    for (const p of parts) tokens += await encode(p);
    const dt = cpu() - t0;
    speeds.push(buf.length / 1e6 / dt);
  }
  speeds.sort((a, b) => a - b);
  console.log(JSON.stringify({ impl, bytes: buf.length, tokens, runs, mb_s_median: +speeds[runs >> 1].toFixed(3) }));
}
main().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
