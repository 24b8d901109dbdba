#!/usr/bin/env node
'use strict';
// Usage:
//   node check.js EXPORT_DIR [--images FILE.npy|FILE.npz] [--json]
//
// Checks a kerasae export with onnxruntime-node: sha256 of every file in the
// manifest, encoder.onnx / decoder.onnx / their chain against reference.npz at
// the reference batch sizes, and, when the manifest has an `anomaly` block,
// per-image scores (MSE between image and reconstruction) and flags
// (score > threshold). With --images, also scores those images (float32,
// NHWC, already scaled to the manifest's input.value_range).
// Exit status: 0 passed, 1 a check failed, 2 bad usage or unreadable input.

const { KerasaeExport, readImages } = require('./client');

function usage(message) {
  process.stderr.write(`${message}\nusage: node check.js EXPORT_DIR [--images FILE.npy] [--json]\n`);
  process.exit(2);
}

async function main(argv) {
  const args = { json: false, images: null, dir: null };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--json') args.json = true;
    else if (argv[i] === '--images') args.images = argv[++i];
    else if (argv[i].startsWith('--')) usage(`unknown option ${argv[i]}`);
    else if (args.dir === null) args.dir = argv[i];
    else usage(`unexpected argument ${argv[i]}`);
  }
  if (!args.dir) usage('missing EXPORT_DIR');

  const client = await KerasaeExport.load(args.dir);
  const report = await client.check();
  if (args.images) {
    const images = readImages(args.images);
    if (!/f4$|f8$/.test(images.dtype)) {
      const range = client.manifest.input.value_range;
      usage(`--images holds ${images.dtype} values; the model takes float32 `
        + (range ? `scaled to [${range}] (divide 8-bit pixels by 255 first)` : 'raw values'));
    }
    const expected = client.imageShape;
    if (images.shape.length !== expected.length + 1
        || images.shape.slice(1).some((d, i) => expected[i] !== null && d !== expected[i])) {
      usage(`--images has shape [${images.shape}] but the model expects [n, ${expected}]`);
    }
    const n = images.shape[0];
    const data = images.data instanceof Float32Array ? images.data : Float32Array.from(images.data);
    const size = client.anySize ? images.shape.slice(1, 3) : undefined; // a model of any size
    const scores = Array.from(await client.scores(data, n, size));
    report.images = { file: args.images, n, scores };
    const anomaly = await client.anomalies(data, n, size);
    if (anomaly) report.images.flags = anomaly.flags;
  }

  if (args.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    console.log(`${report.model}: ${report.runtime}`);
    for (const [key, d] of Object.entries(report.max_error)) console.log(`  ${key.padEnd(28)} max error ${d.toExponential(2)}`);
    if (report.anomaly) {
      const flagged = report.anomaly.flags.filter(Boolean).length;
      console.log(`  anomaly (mse > ${report.anomaly.threshold}): ${flagged}/${report.anomaly.flags.length} reference images flagged`);
    }
    if (report.images) {
      report.images.scores.forEach((s, i) => {
        const flag = report.images.flags ? (report.images.flags[i] ? '  ANOMALY' : '  ok') : '';
        console.log(`  image ${i}: mse ${s.toExponential(3)}${flag}`);
      });
    }
    for (const f of report.failures) console.log(`  FAIL ${f}`);
    console.log(report.passed ? 'passed' : 'FAILED');
  }
  return report.passed ? 0 : 1;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  process.stderr.write(`kerasae node check: error: ${err.message}\n`);
  process.exit(2);
});
