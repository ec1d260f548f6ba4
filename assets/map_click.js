() => {
  // Reports clicks on the map (#map, not the other figures) to the hidden #map-click textbox: {id, x, y} on a note
  // (plotly_click), {x, y} in data coordinates anywhere else on the plot area. Plotly has no event for empty space,
  // so a short press without movement on the drag layer (.nsewdrag, the plot area) counts when plotly's hover
  // shows no note: the hover is what plotly_click reports, so each press is told once.
  const send = (payload) => {
    const box = document.querySelector("#map-click textarea");
    if (!box) return;
    box.value = JSON.stringify({...payload, time: Date.now()});
    box.dispatchEvent(new Event("input", {bubbles: true}));
    box.dispatchEvent(new Event("change", {bubbles: true}));
  };
  // A grid cell or a path point has no note of its own: the place itself is played instead.
  const noteOf = (point) => Array.isArray(point.customdata) ? point.customdata[0] : point.customdata;
  let hasty = false;  // a press waits for plotly's hover to catch up: plotly_click tells of the stale one
  const report = (event) => {
    if (hasty) return;
    const point = event.points[0];
    const id = noteOf(point);
    if (id) send({id: id, x: point.x, y: point.y});
  };
  const attach = () => document.querySelectorAll("#map .js-plotly-plot").forEach((plot) => {
    const listening = plot._ev && plot._ev.listeners("plotly_click").includes(report);
    if (plot.on && !listening) plot.on("plotly_click", report);
  });
  // Plotly looks for the hovered note at most every 50 ms, and plotly_click tells of the hover of the moment: after
  // a press sooner than that after the pointer last moved, or a tap (no hover before it), that hover may be of the
  // note the pointer has just left, or of none, so such a press is judged once the hover has caught up.
  const HOVER_CATCH_UP_MS = 70;
  const HOVER_REACH = 32;  // px from a marker's centre: plotly's hoverdistance (20) beyond the largest marker's edge
  let press = null, lastMove = 0;
  document.addEventListener("pointermove", () => { lastMove = performance.now(); }, true);
  document.addEventListener("pointerdown", (event) => {
    const area = event.target.closest && event.target.closest("#map .nsewdrag");
    const settled = event.pointerType === "mouse" && performance.now() - lastMove > HOVER_CATCH_UP_MS;
    press = area ? {x: event.clientX, y: event.clientY, area: area, plot: area.closest(".js-plotly-plot"),
                    settled: settled} : null;
  }, true);
  // Capture phase on the document: plotly may cover the page while it handles a press.
  document.addEventListener("pointerup", (event) => {
    const started = press;
    press = null;
    if (!started || Math.hypot(event.clientX - started.x, event.clientY - started.y) > 4) return;  // a zoom drag
    const layout = started.plot._fullLayout;
    const box = started.area.getBoundingClientRect();
    const x = layout.xaxis.p2d(event.clientX - box.left), y = layout.yaxis.p2d(event.clientY - box.top);
    const hovered = () => (started.plot._hoverdata || []).find(noteOf);
    // A blend is heard from the page itself when it can (map_sound.js); the server is told so.
    const blend = () => send(window.nsynthMap?.play(started.plot, x, y) ? {x: x, y: y, in_page: true} : {x: x, y: y});
    const judge = () => {
      const point = hovered();
      if (point) send({id: noteOf(point), x: point.x, y: point.y});
      else blend();
    };
    // No point drawn within plotly's reach of the press: whatever its hover says yet, this is a place between
    // notes, played at once rather than after the hover's catch-up.
    const reachable = [...started.plot.querySelectorAll(".scatterlayer .points path")].some((point) => {
      if (point.closest(".trace")?.__data__?.[0]?.trace?.hoverinfo === "skip") return false;  // marks, not notes
      const box = point.getBoundingClientRect();
      return Math.hypot(box.x + box.width / 2 - event.clientX, box.y + box.height / 2 - event.clientY) <= HOVER_REACH;
    });
    if (!reachable) blend();
    else if (!started.settled) {
      hasty = true;
      setTimeout(() => { hasty = false; judge(); }, HOVER_CATCH_UP_MS);
    } else if (!hovered()) judge();  // else plotly_click tells of the note
  }, true);
  new MutationObserver(attach).observe(document.body, {childList: true, subtree: true});
  attach();
}
