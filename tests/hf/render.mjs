// Reference renderer for Kiln's chat-template tests: @huggingface/jinja, the
// Jinja implementation transformers.js uses for Hugging Face chat templates.
//
//   node render.mjs cases.json > results.json
//
// cases.json: [{"template": "...", "context": {...}, "now": "2024-07-26T10:30:00"}, ...]
// ("now", optional, is the local time strftime_now() sees; run with TZ=UTC).
// results.json: [{"ok": true, "output": "..."} | {"ok": false, "error": "..."}, ...]
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";

const RealDate = Date;
function withNow(now, fn) {
  if (!now) return fn();
  const fixed = new RealDate(now).getTime();
  globalThis.Date = class extends RealDate {
    constructor(...args) {
      super(...(args.length ? args : [fixed]));
    }
    static now() {
      return fixed;
    }
  };
  try {
    return fn();
  } finally {
    globalThis.Date = RealDate;
  }
}

// A lone UTF-16 surrogate (e.g. from indexing "😀"[0]) cannot be UTF-8: it
// becomes U+FFFD, as when the prompt is written out as UTF-8 text.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const results = cases.map(({ template, context, now }) => {
  try {
    const output = withNow(now, () => new Template(template).render(context));
    return { ok: true, output: output.replace(LONE_SURROGATE, "\ufffd") };
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(results));
