// Read a PMX file with the npm package mmd-parser (the parser three.js r171 vendors for
// MMDLoader) and print a JSON summary for tests/test_avatar.py.
//
//   node tests/tools/node/pmx_dump.js FILE.pmx
//
// Parsed with parsePmx(buffer, true): the parser's own left→right conversion, exactly
// what MMDLoader builds its mesh from.
'use strict';

const fs = require('fs');
const { Parser } = require('mmd-parser');

console.log = console.warn = (...args) => process.stderr.write(args.join(' ') + '\n');

if (process.argv.length !== 3) {
	process.stderr.write('usage: node pmx_dump.js FILE.pmx\n');
	process.exit(2);
}
const bytes = fs.readFileSync(process.argv[2]);
const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
const pmx = new Parser().parsePmx(buffer, true);

let lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
let weightErr = 0;
for (const v of pmx.vertices) {
	for (let k = 0; k < 3; k++) {
		lo[k] = Math.min(lo[k], v.position[k]);
		hi[k] = Math.max(hi[k], v.position[k]);
	}
	const s = v.skinWeights.reduce((a, b) => a + b, 0);
	weightErr = Math.max(weightErr, Math.abs(s - 1));
}
let maxIndex = 0;
for (const f of pmx.faces) for (const i of f.indices) maxIndex = Math.max(maxIndex, i);
// Mean normal·(vertex - centroid) sign of faces, in three.js space (after conversion):
// positive when faces wind counter-clockwise seen from outside.
let outward = 0;
const P = pmx.vertices.map((v) => v.position);
const c = [0, 1, 2].map((k) => (lo[k] + hi[k]) / 2);
for (const f of pmx.faces) {
	const [a, b, d] = f.indices.map((i) => P[i]);
	const u = [0, 1, 2].map((k) => b[k] - a[k]), w = [0, 1, 2].map((k) => d[k] - a[k]);
	const n = [u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]];
	outward += n[0] * (a[0] - c[0]) + n[1] * (a[1] - c[1]) + n[2] * (a[2] - c[2]);
}

process.stdout.write(JSON.stringify({
	metadata: {
		version: pmx.metadata.version, encoding: pmx.metadata.encoding,
		modelName: pmx.metadata.modelName, comment: pmx.metadata.comment,
		vertexCount: pmx.metadata.vertexCount, faceCount: pmx.metadata.faceCount,
		materialCount: pmx.metadata.materialCount, boneCount: pmx.metadata.boneCount,
		morphCount: pmx.metadata.morphCount, frameCount: pmx.metadata.frameCount,
		rigidBodyCount: pmx.metadata.rigidBodyCount, constraintCount: pmx.metadata.constraintCount,
	},
	bounds: { min: lo, max: hi },
	maxWeightSumError: weightErr,
	maxFaceIndex: maxIndex,
	outward,
	textures: pmx.textures,
	materials: pmx.materials.map((m) => ({
		name: m.name, faceCount: m.faceCount, flag: m.flag, textureIndex: m.textureIndex,
		toonFlag: m.toonFlag, toonIndex: m.toonIndex, diffuse: Array.from(m.diffuse),
	})),
	bones: pmx.bones.map((b) => ({
		name: b.name, parentIndex: b.parentIndex, position: Array.from(b.position),
		grant: b.grant ? { parentIndex: b.grant.parentIndex, ratio: b.grant.ratio } : null,
	})),
	morphs: pmx.morphs.map((m) => ({ name: m.name, panel: m.panel, type: m.type, elementCount: m.elementCount })),
	frames: pmx.frames.map((f) => ({ name: f.name, type: f.type, elementCount: f.elementCount })),
}));
