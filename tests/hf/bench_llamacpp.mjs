// llama.cpp's speed on a GGUF file, the peer of `kiln bench --decode`: the prebuilt
// CPU build that node-llama-cpp ships (pinned in package.json), offline. A prompt of
// --seq token ids is evaluated in one batch, then --tokens greedy tokens generated.
//
//   node tests/hf/bench_llamacpp.mjs --model FILE.gguf --seq 256 --tokens 128 --threads 2 [--runs 3]
//
// Prints one JSON line: prefill and decode tokens/s, the best of --runs (a fresh
// sequence each run). Prefill time is the time to the first generated token.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const modelPath = arg("--model");
const seq = Number(arg("--seq", "256"));
const count = Number(arg("--tokens", "128"));
const threads = Number(arg("--threads", "2"));
const runs = Number(arg("--runs", "3"));
if (!modelPath || !(seq > 0) || !(count > 1)) {
  console.error("usage: node bench_llamacpp.mjs --model FILE.gguf [--seq N --tokens N --threads T --runs R]");
  process.exit(2);
}
const llama = await getLlama({
  gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
  progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: threads,
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({ contextSize: seq + count + 16, batchSize: seq, threads });
// Token ids 3.. (past the usual special ids), a fixed pseudo-random prompt.
let state = 5;
const prompt = [];
for (let i = 0; i < seq; ++i) {
  state = (state * 1103515245 + 12345) % 2147483648;
  prompt.push(3 + (state % 3000));
}
let best = null;
for (let r = 0; r < runs; ++r) {
  const sequence = context.getSequence();
  const start = performance.now();
  let first = 0, n = 0;
  for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
    if (n === 0) first = performance.now();
    if (++n >= count) break;
  }
  const end = performance.now();
  const result = {
    prefill_tokens_per_s: seq / ((first - start) / 1000),
    decode_tokens_per_s: (count - 1) / ((end - first) / 1000),
  };
  if (best === null || result.decode_tokens_per_s > best.decode_tokens_per_s) best = result;
  sequence.dispose();
}
console.log(JSON.stringify({ peer: "llama.cpp (node-llama-cpp 3.21.1)", model: modelPath, threads,
  prompt_tokens: seq, decode_tokens: count, ...best }));
await context.dispose();
await model.dispose();
await llama.dispose();
