() => {
  // The Play tab's instrument (webapp/play_tab.py). Its sound is the DDSP decoder running in the page
  // (assets/synth/, served under play-synth/ by play_tab.synth_routes): four corner notes' Z mixed at the pad's
  // point every control frame, played at each key's exact pitch, up to eight voices. The example's corners come
  // with the synthesiser (synth/example_corners.json), so the pad plays on arrival; the Grid tab's arrive from the
  // server through setCorners. A browser without AudioWorklet plays the grid decoded on the server instead
  // (decode_for_playing: one 16-bit PCM file of every cell at a few pitches and its index, see load below).
  // Everything that sounds goes through one AnalyserNode, so tests (and meters) can see it.
  const LOWEST_KEY = 48, KEY_COUNT = 25;  // on screen: C3 to C5
  const COMPUTER_KEYS = "awsedftgyhujk";  // C to C, the black keys on the row above
  const PAD_PITCH = 60;  // what a touch of the pad plays until a key has been played
  const SHORTEST_TAP_MS = 150;  // a quick tap still sounds: a release sent with the press would cancel the note
  // Three times the decoder's rate (the worklet upsamples) and most loudspeakers' own: a context at the decoder's
  // 16 kHz makes the browser resample, behind a buffer that delays every key.
  const SYNTH_RATE = 48000;
  const SERVER_RELEASE_SECONDS = 0.1;
  const WHITE_WIDTH = 48, BLACK_WIDTH = 44;  // px: tap targets of at least 44 px (play.css narrows what is drawn)
  const BLACK = new Set([1, 3, 6, 8, 10]);
  const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
  const READY = "Touch the pad or play the keys: a w s e d f t g y h u j k from middle C, z and x shift an octave.";
  const base = new URL(location.pathname.replace(/\/?$/, "/") + "play-synth/", location.origin);
  const worklets = typeof AudioWorkletNode !== "undefined";
  // The smallest output buffer the device allows: a key is heard a buffer sooner.
  const context = new AudioContext({latencyHint: 0, ...(worklets ? {sampleRate: SYNTH_RATE} : {})});
  const analyser = context.createAnalyser();
  analyser.connect(context.destination);
  // mode: "loading" the synthesiser, "synth" playing it, "server" (no synthesiser: the server's decoded grid)
  const player = {context, analyser, mode: worklets ? "loading" : "server", synth: null, example: null,
                  corners: null, waiting: null, voicesStarted: 0, index: null, buffers: [], point: {x: 0.5, y: 0.5},
                  lastKey: PAD_PITCH};
  const holds = new Map();  // key -> how many hold it (the pad, a mouse, the computer's keys, MIDI)
  const serverVoices = new Map();  // key -> its sounding buffer sources, in "server" mode
  let computerOctave = 0;
  window.nsynthPlay = player;

  const status = (text) => {  // kept, for a tab that Gradio renders later
    player.said = text;
    const line = document.querySelector("#play-status");
    if (line) line.textContent = text;
  };
  const floats = (text) => new Float32Array(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer);
  const resume = () => { if (context.state !== "running") context.resume(); };

  const drawCorners = () => {
    const corners = player.corners || [];
    document.querySelectorAll("#play-pad .corner").forEach((box, i) => {
      const corner = corners[i];
      if (!corner) { box.replaceChildren(); return; }
      const family = Object.assign(document.createElement("b"),
                                   {textContent: `${"ABCD"[i]} · ${corner.family.replace(/_/g, " ")}`});
      box.replaceChildren(family, Object.assign(document.createElement("span"), {textContent: corner.name}));
      box.title = `Corner ${"ABCD"[i]}: ${corner.name}`;
    });
  };

  // {corners: [{name, family}], frames, z: base64 float32 [4, frames, channels]}, or {example: true}.
  player.setCorners = (payload) => {
    if (!payload) return;
    if (!player.synth) { player.waiting = payload; return; }
    const chosen = payload.example ? player.example : payload;
    player.synth.setCorners(floats(chosen.z), chosen.frames);
    player.corners = chosen.corners;
    drawCorners();
  };

  const setEnvelope = () => {
    const attack = document.querySelector("#play-attack"), release = document.querySelector("#play-release");
    if (!attack || !release) return;
    attack.parentElement.dataset.value = `${Number(attack.value).toFixed(2)} s`;
    release.parentElement.dataset.value = `${Number(release.value).toFixed(2)} s`;
    player.synth?.setEnvelope(Number(attack.value), Number(release.value));
  };

  const startSynth = async () => {
    const corners = fetch(new URL("synth/example_corners.json", base)).then((fetched) => {
      if (!fetched.ok) throw new Error(`the example's corners: HTTP ${fetched.status}`);
      return fetched.json();
    });  // fetched while the modules load
    const module = (name) => import(new URL(`synth/${name}`, base).href);
    // its imports too, at once: left to synth_node.js they would be asked for only once that one has run
    const [{createSynth}, example] = await Promise.all([module("synth_node.js"), corners, module("model.js"),
                                                        module("upsample.js")]);
    const synth = await createSynth(context);  // its weights lie beside synth/, as the module expects
    synth.output.connect(analyser);
    synth.setPad(player.point.x, player.point.y);
    Object.assign(player, {synth, example});
    if (player.mode === "loading") player.mode = "synth";
    setEnvelope();
    player.setCorners(player.waiting || {example: true});
    if (player.mode === "synth") status(READY);
  };
  const serverOnly = (why) => {
    player.mode = "server";
    status(`${why} Open "Play without the in-page synthesiser" below and decode the grid there to play it.`);
  };
  // Settles once the synthesiser plays or the page has fallen back to the server's grid (map_sound.js waits on it).
  player.started = worklets
    ? startSynth().catch((error) => serverOnly(`The synthesiser could not start (${error.message}).`))
    : Promise.resolve(serverOnly("This browser cannot run the synthesiser in the page (no AudioWorklet)."));

  // --- the pad --------------------------------------------------------------------------------------------------
  const nearestCell = () => {
    const {rows, cols} = player.index;
    return Math.round(player.point.y * (rows - 1)) * cols + Math.round(player.point.x * (cols - 1));
  };
  const showPoint = () => {
    const pad = document.querySelector("#play-pad");
    if (!pad) return;
    let marker = pad.querySelector(".marker");
    if (!marker) marker = pad.appendChild(Object.assign(document.createElement("div"), {className: "marker"}));
    marker.style.left = `${100 * player.point.x}%`;
    marker.style.top = `${100 * player.point.y}%`;
    if (player.mode !== "server" || !player.index) return;
    const nearest = nearestCell();
    pad.querySelectorAll(".cell").forEach((cell, i) => cell.classList.toggle("nearest", i === nearest));
  };
  const drawCells = () => {  // the server's decoded grid: its cells under the corners' names
    const pad = document.querySelector("#play-pad");
    if (!pad || !player.index) return;
    const {rows, cols, labels} = player.index;
    const cells = pad.querySelector(".cells") || pad.insertBefore(
      Object.assign(document.createElement("div"), {className: "cells"}), pad.firstChild);
    cells.style.gridTemplate = `repeat(${rows}, 1fr) / repeat(${cols}, 1fr)`;
    cells.replaceChildren(...labels.map((label) => Object.assign(document.createElement("div"),
                                                                   {className: "cell", textContent: label})));
    showPoint();
  };
  const movePoint = (event, pad) => {
    const box = pad.getBoundingClientRect();
    const clamp = (v) => Math.min(1, Math.max(0, v));
    player.point = {x: clamp((event.clientX - box.left) / box.width), y: clamp((event.clientY - box.top) / box.height)};
    player.synth?.setPad(player.point.x, player.point.y);
    showPoint();
  };

  // --- notes --------------------------------------------------------------------------------------------------
  const startNote = (key, velocity) => {
    if (player.mode === "synth") {
      if (!player.corners) { status("The corners' notes are on their way…"); return false; }
      player.synth.noteOn(key);
    } else if (player.mode === "server" && player.index) {
      const {pitches} = player.index;
      const nearest = pitches.reduce((best, p, i) => Math.abs(p - key) < Math.abs(pitches[best] - key) ? i : best, 0);
      const source = context.createBufferSource();
      source.buffer = player.buffers[nearestCell()][nearest];
      source.playbackRate.value = 2 ** ((key - pitches[nearest]) / 12);
      const gain = context.createGain();
      gain.gain.value = velocity;
      source.connect(gain).connect(analyser);
      source.start();
      serverVoices.set(key, [...(serverVoices.get(key) || []), {source, gain}]);
    } else {
      status(player.mode === "loading" ? "The synthesiser is still loading…"
        : 'Decode the grid first ("Play without the in-page synthesiser" below).');
      return false;
    }
    player.voicesStarted++;
    return true;
  };
  const stopNote = (key) => {
    if (player.mode === "synth") player.synth.noteOff(key);
    const now = context.currentTime;
    for (const {source, gain} of serverVoices.get(key) || []) {
      gain.gain.setTargetAtTime(0, now, SERVER_RELEASE_SECONDS / 3);  // a short fade, not the click of a hard stop
      source.stop(now + SERVER_RELEASE_SECONDS);
    }
    serverVoices.delete(key);
  };
  const keyElement = (key) => document.querySelector(`#play-keys [data-key="${key}"]`);
  const press = (key, velocity = 1) => {
    resume();
    const held = holds.get(key) || 0;
    if (held === 0 && !startNote(key, velocity)) return false;
    holds.set(key, held + 1);
    keyElement(key)?.classList.add("down");
    return true;
  };
  const release = (key) => {
    const held = holds.get(key) || 0;
    if (held === 0) return;
    holds.set(key, held - 1);
    if (held > 1) return;
    stopNote(key);
    keyElement(key)?.classList.remove("down");
  };
  const playKey = (key, velocity) => {
    player.lastKey = key;  // the pad plays the key last played
    return press(key, velocity);
  };

  player.load = async (url, index) => {
    resume();
    status("Fetching the decoded notes…");
    const response = await fetch(url);
    if (!response.ok) { status(`Could not fetch the decoded notes (HTTP ${response.status}).`); return; }
    const pcm = new Int16Array(await response.arrayBuffer());
    player.buffers = index.offsets.map((cell) => cell.map((start) => {
      const buffer = context.createBuffer(1, index.length, index.sample_rate);
      const channel = buffer.getChannelData(0);
      for (let i = 0; i < index.length; i++) channel[i] = pcm[start + i] / 32768;
      return buffer;
    }));
    for (const key of [...holds.keys()]) { holds.set(key, 1); release(key); }
    Object.assign(player, {index, mode: "server",
                           corners: index.corners.map((label) => ({name: label, family: label.split("_")[0]}))});
    drawCorners();
    drawCells();
    status(`${index.rows} × ${index.cols} cells decoded on the server by the ${index.decoder} decoder at MIDI ` +
           `${index.pitches.join(", ")}: click the pad, then play the keys (keys between those pitches play the ` +
           "nearest one sped up or slowed down).");
  };

  // --- the keyboard and the pointer ------------------------------------------------------------------------------
  const drawKeys = (keys) => {
    let whites = 0;
    for (let key = LOWEST_KEY; key < LOWEST_KEY + KEY_COUNT; key++) {
      const black = BLACK.has(key % 12);
      const button = Object.assign(document.createElement("div"), {
        className: `key ${black ? "black" : "white"}`, textContent: key % 12 === 0 ? `C${key / 12 - 1}` : ""});
      button.dataset.key = key;
      button.title = `${NAMES[key % 12]}${Math.floor(key / 12) - 1} (MIDI ${key})`;
      button.style.left = `${black ? whites * WHITE_WIDTH - BLACK_WIDTH / 2 : whites * WHITE_WIDTH}px`;
      if (!black) whites++;
      keys.appendChild(button);
    }
    keys.style.width = `${whites * WHITE_WIDTH}px`;
  };

  let padPointer = null, padKey = null, padPressed = 0, mouseKey = null;
  document.addEventListener("pointerdown", (event) => {
    resume();
    const pad = event.target.closest?.("#play-pad");
    if (pad) {
      padPointer = event.pointerId;
      pad.setPointerCapture?.(event.pointerId);
      movePoint(event, pad);
      if (press(player.lastKey)) { padKey = player.lastKey; padPressed = performance.now(); }
    }
    const key = event.target.closest?.("#play-keys .key");
    if (key && playKey(Number(key.dataset.key))) mouseKey = Number(key.dataset.key);
  });
  document.addEventListener("pointermove", (event) => {
    const pad = document.querySelector("#play-pad");
    if (padPointer === event.pointerId && pad) movePoint(event, pad);
  });
  const pointerUp = (event) => {
    if (padPointer === event.pointerId) {
      padPointer = null;
      const key = padKey;
      if (key !== null) setTimeout(() => release(key), Math.max(0, padPressed + SHORTEST_TAP_MS - performance.now()));
      padKey = null;
    }
    if (mouseKey !== null) { release(mouseKey); mouseKey = null; }
  };
  document.addEventListener("pointerup", pointerUp);
  document.addEventListener("pointercancel", pointerUp);
  document.addEventListener("input", (event) => {
    if (event.target.closest?.("#play-envelope")) setEnvelope();
  });

  const typing = (event) => event.target.closest?.("input, textarea, select, [contenteditable]");
  const computerKey = (event) => {
    const offset = COMPUTER_KEYS.indexOf(event.key.toLowerCase());
    return typing(event) || event.ctrlKey || event.metaKey || event.altKey || offset < 0 ? null
      : 60 + 12 * computerOctave + offset;
  };
  document.addEventListener("keydown", (event) => {
    // only while the Play tab is shown, and never while a field is being typed in
    if (!document.querySelector("#play-keys")?.offsetParent || typing(event)) return;
    if (event.key === "z" || event.key === "x") { computerOctave += event.key === "z" ? -1 : 1; return; }
    const key = computerKey(event);
    if (key === null || event.repeat) return;
    event.preventDefault();
    playKey(key);
  });
  document.addEventListener("keyup", (event) => {
    const key = computerKey(event);
    if (key !== null) release(key);
  });

  if (navigator.requestMIDIAccess) {
    navigator.requestMIDIAccess().then((midi) => {
      const listen = (input) => { input.onmidimessage = ({data: [command, note, velocity]}) => {
        const kind = command & 0xf0;
        if (kind === 0x90 && velocity > 0) playKey(note, velocity / 127);
        else if (kind === 0x80 || kind === 0x90) release(note);
      }; };
      midi.inputs.forEach(listen);
      midi.onstatechange = (event) => { if (event.port.type === "input") listen(event.port); };
    }, () => {});  // no MIDI permission: the page's keys still play
  }

  // The tab's elements appear when Gradio renders it: draw the keyboard, the corners and the point then.
  const attach = () => {
    const keys = document.querySelector("#play-keys");
    if (!keys || keys.childElementCount) return;
    drawKeys(keys);
    drawCorners();
    drawCells();
    showPoint();
    setEnvelope();
    if (player.said) status(player.said);
  };
  new MutationObserver(attach).observe(document.body, {childList: true, subtree: true});
  attach();
}
