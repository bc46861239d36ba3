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
// No integer division, and each chroma sample is one bilinear fetch at the centre of its 2×2 block
// (the copy is linearly filtered): software GL counts every instruction of this pass.
const PACK_FRAGMENT = /* glsl */ `
precision highp float;
precision highp int;
uniform sampler2D src;
uniform ivec2 size;
layout(location = 0) out highp vec4 packedBytes;

const vec3 Y = vec3(0.299, 0.587, 0.114) * 219.0;
const vec3 U = vec3(-0.168736, -0.331264, 0.5) * 224.0;
const vec3 V = vec3(0.5, -0.418688, -0.081312) * 224.0;

void main() {
  ivec2 o = ivec2(gl_FragCoord.xy);
  int w = size.x, h = size.y, half_q = w / 8;
  vec4 b;
  if (o.y < h) {
    int sy = h - 1 - o.y;                    // the canvas copy is bottom-up, the stream top-down
    int x = o.x * 4;
    b = 16.0 + vec4(dot(texelFetch(src, ivec2(x, sy), 0).rgb, Y), dot(texelFetch(src, ivec2(x + 1, sy), 0).rgb, Y),
                    dot(texelFetch(src, ivec2(x + 2, sy), 0).rgb, Y), dot(texelFetch(src, ivec2(x + 3, sy), 0).rgb, Y));
  } else {
    bool isU = o.y < h + h / 4;
    int r = o.y - (isU ? h : h + h / 4);
    int second = o.x >= half_q ? 1 : 0;
    int cy = 2 * r + second;                  // chroma row, top-down
    int cx = (o.x - second * half_q) * 4;     // first chroma column of this texel
    vec2 inv = 1.0 / vec2(size);
    float v = (float(h) - 2.0 * float(cy) - 1.0) * inv.y;   // centre of the 2x2 block, bottom-up
    vec3 m = isU ? U : V;
    b = 128.0 + vec4(dot(texture(src, vec2(2.0 * float(cx) + 1.0, 0.0) * inv + vec2(0.0, v)).rgb, m),
                     dot(texture(src, vec2(2.0 * float(cx) + 3.0, 0.0) * inv + vec2(0.0, v)).rgb, m),
                     dot(texture(src, vec2(2.0 * float(cx) + 5.0, 0.0) * inv + vec2(0.0, v)).rgb, m),
                     dot(texture(src, vec2(2.0 * float(cx) + 7.0, 0.0) * inv + vec2(0.0, v)).rgb, m));
  }
  packedBytes = floor(clamp(b, 0.0, 255.0) + 0.5) / 255.0;
}`;

export class Capture {
  constructor(key, config) {
    this.key = key;
    // a width divisible by 8 and a height by 4: the packed rows come out whole (the bridge checks too)
    this.width = clampSize(config.width, 1280) & ~7;
    this.height = clampSize(config.height, 720) & ~3;
    this.interval = 1000 / Math.min(Math.max(Number(config.fps) || 30, 1), 120);
    this.size = HEADER + this.width * this.height * 3 / 2;
    // two buffers ping-pong with the worker (it hands each back as soon as send() has copied it);
    // frames in the worker's hands or in its socket's buffer count as in flight, at most two
    this.spare = [new ArrayBuffer(this.size)];
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
    this.material = new THREE.ShaderMaterial({
      glslVersion: THREE.GLSL3,
      uniforms: { src: { value: this.copy }, size: { value: new THREE.Vector2(this.width, this.height) } },
      vertexShader: 'void main() { gl_Position = vec4(position.xy, 0.0, 1.0); }',
      fragmentShader: PACK_FRAGMENT,
      depthTest: false, depthWrite: false,
    });
    this.quad = new THREE.Mesh(new THREE.PlaneGeometry(2, 2), this.material);
    this.quad.frustumCulled = false;
    this.quadScene = new THREE.Scene();
    this.quadScene.add(this.quad);
    this.quadCamera = new THREE.OrthographicCamera(-1, 1, 1, -1, 0, 1);
  }

  free() {
    return this.spare.length > 0 && this.posted + this.queued < 2;
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
    if (!this.open || !this.free()) return;
    const gl = renderer.getContext();
    if (gl.drawingBufferWidth !== this.width || gl.drawingBufferHeight !== this.height) return;
    const t0 = performance.now();
    this.pack(renderer);
    this.readMs = 0.9 * this.readMs + 0.1 * (performance.now() - t0);
    this.header.setUint32(0, MAGIC, true);
    this.header.setUint32(4, poseFrame >>> 0, true);
    this.header.setUint16(8, this.width, true);
    this.header.setUint16(10, this.height, true);
    this.header.setUint32(12, FLAG_I420, true);
    const frame = this.buffer;
    this.useBuffer(this.spare.pop());             // draw the next frame into the other buffer
    this.posted += 1;
    this.worker.postMessage({ type: 'frame', buffer: frame }, [frame]);
    this.sent += 1;
  }

  pack(renderer) {
    // The canvas as I420 into this.bytes: copy, one packing pass, one read-back of 1.5 bytes a pixel.
    renderer.copyFramebufferToTexture(this.copy);
    const previous = renderer.getRenderTarget();
    renderer.setRenderTarget(this.packed);
    renderer.render(this.quadScene, this.quadCamera);
    renderer.readRenderTargetPixels(this.packed, 0, 0, this.width / 4, this.height * 3 / 2, this.bytes);
    renderer.setRenderTarget(previous);
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
