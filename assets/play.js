() => {
  // The Play tab's instrument: a pad of the decoded cells and a keyboard, played with Web Audio. The server
  // sends one 16-bit PCM file of every cell at every pitch and its index (nsynth_core/browser_pack.py, with the
  // decoder and the corner notes); a key plays the cell nearest the pad's point at the decoded pitch nearest the key, sped up or slowed down to it.
  // Every voice goes through one AnalyserNode, so tests (and meters) can see what is sounding.
  const LOWEST_KEY = 48, KEY_COUNT = 25;  // on screen: C3 to C5
  const COMPUTER_KEYS = "awsedftgyhujk";  // C to C, the black keys on the row above
  const RELEASE_SECONDS = 0.1;
  const BLACK = new Set([1, 3, 6, 8, 10]);
  const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.connect(context.destination);
  const player = {context, analyser, voicesStarted: 0, index: null, buffers: [], point: {x: 0.5, y: 0.5}};
  const voices = new Map();  // key -> its sounding voices (a key held by the mouse and a MIDI note at once)
  let computerOctave = 0;
  window.nsynthPlay = player;

  const style = document.createElement("style");
  style.textContent = `
    #play-surface {display: flex; flex-wrap: wrap; gap: 16px 24px; align-items: flex-end}
    #play-status {flex-basis: 100%; margin: 0}
    #play-pad {position: relative; width: 240px; height: 240px; display: grid; gap: 2px; touch-action: none;
               background: var(--border-color-primary); border-radius: 8px; overflow: hidden; cursor: crosshair}
    #play-pad .cell {display: flex; align-items: center; justify-content: center; font-size: 12px;
                     background: var(--block-background-fill); color: var(--body-text-color-subdued)}
    #play-pad .cell.nearest {background: var(--color-accent-soft); color: var(--body-text-color)}
    #play-pad .marker {position: absolute; width: 14px; height: 14px; margin: -7px 0 0 -7px; border-radius: 50%;
                       background: var(--color-accent); pointer-events: none}
    #play-keys {position: relative; height: 120px; user-select: none; touch-action: none}
    #play-keys .key {position: absolute; top: 0; box-sizing: border-box; border: 1px solid #555;
                     border-radius: 0 0 4px 4px; display: flex; align-items: flex-end; justify-content: center;
                     font-size: 10px; padding-bottom: 4px; cursor: pointer}
    #play-keys .white {width: 36px; height: 120px; background: #fafafa; color: #333; z-index: 1}
    #play-keys .black {width: 24px; height: 74px; background: #222; color: #ddd; z-index: 2}
    #play-keys .key.down {background: var(--color-accent)}`;
  document.head.appendChild(style);

  const status = (text) => { const line = document.querySelector("#play-status"); if (line) line.textContent = text; };

  const nearestCell = () => {
    const {rows, cols} = player.index;
    const row = Math.round(player.point.y * (rows - 1)), col = Math.round(player.point.x * (cols - 1));
    return row * cols + col;
  };

  const drawPad = () => {
    const pad = document.querySelector("#play-pad");
    if (!pad || !player.index) return;
    const {rows, cols, labels} = player.index;
    pad.style.gridTemplate = `repeat(${rows}, 1fr) / repeat(${cols}, 1fr)`;
    pad.replaceChildren(...labels.map((label) => Object.assign(document.createElement("div"),
                                                                 {className: "cell", textContent: label})));
    pad.appendChild(Object.assign(document.createElement("div"), {className: "marker"}));
    showPoint();
  };

  const showPoint = () => {
    const pad = document.querySelector("#play-pad");
    if (!pad || !player.index) return;
    const marker = pad.querySelector(".marker");
    marker.style.left = `${100 * player.point.x}%`;
    marker.style.top = `${100 * player.point.y}%`;
    const nearest = nearestCell();
    pad.querySelectorAll(".cell").forEach((cell, i) => cell.classList.toggle("nearest", i === nearest));
  };

  const drawKeys = (keys) => {
    let whites = 0;
    for (let key = LOWEST_KEY; key < LOWEST_KEY + KEY_COUNT; key++) {
      const black = BLACK.has(key % 12);
      const button = Object.assign(document.createElement("div"), {
        className: `key ${black ? "black" : "white"}`, textContent: key % 12 === 0 ? `C${key / 12 - 1}` : ""});
      button.dataset.key = key;
      button.title = `${NAMES[key % 12]}${Math.floor(key / 12) - 1} (MIDI ${key})`;
      button.style.left = `${black ? whites * 36 - 12 : whites * 36}px`;
      if (!black) whites++;
      keys.appendChild(button);
    }
    keys.style.width = `${whites * 36}px`;
  };

  const resume = () => { if (context.state !== "running") context.resume(); };

  const noteOn = (key, velocity = 1) => {
    resume();
    if (!player.index) { status("Decode the grid first (the button above)."); return; }
    const {pitches} = player.index;
    const nearest = pitches.reduce((best, p, i) => Math.abs(p - key) < Math.abs(pitches[best] - key) ? i : best, 0);
    const source = context.createBufferSource();
    source.buffer = player.buffers[nearestCell()][nearest];
    source.playbackRate.value = 2 ** ((key - pitches[nearest]) / 12);
    const gain = context.createGain();
    gain.gain.value = velocity;
    source.connect(gain).connect(analyser);
    source.start();
    player.voicesStarted++;
    const voice = {source, gain};
    voices.set(key, [...(voices.get(key) || []), voice]);
    source.onended = () => voices.set(key, (voices.get(key) || []).filter((v) => v !== voice));
    document.querySelector(`#play-keys [data-key="${key}"]`)?.classList.add("down");
  };

  const noteOff = (key) => {
    const now = context.currentTime;
    for (const {source, gain} of voices.get(key) || []) {
      gain.gain.setTargetAtTime(0, now, RELEASE_SECONDS / 3);  // a short fade, not the click of a hard stop
      source.stop(now + RELEASE_SECONDS);
    }
    voices.delete(key);
    document.querySelector(`#play-keys [data-key="${key}"]`)?.classList.remove("down");
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
    player.index = index;
    drawPad();
    const [a, b, c, d] = index.corners;
    status(`${index.rows} × ${index.cols} cells between A ${a} (top left), B ${b} (top right), C ${c} (bottom ` +
           `left) and D ${d} (bottom right), decoded by the ${index.decoder} decoder at MIDI ` +
           `${index.pitches.join(", ")}: click the pad, then play the keys (a w s e d f t g y h u j k from middle ` +
           "C, z and x shift an octave).");
  };

  const movePoint = (event, pad) => {
    const box = pad.getBoundingClientRect();
    const clamp = (v) => Math.min(1, Math.max(0, v));
    player.point = {x: clamp((event.clientX - box.left) / box.width), y: clamp((event.clientY - box.top) / box.height)};
    showPoint();
  };
  let dragging = false, mouseKey = null;
  document.addEventListener("pointerdown", (event) => {
    resume();
    const pad = event.target.closest?.("#play-pad");
    if (pad) { dragging = true; movePoint(event, pad); }
    const key = event.target.closest?.("#play-keys .key");
    if (key) { mouseKey = Number(key.dataset.key); noteOn(mouseKey); }
  });
  document.addEventListener("pointermove", (event) => {
    const pad = document.querySelector("#play-pad");
    if (dragging && pad) movePoint(event, pad);
  });
  document.addEventListener("pointerup", () => {
    dragging = false;
    if (mouseKey !== null) { noteOff(mouseKey); mouseKey = null; }
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
    noteOn(key);
  });
  document.addEventListener("keyup", (event) => {
    const key = computerKey(event);
    if (key !== null) noteOff(key);
  });

  if (navigator.requestMIDIAccess) {
    navigator.requestMIDIAccess().then((midi) => {
      const listen = (input) => { input.onmidimessage = ({data: [command, note, velocity]}) => {
        const kind = command & 0xf0;
        if (kind === 0x90 && velocity > 0) noteOn(note, velocity / 127);
        else if (kind === 0x80 || kind === 0x90) noteOff(note);
      }; };
      midi.inputs.forEach(listen);
      midi.onstatechange = (event) => { if (event.port.type === "input") listen(event.port); };
    }, () => {});  // no MIDI permission: the page's keys still play
  }

  // The tab's elements appear when Gradio renders it: draw the keyboard (and any loaded pad) then.
  const attach = () => {
    const keys = document.querySelector("#play-keys");
    if (keys && !keys.childElementCount) { drawKeys(keys); drawPad(); }
  };
  new MutationObserver(attach).observe(document.body, {childList: true, subtree: true});
  attach();
}
