'use strict';
// Node.js client for a kerasae export directory (see ../README.md).
//
// Loads manifest.json, encoder.onnx and decoder.onnx with onnxruntime-node,
// reads the reference tensors from reference.npz (a zip of .npy files, parsed
// here with Node built-ins only), and offers encode / decode / reconstruct /
// anomaly scores. No TensorFlow, no Python.

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const ort = require('onnxruntime-node');

// ------------------------------------------------------------------ npy / npz
const NPY_DTYPES = {
  '<f4': Float32Array, '<f8': Float64Array, '<i4': Int32Array,
  '|u1': Uint8Array, '<u1': Uint8Array,
};

/** Parses one .npy buffer into {dtype, shape, data (a typed array)}. */
function parseNpy(buf) {
  if (buf.length < 10 || buf.readUInt8(0) !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') {
    throw new Error('not a .npy array (bad magic)');
  }
  const major = buf.readUInt8(6);
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeText) throw new Error(`unreadable .npy header: ${header}`);
  if (fortran[1] === 'True') throw new Error('Fortran-ordered .npy arrays are not supported');
  const Typed = NPY_DTYPES[descr[1]];
  if (!Typed) throw new Error(`unsupported .npy dtype ${descr[1]}`);
  const shape = shapeText[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  // Copy: the typed array needs an aligned, owned buffer.
  const bytes = buf.subarray(offset, offset + count * Typed.BYTES_PER_ELEMENT);
  const data = new Typed(count);
  new Uint8Array(data.buffer).set(bytes);
  return { dtype: descr[1], shape, data };
}

/** Reads every member of a zip (stored or deflated, zip64 aware) into {name: Buffer}. */
function readZip(buf) {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i -= 1) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error('not a zip file (no end of central directory)');
  let entries = buf.readUInt16LE(eocd + 10);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  if (cdOffset === 0xffffffff || entries === 0xffff) {
    const locator = eocd - 20;
    if (buf.readUInt32LE(locator) !== 0x07064b50) throw new Error('bad zip64 locator');
    const z64 = Number(buf.readBigUInt64LE(locator + 8));
    entries = Number(buf.readBigUInt64LE(z64 + 32));
    cdOffset = Number(buf.readBigUInt64LE(z64 + 48));
  }
  const out = {};
  let p = cdOffset;
  for (let n = 0; n < entries; n += 1) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error('bad zip central directory');
    const method = buf.readUInt16LE(p + 10);
    let compSize = buf.readUInt32LE(p + 20);
    let size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    let local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    // zip64 extra field: the 0xffffffff fields, in order size, compSize, offset.
    let e = p + 46 + nameLen;
    const end = e + extraLen;
    while (e + 4 <= end) {
      const id = buf.readUInt16LE(e);
      const len = buf.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff) { size = Number(buf.readBigUInt64LE(q)); q += 8; }
        if (compSize === 0xffffffff) { compSize = Number(buf.readBigUInt64LE(q)); q += 8; }
        if (local === 0xffffffff) { local = Number(buf.readBigUInt64LE(q)); q += 8; }
      }
      e += 4 + len;
    }
    if (buf.readUInt32LE(local) !== 0x04034b50) throw new Error(`bad zip local header for ${name}`);
    const dataStart = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(dataStart, dataStart + compSize);
    if (method === 0) out[name] = raw;
    else if (method === 8) out[name] = zlib.inflateRawSync(raw);
    else throw new Error(`zip member ${name} uses unsupported compression ${method}`);
    if (out[name].length !== size) throw new Error(`zip member ${name} has the wrong size`);
    p = end + commentLen;
  }
  return out;
}

/** Reads a .npz file into {name: {dtype, shape, data}}. */
function readNpz(file) {
  const members = readZip(fs.readFileSync(file));
  const arrays = {};
  for (const [name, buf] of Object.entries(members)) {
    arrays[name.replace(/\.npy$/, '')] = parseNpy(buf);
  }
  return arrays;
}

/** Reads a .npy file, or the 'image' array of a .npz file. */
function readImages(file) {
  if (file.endsWith('.npz')) {
    const arrays = readNpz(file);
    if (!arrays.image) throw new Error(`${file} has no 'image' array`);
    return arrays.image;
  }
  return parseNpy(fs.readFileSync(file));
}

// -------------------------------------------------------------------- helpers
function sha256(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Recomputes the sha256 of every file listed in the manifest. */
function verifyFiles(dir, manifest) {
  const problems = [];
  for (const [rel, info] of Object.entries(manifest.files || {})) {
    const file = path.join(dir, ...rel.split('/'));
    if (!fs.existsSync(file)) { problems.push(`${rel}: missing`); continue; }
    const got = sha256(file);
    if (got !== info.sha256) problems.push(`${rel}: sha256 ${got} != ${info.sha256}`);
  }
  return problems;
}

// max |a - b| / max(1, max |b|): absolute for tensors within [-1, 1], relative to
// the tensor's scale above (as at export).
function maxError(a, b) {
  if (a.length !== b.length) return Infinity;
  let scale = 1;
  for (let i = 0; i < b.length; i += 1) scale = Math.max(scale, Math.abs(b[i]));
  let worst = 0;
  for (let i = 0; i < a.length; i += 1) {
    const d = Math.abs(a[i] - b[i]) / scale;
    if (!(d <= worst)) worst = d; // NaN propagates as NaN
  }
  return worst;
}

function toFloat32(array) {
  return array.data instanceof Float32Array ? array.data : Float32Array.from(array.data);
}

/** An NHWC tensor ({dims, data}) cut at the bottom and the right to `size` ([height, width]). */
function cropTo(tensor, size) {
  const [n, h, w, c] = tensor.dims;
  const [th, tw] = size;
  if (th === h && tw === w) return tensor;
  const data = new Float32Array(n * th * tw * c);
  for (let i = 0; i < n; i += 1) {
    for (let y = 0; y < th; y += 1) {
      const from = ((i * h + y) * w) * c;
      data.set(tensor.data.subarray(from, from + tw * c), ((i * th + y) * tw) * c);
    }
  }
  return { dims: [n, th, tw, c], data };
}

function sliceBatch(array, n) {
  const per = array.shape.slice(1).reduce((a, b) => a * b, 1);
  return { shape: [n, ...array.shape.slice(1)], data: toFloat32(array).subarray(0, n * per) };
}

// --------------------------------------------------------------------- client
class KerasaeExport {
  constructor(dir, manifest, encoder, decoder) {
    this.dir = dir;
    this.manifest = manifest;
    this.encoder = encoder;
    this.decoder = decoder;
    this.variational = Boolean(manifest.latent && manifest.latent.variational);
  }

  /** Loads manifest.json + encoder.onnx + decoder.onnx from an export directory. */
  static async load(dir) {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    if (manifest.format !== 'kerasae-export') {
      throw new Error(`${dir}/manifest.json is not a kerasae export (format=${manifest.format})`);
    }
    const onnxFiles = (manifest.artifacts || {}).onnx;
    if (!onnxFiles) throw new Error(`${dir} has no ONNX files (exported without onnx)`);
    const options = { executionProviders: ['cpu'], logSeverityLevel: 3 };
    const encoder = await ort.InferenceSession.create(path.join(dir, onnxFiles.encoder), options);
    const decoder = await ort.InferenceSession.create(path.join(dir, onnxFiles.decoder), options);
    return new KerasaeExport(dir, manifest, encoder, decoder);
  }

  get imageShape() { return this.manifest.input.shape.slice(1); }

  get codeShape() { return this.manifest.latent.shape.slice(1); }

  /** True for a model of any height and width (null in the input shape). */
  get anySize() { return this.imageShape.includes(null); }

  /** [n, ...shape] with a model of any size's null height and width set to `size`. */
  dimsOf(shape, n, size, what) {
    if (!shape.includes(null)) return [n, ...shape];
    if (!size) throw new Error(`this model takes ${what} of any height and width: pass their [height, width]`);
    return [n, size[0], size[1], ...shape.slice(2)];
  }

  /**
   * images: Float32Array of n images (NHWC, scaled to input.value_range); `size`:
   * their [height, width], for a model of any size.
   */
  async encode(images, n, size) {
    const feeds = { image: new ort.Tensor('float32', images, this.dimsOf(this.imageShape, n, size, 'images')) };
    const out = await this.encoder.run(feeds);
    const result = {};
    for (const name of this.encoder.outputNames) result[name] = out[name];
    return result; // {code} or {z_mean, z_log_var}: ort.Tensor each
  }

  /** The decoder input: `code`, or `z_mean` for a VAE (decodes the mean). */
  async codeOf(images, n, size) {
    const out = await this.encode(images, n, size);
    return this.variational ? out.z_mean : out.code;
  }

  /** `grid`: the code's [height, width], for a model of any size (its decoder returns the padded grid). */
  async decode(code, n, grid) {
    const feeds = { code: new ort.Tensor('float32', code, this.dimsOf(this.codeShape, n, grid, 'codes')) };
    return (await this.decoder.run(feeds)).reconstruction;
  }

  /** Reconstructions, cut to `size` ([height, width]) for a model of any size. */
  async reconstruct(images, n, size) {
    const code = await this.codeOf(images, n, size);
    const out = await this.decode(code.data, n, code.dims.slice(1, 3));
    return size ? cropTo(out, size) : out;
  }

  /**
   * Per-example anomaly score: mean squared error between input and reconstruction,
   * each error divided by the anomaly block's `scale` of its feature (the last axis)
   * where the model scales its input (records, series).
   */
  async scores(images, n, size) {
    const recon = (await this.reconstruct(images, n, size)).data;
    const per = images.length / n;
    const scale = (this.manifest.anomaly && this.manifest.anomaly.scale) || [1];
    const out = new Float64Array(n);
    for (let i = 0; i < n; i += 1) {
      let sum = 0;
      for (let j = i * per; j < (i + 1) * per; j += 1) {
        const d = (images[j] - recon[j]) / scale[j % scale.length];
        sum += d * d;
      }
      out[i] = sum / per;
    }
    return out;
  }

  /** Scores and flags (score > threshold) when the manifest has an `anomaly` block. */
  async anomalies(images, n, size) {
    const block = this.manifest.anomaly;
    if (!block) return null;
    if ((block.score || 'mse') !== 'mse') throw new Error(`unknown anomaly score ${block.score}`);
    const scores = Array.from(await this.scores(images, n, size));
    return { score: 'mse', threshold: block.threshold, scores,
      flags: scores.map((s) => s > block.threshold) };
  }

  /**
   * Conformance check: sha256 of every file, then encoder / decoder / chained
   * reconstruction against reference.npz at each reference batch size.
   */
  async check() {
    const report = { dir: this.dir, model: this.manifest.model.name, runtime: `onnxruntime-node ${ort.env.versions.node}`,
      files: verifyFiles(this.dir, this.manifest), max_error: {}, failures: [] };
    for (const p of report.files) report.failures.push(`file ${p}`);
    const info = this.manifest.reference;
    const ref = readNpz(path.join(this.dir, info.file));
    const tolerance = info.tolerance;
    const note = (key, d, b) => {
      report.max_error[key] = Math.max(report.max_error[key] || 0, Number.isNaN(d) ? Infinity : d);
      if (!(d <= tolerance)) report.failures.push(`${key} at batch ${b}: max error ${d} > ${tolerance}`);
    };
    // a model of any size has references at several sizes, each with its arrays
    const sizes = [info.endpoints, ...(info.more_sizes || []).map((m) => m.endpoints)];
    for (const ends of sizes) {
      for (const b of info.batch_sizes) {
        const image = sliceBatch(ref[ends.encode.inputs.image], b);
        const size = this.anySize ? image.shape.slice(1, 3) : undefined;
        const at = size ? `${b}, size ${size[0]}x${size[1]}` : b;
        const enc = await this.encode(image.data, b, size);
        for (const [out, arrayName] of Object.entries(ends.encode.outputs)) {
          note(`encode/${out}`, maxError(enc[out].data, sliceBatch(ref[arrayName], b).data), at);
        }
        const code = sliceBatch(ref[ends.decode.inputs.code], b);
        const dec = await this.decode(code.data, b, code.shape.slice(1, 3));
        note('decode/reconstruction', maxError(dec.data, sliceBatch(ref[ends.decode.outputs.reconstruction], b).data), at);
        const rec = await this.reconstruct(image.data, b, size);
        note('reconstruct/reconstruction', maxError(rec.data, sliceBatch(ref[ends.reconstruct.outputs.reconstruction], b).data), at);
      }
    }
    const n = ref.image.shape[0];
    const anomaly = await this.anomalies(toFloat32(ref.image), n,
      this.anySize ? ref.image.shape.slice(1, 3) : undefined);
    if (anomaly) {
      report.anomaly = anomaly;
      if (ref.score) {
        const d = maxError(Float64Array.from(anomaly.scores), ref.score.data);
        report.max_error.score = d;
        if (!(d <= tolerance)) report.failures.push(`anomaly score: max error ${d} > ${tolerance}`);
      }
    }
    report.passed = report.failures.length === 0;
    return report;
  }
}

module.exports = { KerasaeExport, readNpz, readImages, parseNpy, readZip, sha256, verifyFiles, maxError };
