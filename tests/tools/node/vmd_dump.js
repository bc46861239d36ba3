// Read a VMD file with the npm package mmd-parser (the parser three.js r171 vendors as
// examples/jsm/libs/mmdparser.module.js) and print it as JSON for tests/test_vmd.py.
//
//   node tests/tools/node/vmd_dump.js FILE.vmd
//
// Prints {"raw": …, "right": …}: "raw" is parseVmd(buffer, false), the values as stored
// (MMD's left-handed frame); "right" is parseVmd(buffer, true), after the parser's own
// left→right conversion — exactly what MMDLoader.loadVMD hands its AnimationBuilder.
'use strict';

const fs = require('fs');
const { Parser } = require('mmd-parser');

// The parser logs notes (e.g. "unknown char code" for half a Shift-JIS character) with
// console.log; keep stdout for the JSON.
console.log = console.warn = (...args) => process.stderr.write(args.join(' ') + '\n');

function parse(bytes, leftToRight) {
	const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
	const vmd = new Parser().parseVmd(buffer, leftToRight);
	return {
		metadata: vmd.metadata,
		motions: vmd.motions.map((m) => ({
			boneName: m.boneName,
			frameNum: m.frameNum,
			position: Array.from(m.position),
			rotation: Array.from(m.rotation),
			interpolation: Array.from(m.interpolation),
		})),
		morphs: vmd.morphs.map((m) => ({ morphName: m.morphName, frameNum: m.frameNum, weight: m.weight })),
		cameras: vmd.cameras.length,
	};
}

if (process.argv.length !== 3) {
	process.stderr.write('usage: node vmd_dump.js FILE.vmd\n');
	process.exit(2);
}
const bytes = fs.readFileSync(process.argv[2]);
process.stdout.write(JSON.stringify({ raw: parse(bytes, false), right: parse(bytes, true) }));
