() => {
  // A click between notes on the Explore tab's map, heard at once from the page: the blend of the nearest three
  // bundled notes' Z by the server's rule (nsynth_core/explorer/map_points.py: inverse distances; a note itself
  // when the click is on it), played by a synthesiser node of its own running the shipped DDSP decoder
  // (assets/synth/, beside the Play tab's, on its AudioContext). The notes' Z come from synth/map_notes.json.
  // The server still decodes the same blend for the current sound's player and download; it tells the page,
  // through configure(), whether the chosen models are the ones the page holds, and at which pitch and length.
  const NEIGHBOURS = 3, EXACT_HIT = 1e-6;
  const ATTACK = 0.005, RELEASE = 0.03;  // s: the server's decoded sound has no envelope of its own
  const base = new URL(location.pathname.replace(/\/?$/, "/") + "play-synth/", location.origin);
  const map = {settings: window.nsynthMapSettings || null, notes: null, synth: null, heard: [], releases: new Map()};
  window.nsynthMap = map;
  map.configure = (settings) => { map.settings = settings; };

  const start = async () => {
    // Once the visitor reaches for the map: the page's first sound and its map come first.
    await new Promise((resolve) => document.addEventListener("pointerover", function near(event) {
      if (!event.target.closest?.("#map")) return;
      document.removeEventListener("pointerover", near, true);
      resolve();
    }, true));
    await window.nsynthPlay?.started;  // the Play tab's synthesiser loads the weights and the worklet first
    if (!window.nsynthPlay?.synth) return;  // no synthesiser in this browser: the server plays the clicks
    const {context, analyser} = window.nsynthPlay;
    const [{createSynth}, {halfFloats}, notes] = await Promise.all([
      import(new URL("synth/synth_node.js", base).href), import(new URL("synth/model.js", base).href),
      fetch(new URL("synth/map_notes.json", base)).then((response) => response.json())]);
    const bytes = Uint8Array.from(atob(notes.z), (c) => c.charCodeAt(0)).buffer;
    const synth = await createSynth(context, {model: window.nsynthPlay.synth.model});
    synth.output.connect(analyser);
    synth.setEnvelope(ATTACK, RELEASE);
    map.notes = {...notes, z: halfFloats(bytes), index: new Map(notes.notes.map((note, i) => [note.id, i]))};
    map.synth = synth;
  };
  start().catch((error) => { map.error = error.message; });

  // [[map index, x, y]] of the bundled notes as `plot` draws them (plotly's own arrays, whatever their encoding).
  const placed = (plot) => {
    const found = [];
    for (const points of plot.calcdata || []) {
      const trace = points[0]?.trace;
      for (const point of trace?.customdata ? points : []) {
        const data = trace.customdata[point.i];
        const index = map.notes.index.get(Array.isArray(data) ? data[0] : data);
        if (index !== undefined) found.push([index, point.x, point.y]);
      }
    }
    return found;
  };

  // Plays the blend at (x, y) of `plot` and says so (true), or leaves the click to the server (false).
  map.play = (plot, x, y) => {
    const {settings, notes, synth} = map;
    if (!settings?.in_page || !notes || !synth) return false;
    const candidates = placed(plot).map(([index, px, py]) => [index, Math.hypot(px - x, py - y)]);
    if (candidates.length < NEIGHBOURS) return false;
    candidates.sort((a, b) => a[1] - b[1] || a[0] - b[0]);  // nearest first; ties in the map's order
    const nearest = candidates.slice(0, NEIGHBOURS);
    let weights = nearest[0][1] < EXACT_HIT ? nearest.map((_, k) => (k === 0 ? 1 : 0))
      : nearest.map(([, distance]) => 1 / distance);
    const total = weights.reduce((sum, w) => sum + w, 0);
    weights = weights.map((w) => w / total);
    const size = notes.frames * notes.channels, blend = new Float32Array(size);
    nearest.forEach(([index], k) => {
      for (let i = 0; i < size; i++) blend[i] += weights[k] * notes.z[index * size + i];
    });
    const corners = new Float32Array(4 * size);  // the same blend at every corner: the pad's point does not matter
    for (let corner = 0; corner < 4; corner++) corners.set(blend, corner * size);
    const pitch = settings.pitch ?? notes.notes[nearest[0][0]].pitch + 12 * settings.octaves;
    window.nsynthPlay.context.resume();
    synth.setCorners(corners, notes.frames);
    for (const [sounding, release] of map.releases) {  // the click before is no longer the current sound
      clearTimeout(release);
      synth.noteOff(sounding);
    }
    map.releases.clear();
    synth.noteOn(pitch);
    map.releases.set(pitch, setTimeout(() => {
      synth.noteOff(pitch);
      map.releases.delete(pitch);
    }, 1000 * settings.seconds));
    map.heard.push({x, y, pitch, neighbours: nearest.map(([index]) => notes.notes[index].id), weights,
                    at: performance.now()});
    return true;
  };
}
