// hf_encode.js — the reference encoder for lemma's tests and benchmark:
// Hugging Face tokenizers (npm "tokenizers", Rust through N-API).
//
//   node hf_encode.js TOKENIZER_JSON INPUT.jsonl [--decode] > OUT.jsonl
//
// INPUT has one {"text": ...} or {"bytes_hex": ...} per line (bytes decoded
// with U+FFFD replacement, as the reference cases define); OUT has one
// {"ids":[...]} per line, like `lemma tokenize DIR --jsonl` (added tokens
// matched, no BOS). With --decode
// each output line also carries "text": the decode of the ids.
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

async function main() {
  const args = process.argv.slice(2);
  const flags = new Set(args.filter((a) => a.startsWith('--')));
  const [tokPath, inPath] = args.filter((a) => !a.startsWith('--'));
  const tok = Tokenizer.fromFile(tokPath);
  const lines = fs.readFileSync(inPath, 'utf8').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const out = [];
  const dec = new TextDecoder('utf-8');
  for (const line of lines) {
    const rec = JSON.parse(line);
    const text = rec.bytes_hex !== undefined ? dec.decode(Buffer.from(rec.bytes_hex, 'hex')) : rec.text;
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    const ids = enc.getIds();
    const o = { ids };
    if (flags.has('--decode')) o.text = await tok.decode(ids, false);
    out.push(JSON.stringify(o));
  }
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
}
main().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
