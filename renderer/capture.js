// The virtual camera's side of the page: turn the drawn frame into I420 and send it to the bridge.
//
// Why I420 on the GPU: a 1280×720 RGBA frame is 3.7 MB, and a headless Chromium here pushes about
// 55 MB/s through a WebSocket — 15 frames a second at best. Packed as I420 (BT.601, limited range, what
// webcams and v4l2loopback speak) it is 1.4 MB, already top-down, and goes to pyvirtualcam unconverted.
// The packing is one small full-screen pass: the canvas is copied to a texture, and each texel of a
// (w/4)×(3h/2) RGBA target holds four consecutive bytes of the I420 stream (Y plane, then U, then V).
//
// Each frame is one binary WebSocket message to /capture: a 16-byte little-endian header (magic "OVTF",
// the pose frame it shows as uint32, width and height as uint16, flags uint32 = 1: I420) and the bytes.
// A frame is sent only when the previous one has left the socket (bufferedAmount 0): a slow bridge loses
// frames, the page never queues seconds of video. The socket lives in a worker (capture_worker.js), so
// frames drain while the main thread draws. The key in ?capture= is the bridge's secret for this
// browser: nothing else may feed the camera.

import * as THREE from 'three';

const HEADER = 16;
const MAGIC = 0x4654564f;  // "OVTF" read as little-endian uint32
const FLAG_I420 = 1;

// Texel (x, r) of the packed target, with q = w/4 texels a row:
//   r <  h            Y row r, pixels 4x..4x+3
//   r <  h + h/4      U: the texel row holds two chroma rows of w/2 bytes: chroma row 2(r-h) + (x >= q/2)
//   else              V, the same way
// Two draws, one per region, so neither shader branches between luma and chroma (software GL runs
// both sides of a branch: one shader with both cost twice as much). No integer division, and each
// chroma sample is one bilinear fetch at the centre of its 2×2 block (the copy is linearly filtered).
const PACK_HEAD = /* glsl */ `
precision highp float;
precision highp int;
uniform sampler2D src;
uniform ivec2 size;
layout(location = 0) out highp vec4 packedBytes;
`;
const PACK_LUMA = PACK_HEAD + /* glsl */ `
const vec3 Y = vec3(0.299, 0.587, 0.114) * 219.0;
void main() {
  ivec2 o = ivec2(gl_FragCoord.xy);
  int sy = size.y - 1 - o.y;                    // the canvas copy is bottom-up, the stream top-down
  int x = o.x * 4;
  vec4 b = 16.0 + vec4(dot(texelFetch(src, ivec2(x, sy), 0).rgb, Y), dot(texelFetch(src, ivec2(x + 1, sy), 0).rgb, Y),
                       dot(texelFetch(src, ivec2(x + 2, sy), 0).rgb, Y), dot(texelFetch(src, ivec2(x + 3, sy), 0).rgb, Y));
  packedBytes = floor(clamp(b, 0.0, 255.0) + 0.5) / 255.0;
}`;
const PACK_CHROMA = PACK_HEAD + /* glsl */ `
const vec3 U = vec3(-0.168736, -0.331264, 0.5) * 224.0;
const vec3 V = vec3(0.5, -0.418688, -0.081312) * 224.0;
void main() {
  ivec2 o = ivec2(gl_FragCoord.xy);
  int h = size.y, quarter = size.y / 4, halfQ = size.x / 8;
  int r = o.y - h;                              // 0 .. h/2: U rows, then V rows
  vec3 m = r < quarter ? U : V;
  r = r < quarter ? r : r - quarter;
  int second = o.x >= halfQ ? 1 : 0;
  float cy = float(2 * r + second);             // chroma row, top-down
  float cx = float((o.x - second * halfQ) * 4); // first chroma column of this texel
  vec2 inv = 1.0 / vec2(size);
  float v = (float(h) - 2.0 * cy - 1.0) * inv.y;   // centre of the 2x2 block, bottom-up
  vec4 b = 128.0 + vec4(dot(texture(src, vec2((2.0 * cx + 1.0) * inv.x, v)).rgb, m),
                        dot(texture(src, vec2((2.0 * cx + 3.0) * inv.x, v)).rgb, m),
                        dot(texture(src, vec2((2.0 * cx + 5.0) * inv.x, v)).rgb, m),
                        dot(texture(src, vec2((2.0 * cx + 7.0) * inv.x, v)).rgb, m));
  packedBytes = floor(clamp(b, 0.0, 255.0) + 0.5) / 255.0;
}`;

function regionQuad(material, y0, y1) {
  // A quad covering rows y0..y1 (fractions of the target's height) in clip space.
  const g = new THREE.BufferGeometry();
  const a = -1 + 2 * y0, b = -1 + 2 * y1;
  g.setAttribute('position', new THREE.Float32BufferAttribute([-1, a, 0, 1, a, 0, 1, b, 0, -1, b, 0], 3));
  g.setIndex([0, 1, 2, 0, 2, 3]);
  const mesh = new THREE.Mesh(g, material);
  mesh.frustumCulled = false;
  return mesh;
}

export class Capture {
  constructor(key, config) {
    this.key = key;
    // a width divisible by 8 and a height by 4: the packed rows come out whole (the bridge checks too)
    this.width = clampSize(config.width, 1280) & ~7;
    this.height = clampSize(config.height, 720) & ~3;
    this.interval = 1000 / Math.min(Math.max(Number(config.fps) || 30, 1), 120);
    this.size = HEADER + this.width * this.height * 3 / 2;
    // three buffers: one being drawn, up to two in flight — being read back from the GPU, with the
    // worker (it hands each back as soon as send() has copied it) or waiting in its socket's buffer
    this.spare = [new ArrayBuffer(this.size), new ArrayBuffer(this.size)];
    this.reading = 0;         // GPU read-backs not finished yet
    this.posted = 0;          // with the worker, not yet handed back
    this.queued = 0;          // whole frames still in the worker's socket buffer
    this.useBuffer(new ArrayBuffer(this.size));
    this.worker = null;
    this.open = false;
    this.next = 0;
    this.sent = 0;
    this.skipped = 0;    // drawn while the previous frame was still on its way
    this.readMs = 0;
    this.copy = new THREE.FramebufferTexture(this.width, this.height);
    this.copy.minFilter = this.copy.magFilter = THREE.LinearFilter;   // texelFetch ignores it (luma)
    this.packed = new THREE.WebGLRenderTarget(this.width / 4, this.height * 3 / 2, {
      minFilter: THREE.NearestFilter, magFilter: THREE.NearestFilter, depthBuffer: false,
      type: THREE.UnsignedByteType, format: THREE.RGBAFormat,
    });
    const uniforms = { src: { value: this.copy }, size: { value: new THREE.Vector2(this.width, this.height) } };
    const pass = (fragmentShader) => new THREE.ShaderMaterial({
      glslVersion: THREE.GLSL3, uniforms, fragmentShader, depthTest: false, depthWrite: false,
      vertexShader: 'void main() { gl_Position = vec4(position.xy, 0.0, 1.0); }',
    });
    this.quadScene = new THREE.Scene();
    this.quadScene.add(regionQuad(pass(PACK_LUMA), 0, 2 / 3), regionQuad(pass(PACK_CHROMA), 2 / 3, 1));
    this.quadCamera = new THREE.OrthographicCamera(-1, 1, 1, -1, 0, 1);
  }

  free() {
    return this.spare.length > 0 && this.reading + this.posted + this.queued < 2;
  }

  useBuffer(buffer) {
    this.buffer = buffer;
    this.header = new DataView(buffer, 0, HEADER);
    this.bytes = new Uint8Array(buffer, HEADER);
  }

  connect() {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/capture?key=${encodeURIComponent(this.key)}`;
    this.worker = new Worker(new URL('./capture_worker.js', import.meta.url));
    this.worker.onmessage = (ev) => {
      const msg = ev.data;
      if (msg.type === 'open') this.open = true;
      else if (msg.type === 'closed') this.open = false;
      else if (msg.type === 'sent') { this.posted -= 1; this.queued = msg.queued; this.spare.push(msg.buffer); }
      else if (msg.type === 'queued') this.queued = msg.queued;
    };
    this.worker.postMessage({ type: 'connect', url });
  }

  due(now) {
    // Draw at the camera's rate, on the display's frame clock, and only a frame that will be sent:
    // with two frames still on their way, drawing another would only queue GPU work nobody reads
    // (in software GL such a backlog made every read-back wait ~90 ms). A slow frame skips ahead
    // instead of bursting to catch up.
    if (!this.open) return true;               // not connected yet: draw as usual (ready for tests)
    if (!this.free()) { this.skipped += 1; return false; }
    if (now + 2 < this.next) return false;
    this.next = Math.max(this.next + this.interval, now + this.interval * 0.5);
    return true;
  }

  grab(renderer, poseFrame) {
    // Right after the scene was drawn to the canvas, in the same task (the buffer is still intact).
    // The read-back is asynchronous (a pixel-pack buffer and a fence): the page goes on to draw the
    // next frame instead of waiting for the GPU, so software GL never idles between frames.
    if (!this.open || !this.free()) return;
    const gl = renderer.getContext();
    if (gl.drawingBufferWidth !== this.width || gl.drawingBufferHeight !== this.height) return;
    const t0 = performance.now();
    const buffer = this.buffer, header = this.header, bytes = this.bytes;
    this.useBuffer(this.spare.pop());             // the next frame goes into another buffer
    this.reading += 1;
    this.packInto(renderer);
    renderer.readRenderTargetPixelsAsync(this.packed, 0, 0, this.width / 4, this.height * 3 / 2, bytes).then(() => {
      header.setUint32(0, MAGIC, true);
      header.setUint32(4, poseFrame >>> 0, true);
      header.setUint16(8, this.width, true);
      header.setUint16(10, this.height, true);
      header.setUint32(12, FLAG_I420, true);
      this.posted += 1;
      this.worker.postMessage({ type: 'frame', buffer }, [buffer]);
      this.sent += 1;
      this.readMs = 0.9 * this.readMs + 0.1 * (performance.now() - t0);
    }, () => this.spare.push(buffer)).finally(() => { this.reading -= 1; });
  }

  packInto(renderer) {
    // The canvas → the packed I420 target: a copy and one full-screen pass (GPU commands only).
    renderer.copyFramebufferToTexture(this.copy);
    const previous = renderer.getRenderTarget();
    renderer.setRenderTarget(this.packed);
    renderer.render(this.quadScene, this.quadCamera);
    renderer.setRenderTarget(previous);
  }

  pack(renderer) {
    // The same, read back at once (tests): this.bytes holds the I420 frame afterwards.
    this.packInto(renderer);
    renderer.readRenderTargetPixels(this.packed, 0, 0, this.width / 4, this.height * 3 / 2, this.bytes);
    return this.bytes;
  }

  stats() {
    return { sent: this.sent, skipped: this.skipped, readMs: this.readMs, width: this.width, height: this.height };
  }

  report(page) {
    // Once a second: how the page spends its frame, for the bridge's status and `openvtuber bench`.
    if (this.worker && this.open) {
      this.worker.postMessage({ type: 'stats', fps: page.fps, drawMs: page.renderMs, packMs: this.readMs,
        sent: this.sent, skipped: this.skipped, outline: page.outline, gl: page.gl });
    }
  }
}

function clampSize(v, d) {
  const n = Math.round(Number(v));
  return Number.isFinite(n) && n >= 16 && n <= 4096 ? n : d;
}
