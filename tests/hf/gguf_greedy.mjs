// llama.cpp's greedy continuation of given token ids, for Kiln's GGUF export test:
// the prebuilt CPU build of llama.cpp that node-llama-cpp ships (pinned in
// package.json, package @node-llama-cpp/linux-x64), on the CPU, offline.
//
//   node gguf_greedy.mjs --model FILE.gguf --tokens 64 --ids 1,42,7 [--threads 1]
//
// Prints {"ids": [...]} (the generated ids, prompt not included) on stdout.
// The ids are fed as they are (no tokenizer involved); sampling is greedy
// (temperature 0, no repetition penalty). Never builds or downloads anything:
// build "never" and skipDownload make a missing prebuilt binary an error.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function arg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}

const modelPath = arg("--model");
const count = Number(arg("--tokens"));
const ids = (arg("--ids") ?? "").split(",").filter((s) => s !== "").map(Number);
const threads = Number(arg("--threads") ?? "1");
if (!modelPath || !(count > 0) || ids.length === 0 || ids.some((x) => !Number.isInteger(x))) {
  console.error("usage: node gguf_greedy.mjs --model FILE.gguf --tokens N --ids A,B,C [--threads T]");
  process.exit(2);
}

const llama = await getLlama({
  gpu: false,
  build: "never",
  skipDownload: true,
  usePrebuiltBinaries: true,
  progressLogs: false,
  logLevel: LlamaLogLevel.error,
  maxThreads: threads,
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({
  contextSize: ids.length + count + 16,
  batchSize: ids.length + count + 16,
  threads,
});
const sequence = context.getSequence();
const out = [];
for await (const token of sequence.evaluate(ids, { temperature: 0 })) {
  out.push(token);
  if (out.length >= count) break;
}
console.log(JSON.stringify({ ids: out }));
await context.dispose();
await model.dispose();
await llama.dispose();
