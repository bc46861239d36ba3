// OpenVtuber page: an MMD avatar driven by the bridge's poses over /ws.
//
// The bridge sends {"type":"pose", t, frame, found, bones: {MMD name: [x,y,z,w]}, morphs: {MMD name: w}}:
// local rotations in three.js space as MMDLoader builds the model (right-handed, Y up, facing +Z),
// applied on top of each bone's rest rotation. We ease toward the latest target every display frame,
// so a 30 fps tracker looks smooth at 60 fps. ?transparent=1 gives an OBS-ready page (no UI, alpha 0);
// ?outline=0|1 forces the toon outline off/on (default: off only on software GL). ?capture=KEY is the bridge's own off-screen page for the
// virtual camera: opaque background, no UI, the canvas read back and sent to /capture (capture.js).
// window.openvtuber is a read-only hook for tests.

import * as THREE from 'three';
import { MMDLoader } from 'three/addons/loaders/MMDLoader.js';
import { OutlineEffect } from 'three/addons/effects/OutlineEffect.js';
import { Capture } from './capture.js';

const params = new URLSearchParams(location.search);
const captureKey = params.get('capture');
const capturing = !!captureKey;
const transparent = params.get('transparent') === '1' && !capturing;   // webcams have no alpha
// Outline: ?outline=1|0; by default (auto) on, except on software GL, where it costs 40% of the frame
// (SwiftShader here, 1280×720: 41 fps without, 28 with).
const outlineKnob = params.get('outline') || 'auto';
const token = params.get('token');
// Software GL (SwiftShader, what headless capture runs on) is fill-bound here: multisampling is on
// only for the interactive view unless ?aa=0|1 says otherwise, and ?mat=mmd keeps MMDLoader's own
// (costlier, specular) MMDToonMaterial instead of the plain MeshToonMaterial we swap in.
const knob = (k, d) => (params.has(k) ? params.get(k) : d);

// English (and common variant) names → the MMD names on the wire. First match in the model wins.
const BONE_ALIASES = {
  '上半身': ['upper_body', 'upperbody', 'spine', 'chest'],
  '首': ['neck'],
  '頭': ['head'],
  '両目': ['eyes', 'both_eyes'],
  '左目': ['eye_l', 'lefteye', 'left_eye', 'eye.l', 'eyel'],
  '右目': ['eye_r', 'righteye', 'right_eye', 'eye.r', 'eyer'],
};
const MORPH_ALIASES = {
  'まばたき': ['blink'],
  'ウィンク': ['wink', 'wink_l', 'blink_l'],
  'ウィンク右': ['wink_r', 'blink_r'],
  'あ': ['a', 'aa'], 'い': ['i', 'ih'], 'う': ['u', 'ou'], 'え': ['e', 'ee'], 'お': ['o', 'oh'],
  'にこり': ['笑い', 'smile', 'joy'],
  '上': ['brow_up', 'surprised'],
  '下': ['brow_down', 'angry'],
};

const state = {
  ready: false, messages: 0, found: false, fps: 0, jsMs: 0, renderMs: 0, rate: 0, connected: false, error: null,
  smoothing: 0.2, mirror: true,
};
const bones = new Map();    // wire name → {bone, rest, target (local, relative to rest), current}
const morphs = new Map();   // wire name → {index, target}
let mesh = null;

// ---- scene ------------------------------------------------------------------------------------

// The capture page draws into an OffscreenCanvas: nobody looks at it, and a canvas in the document
// would be composited every frame, which in software GL costs about as much as drawing the avatar.
const canvas = capturing && typeof OffscreenCanvas !== 'undefined'
  ? new OffscreenCanvas(1280, 720) : document.getElementById('view');
const renderer = new THREE.WebGLRenderer({
  canvas, alpha: transparent, antialias: knob('aa', transparent || capturing ? '0' : '1') === '1',
});
renderer.setPixelRatio(capturing ? 1 : Math.min(window.devicePixelRatio || 1, 2));
renderer.setSize(window.innerWidth, window.innerHeight, false);
if (capturing) {
  document.documentElement.classList.add('capture');
} else if (transparent) {
  document.documentElement.classList.add('transparent');
  renderer.setClearColor(0x000000, 0);
} else {
  renderer.setClearColor(0xdfe6ee, 1);
}
function glRenderer(gl) {
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  return String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
}
const glName = glRenderer(renderer.getContext());
const softwareGL = /swiftshader|llvmpipe|software|softpipe/i.test(glName);
const outline = outlineKnob === 'auto' ? !softwareGL : outlineKnob !== '0';
const effect = outline ? new OutlineEffect(renderer) : null;
const scene = new THREE.Scene();
const camera = new THREE.PerspectiveCamera(30, window.innerWidth / window.innerHeight, 0.1, 1000);
camera.position.set(0, 15, 30);
scene.add(new THREE.AmbientLight(0xaaaaaa, 3));
const sun = new THREE.DirectionalLight(0xffffff, 3);
sun.position.set(-1, 1, 1).normalize();
scene.add(sun);

function frameBustShot(model) {
  // Head and shoulders: from a little above the top of the model down to about one head size
  // below the 頭 bone (MMD puts it at the neck), centred on the head's depth.
  model.updateMatrixWorld(true);
  const box = new THREE.Box3().setFromObject(model);
  const head = bones.get('頭');
  let top = box.max.y, bottom = box.min.y, z = (box.min.z + box.max.z) / 2;
  if (head) {
    const p = head.bone.getWorldPosition(new THREE.Vector3());
    const size = Math.max(top - p.y, 0.08 * (box.max.y - box.min.y));
    top += 0.35 * size;
    bottom = p.y - 0.8 * size;
    z = p.z;
  }
  const span = Math.max(top - bottom, 1e-3);
  const fov = THREE.MathUtils.degToRad(camera.fov);
  const dist = (span / 2) / Math.tan(fov / 2) / Math.min(1, camera.aspect * 0.9);
  const cy = (top + bottom) / 2;
  camera.position.set(0, cy, z + dist);
  camera.near = dist / 100;
  camera.far = dist * 10;
  camera.lookAt(0, cy, z);
  camera.updateProjectionMatrix();
}

function viewSize() {
  // The capture page draws at the camera's size whatever its window is; the others fill the window.
  return capture ? [capture.width, capture.height] : [window.innerWidth, window.innerHeight];
}

window.addEventListener('resize', () => {
  if (capture) return;
  camera.aspect = window.innerWidth / window.innerHeight;
  renderer.setSize(window.innerWidth, window.innerHeight, false);
  if (mesh) frameBustShot(mesh); else camera.updateProjectionMatrix();
});

// ---- the model --------------------------------------------------------------------------------

function lookup(names, aliases) {
  // names: Map of lower-cased model name → value. Returns the value for a wire name or an alias.
  const out = new Map();
  for (const [wire, alts] of Object.entries(aliases)) {
    for (const n of [wire, ...alts]) {
      const hit = names.get(n.toLowerCase());
      if (hit !== undefined) { out.set(wire, hit); break; }
    }
  }
  return out;
}

function bindModel(model) {
  const byName = new Map();
  for (const b of model.skeleton.bones) if (!byName.has(b.name.toLowerCase())) byName.set(b.name.toLowerCase(), b);
  for (const [wire, bone] of lookup(byName, BONE_ALIASES)) {
    bones.set(wire, { bone, rest: bone.quaternion.clone(), target: new THREE.Quaternion(), current: new THREE.Quaternion() });
  }
  const dict = new Map();
  for (const [name, index] of Object.entries(model.morphTargetDictionary || {})) {
    if (!dict.has(name.toLowerCase())) dict.set(name.toLowerCase(), index);
  }
  for (const [wire, index] of lookup(dict, MORPH_ALIASES)) morphs.set(wire, { index, target: 0 });
}

async function loadConfig() {
  const res = await fetch('/config.json' + (token ? `?token=${encodeURIComponent(token)}` : ''), { cache: 'no-store' });
  if (!res.ok) throw new Error(`config.json: HTTP ${res.status}`);
  return res.json();
}

function loadModel(url) {
  return new Promise((resolve, reject) => {
    new MMDLoader().load(url, resolve, undefined, (e) => reject(new Error(`cannot load ${url}: ${e.message || e}`)));
  });
}

// MMDToonMaterial adds Blinn-Phong specular and matcap code to every fragment; in SwiftShader that is
// ~15-25% of the frame. MeshToonMaterial with the same diffuse, ambient (emissive) and toon gradient
// looks the same at a glance. MMDLoader decides `transparent` only once a texture has loaded
// (it looks at the alpha), so the originals are kept and their blend state copied each frame.
const materialPairs = [];
function simplifyMaterials(model) {
  model.material = model.material.map((m) => {
    // The small textured ones (eyes, blush) keep MMD's exact blend, as clones: three.js draws opaque
    // materials in id order, and the model's material order must stay the draw order.
    const n = m.map || m.matcap ? m.clone() : new THREE.MeshToonMaterial({
      color: m.color, emissive: m.emissive, gradientMap: m.gradientMap, side: m.side,
    });
    n.name = m.name;
    n.userData = m.userData;          // OutlineEffect reads userData.outlineParameters
    materialPairs.push([m, n]);
    return n;
  });
  syncMaterials();
}
function syncMaterials() {
  for (const [m, n] of materialPairs) {
    if (n.transparent !== m.transparent || n.alphaTest !== m.alphaTest) n.needsUpdate = true;
    n.transparent = m.transparent; n.opacity = m.opacity; n.alphaTest = m.alphaTest;
    n.depthWrite = m.depthWrite; n.blending = m.blending; n.visible = m.visible;
  }
}

// ---- pose messages ----------------------------------------------------------------------------

const tmp = new THREE.Quaternion();

function finite4(v) {
  return Array.isArray(v) && v.length === 4 && v.every((c) => typeof c === 'number' && Number.isFinite(c));
}

function applyMessage(msg) {
  if (msg.type === 'model' && typeof msg.model === 'string') {       // the panel (here or elsewhere) switched
    showReport(msg.report);
    switchModel(msg.model);
    refreshModels();
    return;
  }
  if (msg.type === 'status') {                      // the bridge, once a second
    bridgeStatus = msg;
    if (document.activeElement !== vmcInput) vmcInput.value = typeof msg.vmc === 'string' ? msg.vmc : '';
    vmcInput.classList.toggle('bad', !!msg.vmc_error);
    vmcInput.title = msg.vmc_error || 'Where VMC goes: HOST:PORT, Enter to apply';
    return;
  }
  if (msg.type === 'settings') {
    if (typeof msg.mirror === 'boolean') { state.mirror = msg.mirror; mirrorBox.checked = msg.mirror; }
    if (typeof msg.smoothing === 'number' && Number.isFinite(msg.smoothing)) {
      state.smoothing = Math.min(1, Math.max(0, msg.smoothing));
      smoothingSlider.value = String(state.smoothing);
    }
    return;
  }
  if (msg.type !== 'pose') return;
  state.messages += 1;
  if (Number.isInteger(msg.frame)) lastPoseFrame = msg.frame;
  state.found = !!msg.found;
  if (msg.bones && typeof msg.bones === 'object') {
    for (const [name, q] of Object.entries(msg.bones)) {
      const b = bones.get(name);
      if (!b || !finite4(q)) continue;
      tmp.set(q[0], q[1], q[2], q[3]);
      if (tmp.lengthSq() < 1e-12) continue;
      b.target.copy(tmp.normalize());
    }
  }
  if (msg.morphs && typeof msg.morphs === 'object') {
    for (const [name, w] of Object.entries(msg.morphs)) {
      const m = morphs.get(name);
      if (m && typeof w === 'number' && Number.isFinite(w)) m.target = Math.min(1, Math.max(0, w));
    }
  }
}

let socket = null;
let retry = 500;

function connect() {
  const query = new URLSearchParams();
  if (token) query.set('token', token);
  if (captureKey) query.set('capture', captureKey);    // the bridge's own page: not counted as a viewer
  const qs = query.toString();
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws` + (qs ? `?${qs}` : '');
  socket = new WebSocket(url);
  socket.onopen = () => { state.connected = true; retry = 500; };
  socket.onmessage = (ev) => {
    if (typeof ev.data !== 'string') return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg && typeof msg === 'object') applyMessage(msg);
  };
  socket.onclose = () => {
    state.connected = false;
    setTimeout(connect, retry);            // the bridge may restart: keep trying, gently
    retry = Math.min(retry * 2, 5000);
  };
}

function send(obj) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(obj));
}

// ---- panel ------------------------------------------------------------------------------------

const panel = document.getElementById('panel');
const statusText = document.getElementById('status');
const mirrorBox = document.getElementById('mirror');
const vmcInput = document.getElementById('vmc');
let bridgeStatus = null;   // {fps, track_ms, found, vmc, vmc_error, vcam, source} from the bridge
const smoothingSlider = document.getElementById('smoothing');
panel.hidden = transparent;
document.getElementById('calibrate').addEventListener('click', () => send({ cmd: 'calibrate' }));
mirrorBox.addEventListener('change', () => send({ cmd: 'mirror', value: mirrorBox.checked }));
vmcInput.addEventListener('change', () => { if (vmcInput.value.trim()) send({ cmd: 'vmc', value: vmcInput.value.trim() }); });
smoothingSlider.addEventListener('input', () => {
  state.smoothing = Number(smoothingSlider.value);
  send({ cmd: 'smoothing', value: state.smoothing });
});

// ---- model picker, upload, and what the model has -----------------------------------------------

const modelSelect = document.getElementById('model');
const uploadInput = document.getElementById('upload');
const reportText = document.getElementById('report');
const withToken = (path) => path + (token ? `${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : '');

function showReport(report) {
  if (!report) { reportText.textContent = ''; return; }
  if (report.error) { reportText.textContent = `model: ${report.error}`; return; }
  const missing = [...(report.missing_required_bones || []), ...(report.missing_required_morphs || [])];
  reportText.textContent = missing.length ? `model lacks: ${missing.join(' ')}` : 'model: every standard bone and morph found';
}

async function refreshModels() {
  try {
    const res = await fetch(withToken('/models.json'), { cache: 'no-store' });
    if (!res.ok) return;
    const { models, current } = await res.json();
    modelSelect.replaceChildren(...models.map((n) => new Option(n, n, false, n === current)));
  } catch { /* the panel keeps its old list */ }
}

let loadingUrl = null;
async function switchModel(url) {
  if (loadingUrl === url) return;
  loadingUrl = url;
  try {
    const next = await loadModel(url + `?v=${Date.now()}`);
    if (loadingUrl !== url) return;                   // another switch overtook this one
    if (knob('mat', 'toon') !== 'mmd') { materialPairs.length = 0; simplifyMaterials(next); }
    if (mesh) scene.remove(mesh);
    bones.clear(); morphs.clear();
    mesh = next;
    bindModel(mesh);
    scene.add(mesh);
    frameBustShot(mesh);
    state.error = null;
    document.getElementById('error').hidden = true;
  } catch (e) {
    showError(String(e.message || e));
  } finally {
    if (loadingUrl === url) loadingUrl = null;
  }
}

modelSelect.addEventListener('change', () => send({ cmd: 'model', value: modelSelect.value }));
uploadInput.addEventListener('change', async () => {
  const file = uploadInput.files && uploadInput.files[0];
  if (!file) return;
  reportText.textContent = `adding ${file.name}…`;
  try {
    const res = await fetch(withToken(`/upload?name=${encodeURIComponent(file.name)}`), { method: 'POST', body: file });
    const body = await res.json();
    if (body.ok) showReport(body.report); else reportText.textContent = `not added: ${body.error}`;
  } catch (e) {
    reportText.textContent = `not added: ${e.message || e}`;
  }
  uploadInput.value = '';
});

function showError(text) {
  state.error = text;
  const el = document.getElementById('error');
  el.textContent = text;
  el.hidden = transparent;
}

// ---- animation loop ---------------------------------------------------------------------------

const clock = new THREE.Clock();
let frames = 0, fpsT = 0, msgCount = 0;
let capture = null;     // the capture page's Capture (set from /config.json before the first frame)
let lastPoseFrame = -1;

function step(dt) {
  // Exponential approach: time constant 0 (snap) … 0.25 s at full smoothing.
  const tau = state.smoothing * 0.25;
  const a = tau <= 1e-4 ? 1 : 1 - Math.exp(-dt / tau);
  for (const b of bones.values()) {
    b.current.slerp(b.target, a);
    b.bone.quaternion.copy(b.rest).multiply(b.current);
  }
  if (mesh) {
    const inf = mesh.morphTargetInfluences;
    for (const m of morphs.values()) inf[m.index] += (m.target - inf[m.index]) * a;
  }
}

const timing = { js: 0, render: 0, n: 0 };
function animate(now) {
  // The capture page draws only the frames the camera takes: software GL has no cycles to spare.
  if (capture && !capture.due(now)) return;
  const t0 = performance.now();
  const dt = Math.min(clock.getDelta(), 0.1);
  step(dt);
  const t1 = performance.now();
  syncMaterials();
  if (effect) effect.render(scene, camera); else renderer.render(scene, camera);
  const t2 = performance.now();
  // same task: the drawing buffer is intact; the read-back also waits for the GPU to finish the draw
  if (capture && mesh) capture.grab(renderer, lastPoseFrame);
  timing.js += t1 - t0; timing.render += t2 - t1; timing.n += 1;
  frames += 1;
  fpsT += dt;
  if (fpsT >= 1) {
    state.fps = frames / fpsT;
    // CPU milliseconds per frame: our JS (easing) and render() (three.js; the GL work itself runs
    // asynchronously in the GPU process, so a fill-bound frame shows up in fps, not here).
    state.jsMs = timing.js / timing.n; state.renderMs = timing.render / timing.n;
    timing.js = timing.render = timing.n = 0;
    state.rate = (state.messages - msgCount) / fpsT;
    msgCount = state.messages;
    frames = 0;
    fpsT = 0;
    if (capture) capture.report({ fps: state.fps, renderMs: state.renderMs, outline, gl: glName });
    const b = bridgeStatus;
    statusText.textContent = !state.connected ? 'bridge not connected…'
      : (b ? `tracker ${b.fps.toFixed(0)} fps · ${b.track_ms.toFixed(1)} ms · ` : '')
        + `face ${state.found ? 'found' : 'not found'} · page ${state.fps.toFixed(0)} fps`
        + (b && b.vcam ? ` · ${b.vcam}` : '');
  }
  if (mesh && !state.ready) state.ready = true;   // after the first frame with the model drawn
}

// ---- test hook (read-only) --------------------------------------------------------------------

const toArray = (q) => [q.x, q.y, q.z, q.w];
window.openvtuber = Object.freeze({
  get ready() { return state.ready; },
  bones() {
    const out = {};
    for (const [name, b] of bones) out[name] = toArray(b.rest.clone().invert().multiply(b.bone.quaternion));
    return out;
  },
  morphs() {
    const out = {};
    if (mesh) for (const [name, m] of morphs) out[name] = mesh.morphTargetInfluences[m.index];
    return out;
  },
  stats() {
    const timing = { jsMs: state.jsMs, renderMs: state.renderMs, dpr: renderer.getPixelRatio(), outline,
      calls: renderer.info.render.calls, triangles: renderer.info.render.triangles };
    return { fps: state.fps, timing, messages: state.messages, found: state.found, connected: state.connected,
      bridge: bridgeStatus, status: statusText.textContent,
      error: state.error, capture: capture ? capture.stats() : null };
  },
  screen(name) {   // CSS-pixel position of a bone on screen (for pixel checks in tests)
    const b = bones.get(name);
    if (!b) return null;
    const p = b.bone.getWorldPosition(new THREE.Vector3()).project(camera);
    const [w, h] = viewSize();
    return [(p.x + 1) / 2 * w, (1 - p.y) / 2 * h];
  },
});

// ---- start ------------------------------------------------------------------------------------

panel.hidden = transparent || capturing;
try {
  const config = await loadConfig();
  if (capturing) {
    const c = config.capture || {};
    capture = new Capture(captureKey, c);
    renderer.setSize(capture.width, capture.height, false);
    camera.aspect = capture.width / capture.height;
    camera.updateProjectionMatrix();
    renderer.setClearColor(new THREE.Color(c.background || '#00b140'), 1);
    if (c.image) scene.background = await new THREE.TextureLoader().loadAsync(c.image).then((t) => {
      t.colorSpace = THREE.SRGBColorSpace;
      return t;
    }).catch(() => null);
    capture.connect();
  }
  renderer.setAnimationLoop(animate);
  if (config.settings) applyMessage({ type: 'settings', ...config.settings });
  showReport(config.report);
  refreshModels();
  mesh = await loadModel(config.model);
  if (knob('mat', 'toon') !== 'mmd') simplifyMaterials(mesh);
  bindModel(mesh);
  scene.add(mesh);
  frameBustShot(mesh);
} catch (e) {
  renderer.setAnimationLoop(animate);
  showError(String(e.message || e));
  console.warn('OpenVtuber:', e);
}
connect();
