// Reference encodings for Kiln's tokenizer.json tests, from transformers.js
// (@lenml/tokenizers, pinned in package.json).
//
//   node encode.mjs --model DIR --corpus FILE --out OUT.json [--plain-special]
//   node encode.mjs --model DIR --corpus FILE --bench SECONDS
//
// DIR holds tokenizer.json and tokenizer_config.json. The corpus is encoded
// line by line (split at "\n"; a "\r" stays in its line) and as one document,
// without the post-processor's special tokens; each id list is decoded back
// (special tokens kept, no clean-up of spaces). --plain-special encodes special
// tokens written in the text as plain text, the way the Hugging Face library
// does with split_special_tokens=True: transformers.js has no such switch, so
// the special entries are taken out of added_tokens before loading.
// --bench prints {"bytes": N, "first_mb_per_s": F, "mb_per_s": R, "cpu_mb_per_s": C}:
// the speed of the first encoding of the whole corpus and of repeated ones for
// SECONDS, by the wall clock and by CPU time (node's threads together).
import { TokenizerLoader } from "@lenml/tokenizers";
import fs from "node:fs";
import path from "node:path";

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  return i + 1 < process.argv.length ? process.argv[i + 1] : true;
}

const dir = arg("--model");
const corpusPath = arg("--corpus");
if (!dir || !corpusPath) {
  console.error("usage: node encode.mjs --model DIR --corpus FILE (--out OUT.json | --bench S)");
  process.exit(2);
}
const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
const tokenizerConfig = JSON.parse(
  fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
if (process.argv.includes("--plain-special")) {
  tokenizerJSON.added_tokens = tokenizerJSON.added_tokens.filter((t) => !t.special);
  delete tokenizerConfig.added_tokens_decoder;
}
const tokenizer = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
const corpus = fs.readFileSync(corpusPath, "utf8");
const encode = (text) => tokenizer.encode(text, { add_special_tokens: false });
const decode = (ids) =>
  ids.length === 0 ? "" :
  tokenizer.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });

const benchSeconds = arg("--bench");
if (benchSeconds) {
  // The first pass starts with an empty word cache; later ones find every
  // word cached, as a long run over similar text mostly would.
  const bytes = Buffer.byteLength(corpus, "utf8");
  const t0 = process.hrtime.bigint();
  encode(corpus);
  const first = Number(process.hrtime.bigint() - t0) / 1e9;
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  let rounds = 0, elapsed = 0;
  do {
    encode(corpus);
    ++rounds;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  } while (elapsed < Number(benchSeconds));
  const cpu = process.cpuUsage(cpu0);  // microseconds, all of node's threads
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  console.log(JSON.stringify({
    bytes, first_mb_per_s: bytes / 1e6 / first, mb_per_s: (bytes * rounds) / 1e6 / elapsed,
    cpu_mb_per_s: (bytes * rounds) / 1e6 / cpuSeconds }));
  process.exit(0);
}

const lines = corpus.split("\n").map(encode);
const document = encode(corpus);
const out = {
  lines,
  decoded: lines.map(decode),
  document,
  document_decoded: decode(document),
};
fs.writeFileSync(arg("--out"), JSON.stringify(out));
