// Run a .tflite model with the real TFLite interpreter (WebAssembly build from
// @tensorflow/tfjs-tflite, XNNPACK delegate) under Node, on raw float32 NHWC inputs.
//
//   node run_tflite.js --wasm-dir DIR --model M.tflite --out OUTDIR IN1.f32 [IN2.f32 ...]
//
// For each input file X.f32 it writes OUTDIR/X.<output_name>.f32 (raw little-endian float32,
// TFLite layout) and OUTDIR/X.json ({outputs: [{name, shape}]}).
'use strict';
const fs = require('fs');
const path = require('path');

function parseArgs(argv) {
  const a = { inputs: [], simd: true, threads: 1 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--wasm-dir') a.wasmDir = argv[++i];
    else if (k === '--model') a.model = argv[++i];
    else if (k === '--out') a.out = argv[++i];
    else if (k === '--no-simd') a.simd = false;
    else a.inputs.push(k);
  }
  if (!a.wasmDir || !a.model || !a.out) throw new Error('usage: --wasm-dir DIR --model M --out DIR inputs...');
  return a;
}

const toArray = (v) => { const r = []; for (let i = 0; i < v.size(); i++) r.push(v.get(i)); v.delete && v.delete(); return r; };

(async () => {
  const a = parseArgs(process.argv.slice(2));
  const base = path.join(a.wasmDir, a.simd ? 'tflite_web_api_cc_simd' : 'tflite_web_api_cc');
  const factory = require(path.resolve(base + '.js'));
  const M = await factory({ wasmBinary: fs.readFileSync(base + '.wasm'), print: () => {}, printErr: (s) => process.stderr.write(s + '\n') });
  const model = fs.readFileSync(a.model);
  const ptr = M._malloc(model.length);
  M.HEAPU8.set(model, ptr);
  const res = M.TFLiteWebModelRunner.CreateFromBufferAndOptions(ptr, model.length, { numThreads: a.threads, enableProfiling: true, maxProfilingBufferEntries: 4096 });
  if (!res.ok()) throw new Error('TFLite: ' + res.errorMessage());
  const runner = res.value();
  const ins = toArray(runner.GetInputs());
  const outs = toArray(runner.GetOutputs());
  if (ins.length !== 1) throw new Error('expected one input');
  fs.mkdirSync(a.out, { recursive: true });
  for (const f of a.inputs) {
    const buf = fs.readFileSync(f);
    const src = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    const dst = ins[0].data();
    if (dst.length !== src.length) throw new Error(`${f}: ${src.length} values, model wants ${dst.length}`);
    dst.set(src);
    if (!runner.Infer()) throw new Error('Infer failed');
    const stem = path.basename(f).replace(/\.f32$/, '');
    const meta = { model: path.basename(a.model), input: path.basename(f), outputs: [] };
    for (const t of outs) {
      const d = t.data();
      fs.writeFileSync(path.join(a.out, `${stem}.${t.name}.f32`), Buffer.from(new Float32Array(d).buffer));
      meta.outputs.push({ name: t.name, shape: t.shape.split(',').map(Number) });
    }
    const prof = toArray(runner.GetProfilingResults()).map((p) => p.nodeType);
    meta.executed_nodes = prof.reduce((m, k) => { m[k] = (m[k] || 0) + 1; return m; }, {});
    fs.writeFileSync(path.join(a.out, `${stem}.json`), JSON.stringify(meta));
  }
  runner.delete && runner.delete();
})().catch((e) => { console.error('run_tflite:', e.message || e); process.exit(1); });
