// gen_random.js — deterministic random texts that stress a byte-level BPE
// pre-tokenizer: every branch of DeepSeek-V3's regexes, whitespace oddities
// (NEL, NBSP, U+2028, U+3000, BOM, ZWSP), CJK range edges, combining marks,
// emoji sequences, digits of many scripts and random code points.
//
//   node gen_random.js SEED COUNT [MAXLEN] > texts.jsonl      (one {"text":..} per line)
'use strict';
const seed = Number(process.argv[2] || 1), count = Number(process.argv[3] || 100);
const maxlen = Number(process.argv[4] || 40);
let s = BigInt(seed) * 0x9E3779B97F4A7C15n + 1n;
function rnd() { // splitmix64 -> [0, 1)
  s = (s + 0x9E3779B97F4A7C15n) & 0xFFFFFFFFFFFFFFFFn;
  let z = s;
  z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & 0xFFFFFFFFFFFFFFFFn;
  z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & 0xFFFFFFFFFFFFFFFFn;
  z = z ^ (z >> 31n);
  return Number(z >> 11n) / 2 ** 53;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const cp = (c) => String.fromCodePoint(c);
const words = ['the', 'The', 'and', 'HTTPServer', 'x', 'café', 'naïve', 'über', 'Ωmega', 'Привет', 'مرحبا', 'שלום',
  'नमस्ते', 'ก', 'สวัสดี', '한국어', 'ｶﾀｶﾅ', 'Ⅻ', '²', '½', '①', '٣', '१२', 'ﾟ', 'ǅ', 'ʰ', 'I\'m', 'don\'t', 'it\'s',
  'e\u0301', 'a\u0308\u0301', '\u0301x', 'x\u20DD', 'λx', 'fooBar', '_init', 'snake_case', 'π', '∑', '∀x∈ℝ'];
const ws = [' ', ' ', ' ', '  ', '\t', '\n', '\r\n', '\r', '\n\n', ' \n', '\u00A0', '\u0085', '\u2028', '\u2029',
  '\u3000', '\u2009', '\u200B', '\uFEFF', '\u180E', '\u000B', '\u000C', '\u1680', '\u202F', '\u205F'];
const punct = ['.', ',', '!', '?', '...', '—', '–', '-', '\'', '"', '“', '”', '«', '»', '(', ')', '[', ']', '{', '}',
  '<', '>', '/', '\\', '#', '$', '%', '&', '*', '+', '=', '@', '^', '_', '`', '|', '~', ':', ';', '€', '£', '¥',
  '©', '®', '°', '±', '×', '÷', '→', '⇒', '∞', '≠', '≤', '≥', '√', '∫', '☃', '★', '♪', '、', '。', '「', '」',
  '・', '゛', '゠', 'ー', '〇', '々', '\u3099'];
const emoji = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷', '🇯🇵', '❤️', '🫩', '\u{1FAE9}', '\u{1CC00}', '🧑‍💻', '✈︎', '#️⃣', '🥲'];
const special = ['<｜User｜>', '<｜Assistant｜>', '<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<|EOT|>', '<think>',
  '</think>', '<｜place▁holder▁no▁7｜>', '<｜User', '｜>', '<｜tool▁sep｜>'];
function cjk() {
  const ranges = [[0x4E00, 0x9FA5], [0x9FA6, 0x9FFF], [0x3040, 0x309F], [0x30A0, 0x30FF], [0x3400, 0x4DBF],
    [0xF900, 0xFAFF], [0xFF66, 0xFF9F], [0xAC00, 0xD7A3], [0x20000, 0x2A6DF]];
  const r = pick(ranges);
  let out = '';
  const n = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) out += cp(r[0] + Math.floor(rnd() * (r[1] - r[0] + 1)));
  if (rnd() < 0.1) out = cp(pick([0x3040, 0x309F, 0x30A0, 0x30FF, 0x4E00, 0x9FA5, 0x9FA6, 0x3097, 0x3098])) + out;
  return out;
}
function randomCp() {
  for (;;) {
    const c = rnd() < 0.7 ? Math.floor(rnd() * 0x3000) : Math.floor(rnd() * 0x30000);
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    return cp(c);
  }
}
function digits() {
  const sets = ['0123456789', '٠١٢٣٤٥٦٧٨٩', '０１２３４５６７８９', '²³¹¼½¾', '①②③', 'ⅠⅡⅢⅣ'];
  const set = Array.from(pick(sets));
  let out = '';
  const n = 1 + Math.floor(rnd() * 8);
  for (let i = 0; i < n; i++) out += pick(set);
  return out;
}
const gens = [
  [30, () => pick(words)], [20, () => pick(ws)], [15, () => pick(punct)], [8, digits], [8, cjk],
  [5, () => pick(emoji)], [4, () => pick(special)], [6, randomCp],
  [2, () => pick(ws).repeat(1 + Math.floor(rnd() * 6))], [2, () => pick(punct).repeat(2 + Math.floor(rnd() * 5))],
  [1, () => pick(emoji).repeat(2 + Math.floor(rnd() * 30))], [1, () => cjk().repeat(5 + Math.floor(rnd() * 20))],
  [1, () => 'a'.repeat(1 + Math.floor(rnd() * 200))],
];
const total = gens.reduce((a, g) => a + g[0], 0);
function gen() {
  let x = rnd() * total;
  for (const [w, f] of gens) { if ((x -= w) < 0) return f(); }
  return gens[0][1]();
}
const out = [];
for (let i = 0; i < count; i++) {
  const n = 1 + Math.floor(rnd() * maxlen);
  let t = '';
  for (let k = 0; k < n; k++) t += gen();
  out.push(JSON.stringify({ text: t }));
}
process.stdout.write(out.join('\n') + '\n');
